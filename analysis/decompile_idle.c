/* decompile_idle.c — the capacity the program leaves unused that fine-tuning put to work.
 *
 * A compiled model can hold components no op of its program uses: Tracr's layout gives the
 * Counter an attention layer before its first map and an MLP after its last aggregate, all
 * zeros. Fine-tuning can build a new answer there, and no edit of the program's own ops can
 * express that, so the decompiled program's fidelity drops for a reason its text cannot show.
 * Each such component with nonzero weights is zeroed on its own — a head's W_V (the head then
 * writes a constant, b_V·W_O, the input-dependent part gone), an MLP block's unused hidden
 * units' W_out rows — and the model is re-run on the decompilation's samples: the share of
 * answer positions whose answer changes is how much of the model's answer runs through it. */
#include "analysis/decompile_int.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "runtime/decode.h"
#include "runtime/forward.h"

/* A component's weights, as prune --reset names them, and their ranges in params_memory. */
typedef struct {
    char name[96];      /* "block 0 head 0" / "block 2 MLP (94 units no map owns)" */
    char spec[1024];    /* as prune --reset reads it: "blocks.0.attn.W_V[0]", "blocks.0.mlp.W_out[2:94]" */
    CoordSlices sl;
} Idle;

static double slices_norm(const Model *m, const CoordSlices *sl)
{
    double s = 0;
    for (int i = 0; i < sl->n; i++)
        for (size_t k = 0; k < sl->len[i]; k++) {
            double v = m->params_memory[sl->start[i] + k];
            s += v * v;
        }
    return sqrt(s);
}

/* The unused components: every head coords names unused, and per block the MLP hidden
 * units no map owns (their W_out rows, one I:J range per run of consecutive units). */
static int idle_components(const Model *m, const Coords *co, Idle **out)
{
    int L = m->cfg.n_layers, NH = m->cfg.n_heads, M = m->cfg.d_mlp, n = 0;
    Idle *v = xcalloc((size_t)(L * (NH + 1)) + 1, sizeof(Idle));
    StrBuf e;
    sb_init(&e);
    for (int l = 0; l < L; l++) {
        for (int h = 0; h < NH; h++) {
            if (co->heads[l * NH + h].desc) continue;
            Idle *c = &v[n];
            snprintf(c->name, sizeof c->name, "block %d head %d", l, h);
            snprintf(c->spec, sizeof c->spec, "blocks.%d.attn.W_V[%d]", l, h);
            if (!coord_parse_slices(m, c->spec, &c->sl, &e)) n++;
        }
        Idle *c = &v[n];
        int units = 0;
        size_t used = 0;
        for (int j = 0; j < M;) {
            if (co->neuron_map[l * M + j] >= 0) {
                j++;
                continue;
            }
            int j1 = j;
            while (j1 < M && co->neuron_map[l * M + j1] < 0) j1++;
            char part[64];
            if (j == 0 && j1 == M) snprintf(part, sizeof part, "blocks.%d.mlp.W_out", l);
            else snprintf(part, sizeof part, "blocks.%d.mlp.W_out[%d:%d]", l, j, j1);
            if (used + strlen(part) + 2 < sizeof c->spec) {
                used += (size_t)snprintf(c->spec + used, sizeof c->spec - used, "%s%s", used ? "+" : "", part);
                units += j1 - j;
            }
            j = j1;
        }
        if (!units || coord_parse_slices(m, c->spec, &c->sl, &e)) continue;
        snprintf(c->name, sizeof c->name, "block %d MLP (%d unit%s no map owns)", l, units, units == 1 ? "" : "s");
        n++;
    }
    sb_free(&e);
    *out = v;
    return n;
}

/* Run w on the samples of `set` and count the answer positions whose answer differs from
 * what the decompilation observed of the model (dc->out_dec / out_num). */
