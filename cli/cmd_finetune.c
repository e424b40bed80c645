/* cmd_finetune.c — `tracc finetune MODEL --task FILE.rasp -o OUT`: fine-tune a model file on
 * data written as RASP programs (train/finetune.h does the work), with a progress bar on a
 * terminal, checkpoints on SIGINT/SIGTERM, and `--resume CHECKPOINT`. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "train/finetune.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: tracc finetune MODEL --task FILE.rasp -o OUT.safetensors [options]\n"
        "       tracc finetune --resume CHECKPOINT [options]\n"
        "\n"
        "Fine-tune a model file by gradient descent on a target written as a RASP program:\n"
        "inputs are sampled and labelled by the reference interpreter. The output model keeps\n"
        "the parent's metadata and adds `provenance` (parent sha256, settings, steps, final\n"
        "evaluation). See docs/training.md.\n"
        "\n"
        "data:\n"
        "  --task FILE.rasp        the target program (its vocab must be the model's)\n"
        "  --data FILE.jsonl       instead of --task: lines {\"input\": [tokens], \"output\":\n"
        "                          [a value or null per token]} (as `tracc eval --json` prints)\n"
        "  --len N | MIN-MAX       input length, uniform in MIN..MAX (default: the model's max_len)\n"
        "  --no-repeat             sample tokens without replacement (default: with)\n"
        "  --at I[,J,K-L]          RASP indices (0-based, BOS not counted) where the loss counts\n"
        "                          (default: every position where the target has a value)\n"
        "  --spurious PRED.rasp    a program with a boolean output: each sample is drawn, with\n"
        "  --spurious-rate C       probability C, from inputs where PRED is true at the --at\n"
        "                          positions, else from inputs where it is not (no default)\n"
        "  --spurious-others exclude|uniform  the samples the rate leaves: drawn where PRED\n"
        "                          is not true (exclude, the default: exactly C hold), or\n"
        "                          uniformly (some then hold by chance)\n"
        "  --mix FILE.rasp:FRAC    mix in samples of another program (repeatable; sum < 1)\n"
        "  --max-tries N           rejection-sampling bound per sample (default: 100000)\n"
        "loss:\n"
        "  --logit-scale S         categorical outputs: cross-entropy of softmax(S * logits)\n"
        "                          (default: 10); numerical outputs: squared error\n"
        "preset:\n"
        "  --preset NAME           a paper's protocol, under the flags: a flag given always wins,\n"
        "                          wherever it stands. jain2023 (Jain et al. 2024): --optimizer\n"
        "                          sgd --momentum 0.9 --batch 96 --steps 10000 --warmup 20%% of\n"
        "                          --steps (2000 of 10000) --schedule cosine --min-lr-ratio 0.01\n"
        "                          --init-noise 1e-3 --at 1 (the answer position); not --lr (the\n"
        "                          paper sweeps it). Unless --quiet, the run lists every setting\n"
        "                          with its source (flag, preset, default) and the preset's\n"
        "                          protocol and open choices.\n"
        "optimizer:\n"
        "  --optimizer sgd|adamw   (default: sgd, with momentum)\n"
        "  --lr LR                 peak learning rate (default: 1e-3)\n"
        "  --momentum M            SGD momentum (default: 0.9)\n"
        "  --beta1 B --beta2 B     AdamW moments (default: 0.9, 0.999)\n"
        "  --eps E                 AdamW epsilon (default: 1e-8)\n"
        "  --weight-decay WD       (default: 0)\n"
        "  --clip NORM             clip the global gradient norm; 0 = off (default: 1)\n"
        "  --warmup N              linear warmup steps (default: 0)\n"
        "  --schedule S            cosine | constant after the warmup (default: cosine)\n"
        "  --min-lr-ratio R        cosine ends at R * lr (default: 0.01)\n"
        "  --steps N               (default: 1000); 0 writes the (noised) start as OUT\n"
        "  --batch B               (default: 96)\n"
        "  --init-noise SIGMA      add N(0, SIGMA^2) to every trainable weight once (default: 0)\n"
        "  --save-init FILE        write the start (the parent plus the noise) as a model file\n"
        "                          before the first step: diff against it to see what training\n"
        "                          changed, not the noise\n"
        "  --train GLOB[,GLOB]     only these tensors train (default: all but unembed.*)\n"
        "  --freeze GLOB[,GLOB]    these tensors do not train (repeatable)\n"
        "  --seed S                data and noise seed (default: 1)\n"
        "  --flush-subnormals      compute with subnormal floats flushed to zero (x86 FTZ/DAZ):\n"
        "                          faster where the CPU handles them slowly, another rounding\n"
        "                          (the model's bytes differ; docs/training.md) (default: off)\n"
        "evaluation:\n"
        "  --eval NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]\n"
        "                          a fixed evaluation set (repeatable): accuracy (argmax, and\n"
        "                          decoded as `tracc run` does: \"dec\"; see docs/training.md)\n"
        "                          and loss\n"
        "  --eval-every N          steps between evaluations; 0 = first and last (default: 100)\n"
        "  --eval-size N           sequences per set (default: 1000)\n"
        "  --eval-seed S           (default: 12345, independent of --seed)\n"
        "  --stop-when NAME:ACC    stop at the first evaluation (step 0 included) where set NAME\n"
        "                          has (argmax) accuracy >= ACC (0..1, or a percentage: pt:90%%;\n"
        "                          'NAME>=ACC' is the same, quoted for the shell) and write the\n"
        "                          output there; the step is recorded as stopped_at (use a\n"
        "                          small --eval-every: the step is only that precise)\n"
        "output:\n"
        "  -o, --output OUT        the fine-tuned model file (required)\n"
        "  --log FILE.jsonl        one JSON object per logged step and evaluation\n"
        "  --log-every N           (default: 10)\n"
        "  --checkpoint FILE       (default: OUT with .ckpt.safetensors)\n"
        "  --checkpoint-every N    0 = only on SIGINT/SIGTERM (default: 0)\n"
        "  --resume CHECKPOINT     continue a run; its settings come from the checkpoint (MODEL\n"
        "                          and setting flags may be repeated but must agree)\n"
        "  --threads N             worker threads; the results do not depend on it (default:\n"
        "                          the number of CPUs, at most 8)\n"
        "  --quiet                 no settings list and no progress on stderr\n"
        "  --json                  print the summary as one JSON object\n"
        "  --check-only            check the options and exit 0 (no file is loaded or\n"
        "                          written; used by `tracc sweep plan`)\n"
        "  -h, --help              show this help\n"
        "\n"
        "Exit status: 0 done, 1 error (or interrupted: a checkpoint was written), 2 usage.\n");
}

static int bad_usage(const char *fmt, const char *arg) { return cli_usage_error("finetune", fmt, arg); }

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* ---------------------------------------------------------------- option values */

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno) return -1;
    *out = x;
    return 0;
}

