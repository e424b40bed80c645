/* decode.c — see decode.h. */
#include "runtime/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Value dec_float(float x)
{
    if (!isfinite(x)) return val_float((double)x);
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return val_float(strtod(buf, NULL));
}

Value dec_output(const Model *m, const float *logits)
{
    if (m->output_numerical) return dec_float(logits[0]);
    int best = 0;
    for (int j = 1; j < m->cfg.d_vocab_out; j++)
        if (logits[j] > logits[best]) best = j;
    return m->output_values[best];
}

void dec_layout_init(DecLayout *d, const Model *m)
{
    memset(d, 0, sizeof *d);
    arena_init(&d->arena);
    int C = m->cfg.d_model;
    /* At most one s-op per dimension; size everything for that. */
    d->sops = arena_alloc(&d->arena, sizeof(DecSop) * (size_t)(C ? C : 1));
    int *owner = xmalloc(sizeof(int) * (size_t)(C ? C : 1));
    for (int i = 0; i < C; i++) {
        const char *lab = m->residual[i];
        const char *colon = strchr(lab, ':');
        size_t nlen = colon ? (size_t)(colon - lab) : strlen(lab);
        int s = -1;
        for (int k = 0; k < d->nsops; k++)
            if (strlen(d->sops[k].name) == nlen && !strncmp(d->sops[k].name, lab, nlen)) {
                s = k;
                break;
            }
        if (s < 0) {
            s = d->nsops++;
            d->sops[s].name = arena_strndup(&d->arena, lab, nlen);
            d->sops[s].categorical = colon != NULL;
        }
        owner[i] = s;
        d->sops[s].ndims++;
    }
    for (int k = 0; k < d->nsops; k++) {
        d->sops[k].dims = arena_alloc(&d->arena, sizeof(int) * (size_t)d->sops[k].ndims);
        d->sops[k].values = arena_alloc(&d->arena, sizeof(char *) * (size_t)d->sops[k].ndims);
        d->sops[k].ndims = 0;
    }
    for (int i = 0; i < C; i++) {
        DecSop *s = &d->sops[owner[i]];
        const char *colon = strchr(m->residual[i], ':');
        s->values[s->ndims] = colon ? colon + 1 : m->residual[i];
        s->dims[s->ndims++] = i;
    }
    free(owner);
}

void dec_layout_free(DecLayout *d)
{
    arena_free(&d->arena);
    memset(d, 0, sizeof *d);
}

const DecSop *dec_layout_find(const DecLayout *d, const char *name)
{
    for (int k = 0; k < d->nsops; k++)
        if (!strcmp(d->sops[k].name, name)) return &d->sops[k];
    return NULL;
}

int dec_categorical(const DecSop *s, const float *resid)
{
    int best = -1;
    float bv = 0;
    for (int k = 0; k < s->ndims; k++) {
        float v = resid[s->dims[k]];
        if (best < 0 || v > bv) {
            best = k;
            bv = v;
        }
    }
    return best >= 0 && bv >= DEC_NONE_BELOW ? best : -1;
}

float dec_numerical(const DecSop *s, const float *resid)
{
    return s->ndims > 0 ? resid[s->dims[0]] : 0.0f;
}

Value dec_sop_value(const DecSop *s, const float *resid)
{
    if (!s->categorical) return dec_float(dec_numerical(s, resid));
    int k = dec_categorical(s, resid);
    return k < 0 ? val_none() : val_str(s->values[k]);
}
