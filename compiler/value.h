/* Forwarder (to be removed): values moved to runtime/value.h, their operators to compiler/front/valops.h. */
#include "runtime/value.h"
#include "compiler/front/valops.h"