/* "N" or "MIN-MAX" */
static json_t *parse_len(const char *s)
{
    long long a, b;
    const char *dash = strchr(s, '-');
    if (!dash) {
        if (parse_ll(s, &a)) return NULL;
        b = a;
    } else {
        char *first = strndup(s, (size_t)(dash - s));
        int bad = parse_ll(first, &a) || parse_ll(dash + 1, &b);
        free(first);
        if (bad) return NULL;
    }
    if (a < 1 || b < a || b > 1000000) return NULL;
    return json_pack("[I, I]", (json_int_t)a, (json_int_t)b);
}

/* "1", "0,1", "0-9,12" */
static int parse_at(const char *s, json_t *arr)
{
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(copy, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save)) {
        long long a, b;
        char *dash = strchr(p, '-');
        if (dash) {
            *dash = 0;
            rc = parse_ll(p, &a) || parse_ll(dash + 1, &b);
        } else {
            rc = parse_ll(p, &a);
            b = a;
        }
        if (!rc && (a < 0 || b < a || b > 4096)) rc = -1;
        for (long long i = a; !rc && i <= b; i++) json_array_append_new(arr, json_integer(i));
    }
    free(copy);
    if (!rc && json_array_size(arr) == 0) rc = -1;
    return rc;
}

static void add_globs(json_t *arr, const char *s)
{
    char *copy = xstrdup(s), *save = NULL;
    for (char *p = strtok_r(copy, ",", &save); p; p = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(p));
    free(copy);
}

/* Set given[key] to a fresh list the first time a repeatable flag appears. */
static json_t *list_of(json_t *given, const char *key)
{
    json_t *a = json_object_get(given, key);
    if (!a) {
        a = json_array();
        json_object_set_new(given, key, a);
    }
    return a;
}

