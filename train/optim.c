/* optim.c — see optim.h. */
#include "train/optim.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double optim_lr(const OptimConfig *c, long step)
{
    if (c->warmup > 0 && step < c->warmup) return c->lr * (double)(step + 1) / (double)c->warmup;
    if (c->schedule == SCHED_CONSTANT) return c->lr;
    long span = c->steps - c->warmup;
    double progress = span > 0 ? (double)(step - c->warmup) / (double)span : 1.0;
    if (progress < 0) progress = 0;
    if (progress > 1) progress = 1;
    double coeff = 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
    double lo = c->lr * c->min_lr_ratio;
    return lo + coeff * (c->lr - lo);
}

static int any_match(char *const *pats, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (fnmatch(pats[i], name, 0) == 0) return 1;
    return 0;
}

static void list_tensors(const Model *m, StrBuf *err)
{
    sb_puts(err, " (tensors: ");
    for (int i = 0; i < m->ntensors; i++) {
        if (i == 6 && m->ntensors > 9) {
            sb_printf(err, "..., %s", m->tensors[m->ntensors - 2].name);
            i = m->ntensors - 2;
            continue;
        }
        sb_printf(err, "%s%s", i ? ", " : "", m->tensors[i].name);
    }
    sb_puts(err, ")");
}

int optim_select(const Model *m, char *const *train, int ntrain, char *const *freeze, int nfreeze,
                 uint8_t *trainable, StrBuf *err)
{
    const char *flags[2] = {"--train", "--freeze"};
    char *const *pats[2] = {train, freeze};
    int npats[2] = {ntrain, nfreeze};
    for (int f = 0; f < 2; f++)
        for (int i = 0; i < npats[f]; i++) {
            int hit = 0;
            for (int t = 0; t < m->ntensors && !hit; t++) hit = fnmatch(pats[f][i], m->tensors[t].name, 0) == 0;
            if (!hit) {
                sb_printf(err, "%s '%s' matches no tensor", flags[f], pats[f][i]);
                list_tensors(m, err);
                return -1;
            }
        }
    int count = 0;
    for (int t = 0; t < m->ntensors; t++) {
        const char *name = m->tensors[t].name;
        int on = ntrain ? any_match(train, ntrain, name) : strncmp(name, "unembed.", 8) != 0;
        if (on && any_match(freeze, nfreeze, name)) on = 0;
        trainable[t] = (uint8_t)on;
        count += on && m->tensors[t].numel > 0;
    }
    if (!count) {
        sb_printf(err, "%s: nothing is left to train (every tensor with weights is frozen)",
                  nfreeze ? "--freeze" : "--train");
        return -1;
    }
    return 0;
}

void optim_init_noise(Model *m, const uint8_t *trainable, double sigma, Rng *r)
{
    if (!(sigma > 0)) return;
    for (int t = 0; t < m->ntensors; t++) {
        if (!trainable[t]) continue;
        float *w = m->params_memory + m->tensors[t].offset;
        for (size_t i = 0; i < m->tensors[t].numel; i++) w[i] += (float)(sigma * rng_normal(r));
    }
}

double optim_grad_norms(const Model *m, const uint8_t *trainable, const float *grads, double *per)
{
    double sum = 0.0;
    for (int t = 0; t < m->ntensors; t++) {
        double ts = 0.0;
        if (trainable[t]) {
            const float *g = grads + m->tensors[t].offset;
            for (size_t i = 0; i < m->tensors[t].numel; i++) ts += (double)g[i] * g[i];
        }
        if (per) per[t] = sqrt(ts);
        sum += ts;
    }
    return sqrt(sum);
}

double optim_grad_norm(const Model *m, const uint8_t *trainable, const float *grads)
{
    return optim_grad_norms(m, trainable, grads, NULL);
}

void optim_init(Optim *o, const OptimConfig *cfg, size_t nparams)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->n = nparams;
    o->m = xcalloc(nparams ? nparams : 1, sizeof(float));
    if (cfg->kind == OPTIM_ADAMW) o->v = xcalloc(nparams ? nparams : 1, sizeof(float));
}

