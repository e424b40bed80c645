/* optim.h — what fine-tuning may change and how: the trainable tensors (glob patterns over
 * tensor names), the optimizers (SGD with momentum, AdamW), the learning-rate schedule
 * (linear warmup, then cosine decay or constant), global-norm gradient clipping, weight
 * decay, and the one-time initial noise that densifies compiled weights.
 *
 * The optimizer's state lives in blocks of the parameters' layout (model.h), so a
 * checkpoint stores each as one `optim.*` tensor and a tensor's slice is found by its
 * table offset. Every operation walks the tensors in table order, in float, one thread:
 * the same inputs give bit-identical results. */
#ifndef TRACC_OPTIM_H
#define TRACC_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/rng.h"
#include "runtime/model.h"

typedef enum { OPTIM_SGD, OPTIM_ADAMW } OptimKind;
typedef enum { SCHED_COSINE, SCHED_CONSTANT } OptimSchedule;

typedef struct {
    OptimKind kind;
    double lr;              /* peak learning rate, > 0 */
    double momentum;        /* SGD, in [0, 1) */
    double beta1, beta2;    /* AdamW, in [0, 1) */
    double eps;             /* AdamW, > 0 */
    double weight_decay;    /* >= 0: SGD adds wd * w to the gradient (as torch.optim.SGD);
                               AdamW decays the weights directly (decoupled) */
    double clip;            /* global gradient-norm bound; 0 = no clipping */
    long warmup;            /* steps of linear warmup from lr / warmup to lr */
    long steps;             /* total steps, >= 1 */
    OptimSchedule schedule;
    double min_lr_ratio;    /* cosine ends at lr * min_lr_ratio, in [0, 1] */
} OptimConfig;

/* Names of the optimizer-state tensors in a checkpoint. */
#define OPTIM_TENSOR_MOMENTUM "optim.momentum"   /* SGD */
#define OPTIM_TENSOR_ADAM_M "optim.adam_m"       /* AdamW first moment */
#define OPTIM_TENSOR_ADAM_V "optim.adam_v"       /* AdamW second moment */

/* The learning rate of update number `step` (0-based). */
double optim_lr(const OptimConfig *c, long step);

/* Choose the trainable tensors: trainable (model_num_tensors entries) gets 1 or 0.
 * With no train patterns, every tensor but the unembed (`unembed.*`) trains: a compiled
 * unembed is a fixed read-out of the output s-op, as in Tracr. Patterns are fnmatch(3) globs
 * over TransformerLens names ("blocks.1.mlp.*"); each pattern must match some tensor, and
 * something must remain trainable. On error returns -1 with a message naming `--train` or
 * `--freeze`. */
int optim_select(const Model *m, char *const *train, int ntrain, char *const *freeze, int nfreeze,
                 uint8_t *trainable, StrBuf *err);

/* Add N(0, sigma^2) to every weight of the trainable tensors, in table order. */
void optim_init_noise(Model *m, const uint8_t *trainable, double sigma, Rng *r);

/* Global L2 norm of the trainable tensors' gradients (accumulated in double). With `per`
 * (m->ntensors entries, may be NULL), each tensor's own norm too (0 for frozen ones). */
double optim_grad_norm(const Model *m, const uint8_t *trainable, const float *grads);
double optim_grad_norms(const Model *m, const uint8_t *trainable, const float *grads, double *per);

typedef struct {
    OptimConfig cfg;
    size_t n;       /* model_num_params */
    float *m;       /* (n) SGD momentum buffer, or AdamW first moment */
    float *v;       /* (n) AdamW second moment; NULL for SGD */
    long t;         /* updates applied so far */
} Optim;

void optim_init(Optim *o, const OptimConfig *cfg, size_t nparams);
void optim_free(Optim *o);

/* One update with learning rate lr: clip (if cfg.clip > 0 and the norm exceeds it, the
 * gradients are scaled by clip / (norm + 1e-6), as torch's clip_grad_norm_), then the
 * optimizer step on the trainable tensors. grad_norm is the norm before clipping.
 * grads may be modified (clipped). */
void optim_step(Optim *o, Model *m, const uint8_t *trainable, float *grads, double grad_norm, double lr);

/* The state as checkpoint tensors, and back. optim_load checks the names and shapes and
 * returns -1 with a message when they do not fit. */
int optim_save(const Optim *o, Model *ckpt, StrBuf *err);
int optim_load(Optim *o, const Model *ckpt, StrBuf *err);

/* Parse "sgd" / "adamw"; returns -1 if unknown. */
int optim_parse_kind(const char *s, OptimKind *out);
const char *optim_kind_name(OptimKind k);
int optim_parse_schedule(const char *s, OptimSchedule *out);
const char *optim_schedule_name(OptimSchedule s);

#endif
