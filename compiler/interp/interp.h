/* interp.h — the reference interpreter: Tracr's RASP semantics as refined by the spec.
 * The oracle for the compiler, the trainer's labels and the analysis tools.
 *
 * Values are value-set indices (rasp.h); evaluation is table lookups plus, per selector,
 * one pass over the n×n query/key grid. One Interp is reused across inputs. */
#ifndef TRACC_INTERP_H
#define TRACC_INTERP_H

#include <stdint.h>

#include "compiler/front/rasp.h"

typedef struct Interp Interp;

/* all = 1 evaluates every s-op (for --trace); 0 only those the output needs. */
Interp *interp_new(const RaspProgram *p, int all);
void interp_free(Interp *it);

/* Evaluate one input: n tokens as vocab indices, 1 <= n <= max_len.
 * Causal programs are evaluated with every selector masked to keys at or before the query. */
void interp_run(Interp *it, const int32_t *tokens, int n);

/* After interp_run: the value index (or RASP_NONE) of s-op `sop` at each of the n positions.
 * NULL for an s-op that was not evaluated. */
const int32_t *interp_values(const Interp *it, int sop);

/* After interp_run: the selection matrix of selector `sel`, row-major [query][key] (n×n),
 * 1 = selected (with the causal mask and the no-value rule applied); NULL if not evaluated. */
const uint8_t *interp_selection(const Interp *it, int sel);

/* interp_run with its errors reported (added by the interpreter; interp_run is this call
 * with the result ignored). Returns 0, or -1 with a message from interp_error when:
 *   - n is not in 1..max_len, or a token is not a vocab index (nothing is evaluated);
 *   - the program is internally inconsistent: a mean absent from a numerical aggregate's
 *     value set, a width absent from a selector_width's set, a malformed operand. The
 *     positions concerned hold RASP_NONE; everything else is evaluated.
 * Such inconsistencies are bugs in the program's producer (sema), never user errors. */
int interp_eval(Interp *it, const int32_t *tokens, int n);

/* The message of the first error of the last interp_eval / interp_run, or "" if none. */
const char *interp_error(const Interp *it);

#endif