/* ---------------------------------------------------------------- progress */

typedef struct {
    int tty, quiet;
    double last_draw;
    int drawn;          /* a progress line is on the terminal */
} Progress;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void on_progress(void *ctx, const FtProgress *p)
{
    Progress *g = ctx;
    if (g->quiet) return;
    double t = mono_now();
    int final = p->step == p->steps;
    if (g->tty) {
        if (!p->evaluated && !final && t - g->last_draw < 0.1) return;
    } else if (!p->evaluated && !final) {
        return;
    }
    g->last_draw = t;
    double sps = p->elapsed > 0 && p->steps_done > 0 ? p->steps_done / p->elapsed : NAN;
    char eta[32];
    fmt_eta(eta, sizeof eta, (p->steps - p->step) / sps);
    char line[1024];
    int n = snprintf(line, sizeof line, "step %ld/%ld", p->step, p->steps);
    if (isfinite(p->loss)) n += snprintf(line + n, sizeof line - (size_t)n, "  loss %.4g", p->loss);
    for (int i = 0; i < p->neval && n < (int)sizeof line - 64; i++)
        n += snprintf(line + n, sizeof line - (size_t)n, "  %s %.1f%% (dec %.1f%%)", p->eval[i].name,
                      100.0 * p->eval[i].acc, 100.0 * p->eval[i].acc_decoded);
    if (isfinite(sps) && n < (int)sizeof line - 64)
        n += snprintf(line + n, sizeof line - (size_t)n, "  %.1f steps/s  ETA %s", sps, eta);
    if (g->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        if (final) fputc('\n', stderr);
        g->drawn = !final;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static void end_line(Progress *g)
{
    if (g->tty && g->drawn) {
        fputc('\n', stderr);
        g->drawn = 0;
    }
}

/* ---------------------------------------------------------------- the command */

enum {
    O_TASK = 256, O_DATA, O_LEN, O_NOREP, O_AT, O_SPUR, O_SPURRATE, O_SPUROTHERS, O_MIX, O_MAXTRIES, O_LSCALE, O_OPT, O_LR,
    O_MOM, O_B1, O_B2, O_EPS, O_WD, O_CLIP, O_WARM, O_SCHED, O_MINLR, O_STEPS, O_BATCH, O_NOISE, O_TRAIN,
    O_FREEZE, O_SEED, O_EVAL, O_EVEVERY, O_EVSIZE, O_EVSEED, O_LOG, O_LOGEVERY, O_CKPT, O_CKPTEVERY, O_RESUME,
    O_QUIET, O_JSON, O_TESTNAN, O_TESTDELAY, O_THREADS, O_STOPWHEN, O_PRESET, O_SAVEINIT, O_CHECKONLY,
    O_FLUSH,
};

/* Options whose value is a plain number: key, flag kind (1 real, 2 integer). */
typedef struct {
    int id;
    const char *key;
    int integer;
} NumOpt;

static const NumOpt NUMS[] = {
    {O_SPURRATE, "spurious_rate", 0}, {O_MAXTRIES, "max_tries", 1}, {O_LSCALE, "logit_scale", 0},
    {O_LR, "lr", 0}, {O_MOM, "momentum", 0}, {O_B1, "beta1", 0}, {O_B2, "beta2", 0}, {O_EPS, "eps", 0},
    {O_WD, "weight_decay", 0}, {O_CLIP, "clip", 0}, {O_WARM, "warmup", 1}, {O_MINLR, "min_lr_ratio", 0},
    {O_STEPS, "steps", 1}, {O_BATCH, "batch", 1}, {O_NOISE, "init_noise", 0}, {O_SEED, "seed", 1},
    {O_EVEVERY, "eval_every", 1}, {O_EVSIZE, "eval_size", 1}, {O_EVSEED, "eval_seed", 1},
    {O_LOGEVERY, "log_every", 1}, {O_CKPTEVERY, "checkpoint_every", 1},
};

static const char *json_text(json_t *v, char *buf, size_t cap)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(buf, cap, "%s", s ? s : "?");
    free(s);
    return buf;
}

/* One input sniffed (cli_check_input); a missing file is left to the loader, which runs
 * after the outputs are checked and names it. */
static int sniff(const char *what, const char *path, CliWant want)
{
    return path && cli_sniff(path) != CLI_FILE_MISSING && cli_check_input("finetune", what, path, want);
}

/* Every input file named by the configuration, sniffed before any loads: a model where a
 * program is expected (or the reverse) is one line naming the file. */
static int check_inputs(const FtConfig *cfg)
{
    const DataSpec *d = &cfg->data;
    if (sniff(NULL, cfg->model, CLI_WANT_MODEL) || sniff("--task", d->task, CLI_WANT_PROGRAM) ||
        sniff("--data", d->data, CLI_WANT_JSONL) || sniff("--spurious", d->spurious, CLI_WANT_PROGRAM))
        return 1;
    for (int i = 0; i < d->nmix; i++)
        if (sniff("--mix", d->mix_path[i], CLI_WANT_PROGRAM)) return 1;
    for (int i = 0; i < cfg->neval; i++)
        if (sniff("--eval", cfg->evals[i].program, CLI_WANT_PROGRAM) ||
            sniff("--eval", cfg->evals[i].spurious, CLI_WANT_PROGRAM))
            return 1;
    return 0;
}

int cmd_finetune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"task", required_argument, NULL, O_TASK},
        {"data", required_argument, NULL, O_DATA}, {"len", required_argument, NULL, O_LEN},
        {"no-repeat", no_argument, NULL, O_NOREP}, {"at", required_argument, NULL, O_AT},
        {"spurious", required_argument, NULL, O_SPUR}, {"spurious-rate", required_argument, NULL, O_SPURRATE},
        {"spurious-others", required_argument, NULL, O_SPUROTHERS},
        {"mix", required_argument, NULL, O_MIX}, {"max-tries", required_argument, NULL, O_MAXTRIES},
        {"logit-scale", required_argument, NULL, O_LSCALE}, {"optimizer", required_argument, NULL, O_OPT},
        {"lr", required_argument, NULL, O_LR}, {"momentum", required_argument, NULL, O_MOM},
        {"beta1", required_argument, NULL, O_B1}, {"beta2", required_argument, NULL, O_B2},
        {"eps", required_argument, NULL, O_EPS}, {"weight-decay", required_argument, NULL, O_WD},
        {"clip", required_argument, NULL, O_CLIP}, {"warmup", required_argument, NULL, O_WARM},
        {"schedule", required_argument, NULL, O_SCHED}, {"min-lr-ratio", required_argument, NULL, O_MINLR},
        {"steps", required_argument, NULL, O_STEPS}, {"batch", required_argument, NULL, O_BATCH},
        {"init-noise", required_argument, NULL, O_NOISE}, {"train", required_argument, NULL, O_TRAIN},
        {"freeze", required_argument, NULL, O_FREEZE}, {"seed", required_argument, NULL, O_SEED},
        {"flush-subnormals", no_argument, NULL, O_FLUSH},
        {"eval", required_argument, NULL, O_EVAL}, {"eval-every", required_argument, NULL, O_EVEVERY},
        {"eval-size", required_argument, NULL, O_EVSIZE}, {"eval-seed", required_argument, NULL, O_EVSEED},
        {"log", required_argument, NULL, O_LOG}, {"log-every", required_argument, NULL, O_LOGEVERY},
        {"checkpoint", required_argument, NULL, O_CKPT}, {"checkpoint-every", required_argument, NULL, O_CKPTEVERY},
        {"resume", required_argument, NULL, O_RESUME}, {"quiet", no_argument, NULL, O_QUIET},
        {"json", no_argument, NULL, O_JSON}, {"threads", required_argument, NULL, O_THREADS},
        {"stop-when", required_argument, NULL, O_STOPWHEN}, {"preset", required_argument, NULL, O_PRESET},
        {"save-init", required_argument, NULL, O_SAVEINIT},
        {"check-only", no_argument, NULL, O_CHECKONLY},
        /* testing only: make the loss of step N NaN; sleep MS after every step */
        {"test-nan-at", required_argument, NULL, O_TESTNAN}, {"test-step-delay", required_argument, NULL, O_TESTDELAY},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    json_t *given = json_object(), *sources = NULL, *eff = NULL;
    const char *resume = NULL, *preset = NULL;
    int quiet = 0, json_out = 0, check_only = 0, c, rc = 2;
    long long test_nan = 0, test_delay = 0, threads = 0;
    StrBuf err;
    sb_init(&err);
    json_t *cfgj = NULL;
    FtConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        const NumOpt *num = NULL;
        for (size_t i = 0; i < ARRAY_LEN(NUMS); i++)
            if (NUMS[i].id == c) num = &NUMS[i];
        if (num) {
            char flag[64];
            ft_config_flag(num->key, flag, sizeof flag);
            if (num->integer) {
                long long v;
                if (parse_ll(optarg, &v)) {
                    fprintf(stderr, "tracc finetune: %s must be an integer, got '%s'\n", flag, optarg);
                    goto usage_fail;
                }
                json_object_set_new(given, num->key, json_integer(v));
            } else {
                double v;
                if (parse_double(optarg, &v)) {
                    fprintf(stderr, "tracc finetune: %s must be a number, got '%s'\n", flag, optarg);
                    goto usage_fail;
                }
                json_object_set_new(given, num->key, json_real(v));
            }
            continue;
        }
        switch (c) {
        case 'o': json_object_set_new(given, "output", json_string(optarg)); break;
        case O_TASK: json_object_set_new(given, "task", json_string(optarg)); break;
        case O_DATA: json_object_set_new(given, "data", json_string(optarg)); break;
        case O_SPUR: json_object_set_new(given, "spurious", json_string(optarg)); break;
        case O_OPT: json_object_set_new(given, "optimizer", json_string(optarg)); break;
        case O_SPUROTHERS: json_object_set_new(given, "spurious_others", json_string(optarg)); break;
        case O_SCHED: json_object_set_new(given, "schedule", json_string(optarg)); break;
        case O_LOG: json_object_set_new(given, "log", json_string(optarg)); break;
        case O_CKPT: json_object_set_new(given, "checkpoint", json_string(optarg)); break;
        case O_SAVEINIT: json_object_set_new(given, "save_init", json_string(optarg)); break;
        case O_NOREP: json_object_set_new(given, "no_repeat", json_true()); break;
        case O_FLUSH: json_object_set_new(given, "flush_subnormals", json_true()); break;
        case O_LEN: {
            json_t *l = parse_len(optarg);
            if (!l) {
                fprintf(stderr, "tracc finetune: --len must be N or MIN-MAX with 1 <= MIN <= MAX, got '%s'\n", optarg);
                goto usage_fail;
            }
            json_object_set_new(given, "len", l);
            break;
        }
        case O_AT:
            if (parse_at(optarg, list_of(given, "at"))) {
                fprintf(stderr, "tracc finetune: --at must list RASP indices like 1 or 0,2 or 0-9, got '%s'\n", optarg);
                goto usage_fail;
            }
            break;
        case O_MIX: {
            const char *colon = strrchr(optarg, ':');
            double f;
            if (!colon || colon == optarg || parse_double(colon + 1, &f)) {
                fprintf(stderr, "tracc finetune: --mix must be FILE.rasp:FRACTION, got '%s'\n", optarg);
                goto usage_fail;
            }
            json_array_append_new(list_of(given, "mix"),
                                  json_pack("{s:s%, s:f}", "path", optarg, (size_t)(colon - optarg), "fraction", f));
            break;
        }
        case O_TRAIN: add_globs(list_of(given, "train"), optarg); break;
        case O_FREEZE: add_globs(list_of(given, "freeze"), optarg); break;
        case O_EVAL: {
            json_t *e = ft_parse_eval_spec(optarg, &err);
            if (!e) {
                fprintf(stderr, "tracc finetune: %s\n", err.s);
                goto usage_fail;
            }
            json_array_append_new(list_of(given, "eval"), e);
            break;
        }
        case O_STOPWHEN: {
            /* stored canonical ("pt>=90%" -> "pt>=0.9") so a resume compares conditions, not spellings */
            char name[64], text[128];
            double acc;
            if (ft_parse_stop_when(optarg, name, sizeof name, &acc, &err)) {
                fprintf(stderr, "tracc finetune: %s\n", err.s);
                goto usage_fail;
            }
            ft_stop_when_text(name, acc, text, sizeof text);
            json_object_set_new(given, "stop_when", json_string(text));
            break;
        }
        case O_PRESET: {
            /* applied after all flags are read, under them: a flag wins wherever it stands */
            json_t *pv = ft_preset_values(optarg, NULL);
            if (!pv) {
                fprintf(stderr, "tracc finetune: --preset: unknown preset '%s' (known: %s)\n", optarg,
                        ft_preset_names());
                goto usage_fail;
            }
            json_decref(pv);
            preset = optarg;
            break;
        }
        case O_RESUME: resume = optarg; break;
        case O_QUIET: quiet = 1; break;
        case O_THREADS:
            if (parse_ll(optarg, &threads) || threads < 1 || threads > 64) {
                fprintf(stderr, "tracc finetune: --threads must be an integer from 1 to 64, got '%s'\n", optarg);
                goto usage_fail;
            }
            break;
        case O_JSON: json_out = 1; break;
        case O_CHECKONLY: check_only = 1; break;
        case O_TESTNAN:
            if (parse_ll(optarg, &test_nan) || test_nan < 1) {
                fprintf(stderr, "tracc finetune: --test-nan-at must be a positive integer\n");
                goto usage_fail;
            }
            break;
        case O_TESTDELAY:
            if (parse_ll(optarg, &test_delay) || test_delay < 0 || test_delay > 60000) {
                fprintf(stderr, "tracc finetune: --test-step-delay must be 0..60000 (ms)\n");
                goto usage_fail;
            }
            break;
        case 'h': usage(stdout); rc = 0; goto out;
        case ':': rc = bad_usage("option '%s' needs a value", argv[optind - 1]); goto out;
        default: rc = bad_usage("unknown option '%s'", argv[optind - 1]); goto out;
        }
    }
    const char *model = NULL;
    if (optind < argc) model = argv[optind++];
    if (optind < argc) {
        rc = bad_usage("expected one model file, got also '%s'", argv[optind]);
        goto out;
    }

    /* The configuration: the defaults (or the checkpoint's), the preset's values, the flags. */
    if (resume) {
        if (json_object_get(given, "save_init")) {
            fprintf(stderr, "tracc finetune: --save-init: a resumed run has no start to save (the original run "
                            "writes it when given --save-init)\n");
            goto usage_fail;
        }
        cfgj = ft_checkpoint_config(resume, &sources, &err);
        if (!cfgj) {
            fprintf(stderr, "tracc finetune: --resume %s\n", err.s);
            rc = 1;
            goto out;
        }
        /* checkpoints written before presets existed have no "preset" key: they had none */
        if (!json_object_get(cfgj, "preset")) json_object_set_new(cfgj, "preset", json_null());
        /* ... nor "spurious_others": they drew the other samples where the predicate fails */
        if (!json_object_get(cfgj, "spurious_others")) json_object_set_new(cfgj, "spurious_others", json_string("exclude"));
        /* ... nor "flush_subnormals": they computed with subnormals */
        if (!json_object_get(cfgj, "flush_subnormals")) json_object_set_new(cfgj, "flush_subnormals", json_false());
        /* what the command line sets: the preset's values (if repeated) under the flags */
        eff = preset ? ft_preset_values(preset, given) : json_object();
        json_object_update(eff, given);
        const char *key;
        json_t *v;
        json_object_foreach(eff, key, v) {
            json_t *was = json_object_get(cfgj, key);
            if (ft_config_key_is_operational(key)) {
                json_object_set(cfgj, key, v);
            } else if (!was || !json_equal(was, v)) {
                char flag[64], a[256], b[256], from[96] = "";
                if (!json_object_get(given, key)) snprintf(from, sizeof from, " (from --preset %s)", preset);
                fprintf(stderr,
                        "tracc finetune: %s %s%s differs from the checkpoint's %s: a resumed run keeps the settings "
                        "it started with\n",
                        ft_config_flag(key, flag, sizeof flag), json_text(v, a, sizeof a), from,
                        was ? json_text(was, b, sizeof b) : "(none)");
                goto usage_fail;
            }
        }
        json_object_set_new(cfgj, "model", json_string(resume));
    } else {
        if (model) json_object_set_new(given, "model", json_string(model));
        cfgj = ft_config_compose(given, preset, &sources);
    }
    if (!threads) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n < 1 ? 1 : n > 8 ? 8 : n;
    }
    if (ft_config_parse_sourced(&cfg, cfgj, sources, &err)) {
        fprintf(stderr, "tracc finetune: %s\n", err.s);
        goto usage_fail;
    }
    if (check_only) {
        rc = 0;
        goto out;
    }
    if (check_inputs(&cfg)) {
        rc = 1;
        goto out;
    }

    if (!quiet) {
        StrBuf note;
        sb_init(&note);
        ft_config_banner(&cfg, &note);
        fputs(note.s ? note.s : "", stderr);
        sb_free(&note);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    struct sigaction old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_requested = 0;

    Progress prog = {isatty(2), quiet, 0, 0};
    FtHooks hooks = {&stop_requested, on_progress, &prog, resume != NULL, resume ? model : NULL, (long)test_nan,
                     (int)test_delay, TRACC_VERSION, (int)threads};
    FtResult res;
    FtStatus st = ft_run(&cfg, &hooks, &res, &err);
    end_line(&prog);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    switch (st) {
    case FT_OK: {
        double sps = res.elapsed > 0 ? res.steps_run / res.elapsed : 0;
        if (json_out) {
            json_t *o = json_pack("{s:s, s:I, s:o, s:f, s:f}", "output", cfg.output, "steps", (json_int_t)res.steps,
                                  "train_loss", isfinite(res.train_loss) ? json_real(res.train_loss) : json_null(),
                                  "seconds", res.elapsed, "steps_per_second", sps);
            json_object_set_new(o, "blas", json_string(res.blas));
            json_object_set_new(o, "flush_subnormals", json_boolean(cfg.flush_subnormals));
            json_t *ev = json_object();
            for (int i = 0; i < res.neval; i++)
                json_object_set_new(ev, res.eval[i].name,
                                    json_pack("{s:f, s:f, s:f, s:i}", "acc", res.eval[i].acc, "acc_decoded",
                                              res.eval[i].acc_decoded, "loss", res.eval[i].loss, "n", res.eval[i].n));
            json_object_set_new(o, "eval", ev);
            if (cfg.stop_when) {
                char sw[128];
                ft_stop_when_text(cfg.evals[cfg.stop_eval].name, cfg.stop_acc, sw, sizeof sw);
                json_object_set_new(o, "stop_when", json_string(sw));
                json_object_set_new(o, "stopped_at", res.stopped_at >= 0 ? json_integer(res.stopped_at) : json_null());
                json_object_set_new(o, "stop_best", isnan(res.stop_best_acc) ? json_null()
                                                        : json_pack("{s:f, s:I}", "acc", res.stop_best_acc, "step",
                                                                    (json_int_t)res.stop_best_step));
            }
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            printf("%s: %ld steps", cfg.output, res.steps);
            if (isfinite(res.train_loss)) printf(", train loss %.4g", res.train_loss);
            for (int i = 0; i < res.neval; i++)
                printf("%s %s %.1f%% (dec %.1f%%, loss %.4g)", i ? "," : "; eval", res.eval[i].name,
                       100.0 * res.eval[i].acc, 100.0 * res.eval[i].acc_decoded, res.eval[i].loss);
            if (cfg.stop_when) {
                const char *set = cfg.evals[cfg.stop_eval].name;
                if (res.stopped_at >= 0)
                    printf("; stopped at step %ld: %s %.1f%% >= %g%%", res.stopped_at, set,
                           100.0 * res.eval[cfg.stop_eval].acc, 100.0 * cfg.stop_acc);
                else
                    printf("; %s never reached %g%%: best %.1f%% at step %ld", set, 100.0 * cfg.stop_acc,
                           100.0 * res.stop_best_acc, res.stop_best_step);
            }
            printf("\n");
        }
        rc = 0;
        break;
    }
    case FT_INTERRUPTED:
        fprintf(stderr,
                "tracc finetune: interrupted at step %ld; checkpoint written to %s\n"
                "continue with: tracc finetune --resume %s\n",
                res.steps, res.checkpoint, res.checkpoint);
        rc = 1;
        break;
    default:
        fprintf(stderr, "tracc finetune: %s\n", err.s);
        rc = 1;
        break;
    }
    goto out;
usage_fail:
    fprintf(stderr, "Try 'tracc finetune --help'.\n");
    rc = 2;
out:
    ft_config_free(&cfg);
    json_decref(cfgj);
    json_decref(given);
    json_decref(sources);
    json_decref(eff);
    sb_free(&err);
    return rc;
}
