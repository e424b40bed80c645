/* data.c — see data.h. */
#include "train/data.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/sha256.h"
#include "compiler/front/frontend.h"

/* ---------------------------------------------------------------- seeds */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t data_derive_seed(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ULL);
    h = mix64(h ^ (stream + 0x632be59bd9b4e019ULL));
    return mix64(h ^ (i + 0x85ebca6b0c2b2ae5ULL));
}

/* ---------------------------------------------------------------- programs */

static void set_text(StrBuf *b, Value v)
{
    sb_clear(b);
    val_format(v, b);
}

/* "{a, b, c}" of up to `limit` values. */
static void put_set(StrBuf *err, const Value *vals, int n, int limit)
{
    StrBuf t;
    sb_init(&t);
    sb_putc(err, '{');
    for (int i = 0; i < n; i++) {
        if (i == limit && n > limit + 1) {
            sb_printf(err, ", ... (%d values)", n);
            break;
        }
        set_text(&t, vals[i]);
        sb_printf(err, "%s%s", i ? ", " : "", t.s);
    }
    sb_putc(err, '}');
    sb_free(&t);
}

static void put_model_vocab(StrBuf *err, const Model *m)
{
    Value *v = xmalloc(sizeof(Value) * (size_t)m->cfg.d_vocab);
    int n = 0;
    for (int i = 0; i < m->cfg.d_vocab; i++)
        if (i != m->bos && i != m->pad) v[n++] = m->vocab[i];
    put_set(err, v, n, 40);
    free(v);
}

static int check_vocab(DataProgram *dp, const char *flag, const Model *m, StrBuf *err)
{
    const RaspProgram *p = dp->prog;
    int V = m->cfg.d_vocab;
    dp->row_tok = xmalloc(sizeof(int32_t) * (size_t)V);
    for (int i = 0; i < V; i++) dp->row_tok[i] = -1;
    StrBuf t;
    sb_init(&t);
    int bad = 0;
    for (int i = 0; i < p->nvocab; i++) {
        set_text(&t, p->vocab[i]);
        int row = model_token_row(m, t.s);
        if (row < 0 || row == m->bos || row == m->pad) {
            bad = 1;
            break;
        }
        dp->row_tok[row] = i;
    }
    if (!bad && p->nvocab != V - 2) bad = 1;
    sb_free(&t);
    if (bad) {
        sb_printf(err, "%s %s: its vocab ", flag, dp->path);
        put_set(err, p->vocab, p->nvocab, 40);
        sb_puts(err, " differs from the model's ");
        put_model_vocab(err, m);
        return -1;
    }
    return 0;
}

static int check_output(DataProgram *dp, const char *flag, DataRole role, const Model *m, StrBuf *err)
{
    const RaspSop *out = &dp->prog->sops[dp->prog->output];
    if (role == DATA_PREDICATE) {
        dp->true_idx = -1;
        for (int i = 0; i < out->nvals; i++) {
            if (out->vals[i].kind != VAL_BOOL) {
                sb_printf(err, "%s %s: its output %s must be boolean (true/false), but can be ", flag, dp->path,
                          out->label);
                put_set(err, out->vals, out->nvals, 20);
                return -1;
            }
            if (out->vals[i].u.i) dp->true_idx = i;
        }
        return 0;
    }
    if ((out->enc == ENC_NUMERICAL) != (m->output_numerical != 0)) {
        sb_printf(err, "%s %s: its output %s is %s but the model's output %s is %s", flag, dp->path, out->label,
                  out->enc == ENC_NUMERICAL ? "numerical" : "categorical", m->output_name,
                  m->output_numerical ? "numerical" : "categorical");
        return -1;
    }
    int n = out->nvals;
    if (m->output_numerical) {
        dp->num = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) dp->num[i] = (float)val_as_double(out->vals[i]);
        return 0;
    }
    dp->col = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int VO = m->cfg.d_vocab_out;
    for (int i = 0; i < n; i++) {
        dp->col[i] = -1;
        for (int j = 0; j < VO && dp->col[i] < 0; j++)
            if (val_equal(out->vals[i], m->output_values[j])) dp->col[i] = j;
        if (dp->col[i] < 0) {
            StrBuf t;
            sb_init(&t);
            val_format(out->vals[i], &t);
            sb_printf(err, "%s %s: its output values ", flag, dp->path);
            put_set(err, out->vals, n, 50);
            sb_printf(err, " are not all among the model's output values ");
            put_set(err, m->output_values, VO, 50);
            sb_printf(err, " (%s is not)", t.s);
            sb_free(&t);
            return -1;
        }
    }
    return 0;
}

