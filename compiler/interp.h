/* Forwarder for branches written before the split (remove once merged): see compiler/interp/interp.h. */
#include "compiler/interp/interp.h"
