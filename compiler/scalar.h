/* Forwarder for branches written before the split (remove once merged): see compiler/front/scalar.h. */
#include "compiler/front/scalar.h"
