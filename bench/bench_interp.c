/* bench_interp.c — throughput of the reference interpreter, the trainer's label source.
 *
 * For each program: load it from the text embedded below (so the bench needs no example
 * files), draw seeded random inputs of length max_len, evaluate them all with one Interp
 * (all = 0, as the trainer does), and report tokens/s and sequences/s: the median of RUNS
 * timed passes after one warm-up pass. A checksum of the outputs makes runs comparable.
 * Both wall time and this thread's CPU time are reported: on a shared machine wall time
 * also measures the other tenants, while CPU time is what one core of our own delivers.
 *
 *   make bench                         (all bench binaries)
 *   build/bench/bench_interp [RUNS]    (this one; RUNS defaults to 7) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rng.h"
#include "common/util.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"

#define TOKENS_PER_PASS 2000000   /* about 0.1-1 s per pass at the speeds we see */

/* Tracr's lib.make_sort(tokens, tokens, max_seq_len=N, min_key=1): unique keys
 * x + i / N, then make_sort_unique. %d is max_len (twice). */
static const char SORT[] =
    "vocab {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};\n"
    "max_len %d;\n"
    "keys       = sequence_map(lambda x, i: x + 1 * i / %d, tokens, indices);\n"
    "smaller    = select(keys, keys, <);\n"
    "target_pos = selector_width(smaller);\n"
    "sel_new    = select(target_pos, indices, ==);\n"
    "sort       = aggregate(sel_new, tokens);\n"
    "output sort;\n";

/* The paper's Counter (spec "A whole program"). */
static const char COUNT_A[] =
    "vocab {a, b, c, d, e, f, g, h, i};\n"
    "max_len %d;\n"
    "is_a    = tokens == \"a\";\n"
    "bin_idx = select(is_a, indices, ==);\n"
    "count_a = selector_width(bin_idx);\n"
    "out     = aggregate(select(indices, indices, ==), count_a);\n"
    "output out;\n";

/* Tracr's make_frac_prevs: a numerical mean, looked up in its value set per position. */
static const char FRAC_PREVS[] =
    "vocab {a, b, c, x};\n"
    "max_len %d;\n"
    "is_x  = numerical(tokens == \"x\");\n"
    "prevs = select(indices, indices, <=);\n"
    "frac_prevs = numerical(aggregate(prevs, is_x, 0));\n"
    "output frac_prevs;\n";

/* make_reverse over Tracr's make_length. */
static const char REVERSE[] =
    "vocab {a, b, c, d};\n"
    "max_len %d;\n"
    "opp_idx   = length - indices;\n"
    "opp_idx_1 = opp_idx - 1;\n"
    "reverse   = aggregate(select(indices, opp_idx_1, ==), tokens);\n"
    "output reverse;\n";

typedef struct {
    const char *name;
    const char *fmt;
    int max_len;
    int uses_len_twice;
} Case;

static const Case cases[] = {
    {"sort", SORT, 10, 1},
    {"sort", SORT, 46, 1},
    {"count_a", COUNT_A, 46, 0},
    {"count_a", COUNT_A, 10, 0},
    {"frac_prevs", FRAC_PREVS, 46, 0},
    {"reverse", REVERSE, 46, 0},
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_case(const Case *c, int runs)
{
    char text[1024];
    if (c->uses_len_twice) snprintf(text, sizeof text, c->fmt, c->max_len, c->max_len);
    else snprintf(text, sizeof text, c->fmt, c->max_len);
    char path[64];
    snprintf(path, sizeof path, "<bench %s>", c->name);
    Diag *d = diag_new();
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    RaspProgram *p = rasp_load_text(path, text, strlen(text), &fo, d);
    if (!p) {
        diag_print(d, stderr);
        diag_free(d);
        return 1;
    }
    diag_free(d);

    int n = p->max_len;
    int nseq = TOKENS_PER_PASS / n;
    int32_t *inputs = xmalloc((size_t)nseq * (size_t)n * sizeof *inputs);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)nseq * (size_t)n; i++)
        inputs[i] = (int32_t)rng_below(&r, (uint32_t)p->nvocab);

    Interp *it = interp_new(p, 0);
    double *wall = xmalloc((size_t)(runs + 1) * sizeof *wall);
    double *cpu = xmalloc((size_t)(runs + 1) * sizeof *cpu);
    uint64_t sum = 0;
    for (int run = 0; run <= runs; run++) {     /* run 0 is the warm-up */
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        uint64_t s = 0;
        for (int q = 0; q < nseq; q++) {
            if (interp_eval(it, inputs + (size_t)q * (size_t)n, n)) {
                fprintf(stderr, "bench_interp: %s: %s\n", c->name, interp_error(it));
                return 1;
            }
            const int32_t *out = interp_values(it, p->output);
            for (int i = 0; i < n; i++) s = s * 31 + (uint64_t)(out[i] + 1);
        }
        cpu[run] = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        wall[run] = clock_s(CLOCK_MONOTONIC) - w0;
        sum = s;
    }
    qsort(wall + 1, (size_t)runs, sizeof *wall, cmp_double);
    qsort(cpu + 1, (size_t)runs, sizeof *cpu, cmp_double);
    double mw = wall[1 + runs / 2], mc = cpu[1 + runs / 2];
    double tokens = (double)nseq * n;
    printf("interp %-10s max_len %2d  wall: %6.2f M tokens/s %9.0f seq/s   "
           "cpu: %6.2f M tokens/s %9.0f seq/s   (checksum %016llx)\n",
           c->name, n, tokens / mw / 1e6, nseq / mw, tokens / mc / 1e6, nseq / mc,
           (unsigned long long)sum);
    fflush(stdout);
    free(wall);
    free(cpu);
    free(inputs);
    interp_free(it);
    rasp_free(p);
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 7;
    if (runs < 1) runs = 1;
    printf("interp: median of %d passes of %d tokens each, inputs of length max_len, "
           "one Interp (all = 0)\n", runs, TOKENS_PER_PASS);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (bench_case(&cases[i], runs)) return 1;
    return 0;
}
