/* valueset.h — building value sets, internal to the front end: a hash set of Values that
 * remembers insertion order (so a map's table can be filled while its outputs are being
 * discovered), the final sort into the order rasp.h promises, and the exact set of means
 * a numerical aggregate can produce. */
#ifndef TRACC_VALUESET_H
#define TRACC_VALUESET_H

#include "value.h"

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

#endif
