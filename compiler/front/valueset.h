/* valueset.h — building value sets, internal to the front end: a hash set of Values that
 * remembers insertion order (so a map's table can be filled while its outputs are being
 * discovered), the final sort into the order rasp.h promises, and the exact set of means
 * a numerical aggregate can produce. */
#ifndef TRACC_VALUESET_H
#define TRACC_VALUESET_H

#include "rasp.h"
#include "runtime/value.h"

/* Two numbers are the same value of a numerical s-op when they differ by at most 1e-9
 * relative (or 1e-12 absolute, for values that should be 0 but carry rounding noise). */
int vs_num_close(double a, double b);

typedef struct {
    Value *v;       /* distinct values in insertion order */
    int n;
    size_t cap;
    int32_t *slots; /* open addressing: index into v, or -1 */
    size_t nslots;
} VSet;

void vset_init(VSet *s);
void vset_free(VSet *s);
/* Index of v in the set (NaN equals NaN here), adding it if new. */
int vset_add(VSet *s, Value v);

/* Sort the set into its final order and copy it into arena: numerical sets ascending with
 * values within the tolerance merged into one, categorical ones by val_order. Writes
 * perm[i] = final index of insertion-order value i (perm has s->n entries). Returns the
 * final count. */
int vset_finish(const VSet *s, int numerical, Arena *arena, Value **out, int32_t *perm);

/* Every mean of a multiset of 1..max_len values drawn from nums (numbers), plus extra
 * (if has_extra), as ascending floats merged within the tolerance. Returns the count, or
 * -1 if it would exceed limit (then *out is untouched). */
int vs_means(const Value *nums, int n, int max_len, int has_extra, double extra, int limit,
             Arena *arena, Value **out);

/* ---------- linear combinations of numerical means (spec Decisions 4 and 9) ----------
 *
 * A numerical linear sequence map whose operands unfold (through linear maps, linear
 * sequence maps and numerical constants) into  offset + sum_i c_i * mean_sel(x_i)  with
 * every aggregate over the same selection (one selector, or structurally identical ones)
 * produces, per position, the mean over the selected keys of
 *     w = offset + sum_i c_i * x_i(k)
 * (or offset + sum_i c_i * default_i when nothing is selected). Each x_i is a function of a
 * few "leaf" s-ops at the same key, so w ranges over W = { w(leaf values) } and the map's
 * values are among the means of multisets of 1..max_len elements of W (plus the combined
 * default unless the selector provably always selects a key). That set T is usually far
 * smaller than the product of the operands' value sets: for pair_balance (opens - closes)
 * W = {1, -1} and T = {(2o - c)/c}.
 *
 * The caller keeps, from the product of the operands' values, exactly the pairs whose
 * computed value lies within `tol` of a member of T (vs_linear_match); every other pair
 * cannot occur at run time and is marked RASP_IMPOSSIBLE in the table. A kept pair keeps
 * its own computed value, so every value the map takes is bit for bit what the full table
 * gave: only the set (and what is sized from it) shrinks. */
typedef struct {
    double *t;      /* ascending, merged within the tolerance */
    int n;
    double tol;     /* how far a pair's computed value may lie from a member of t */
    /* a direct index for vs_linear_match: bucket[k] = first member >= lo + k / scale */
    int32_t *bucket;
    int nbucket;
    double lo, scale;
} VsLinear;

/* Fill *out for the linear sequence map sops[id] (its a, b, lin_a, lin_b and its operands'
 * value sets complete; sops and sels hold every s-op and selector below id). nonempty(ctx,
 * sel) says whether selector sel provably selects at least one key at every query. Returns
 * 1 when the rule applies (free out with vs_linear_free), 0 when it does not or when T would
 * exceed `limit` values: then the plain product is the value set. */
int vs_linear_means(const RaspSop *sops, const RaspSel *sels, int id, int max_len,
                    int (*nonempty)(void *ctx, int sel), void *ctx, int limit, VsLinear *out);
/* 1 if x lies within out->tol of a member of T. */
int vs_linear_match(const VsLinear *l, double x);
void vs_linear_free(VsLinear *l);

#endif
