/* value.h — scalar values of the .rasp language with Python's semantics
 * (spec Decisions 2 and 10): bool, 64-bit int, double, string, and None.
 *
 * Booleans are the numbers 1 and 0 in arithmetic and comparisons; 1 == 1.0 == true.
 * Strings are owned elsewhere (interned in an Arena) and never freed through a Value.
 * The runtime holds vocab and output values as Values; the language's operators on them
 * are compiler/front/valops.h. */
#ifndef TRACC_RUNTIME_VALUE_H
#define TRACC_RUNTIME_VALUE_H

#include <stdint.h>

#include "common/arena.h"
#include "common/util.h"

typedef enum { VAL_NONE, VAL_BOOL, VAL_INT, VAL_FLOAT, VAL_STR } ValKind;

typedef struct {
    ValKind kind;
    union {
        int64_t i;      /* VAL_BOOL (0/1) and VAL_INT */
        double f;       /* VAL_FLOAT */
        const char *s;  /* VAL_STR */
    } u;
} Value;

static inline Value val_none(void) { Value v; v.kind = VAL_NONE; v.u.i = 0; return v; }
static inline Value val_bool(int b) { Value v; v.kind = VAL_BOOL; v.u.i = b != 0; return v; }
static inline Value val_int(int64_t i) { Value v; v.kind = VAL_INT; v.u.i = i; return v; }
static inline Value val_float(double f) { Value v; v.kind = VAL_FLOAT; v.u.f = f; return v; }
static inline Value val_str(const char *s) { Value v; v.kind = VAL_STR; v.u.s = s; return v; }

static inline int val_is_number(Value v) { return v.kind == VAL_BOOL || v.kind == VAL_INT || v.kind == VAL_FLOAT; }
double val_as_double(Value v);          /* numbers only */

/* Numbers only: -1/0/1, or 2 when unordered (NaN involved); ints and floats compare
 * exactly (2**53 + 1 != 2.0**53). */
int val_num_cmp(Value a, Value b);

/* Python ==: numbers compare by value across bool/int/float; strings by content;
 * a string never equals a number; None equals only None. */
int val_equal(Value a, Value b);

/* A total order used to sort value sets: None < numbers (by value; on ties
 * bool < int < float) < strings (bytewise). Returns <0, 0, >0. Values equal under
 * val_equal compare 0. */
int val_order(Value a, Value b);

/* Hash consistent with val_equal (1, 1.0 and true hash alike). */
uint64_t val_hash(Value a);

/* Python truthiness is NOT used: `and`, `or`, `not`, `if` take booleans only
 * (spec Decision 2). This returns 1 and sets *b if v is a bool, else 0. */
int val_as_bool(Value v, int *b);

/* Text form: strings bare, ints as digits, floats like Python's repr (always with a
 * '.', 'e', 'inf' or 'nan'), booleans `true`/`false`, None as `None`. */
void val_format(Value v, StrBuf *out);
/* "None", "a bool", "an int", "a float", "a string": a value's kind, for messages. */
const char *val_kind_article(Value v);
/* Quoted form for messages: strings in double quotes with escapes. */
void val_format_quoted(Value v, StrBuf *out);

#endif
