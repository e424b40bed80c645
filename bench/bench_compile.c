/* bench_compile.c — in-process compile time: front end + lowering + weights + assembly of
 * a model in memory (no file written, no verification), median of repeated runs.
 *
 *   build/bench/bench_compile [FILE.rasp VOCAB MAX_LEN]...
 *
 * Without arguments it times Tracr's library programs at configurations listed in
 * tests/data/tracr_sizes.tsv, Tracr's own sizes and compile times (the same list as
 * bench/compile_sizes.sh; provenance in tests/data/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median microseconds of one compile, or -1 when it fails. */
static double time_compile(const char *path, const char *vocab, int max_len)
{
    enum { RUNS = 21 };
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double a = now_us();
        FrontOptions fo = FRONT_OPTIONS_DEFAULT;
        fo.vocab = vocab;
        fo.max_len = max_len;
        Diag *d = diag_new();
        RaspProgram *p = rasp_load_file(path, &fo, d);
        if (!p) {
            diag_print(d, stderr);
            diag_free(d);
            return -1;
        }
        StrBuf err;
        sb_init(&err);
        AsmOptions ao = ASM_OPTIONS_DEFAULT;
        Model *m = asm_compile(p, &ao, NULL, &err);
        double b = now_us();
        if (!m) fprintf(stderr, "%s: %s\n", path, err.s);
        sb_free(&err);
        model_free(m);
        rasp_free(p);
        diag_free(d);
        if (!m) return -1;
        t[r] = b - a;
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    return t[RUNS / 2];
}

int main(int argc, char **argv)
{
    static const char *const defaults[][3] = {
        {"rasp_examples/length.rasp", "a,b,c,d", "10"},
        {"rasp_examples/reverse.rasp", "a,b,c,d", "10"},
        {"rasp_examples/hist.rasp", "a,b,c,d", "10"},
        {"rasp_examples/sort_unique.rasp", "1,2,3,4,5,6,7,8,9,10", "10"},
        {"rasp_examples/sort.rasp", "1,2,3,4,5,6,7,8,9,10", "10"},
        {"rasp_examples/frac_prevs.rasp", "a,b,c,x", "10"},
        {"rasp_examples/pair_balance.rasp", "(,)", "10"},
        {"rasp_examples/shuffle_dyck.rasp", "(,)", "10"},
        {"rasp_examples/shuffle_dyck2.rasp", "(,),{,}", "10"},
        {"bench/programs/shuffle_dyck3.rasp", "(,),{,},[,]", "10"},
        {"rasp_examples/sort_freq.rasp", "a,b,c,d", "10"},
        {"rasp_examples/count_a.rasp", "a,b,c,d,e,f,g,h,i", "46"},
        {"rasp_examples/max_identifier.rasp", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z", "25"},
    };
    int n = argc > 1 ? (argc - 1) / 3 : (int)(sizeof defaults / sizeof defaults[0]);
    printf("%-40s %-8s %12s\n", "program", "max_len", "compile us");
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *path = argc > 1 ? argv[1 + 3 * i] : defaults[i][0];
        const char *vocab = argc > 1 ? argv[2 + 3 * i] : defaults[i][1];
        int max_len = atoi(argc > 1 ? argv[3 + 3 * i] : defaults[i][2]);
        double us = time_compile(path, vocab, max_len);
        if (us < 0) rc = 1;
        printf("%-40s %-8d %12.1f\n", path, max_len, us);
    }
    return rc;
}
