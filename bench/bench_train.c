/* bench_train.c — fine-tuning throughput on the paper's Counter: count_a compiled at
 * max_len 46 (vocab a..i), fine-tuned towards count_b at RASP index 1 with the paper's step
 * (batch 96, SGD with momentum 0.9, global-norm clip 1, logit scale 10), its weights first
 * densified with N(0, 3e-5^2) noise as the paper does.
 *
 * Reported, for 1 thread and for every CPU: the median step time (data excluded: batches
 * are drawn before timing), its p10/p90, steps/s, tokens/s, and the "dense-equivalent"
 * GFLOP/s: the FLOPs a dense implementation performs for the step (forward over every
 * position, backward twice that, as bench/torch_step.py does), divided by our time — the
 * trainer does less work than that (docs/training.md), so this is throughput, not the FLOP
 * rate of the kernels. Also: the data pipeline alone (labelling by the interpreter with
 * spurious rejection sampling at rate 0.8), the evaluation forward pass, and, when Debian's
 * python3-torch is installed, bench/torch_step.py on the same model in the same run.
 *
 * The programs are embedded (no example files needed); temp files hold them for the data
 * generator and the model for the PyTorch script. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/rng.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "runtime/forward.h"
#include "train/backward.h"
#include "train/data.h"
#include "train/optim.h"

static const char *COUNT_A =
    "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 10;\n"
    "is_a = tokens == \"a\";\nbin_idx = select(is_a, indices, ==);\ncount_a = selector_width(bin_idx);\n"
    "out = aggregate(select(indices, indices, ==), count_a);\noutput out;\n";
static const char *COUNT_B =
    "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 10;\n"
    "is_b = tokens == \"b\";\nbin_idx = select(is_b, indices, ==);\ncount_b = selector_width(bin_idx);\n"
    "out = aggregate(select(indices, indices, ==), count_b);\noutput out;\n";
static const char *B_IS_A_PLUS_1 =
    "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 10;\n"
    "n_a = selector_width(select(tokens, tokens, lambda k, q: k == \"a\"));\n"
    "n_b = selector_width(select(tokens, tokens, lambda k, q: k == \"b\"));\n"
    "holds = sequence_map(lambda a, b: b == a + 1, n_a, n_b);\noutput holds;\n";

#define BATCH 96
#define STEPS 60
#define WARMUP 5

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_train: %s: %s\n", what, msg);
    exit(1);
}

static char *temp_with(const char *text, const char *suffix)
{
    char *path = malloc(64);
    snprintf(path, 64, "/tmp/bench_train_XXXXXX%s", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) die("mkstemps", path);
    if (text && write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write", path);
    close(fd);
    return path;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* FLOPs of a dense forward pass over B sequences of T positions (every position, every block). */
static double dense_forward_flops(const ModelConfig *c, int B, int T)
{
    double BT = (double)B * T, C = c->d_model, HD = c->d_head, NH = c->n_heads, M = c->d_mlp;
    double per_layer = 3 * 2 * BT * C * HD * NH + 2 * 2 * (double)B * T * T * HD * NH + 2 * BT * HD * C * NH +
                       2 * 2 * BT * C * M;
    return c->n_layers * per_layer + 2 * BT * C * c->d_vocab_out;
}

