/* Forwarder for branches written before the split (remove once merged): see compiler/front/frontend.h. */
#include "compiler/front/frontend.h"