void optim_free(Optim *o)
{
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void optim_step(Optim *o, Model *m, const uint8_t *trainable, float *grads, double grad_norm, double lr)
{
    const OptimConfig *c = &o->cfg;
    float gscale = 1.0f;
    if (c->clip > 0 && grad_norm > c->clip) gscale = (float)(c->clip / (grad_norm + 1e-6));
    o->t++;
    float flr = (float)lr, wd = (float)c->weight_decay;
    float mu = (float)c->momentum, b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps;
    /* bias corrections, in double then rounded once */
    float bc1 = (float)(1.0 - pow(c->beta1, (double)o->t)), bc2 = (float)(1.0 - pow(c->beta2, (double)o->t));
    for (int t = 0; t < m->ntensors; t++) {
        if (!trainable[t]) continue;
        size_t off = m->tensors[t].offset, n = m->tensors[t].numel;
        float *w = m->params_memory + off, *g = grads + off, *mm = o->m + off;
        if (gscale != 1.0f)
            for (size_t i = 0; i < n; i++) g[i] *= gscale;
        if (c->kind == OPTIM_SGD) {
            for (size_t i = 0; i < n; i++) {
                float gi = g[i] + wd * w[i];
                mm[i] = mu * mm[i] + gi;
                w[i] -= flr * mm[i];
            }
        } else {
            float *vv = o->v + off;
            for (size_t i = 0; i < n; i++) {
                w[i] -= flr * wd * w[i];
                mm[i] = b1 * mm[i] + (1.0f - b1) * g[i];
                vv[i] = b2 * vv[i] + (1.0f - b2) * g[i] * g[i];
                float mhat = mm[i] / bc1, vhat = vv[i] / bc2;
                w[i] -= flr * mhat / (sqrtf(vhat) + eps);
            }
        }
    }
}

int optim_save(const Optim *o, Model *ckpt, StrBuf *err)
{
    int64_t shape[1] = {(int64_t)o->n};
    if (o->cfg.kind == OPTIM_SGD) return model_set_extra_tensor(ckpt, OPTIM_TENSOR_MOMENTUM, 1, shape, o->m, err);
    if (model_set_extra_tensor(ckpt, OPTIM_TENSOR_ADAM_M, 1, shape, o->m, err)) return -1;
    return model_set_extra_tensor(ckpt, OPTIM_TENSOR_ADAM_V, 1, shape, o->v, err);
}

static int load_one(float *dst, size_t n, const Model *ckpt, const char *name, StrBuf *err)
{
    const ModelExtraTensor *t = model_find_extra_tensor(ckpt, name);
    if (!t) return sb_fail(err, "tensor %s: missing (the checkpoint's optimizer state)", name);
    if (t->ndim != 1 || t->numel != n) {
        sb_printf(err, "tensor %s: expected shape [%zu] (one value per parameter), found %zu values", name, n,
                  t->numel);
        return -1;
    }
    memcpy(dst, t->data, n * sizeof(float));
    return 0;
}

int optim_load(Optim *o, const Model *ckpt, StrBuf *err)
{
    if (o->cfg.kind == OPTIM_SGD) return load_one(o->m, o->n, ckpt, OPTIM_TENSOR_MOMENTUM, err);
    if (load_one(o->m, o->n, ckpt, OPTIM_TENSOR_ADAM_M, err)) return -1;
    return load_one(o->v, o->n, ckpt, OPTIM_TENSOR_ADAM_V, err);
}

int optim_parse_kind(const char *s, OptimKind *out)
{
    if (!strcmp(s, "sgd")) *out = OPTIM_SGD;
    else if (!strcmp(s, "adamw")) *out = OPTIM_ADAMW;
    else return -1;
    return 0;
}

const char *optim_kind_name(OptimKind k)
{
    return k == OPTIM_SGD ? "sgd" : "adamw";
}

int optim_parse_schedule(const char *s, OptimSchedule *out)
{
    if (!strcmp(s, "cosine")) *out = SCHED_COSINE;
    else if (!strcmp(s, "constant")) *out = SCHED_CONSTANT;
    else return -1;
    return 0;
}

const char *optim_schedule_name(OptimSchedule s)
{
    return s == SCHED_COSINE ? "cosine" : "constant";
}
