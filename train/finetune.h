/* finetune.h — the fine-tuning run behind `tracc finetune`: configuration, the training
 * loop, evaluation sets, the JSONL log, checkpoints and resuming, provenance.
 *
 * The configuration is one JSON object (ft_config_defaults lists every key with its
 * default; keys are the CLI's flag names with '_' for '-'). It is stored whole in every
 * checkpoint, so `--resume` needs nothing else; the settings that shape the weights are
 * stored (without the operational ones: output, log, checkpoint paths and periods) in
 * the output model's `provenance`.
 *
 * A checkpoint is a model file (same format) holding the current weights, the optimizer
 * state as `optim.*` tensors of the parameters' layout, and the metadata key
 * FT_STATE_KEY: {"step", "config", "files", "eval", "train_loss"}. The data of step s is a
 * pure function of (seed, s), the schedule a function of s, and the initial noise is
 * applied once before step 0, so weights + optimizer state + step are the whole state:
 * a resumed run ends bit-identical to an uninterrupted one (one BLAS thread). */
#ifndef TRACC_FINETUNE_H
#define TRACC_FINETUNE_H

#include <signal.h>
#include <stdint.h>

#include "runtime/model.h"
#include "train/data.h"
#include "train/optim.h"

struct json_t;

#define FT_STATE_KEY "tracc_finetune"
#define FT_MAX_EVAL 32
#define FT_MAX_AT 4096

typedef struct {
    const char *name;       /* [A-Za-z0-9_.-]{1,63} */
    const char *program;
    const char *spurious;   /* or NULL */
    double rate;            /* fraction of the set drawn where the predicate holds */
} FtEval;

typedef struct {
    struct json_t *json;    /* the whole configuration; owns every string below */
    const char *model;      /* the parent model file */
    const char *output;     /* -o */
    const char *checkpoint; /* checkpoint path (default: derived from output) */
    const char *log;        /* JSONL log, or NULL */
    DataSpec data;
    int *at;                /* (data.nat) */
    double logit_scale;
    OptimConfig opt;
    int batch;
    double init_noise;
    int flush_subnormals;   /* key "flush_subnormals": FTZ/DAZ for the run (train/fpmode.h) */
    uint64_t seed;
    char **train, **freeze; /* glob patterns */
    int ntrain, nfreeze;
    FtEval evals[FT_MAX_EVAL];
    int neval;
    long eval_every;        /* 0: only before the first and after the last step */
    int eval_size;
    uint64_t eval_seed;
    long log_every;
    long checkpoint_every;  /* 0: only on SIGINT/SIGTERM */
    const char *stop_when;  /* "NAME>=ACC" as given (key "stop_when"), or NULL */
    int stop_eval;          /* with stop_when: the index in evals of NAME */
    double stop_acc;        /* with stop_when: ACC, a fraction in [0, 1] */
    const char *preset;     /* the --preset named (key "preset"), or NULL */
    const char *save_init;  /* --save-init: write the (noised) start here, or NULL */
    struct json_t *sources; /* {key: "flag" | "preset NAME" | "default" ...} or NULL (owned) */
} FtConfig;

/* Every configuration key with its default value ("model", "output", "task" … are null). */
struct json_t *ft_config_defaults(void);
/* Keys a resumed run may change: output, log, log_every, checkpoint, checkpoint_every,
 * eval_every, save_init. Any other key must keep the checkpoint's value. */
int ft_config_key_is_operational(const char *key);
/* The flag that sets a key ("lr" -> "--lr", "model" -> "MODEL"), for messages. */
const char *ft_config_flag(const char *key, char *buf, size_t cap);

/* Presets: named sets of settings (--preset NAME). A flag always wins over the preset,
 * wherever it stands on the command line.
 *
 * ft_preset_values returns the values preset NAME sets given the flags (`given`, an object
 * of configuration keys; may be NULL), including "preset": NAME and the values it derives
 * from the flags (jain2023: --warmup 20% of --steps, --at 1), without the keys `given`
 * sets; NULL if NAME is unknown. ft_preset_names lists the known names for messages.
 *
 * ft_config_compose builds a whole configuration: the defaults, the preset's values (preset
 * may be NULL), then `given`. If sources is not NULL it gets a new object {key: "flag" |
 * "preset NAME" | "default"} for every key (a value the preset derives from --steps says
 * so: "preset jain2023: 20% of --steps"). NULL if the preset is unknown. */
struct json_t *ft_preset_values(const char *name, const struct json_t *given);
const char *ft_preset_names(void);
struct json_t *ft_config_compose(const struct json_t *given, const char *preset, struct json_t **sources);

/* The settings and where each came from, for the start of a run (stderr): lines
 * "settings  flag: --lr 0.01 ...", "          preset jain2023: ...", "          default: ..."
 * (values that are unset, off or empty are left out). With a preset, two more lines: the
 * effective protocol and the choices the paper left open (ft_preset_notice). */
void ft_config_banner(const FtConfig *cfg, StrBuf *out);