int data_program_load(DataProgram *dp, const char *path, const char *flag, DataRole role, const Model *m,
                      StrBuf *err)
{
    memset(dp, 0, sizeof *dp);
    dp->path = xstrdup(path);
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return sb_fail(err, "%s %s: cannot read: %s", flag, path, strerror(errno));
    sha256_hex(text, len, dp->sha256);
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = m->cfg.n_ctx - 1;
    Diag *d = diag_new();
    dp->prog = rasp_load_text(path, text, len, &fo, d);
    free(text);
    if (!dp->prog) {
        char *msg = diag_render(d);
        /* the diagnostics end with a newline; the caller adds its own */
        size_t n = strlen(msg);
        while (n && msg[n - 1] == '\n') msg[--n] = 0;
        sb_printf(err, "%s %s: the program has errors:\n%s", flag, path, msg);
        free(msg);
        diag_free(d);
        return -1;
    }
    diag_free(d);
    if (check_vocab(dp, flag, m, err) || check_output(dp, flag, role, m, err)) return -1;
    dp->it = interp_new(dp->prog, 0);
    return 0;
}

void data_program_free(DataProgram *dp)
{
    if (dp->it) interp_free(dp->it);
    if (dp->prog) rasp_free(dp->prog);
    free(dp->path);
    free(dp->row_tok);
    free(dp->col);
    free(dp->num);
    memset(dp, 0, sizeof *dp);
}

/* ---------------------------------------------------------------- JSONL pairs */

typedef struct {
    int n;
    int32_t *rows;      /* (n) model rows */
    int32_t *col;       /* (n) output column, -1 = no value (categorical) */
    float *num;         /* (n) numerical value */
    uint8_t *has;       /* (n) 1 = a value */
} Pair;

static int json_to_value(json_t *j, Value *v)
{
    if (json_is_string(j)) *v = val_str(json_string_value(j));
    else if (json_is_integer(j)) *v = val_int(json_integer_value(j));
    else if (json_is_real(j)) *v = val_float(json_real_value(j));
    else if (json_is_boolean(j)) *v = val_bool(json_is_true(j));
    else return -1;
    return 0;
}

static int token_text(json_t *j, StrBuf *t)
{
    sb_clear(t);
    if (json_is_string(j)) sb_puts(t, json_string_value(j));
    else if (json_is_integer(j)) sb_printf(t, "%lld", (long long)json_integer_value(j));
    else return -1;
    return 0;
}

