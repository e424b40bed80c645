/* valops.h — the .rasp language's binary and unary operators on values (runtime/value.h),
 * with Python's semantics (spec Decisions 2 and 10). */
#ifndef TRACC_VALOPS_H
#define TRACC_VALOPS_H

#include "common/arena.h"
#include "compiler/front/ast.h"
#include "runtime/value.h"

/* Apply a binary or unary operator with Python semantics. On a type error or an
 * arithmetic error (division by zero, overflow) returns 0 and writes a short
 * reason to err (e.g. "division by zero", "cannot add a string and a number").
 * New strings (from +) are allocated in arena. Returns 1 on success. */
int val_binary(AstOp op, Value a, Value b, Value *out, StrBuf *err, Arena *arena);
int val_unary(AstOp op, Value a, Value *out, StrBuf *err);

#endif
