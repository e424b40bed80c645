/* Forwarder for branches written before the split (remove once merged): see compiler/front/ast.h. */
#include "compiler/front/ast.h"
