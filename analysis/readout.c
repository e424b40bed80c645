/* readout.c — see readout.h. */
#include "analysis/readout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ro_layout_init(DecLayout *d, const Model *m)
{
    dec_layout_init(d, m);
    StrBuf err;
    sb_init(&err);
    dec_layout_add_virtual(d, m, &err);
    sb_free(&err);
}

const DecSop *ro_find(const DecLayout *d, const RaspSop *s)
{
    const DecSop *ds = dec_layout_find(d, s->label);
    return ds && ds->ndims > 0 && ds->categorical == (s->enc == ENC_CATEGORICAL) ? ds : NULL;
}

int ro_agrees(const DecSop *ds, const RaspSop *s, const float *row, int32_t want)
{
    return dec_sop_agrees(ds, row, want == RASP_NONE ? val_none() : s->vals[want]);
}

int ro_vocab_rows(const Model *m, const RaspProgram *p, int32_t *rows, StrBuf *err)
{
    return dec_vocab_rows(m, p->vocab, p->nvocab, rows, err);
}

int ro_sample(Rng *r, int V, int len_min, int len_max, int32_t *toks)
{
    int n = len_min + (int)rng_below(r, (uint32_t)(len_max - len_min + 1));
    for (int i = 0; i < n; i++) toks[i] = (int32_t)rng_below(r, (uint32_t)V);
    return n;
}

/* ---------------------------------------------------------------- option parsing */

static int parse_int(const char *s, const char *end, long *out)
{
    if (s == end) return -1;
    long x = 0;
    for (const char *q = s; q < end; q++) {
        if (*q < '0' || *q > '9') return -1;
        x = x * 10 + (*q - '0');
        if (x > 1000000000L) return -1;
    }
    *out = x;
    return 0;
}

int ro_parse_len(const char *s, int max_len, int *lo, int *hi, StrBuf *err)
{
    const char *dash = strchr(s, '-');
    long a, b;
    if (dash ? parse_int(s, dash, &a) || parse_int(dash + 1, dash + strlen(dash), &b)
             : parse_int(s, s + strlen(s), &a)) {
        sb_printf(err, "--len expects N or MIN-MAX, got '%s'", s);
        return -1;
    }
    if (!dash) b = a;
    if (a < 1 || b < a || b > max_len)
        return sb_fail(err, "--len %s is outside 1..%d (the model's max_len), or MIN > MAX", s, max_len);
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int ro_parse_at(const char *s, int max_len, int *at, StrBuf *err)
{
    int n = 0;
    const char *p = s;
    if (!*s) goto bad;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *dash = memchr(p, '-', (size_t)(end - p));
        long a, b;
        if (dash ? parse_int(p, dash, &a) || parse_int(dash + 1, end, &b) : parse_int(p, end, &a)) goto bad;
        if (!dash) b = a;
        if (b < a || b >= max_len)
            return sb_fail(err, "--at %s: indices must be in 0..%d (the model's max_len - 1)", s, max_len - 1);
        for (long i = a; i <= b; i++) {
            int dup = 0;
            for (int k = 0; k < n && !dup; k++) dup = at[k] == i;
            if (!dup) at[n++] = (int)i;
        }
        if (!comma) break;
        p = comma + 1;
        if (!*p) goto bad;
    }
    qsort(at, (size_t)n, sizeof(int), cmp_int);
    return n;
bad:
    sb_printf(err, "--at expects RASP indices like 1 or 0,2,4-6, got '%s'", s);
    return -1;
}

int ro_parse_ks(const char *s, long *ks, int cap, StrBuf *err)
{
    int n = 0;
    const char *p = s;
    if (!*s) goto bad;
    while (1) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        long k;
        if (parse_int(p, end, &k) || k < 1) goto bad;
        if (n > 0 && k <= ks[n - 1]) return sb_fail(err, "--top %s: the counts must increase", s);
        if (n == cap) return sb_fail(err, "--top %s: at most %d counts", s, cap);
        ks[n++] = k;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
bad:
    sb_printf(err, "--top expects increasing positive counts like 1,2,4,8, got '%s'", s);
    return -1;
}
