/* Forwarder for branches written before the split (remove once merged): see compiler/back/lower.h. */
#include "compiler/back/lower.h"