static int load_pairs(const char *path, const Model *m, Pair **out, int *nout, char sha[65], StrBuf *err)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) return sb_fail(err, "--data %s: cannot read: %s", path, strerror(errno));
    sha256_hex(text, len, sha);
    Pair *pairs = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, rc = 0;
    StrBuf t;
    sb_init(&t);
    char *line = text;
    while (line < text + len && !rc) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(text + len - line);
        lineno++;
        char *next = nl ? nl + 1 : text + len;
        size_t k = 0;
        while (k < ll && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == ll) {
            line = next;
            continue;
        }
        json_error_t je;
        json_t *o = json_loadb(line, ll, 0, &je);
        json_t *in = o ? json_object_get(o, "input") : NULL, *outv = o ? json_object_get(o, "output") : NULL;
        if (!o) {
            sb_printf(err, "--data %s:%d: invalid JSON: %s", path, lineno, je.text);
            rc = -1;
        } else if (!json_is_array(in) || !json_is_array(outv)) {
            sb_printf(err, "--data %s:%d: expected an object {\"input\": [tokens], \"output\": [one value or null "
                           "per token]}", path, lineno);
            rc = -1;
        } else if (json_array_size(in) < 1 || json_array_size(in) > (size_t)(m->cfg.n_ctx - 1)) {
            sb_printf(err, "--data %s:%d: %zu input tokens: expected 1..%d (the model's max_len)", path, lineno,
                      json_array_size(in), m->cfg.n_ctx - 1);
            rc = -1;
        } else if (json_array_size(outv) != json_array_size(in)) {
            sb_printf(err, "--data %s:%d: %zu output values for %zu input tokens: expected one per token (null "
                           "where nothing is expected)", path, lineno, json_array_size(outv), json_array_size(in));
            rc = -1;
        }
        if (!rc) {
            int np = (int)json_array_size(in);
            Pair p = {np, xmalloc(sizeof(int32_t) * np), xmalloc(sizeof(int32_t) * np), xmalloc(sizeof(float) * np),
                      xmalloc((size_t)np)};
            for (int i = 0; i < np && !rc; i++) {
                json_t *tj = json_array_get(in, (size_t)i);
                int row = token_text(tj, &t) ? -1 : model_token_row(m, t.s);
                if (row < 0 || row == m->bos || row == m->pad) {
                    char *s = json_dumps(tj, JSON_ENCODE_ANY);
                    sb_printf(err, "--data %s:%d: input token %d (%s) is not in the model's vocab", path, lineno,
                              i + 1, s ? s : "?");
                    free(s);
                    rc = -1;
                    break;
                }
                p.rows[i] = row;
                json_t *vj = json_array_get(outv, (size_t)i);
                p.has[i] = !json_is_null(vj);
                p.col[i] = -1;
                p.num[i] = 0;
                if (!p.has[i]) continue;
                Value v;
                if (json_to_value(vj, &v)) {
                    sb_printf(err, "--data %s:%d: output %d: expected a string, number, boolean or null", path,
                              lineno, i + 1);
                    rc = -1;
                    break;
                }
                if (m->output_numerical) {
                    if (!val_is_number(v) || !isfinite(val_as_double(v))) {
                        sb_printf(err, "--data %s:%d: output %d: expected a finite number (the model's output is "
                                       "numerical)", path, lineno, i + 1);
                        rc = -1;
                    }
                    p.num[i] = (float)val_as_double(v);
                    continue;
                }
                for (int j = 0; j < m->cfg.d_vocab_out && p.col[i] < 0; j++) {
                    if (val_equal(v, m->output_values[j])) p.col[i] = j;
                    else if (v.kind == VAL_STR) {
                        sb_clear(&t);
                        model_value_text(m->output_values[j], &t);
                        if (!strcmp(t.s, v.u.s)) p.col[i] = j;
                    }
                }
                if (p.col[i] < 0) {
                    char *s = json_dumps(vj, JSON_ENCODE_ANY);
                    sb_printf(err, "--data %s:%d: output %d (%s) is not one of the model's output values ", path,
                              lineno, i + 1, s ? s : "?");
                    free(s);
                    put_set(err, m->output_values, m->cfg.d_vocab_out, 50);
                    rc = -1;
                }
            }
            if (rc) {
                free(p.rows);
                free(p.col);
                free(p.num);
                free(p.has);
            } else {
                XGROW(pairs, cap, (size_t)n + 1);
                pairs[n++] = p;
            }
        }
        json_decref(o);
        line = next;
    }
    sb_free(&t);
    free(text);
    if (!rc && n == 0) {
        sb_printf(err, "--data %s: no examples (one JSON object per line)", path);
        rc = -1;
    }
    *out = pairs;
    *nout = n;
    return rc;
}

/* ---------------------------------------------------------------- the generator */