/* Check a configuration and fill cfg (which takes a reference to json). On a bad setting
 * returns -1 with a message naming the flag, e.g. "--lr must be > 0, got 0". With sources
 * (ft_config_compose's; cfg takes a reference, may be NULL) a value the user did not give
 * says where it came from: "--warmup must be from 0 to --steps (100), got 2000 (from
 * --preset jain2023)". */
int ft_config_parse(FtConfig *cfg, struct json_t *json, StrBuf *err);
int ft_config_parse_sourced(FtConfig *cfg, struct json_t *json, struct json_t *sources, StrBuf *err);
void ft_config_free(FtConfig *cfg);
void ft_preset_notice(const FtConfig *cfg, StrBuf *out);

/* Parse "NAME=FILE.rasp[,spurious=PRED.rasp,rate=C]" into an object
 * {"name", "program", "spurious", "rate"}; NULL with a message on a malformed spec. */
struct json_t *ft_parse_eval_spec(const char *s, StrBuf *err);

/* Parse "NAME:ACC" or "NAME>=ACC" (the same condition; ACC a fraction in [0, 1] or a
 * percentage like "90%"; the first form needs no shell quoting) into NAME and the
 * fraction; -1 with a message naming --stop-when if malformed. NAME is not checked against
 * the evaluation sets here (ft_config_parse does that). */
int ft_parse_stop_when(const char *s, char *name, size_t cap, double *acc, StrBuf *err);
/* The canonical spelling of a stop condition, "NAME>=ACC" with ACC a fraction: how it is
 * stored in the configuration, the provenance and the log. */
void ft_stop_when_text(const char *name, double acc, char *buf, size_t cap);

/* Drop what a checkpoint adds to a model (its optim.* tensors and FT_STATE_KEY), leaving a
 * plain model. */
void ft_strip_training_state(Model *m);

/* A checkpoint's configuration (a new reference), for --resume, and (if sources is not
 * NULL) the sources of its settings as the original run recorded them (a new reference, or
 * NULL for a checkpoint written before they were recorded). NULL with a message if the
 * file is not a readable model or holds no fine-tuning state. */
struct json_t *ft_checkpoint_config(const char *path, struct json_t **sources, StrBuf *err);

typedef struct {
    char name[64];
    double acc;             /* exact match at every counted position, over sequences with one:
                               the argmax of the logits (numerical: the nearest output value) */
    double acc_decoded;     /* the same, decoded as `tracc run` does: no value unless the
                               largest logit is above DEC_NONE_BELOW (numerical: within
                               VERIFY_NUM_TOL, relative, of the target) */
    double loss;            /* the training loss on the set */
    int n;                  /* sequences counted */
} FtEvalResult;

typedef struct {
    long step, steps;
    double loss, lr, grad_norm;
    double elapsed;         /* seconds since this process started training */
    long steps_done;        /* steps taken by this process (for speed) */
    int evaluated;          /* the results below are fresh */
    int neval;
    const FtEvalResult *eval;
} FtProgress;

typedef struct {
    volatile sig_atomic_t *stop;   /* set (by a signal handler): checkpoint at the next step
                                      boundary and return FT_INTERRUPTED */
    void (*progress)(void *ctx, const FtProgress *p);   /* after every step and evaluation */
    void *ctx;
    int resume;             /* cfg->model is a checkpoint to continue from */
    const char *parent_check;/* with resume: a model file whose sha256 must be the parent's */
    long test_nan_at;       /* testing: make the loss of this step NaN (0: never) */
    int test_delay_ms;      /* testing: sleep after every step */
    const char *version;    /* the tool's version, for provenance */
    int threads;            /* worker threads (>= 1); results do not depend on it */
} FtHooks;

typedef enum {
    FT_OK = 0,
    FT_ERROR,               /* nothing written (or the last good checkpoint kept) */
    FT_BAD_SETTING,         /* rejected before any work (a usage error) */
    FT_INTERRUPTED,         /* stopped by *stop; checkpoint written */
    FT_DIVERGED,            /* NaN/Inf in the loss, gradients or weights */
} FtStatus;

typedef struct {
    long steps;             /* steps taken in all (including before a resume) */
    double train_loss;      /* last step's */
    int neval;
    FtEvalResult eval[FT_MAX_EVAL];
    char checkpoint[4096];  /* last checkpoint written ("" if none) */
    long checkpoint_step;
    double elapsed;         /* seconds of training in this process */
    long steps_run;         /* steps taken by this process */
    long stopped_at;        /* the step --stop-when held at, or -1 */
    double stop_best_acc;   /* with --stop-when: the best accuracy of its set (NAN if never scored) */
    long stop_best_step;    /* and the step of its first occurrence */
    char blas[256];         /* the OpenBLAS kernels the run trained on, "+"-joined in order
                               when it was resumed on another ("Haswell+Cooperlake") */
} FtResult;

/* Run (or continue) a fine-tuning run. Errors: message in err. */
FtStatus ft_run(const FtConfig *cfg, const FtHooks *hooks, FtResult *res, StrBuf *err);

/* The default checkpoint path for an output path: "x.safetensors" -> "x.ckpt.safetensors". */
char *ft_default_checkpoint(const char *output);

#endif
