/* Forwarder (to be removed): values moved to runtime/value.h, their operators to compiler/valops.h. */
#include "runtime/value.h"
#include "compiler/valops.h"