struct DataGen {
    DataSpec spec;
    int *at;
    const Model *m;
    int V;                  /* model rows */
    int ncand;
    int32_t *cand;          /* (ncand) rows that are input tokens (not BOS/PAD) */
    DataProgram task;       /* loaded iff spec.task */
    DataProgram pred;       /* loaded iff spec.spurious */
    DataProgram mix[DATA_MAX_MIX];
    Pair *pairs;
    int npairs;
    char data_sha[65];
    double pred_fraction;
    /* scratch */
    int32_t *rows;          /* (max_len) */
    int32_t *toks;          /* (max_len) */
    int32_t *perm;          /* (ncand) */
    uint8_t *answer;        /* (max_len) answer positions of the current input */
};

static void gen_answer_positions(DataGen *g, int n)
{
    memset(g->answer, 0, (size_t)g->m->cfg.n_ctx);
    if (!g->spec.nat) {
        memset(g->answer, 1, (size_t)n);
        return;
    }
    for (int i = 0; i < g->spec.nat; i++)
        if (g->at[i] < n) g->answer[g->at[i]] = 1;
}

/* Draw an input's tokens (model rows) into g->rows; returns its length. */
static int draw_input(DataGen *g, Rng *r)
{
    const DataSpec *s = &g->spec;
    int n = s->len_min + (int)rng_below(r, (uint32_t)(s->len_max - s->len_min + 1));
    if (s->no_repeat) {
        memcpy(g->perm, g->cand, sizeof(int32_t) * (size_t)g->ncand);
        for (int i = 0; i < n; i++) {
            int j = i + (int)rng_below(r, (uint32_t)(g->ncand - i));
            int32_t tmp = g->perm[i];
            g->perm[i] = g->perm[j];
            g->perm[j] = tmp;
            g->rows[i] = g->perm[i];
        }
    } else {
        for (int i = 0; i < n; i++) g->rows[i] = g->cand[rng_below(r, (uint32_t)g->ncand)];
    }
    return n;
}

/* Run a program on g->rows[0..n). Returns the output's value indices, or NULL with err. */
static const int32_t *run_program(DataGen *g, DataProgram *dp, int n, StrBuf *err)
{
    for (int i = 0; i < n; i++) g->toks[i] = dp->row_tok[g->rows[i]];
    if (interp_eval(dp->it, g->toks, n)) {
        sb_printf(err, "%s: interpreter error: %s", dp->path, interp_error(dp->it));
        return NULL;
    }
    return interp_values(dp->it, dp->prog->output);
}

/* 1 if the predicate is true at every answer position (and there is one), 0 if not, -1 error. */
static int pred_holds(DataGen *g, int n, StrBuf *err)
{
    const int32_t *v = run_program(g, &g->pred, n, err);
    if (!v) return -1;
    gen_answer_positions(g, n);
    int any = 0;
    for (int i = 0; i < n; i++) {
        if (!g->answer[i]) continue;
        any = 1;
        if (v[i] == RASP_NONE || v[i] != g->pred.true_idx) return 0;
    }
    return any;
}

#define PRED_PROBE 4000         /* inputs sampled to check that both sides can be drawn */
#define PRED_MIN_FRACTION 1e-3  /* a side rarer than this is an error */

