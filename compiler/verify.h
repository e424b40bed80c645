/* Forwarder for branches written before the split (remove once merged): see compiler/back/verify.h. */
#include "compiler/back/verify.h"
