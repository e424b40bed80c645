/* Forwarder for branches written before the split (remove once merged): see compiler/back/craft.h. */
#include "compiler/back/craft.h"