DataGen *data_gen_new(const DataSpec *spec, const Model *m, StrBuf *err)
{
    DataGen *g = xcalloc(1, sizeof *g);
    g->spec = *spec;
    g->m = m;
    g->V = m->cfg.d_vocab;
    int maxlen = m->cfg.n_ctx - 1;
    g->at = xmalloc(sizeof(int) * (size_t)(spec->nat + 1));
    if (spec->nat > 0) memcpy(g->at, spec->at, sizeof(int) * (size_t)spec->nat);
    g->spec.at = g->at;
    const char *tflag = spec->task_flag ? spec->task_flag : "--task";
    g->spec.task_flag = NULL;   /* not owned */
    g->cand = xmalloc(sizeof(int32_t) * (size_t)g->V);
    for (int i = 0; i < g->V; i++)
        if (i != m->bos && i != m->pad) g->cand[g->ncand++] = i;
    g->rows = xmalloc(sizeof(int32_t) * (size_t)(maxlen + 1));
    g->toks = xmalloc(sizeof(int32_t) * (size_t)(maxlen + 1));
    g->perm = xmalloc(sizeof(int32_t) * (size_t)(g->ncand + 1));
    g->answer = xmalloc((size_t)m->cfg.n_ctx);
    if (g->spec.max_tries <= 0) g->spec.max_tries = DATA_DEFAULT_MAX_TRIES;

    if (!!spec->task == !!spec->data) {
        sb_printf(err, "%s", spec->task ? "give either --task or --data, not both" : "no training data: give --task FILE.rasp or --data FILE.jsonl");
        goto fail;
    }
    if (spec->len_min < 1 || spec->len_min > spec->len_max || spec->len_max > maxlen) {
        if (spec->len_min == spec->len_max)
            sb_printf(err, "--len %d: expected a length from 1 to the model's max_len %d", spec->len_min, maxlen);
        else
            sb_printf(err, "--len %d-%d: expected lengths from 1 to the model's max_len %d", spec->len_min,
                      spec->len_max, maxlen);
        goto fail;
    }
    if (spec->no_repeat && spec->len_max > g->ncand) {
        sb_printf(err, "--no-repeat: inputs of length %d cannot avoid repeating the model's %d tokens",
                  spec->len_max, g->ncand);
        goto fail;
    }
    for (int i = 0; i < spec->nat; i++)
        if (spec->at[i] < 0 || spec->at[i] >= maxlen) {
            sb_printf(err, "--at %d: expected RASP indices from 0 to %d (the model's max_len - 1)", spec->at[i],
                      maxlen - 1);
            goto fail;
        }
    if (spec->spurious && !spec->task) {
        sb_printf(err, "--spurious needs --task (it picks among sampled inputs)");
        goto fail;
    }
    if (!(spec->spurious_rate >= 0 && spec->spurious_rate <= 1)) {
        sb_printf(err, "--spurious-rate %g: expected a number from 0 to 1", spec->spurious_rate);
        goto fail;
    }
    double fsum = 0;
    for (int i = 0; i < spec->nmix; i++) {
        if (!(spec->mix_frac[i] > 0 && spec->mix_frac[i] <= 1)) {
            sb_printf(err, "--mix %s: fraction %g: expected a number in (0, 1]", spec->mix_path[i], spec->mix_frac[i]);
            goto fail;
        }
        fsum += spec->mix_frac[i];
    }
    if (fsum >= 1.0) {
        sb_printf(err, "--mix: the fractions add up to %g: they must leave room for the main data (sum < 1)", fsum);
        goto fail;
    }
    if (spec->task && data_program_load(&g->task, spec->task, tflag, DATA_TARGET, m, err)) goto fail;
    if (spec->data && load_pairs(spec->data, m, &g->pairs, &g->npairs, g->data_sha, err)) goto fail;
    for (int i = 0; i < spec->nmix; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--mix");
        if (data_program_load(&g->mix[i], spec->mix_path[i], flag, DATA_TARGET, m, err)) goto fail;
    }
    if (spec->spurious) {
        if (data_program_load(&g->pred, spec->spurious, "--spurious", DATA_PREDICATE, m, err)) goto fail;
        /* Both sides the rate asks for must be reachable by rejection sampling. */
        Rng r;
        rng_seed(&r, data_derive_seed(0x5eed, 7, 0));
        int hits = 0;
        for (int i = 0; i < PRED_PROBE; i++) {
            int n = draw_input(g, &r);
            int h = pred_holds(g, n, err);
            if (h < 0) goto fail;
            hits += h;
        }
        g->pred_fraction = (double)hits / PRED_PROBE;
        int need_true = spec->spurious_rate > 0, need_false = spec->spurious_rate < 1 && !spec->spurious_uniform;
        if ((need_true && g->pred_fraction < PRED_MIN_FRACTION) ||
            (need_false && 1.0 - g->pred_fraction < PRED_MIN_FRACTION)) {
            int side = need_true && g->pred_fraction < PRED_MIN_FRACTION;
            sb_printf(err, "--spurious %s: the predicate %s on %d of %d sampled inputs; the samples where it %s "
                           "(rate %g) are too rare to draw", spec->spurious, "held", hits, PRED_PROBE,
                      side ? "holds" : "does not hold", spec->spurious_rate);
            goto fail;
        }
    }
    return g;
fail:
    data_gen_free(g);
    return NULL;
}

