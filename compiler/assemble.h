/* Forwarder for branches written before the split (remove once merged): see compiler/back/assemble.h. */
#include "compiler/back/assemble.h"
