/* bench_decompile.c — time of `tracc decompile` on the paper's Counter at max_len 46 and on
 * Tracr's sort at max_len 64 (the goals: under 1 s and under 10 s), compiled in
 * memory from the text embedded below, decompiled with the default 300 sampled inputs
 * (uniform: the models are not fine-tuned). Reports the median wall and CPU time of RUNS
 * runs, and whether the decompiled program reproduced the model (it must: the models are
 * exact).
 *
 *   make bench                              (all bench binaries)
 *   build/bench/bench_decompile [RUNS]      (this one; RUNS defaults to 5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "analysis/decompile.h"
#include "common/util.h"
#include "compiler/assemble.h"
#include "compiler/frontend.h"

static const char COUNT_A[] =
    "vocab {a, b, c, d, e, f, g, h, i};\n"
    "max_len %d;\n"
    "is_a    = tokens == \"a\";\n"
    "bin_idx = select(is_a, indices, ==);\n"
    "count_a = selector_width(bin_idx);\n"
    "out     = aggregate(select(indices, indices, ==), count_a);\n"
    "output out;\n";

/* Tracr's lib.make_sort(tokens, tokens, max_seq_len=N, min_key=1) */
static const char SORT[] =
    "vocab {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};\n"
    "max_len %d;\n"
    "keys       = sequence_map(lambda x, i: x + 1 * i / %d, tokens, indices);\n"
    "smaller    = select(keys, keys, <);\n"
    "target_pos = selector_width(smaller);\n"
    "sel_new    = select(target_pos, indices, ==);\n"
    "sort       = aggregate(sel_new, tokens);\n"
    "output sort;\n";

static double now(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench(const char *name, const char *fmt, int max_len, int runs)
{
    char text[2048];
    snprintf(text, sizeof text, fmt, max_len, max_len);
    Diag *d = diag_new();
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    RaspProgram *p = rasp_load_text(name, text, strlen(text), &fo, d);
    if (!p) {
        diag_print(d, stderr);
        diag_free(d);
        return 1;
    }
    diag_free(d);
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    StrBuf err;
    sb_init(&err);
    Model *m = asm_compile(p, &ao, NULL, &err);
    rasp_free(p);
    if (!m) {
        fprintf(stderr, "%s: %s\n", name, err.s);
        sb_free(&err);
        return 1;
    }
    double *wall = xmalloc(sizeof(double) * (size_t)runs), *cpu = xmalloc(sizeof(double) * (size_t)runs);
    int ok = 1;
    for (int r = 0; r < runs; r++) {
        DcOptions o = DC_OPTIONS_DEFAULT;
        DcResult res;
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        if (dc_decompile(m, &o, &res, &err)) {
            fprintf(stderr, "%s: %s\n", name, err.s);
            ok = 0;
            break;
        }
        wall[r] = now(CLOCK_MONOTONIC) - w0;
        cpu[r] = now(CLOCK_THREAD_CPUTIME_ID) - c0;
        ok &= res.reproduces && !*res.diff;
        dc_result_free(&res);
    }
    if (ok) {
        qsort(wall, (size_t)runs, sizeof(double), cmp_d);
        qsort(cpu, (size_t)runs, sizeof(double), cmp_d);
        printf("%-8s max_len %2d  d_model %4d  %5zu params: decompile %.3f s wall, %.3f s CPU (median of %d), reproduces\n",
               name, max_len, m->cfg.d_model, m->num_params, wall[runs / 2], cpu[runs / 2], runs);
    } else printf("%-8s max_len %2d: FAILED (did not reproduce the exact model)\n", name, max_len);
    free(wall);
    free(cpu);
    sb_free(&err);
    model_free(m);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1) runs = 1;
    int rc = bench("count_a", COUNT_A, 46, runs);
    rc |= bench("sort", SORT, 64, runs);
    return rc;
}