void data_gen_free(DataGen *g)
{
    if (!g) return;
    if (g->task.prog || g->task.path) data_program_free(&g->task);
    if (g->pred.prog || g->pred.path) data_program_free(&g->pred);
    for (int i = 0; i < DATA_MAX_MIX; i++)
        if (g->mix[i].prog || g->mix[i].path) data_program_free(&g->mix[i]);
    for (int i = 0; i < g->npairs; i++) {
        free(g->pairs[i].rows);
        free(g->pairs[i].col);
        free(g->pairs[i].num);
        free(g->pairs[i].has);
    }
    free(g->pairs);
    free(g->at);
    free(g->cand);
    free(g->rows);
    free(g->toks);
    free(g->perm);
    free(g->answer);
    free(g);
}

int data_gen_nearest_value(const DataGen *g, float x)
{
    if (!g->spec.task || !g->task.num) return -1;
    const RaspSop *out = &g->task.prog->sops[g->task.prog->output];
    int best = -1;
    double bestd = INFINITY;
    for (int i = 0; i < out->nvals; i++) {
        double d = fabs((double)x - (double)g->task.num[i]);
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    return best;
}

double data_gen_spurious_fraction(const DataGen *g)
{
    return g->pred_fraction;
}

int data_gen_nfiles(const DataGen *g)
{
    return 1 + (g->spec.spurious != NULL) + g->spec.nmix;
}

void data_gen_file(const DataGen *g, int i, const char **role, const char **path, const char **sha256)
{
    if (i == 0) {
        *role = g->spec.task ? "task" : "data";
        *path = g->spec.task ? g->task.path : g->spec.data;
        *sha256 = g->spec.task ? g->task.sha256 : g->data_sha;
        return;
    }
    i--;
    if (g->spec.spurious) {
        if (i == 0) {
            *role = "spurious";
            *path = g->pred.path;
            *sha256 = g->pred.sha256;
            return;
        }
        i--;
    }
    *role = "mix";
    *path = g->mix[i].path;
    *sha256 = g->mix[i].sha256;
}

void data_batch_free(DataBatch *b)
{
    free(b->tokens);
    free(b->lens);
    free(b->seq);
    free(b->pos);
    free(b->target);
    free(b->target_num);
    free(b->row_start);
    memset(b, 0, sizeof *b);
}

static void batch_reserve(DataBatch *b, int B, int T, size_t R)
{
    size_t ntok = (size_t)B * T;
    if (ntok > b->cap_tok) {
        b->tokens = xrealloc(b->tokens, sizeof(int32_t) * ntok);
        b->cap_tok = ntok;
    }
    if ((size_t)B + 1 > b->cap_b) {
        b->lens = xrealloc(b->lens, sizeof(int) * ((size_t)B + 1));
        b->row_start = xrealloc(b->row_start, sizeof(int) * ((size_t)B + 1));
        b->cap_b = (size_t)B + 1;
    }
    if (R > b->cap_r) {
        size_t c = R > 2 * b->cap_r ? R : 2 * b->cap_r;
        b->seq = xrealloc(b->seq, sizeof(int) * c);
        b->pos = xrealloc(b->pos, sizeof(int) * c);
        b->target = xrealloc(b->target, sizeof(int32_t) * c);
        b->target_num = xrealloc(b->target_num, sizeof(float) * c);
        b->cap_r = c;
    }
}

/* Append the rows of the current input (g->rows[0..n)) labelled by `vals` (value indices of
 * dp's output) or, for a pair, by the pair's labels. */
static void add_rows(DataGen *g, DataBatch *out, int b, int n, const DataProgram *dp, const int32_t *vals,
                     const Pair *pair)
{
    gen_answer_positions(g, n);
    for (int i = 0; i < n; i++) {
        if (!g->answer[i]) continue;
        int has = pair ? pair->has[i] : vals[i] != RASP_NONE;
        if (!has) continue;
        batch_reserve(out, out->B, out->T, (size_t)out->R + 1);
        int r = out->R++;
        out->seq[r] = b;
        out->pos[r] = i + 1;
        if (pair) {
            out->target[r] = pair->col[i];
            out->target_num[r] = pair->num[i];
        } else {
            out->target[r] = dp->col ? dp->col[vals[i]] : vals[i];
            out->target_num[r] = dp->num ? dp->num[vals[i]] : 0.0f;
        }
    }
}

int data_gen_batch(DataGen *g, uint64_t seed, uint64_t step, int B, DataBatch *out, StrBuf *err)
{
    const DataSpec *s = &g->spec;
    int T = g->m->cfg.n_ctx;   /* trimmed to the longest input below */
    Rng r;
    rng_seed(&r, data_derive_seed(seed, 1, step));
    out->B = B;
    out->T = T;
    out->R = 0;
    batch_reserve(out, B, T, (size_t)B);
    int maxT = 1;
    for (int b = 0; b < B; b++) {
        out->row_start[b] = out->R;
        int32_t *tok = out->tokens + (size_t)b * T;
        /* which source: a mixed-in program, else the main one */
        double u = s->nmix ? rng_uniform(&r) : 1.0;
        int mixi = -1;
        double acc = 0;
        for (int i = 0; i < s->nmix && mixi < 0; i++) {
            acc += s->mix_frac[i];
            if (u < acc) mixi = i;
        }
        int n;
        if (mixi >= 0 || s->task) {
            DataProgram *dp = mixi >= 0 ? &g->mix[mixi] : &g->task;
            int want = mixi < 0 && s->spurious ? rng_uniform(&r) < s->spurious_rate : 0;
            if (mixi < 0 && s->spurious && (want || !s->spurious_uniform)) {
                long tries = 0;
                for (;;) {
                    n = draw_input(g, &r);
                    int h = pred_holds(g, n, err);
                    if (h < 0) return -1;
                    if (h == want) break;
                    if (++tries >= s->max_tries) {
                        sb_printf(err, "--spurious %s: no input where the predicate %s in %ld tries", s->spurious,
                                  want ? "holds" : "does not hold", tries);
                        return -1;
                    }
                }
            } else {
                n = draw_input(g, &r);
            }
            const int32_t *vals = run_program(g, dp, n, err);
            if (!vals) return -1;
            add_rows(g, out, b, n, dp, vals, NULL);
        } else {
            const Pair *p = &g->pairs[rng_below(&r, (uint32_t)g->npairs)];
            n = p->n;
            memcpy(g->rows, p->rows, sizeof(int32_t) * (size_t)n);
            add_rows(g, out, b, n, NULL, NULL, p);
        }
        tok[0] = g->m->bos;
        memcpy(tok + 1, g->rows, sizeof(int32_t) * (size_t)n);
        for (int t = n + 1; t < T; t++) tok[t] = g->m->pad;
        out->lens[b] = n + 1;
        if (n + 1 > maxT) maxT = n + 1;
    }
    out->row_start[B] = out->R;
    /* Pad only to the longest input: repack the token rows from stride T to maxT. */
    if (maxT < T) {
        for (int b = 0; b < B; b++)
            memmove(out->tokens + (size_t)b * maxT, out->tokens + (size_t)b * T, sizeof(int32_t) * (size_t)maxT);
        out->T = maxT;
    }
    return 0;
}

uint64_t data_eval_seed(const DataGen *g, uint64_t eval_seed)
{
    uint64_t key = 0;
    if (g->spec.spurious)   /* the predicate's hash, taken when data_gen_new loaded it */
        key = data_derive_seed(strtoull(g->pred.sha256 + 48, NULL, 16), 3,
                               (uint64_t)llround(g->spec.spurious_rate * 1e9));
    return data_derive_seed(eval_seed, 2, key);
}
