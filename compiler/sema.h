/* Forwarder for branches written before the split (remove once merged): see compiler/front/sema.h. */
#include "compiler/front/sema.h"
