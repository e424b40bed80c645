/* Forwarder for branches written before the split (remove once merged): see compiler/front/valops.h. */
#include "compiler/front/valops.h"
