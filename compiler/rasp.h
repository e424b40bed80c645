/* Forwarder for branches written before the split (remove once merged): see compiler/front/rasp.h. */
#include "compiler/front/rasp.h"
