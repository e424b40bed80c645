/* Forwarder for branches written before the split (remove once merged): see compiler/front/valueset.h. */
#include "compiler/front/valueset.h"
