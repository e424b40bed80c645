/* Forwarder for branches written before the split (remove once merged): see compiler/front/diag.h. */
#include "compiler/front/diag.h"