static int changed_answers(const Dc *dc, const Model *w, const int32_t *row_of, int set, long *nchanged,
                           long *npos, StrBuf *err)
{
    int VO = w->cfg.d_vocab_out;
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    StrBuf tb;
    sb_init(&tb);
    /* only the set's samples are run: the training ones come first */
    int first = set == DC_SET_TRAIN ? 0 : dc->set_count[DC_SET_TRAIN];
    DcBatches bt;
    dc_batches_init(&bt, dc, first, first + dc->set_count[set]);
    int rc;
    *nchanged = *npos = 0;
    while ((rc = dc_batches_next(&bt, dc, w, row_of, &fo, err)) > 0) {
        for (int k = 0; k < bt.nb; k++) {
            int smp = bt.k0 + k, n = dc->sample_len[smp];
            long off = dc->sample_off[smp];
            for (int i = 0; i < n; i++) {
                int counted = !dc->nat;
                for (int a = 0; a < dc->nat; a++) counted |= dc->at[a] == i;
                if (!counted) continue;
                Value v = dec_output(w, bt.fs.logits + ((size_t)k * bt.T + (size_t)i + 1) * (size_t)VO);
                int same;
                if (w->output_numerical) {
                    double x = val_as_double(v), y = dc->out_num[off + i];
                    same = fabs(x - y) <= 1e-3 * fmax(1, fabs(y));
                } else if (v.kind == VAL_NONE) {
                    same = dc->out_dec[off + i] < 0;
                } else {
                    sb_clear(&tb);
                    val_format(v, &tb);
                    same = dc->out_dec[off + i] >= 0 && !strcmp(tb.s, dc->out_dict.txt[dc->out_dec[off + i]]);
                }
                (*npos)++;
                *nchanged += !same;
            }
        }
    }
    sb_free(&tb);
    dc_batches_free(&bt);
    return rc;
}

json_t *dc_idle(const Dc *dc, StrBuf *c, StrBuf *err)
{
    const Model *m = dc->m;
    json_t *arr = json_array();
    Coords co;
    coord_init(&co, m);
    Idle *comp = NULL;
    int n = idle_components(m, &co, &comp);
    int set = dc->set_count[DC_SET_TRAIN] ? DC_SET_TRAIN : DC_SET_UNIFORM;
    Model *w = NULL;
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)(dc->p->nvocab + 1));
    int rc = ro_vocab_rows(m, dc->p, row_of, err);
    for (int i = 0; i < n && !rc; i++) {
        const CoordSlices *sl = &comp[i].sl;
        double norm = slices_norm(m, sl);
        if (norm == 0) continue;   /* as compiled: nothing was put there */
        if (!w && !(w = model_copy(m, err))) {
            rc = -1;
            break;
        }
        for (int r = 0; r < sl->n; r++) memset(w->params_memory + sl->start[r], 0, sizeof(float) * sl->len[r]);
        long nch = 0, npos = 0;
        rc = changed_answers(dc, w, row_of, set, &nch, &npos, err);
        for (int r = 0; r < sl->n; r++)
            memcpy(w->params_memory + sl->start[r], m->params_memory + sl->start[r], sizeof(float) * sl->len[r]);
        if (rc) break;
        double share = npos ? (double)nch / (double)npos : 0;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:f, s:f, s:I}", "component", comp[i].name, "zeroed",
                                             comp[i].spec, "norm", norm, "answers_changed", share, "positions",
                                             (json_int_t)npos));
        /* a comment only where it matters: noise-level weights change nothing */
        if (share >= 0.01)
            sb_printf(c,
                      "# not in the program: %s is unused by it, yet zeroing %s (norm %.3g) changes %.1f%% of %ld "
                      "answers: part of the answer runs through capacity the program does not have\n",
                      comp[i].name, comp[i].spec, norm, 100 * share, npos);
    }
    free(row_of);
    if (w) model_free(w);
    for (int i = 0; i < n; i++) coord_slices_free(&comp[i].sl);
    free(comp);
    coord_free(&co);
    if (rc) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}