int main(void)
{
    StrBuf err;
    sb_init(&err);
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = 46;
    Diag *d = diag_new();
    RaspProgram *prog = rasp_load_text("count_a.rasp", COUNT_A, strlen(COUNT_A), &fo, d);
    if (!prog) die("count_a", "does not load");
    diag_free(d);
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    ao.max_len = 46;
    Model *m = asm_compile(prog, &ao, NULL, &err);
    if (!m) die("compile", err.s);
    rasp_free(prog);
    char *model_path = temp_with(NULL, ".safetensors");
    if (model_save(m, model_path, &err)) die("save", err.s);
    const ModelConfig *c = &m->cfg;
    printf("model: count_a at max_len 46: %d blocks, d_model %d, %d head(s) of %d, d_mlp %d, %zu parameters\n",
           c->n_layers, c->d_model, c->n_heads, c->d_head, c->d_mlp, m->num_params);

    uint8_t *trainable = calloc((size_t)m->ntensors, 1);
    if (optim_select(m, NULL, 0, NULL, 0, trainable, &err)) die("select", err.s);
    Rng r;
    rng_seed(&r, 1);
    optim_init_noise(m, trainable, 3e-5, &r);

    /* the data: count_b at RASP index 1, spurious rate 0.8 */
    char *task = temp_with(COUNT_B, ".rasp"), *pred = temp_with(B_IS_A_PLUS_1, ".rasp");
    int at[1] = {1};
    DataSpec ds = {task, NULL, pred, 0.8, 0, {NULL}, {0}, 46, 46, 0, 1, at, 0, "--task"};
    DataGen *g = data_gen_new(&ds, m, &err);
    if (!g) die("data", err.s);
    int nb = WARMUP + STEPS;
    DataBatch *batches = calloc((size_t)nb, sizeof *batches);
    double t0 = now();
    for (int i = 0; i < nb; i++)
        if (data_gen_batch(g, 1, (uint64_t)i, BATCH, &batches[i], &err)) die("batch", err.s);
    double tdata = (now() - t0) / nb;
    printf("data: %.2f ms per batch of %d (count_b labels, spurious rejection sampling at rate 0.8, "
           "P(holds) = %.3f)\n", 1e3 * tdata, BATCH, data_gen_spurious_fraction(g));

    double dense = 3 * dense_forward_flops(c, BATCH, 47);
    OptimConfig oc = {OPTIM_SGD, 1e-3, 0.9, 0.9, 0.999, 1e-8, 0, 1.0, 0, 1000000, SCHED_CONSTANT, 0.01};
    float *grads = malloc(sizeof(float) * m->num_params);
    float *keep = malloc(sizeof(float) * m->num_params);
    memcpy(keep, m->params_memory, sizeof(float) * m->num_params);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads[2] = {1, ncpu > 1 ? (int)ncpu : 1};
    double best = 0;
    for (int ti = 0; ti < (threads[1] > 1 ? 2 : 1); ti++) {
        memcpy(m->params_memory, keep, sizeof(float) * m->num_params);
        BwdPool *pool = bwd_pool_new(threads[ti]);
        Optim opt;
        optim_init(&opt, &oc, m->num_params);
        BwdOptions bo = {0, 10.0f, trainable};
        double times[STEPS];
        double c0 = 0, w0 = 0;
        for (int i = 0; i < nb; i++) {
            if (i == WARMUP) {
                c0 = cpu_now();
                w0 = now();
            }
            DataBatch *b = &batches[i];
            BwdBatch bb = {b->B, b->T, b->tokens, b->lens, b->R, b->seq, b->pos, b->target, b->target_num, 0};
            double t = now(), loss;
            if (bwd_pool_step(pool, m, &bb, &bo, grads, &loss, &err)) die("step", err.s);
            double gn = optim_grad_norm(m, trainable, grads);
            optim_step(&opt, m, trainable, grads, gn, 1e-3);
            if (i >= WARMUP) times[i - WARMUP] = now() - t;
        }
        double cpu = (cpu_now() - c0) / STEPS, wall = (now() - w0) / STEPS;
        qsort(times, STEPS, sizeof(double), cmp_double);
        double med = times[STEPS / 2];
        if (ti == 0 || med < best) best = med;
        printf("train, %d thread%s: median %.2f ms/step (p10 %.2f, p90 %.2f; mean wall %.2f, CPU %.2f ms/step), "
               "%.1f steps/s, %.0f seqs/s, %.0f tokens/s, dense-equivalent %.1f GFLOP/s (%.2f GFLOP/step)\n",
               threads[ti], threads[ti] == 1 ? "" : "s", 1e3 * med, 1e3 * times[STEPS / 10],
               1e3 * times[STEPS * 9 / 10], 1e3 * wall, 1e3 * cpu, 1 / med, BATCH / med, BATCH * 47 / med,
               dense / med / 1e9, dense / 1e9);
        optim_free(&opt);
        bwd_pool_free(pool);
    }

    /* evaluation: the runtime's forward pass on 1024 sequences in chunks of 256 */
    {
        FwdState fs;
        fwd_init(&fs);
        FwdOptions fwo = FWD_OPTIONS_DEFAULT;
        double t = now();
        int n = 0;
        for (int rep = 0; rep < 3; rep++)
            for (int i = 0; i < 11 && i < nb; i++) {
                DataBatch *b = &batches[i];
                if (fwd_forward(&fs, m, b->tokens, b->lens, b->B, b->T, &fwo, &err)) die("forward", err.s);
                n += b->B;
            }
        double dt = now() - t;
        printf("eval forward (runtime fwd_forward, batch 96, OpenBLAS single-threaded here): %.0f seqs/s\n", n / dt);
        fwd_free(&fs);
    }

    printf("anchor (PyTorch replica of the paper's protocol on Tracr's 3-block Counter, idle 2-core machine): 68 ms/step\n");
    /* PyTorch on the same model, same machine, now */
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=%ld %s bench/torch_step.py %s %d %d 2>&1", ncpu, py, model_path,
             STEPS, BATCH);
    FILE *f = access("bench/torch_step.py", R_OK) == 0 ? popen(cmd, "r") : NULL;
    if (!f) {
        printf("torch: skipped (bench/torch_step.py not found; run from the repository root)\n");
    } else {
        char line[512];
        double tmed = 0;
        while (fgets(line, sizeof line, f)) {
            fputs(line, stdout);
            double x;
            if (sscanf(line, "torch: median %lf", &x) == 1) tmed = x;
        }
        pclose(f);
        if (tmed > 0) printf("speed-up over PyTorch (best tracc setting / torch median): %.1fx\n", tmed / best);
    }

    for (int i = 0; i < nb; i++) data_batch_free(&batches[i]);
    free(batches);
    data_gen_free(g);
    free(grads);
    free(keep);
    free(trainable);
    model_free(m);
    unlink(model_path);
    unlink(task);
    unlink(pred);
    free(model_path);
    free(task);
    free(pred);
    sb_free(&err);
    return 0;
}
