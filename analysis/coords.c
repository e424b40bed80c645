/* coords.c — see coords.h. */
#include "analysis/coords.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : NULL;
}

/* "a, b" from a JSON array of strings. */
static void join_strings(json_t *arr, StrBuf *b)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s) continue;
        if (b->len && b->s[b->len - 1] != '(') sb_puts(b, ", ");
        sb_puts(b, s);
    }
}

void coord_init(Coords *c, const Model *m)
{
    memset(c, 0, sizeof *c);
    arena_init(&c->arena);
    c->m = m;
    c->L = m->cfg.n_layers;
    c->NH = m->cfg.n_heads;
    c->M = m->cfg.d_mlp;
    c->C = m->cfg.d_model;
    size_t L = (size_t)c->L;
    c->heads = arena_alloc(&c->arena, sizeof *c->heads * (L * (size_t)c->NH + 1));
    c->nmaps = arena_alloc(&c->arena, sizeof(int) * (L + 1));
    c->maps = arena_alloc(&c->arena, sizeof(CoordMap *) * (L + 1));
    c->neuron_map = arena_alloc(&c->arena, sizeof(int) * (L * (size_t)c->M + 1));
    for (size_t i = 0; i < L * (size_t)c->M; i++) c->neuron_map[i] = -1;

    StrBuf b;
    sb_init(&b);
    size_t nl = json_array_size(m->layers);
    for (size_t l = 0; l < nl && l < L; l++) {
        json_t *blk = json_array_get(m->layers, l);
        json_t *attn = json_object_get(blk, "attn");
        for (size_t i = 0; i < json_array_size(attn); i++) {
            json_t *hd = json_array_get(attn, i);
            json_t *hj = json_object_get(hd, "head");
            if (!json_is_integer(hj)) continue;
            json_int_t h = json_integer_value(hj);
            if (h < 0 || h >= c->NH) continue;
            CoordHead *ch = &c->heads[l * (size_t)c->NH + (size_t)h];
            const char *label = json_str(hd, "label"), *op = json_str(hd, "op"), *sel = json_str(hd, "selector");
            sb_clear(&b);
            sb_printf(&b, "%s = %s(", label ? label : "?", op ? op : "head");
            if (sel) sb_puts(&b, sel);
            if (op && !strcmp(op, "aggregate")) {
                json_t *val = json_object_get(hd, "aggregated");
                if (!json_array_size(val)) val = json_object_get(hd, "value");
                join_strings(val, &b);
            }
            sb_putc(&b, ')');
            ch->desc = arena_strdup(&c->arena, b.s);
            ch->label = label ? arena_strdup(&c->arena, label) : NULL;
            ch->selector = sel ? arena_strdup(&c->arena, sel) : NULL;
            ch->op = op ? arena_strdup(&c->arena, op) : NULL;
        }
        json_t *mlp = json_object_get(blk, "mlp");
        size_t nm = json_array_size(mlp);
        c->maps[l] = arena_alloc(&c->arena, sizeof(CoordMap) * (nm + 1));
        for (size_t i = 0; i < nm; i++) {
            json_t *mp = json_array_get(mlp, i);
            json_t *nr = json_object_get(mp, "neurons");
            if (json_array_size(nr) != 2) continue;
            json_int_t a = json_integer_value(json_array_get(nr, 0)), z = json_integer_value(json_array_get(nr, 1));
            if (a < 0 || z > c->M || a >= z) continue;
            CoordMap *cm = &c->maps[l][c->nmaps[l]];
            const char *label = json_str(mp, "label"), *op = json_str(mp, "op");
            sb_clear(&b);
            if (op && !strcmp(op, "clean_bos"))
                sb_puts(&b, "clean_bos(");
            else
                sb_printf(&b, "%s = %s(", label ? label : "?", op ? op : "map");
            join_strings(json_object_get(mp, "inputs"), &b);
            sb_putc(&b, ')');
            cm->first = (int)a;
            cm->last = (int)z;
            cm->desc = arena_strdup(&c->arena, b.s);
            cm->label = label ? arena_strdup(&c->arena, label) : NULL;
            cm->op = op ? arena_strdup(&c->arena, op) : NULL;
            for (json_int_t j = a; j < z; j++)
                if (c->neuron_map[l * (size_t)c->M + (size_t)j] < 0)
                    c->neuron_map[l * (size_t)c->M + (size_t)j] = c->nmaps[l];
            c->nmaps[l]++;
        }
    }
    for (size_t l = nl; l < L; l++) c->maps[l] = arena_alloc(&c->arena, sizeof(CoordMap));

    c->tokens = arena_alloc(&c->arena, sizeof(char *) * (size_t)m->cfg.d_vocab);
    for (int v = 0; v < m->cfg.d_vocab; v++) {
        sb_clear(&b);
        model_value_text(m->vocab[v], &b);
        c->tokens[v] = arena_strdup(&c->arena, b.s);
    }
    c->outvals = arena_alloc(&c->arena, sizeof(char *) * (size_t)m->cfg.d_vocab_out);
    for (int k = 0; k < m->cfg.d_vocab_out; k++) {
        sb_clear(&b);
        if (m->output_numerical || !m->output_values)
            sb_puts(&b, m->output_name ? m->output_name : "out");
        else
            model_value_text(m->output_values[k], &b);
        c->outvals[k] = arena_strdup(&c->arena, b.s);
    }
    sb_free(&b);
}

void coord_free(Coords *c)
{
    if (!c) return;
    arena_free(&c->arena);
    memset(c, 0, sizeof *c);
}

const char *coord_label(const Coords *c, int d)
{
    if (d >= 0 && d < c->C) return c->m->residual[d];
    return "(bias)";
}

void coord_label_name(const char *label, char *buf, size_t cap)
{
    size_t n = strcspn(label, ":");
    if (n >= cap) n = cap - 1;
    memcpy(buf, label, n);
    buf[n] = 0;
}

void coord_head_name(const Coords *c, int l, int h, StrBuf *out)
{
    const CoordHead *ch = &c->heads[(size_t)l * (size_t)c->NH + (size_t)h];
    sb_printf(out, "block %d head %d (%s)", l, h, ch->desc ? ch->desc : "unused");
}

const CoordMap *coord_neuron_map(const Coords *c, int l, int j)
{
    if (l < 0 || l >= c->L || j < 0 || j >= c->M) return NULL;
    int k = c->neuron_map[(size_t)l * (size_t)c->M + (size_t)j];
    return k < 0 ? NULL : &c->maps[l][k];
}

void coord_neuron_name(const Coords *c, int l, int j, StrBuf *out)
{
    const CoordMap *cm = coord_neuron_map(c, l, j);
    sb_printf(out, "block %d neuron %d (%s)", l, j, cm ? cm->desc : "unused");
}

int coord_locate(const Model *m, size_t index, int64_t idx[3])
{
    int lo = 0, hi = m->ntensors - 1, t = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (m->tensors[mid].offset <= index) {
            t = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    /* skip empty tensors that share the offset of the one holding index */
    while (t >= 0 && index >= m->tensors[t].offset + m->tensors[t].numel) t = t + 1 < m->ntensors ? t + 1 : -1;
    if (t < 0 || index < m->tensors[t].offset) return -1;
    size_t r = index - m->tensors[t].offset;
    const ModelTensor *mt = &m->tensors[t];
    for (int d = mt->ndim - 1; d >= 0; d--) {
        idx[d] = (int64_t)(r % (size_t)mt->shape[d]);
        r /= (size_t)mt->shape[d];
    }
    for (int d = mt->ndim; d < 3; d++) idx[d] = 0;
    return t;
}

void coord_param_id(const Model *m, size_t index, StrBuf *out)
{
    int64_t idx[3];
    int t = coord_locate(m, index, idx);
    if (t < 0) {
        sb_printf(out, "parameter %zu", index);
        return;
    }
    const ModelTensor *mt = &m->tensors[t];
    sb_printf(out, "%s[", mt->name);
    for (int d = 0; d < mt->ndim; d++) sb_printf(out, "%s%lld", d ? ", " : "", (long long)idx[d]);
    sb_putc(out, ']');
}

/* One slice's text, before any model is read: the tensor's name, its indices and the end of
 * the last index's range (idx + 1 when it is a single index). */
#define SLICE_MAX_IDX 8
typedef struct {
    char name[sizeof ((ModelTensor *)0)->name];
    int nidx;
    long long idx[SLICE_MAX_IDX], hi;
} SliceText;

static int slice_text(const char *spec, SliceText *s, StrBuf *err)
{
    memset(s, 0, sizeof *s);
    const char *br = strchr(spec, '[');
    size_t nl = br ? (size_t)(br - spec) : strlen(spec);
    while (nl > 0 && spec[nl - 1] == ' ') nl--;
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char)spec[i]) && spec[i] != '_' && spec[i] != '.') nl = 0;
    if (nl == 0 || nl >= sizeof s->name)
        return sb_fail(err, "'%s': expected a tensor name (letters, digits, '_', '.'), e.g. blocks.0.attn.W_V", spec);
    memcpy(s->name, spec, nl);
    if (!br) return 0;
    for (const char *p = br + 1;;) {
        while (*p == ' ') p++;
        char *end;
        errno = 0;
        long long v = isdigit((unsigned char)*p) ? strtoll(p, &end, 10) : -1;
        if (v < 0 || errno || s->nidx == SLICE_MAX_IDX)
            return sb_fail(err, "'%s': expected an index (0, 1, ...) in brackets, e.g. %s[0]", spec, s->name);
        s->idx[s->nidx++] = v;
        s->hi = v + 1;
        p = end;
        if (*p == ':') {
            /* I:J, the last index: rows I .. J-1, still one contiguous range */
            errno = 0;
            s->hi = isdigit((unsigned char)p[1]) ? strtoll(p + 1, &end, 10) : -1;
            if (errno || s->hi <= v) return sb_fail(err, "'%s': a range I:J needs I < J", spec);
            p = end;
            while (*p == ' ') p++;
            if (*p != ']') return sb_fail(err, "'%s': a range I:J must be the last index", spec);
        }
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']' && p[1] == 0) return 0;
        return sb_fail(err, "'%s': expected ', INDEX' or a closing ']' at the end", spec);
    }
}

int coord_parse_slice(const Model *m, const char *spec, size_t *start, size_t *len, StrBuf *err)
{
    SliceText s;
    if (slice_text(spec, &s, err)) return -1;
    if (!m) return 0;
    const ModelTensor *t = model_find_tensor(m, s.name);
    if (!t)
        return sb_fail(err, "'%s': the model has no tensor '%s' (names as tracc prune and tracc diff print them, "
                            "e.g. blocks.0.attn.W_V)", spec, s.name);
    if (s.nidx > t->ndim)
        return sb_fail(err, "'%s': expected up to %d indices in brackets, e.g. %s[0]", spec, t->ndim, s.name);
    size_t off = t->offset, stride = t->numel;
    for (int d = 0; d < s.nidx; d++) {
        long long v = s.idx[d], hi = d == s.nidx - 1 ? s.hi : v + 1;
        if (v >= t->shape[d]) {
            sb_printf(err, "'%s': index %lld is outside 0..%lld (%s has shape [", spec, v, (long long)t->shape[d] - 1,
                      s.name);
            for (int k = 0; k < t->ndim; k++) sb_printf(err, "%s%lld", k ? ", " : "", (long long)t->shape[k]);
            sb_puts(err, "])");
            return -1;
        }
        if (hi > t->shape[d])
            return sb_fail(err, "'%s': a range I:J needs I < J <= %lld", spec, (long long)t->shape[d]);
        stride /= (size_t)t->shape[d];
        off += (size_t)v * stride;
        stride *= (size_t)(hi - v);
    }
    *start = off;
    *len = stride;
    return 0;
}

int coord_parse_slices(const Model *m, const char *spec, CoordSlices *sl, StrBuf *err)
{
    memset(sl, 0, sizeof *sl);
    for (const char *p = spec;;) {
        const char *q = p;
        int depth = 0;
        while (*q && (depth || *q != '+')) depth += (*q == '[') - (*q == ']'), q++;
        char *one = xstrndup(p, (size_t)(q - p));
        size_t st = 0, ln = 0;
        int bad = coord_parse_slice(m, one, &st, &ln, err);
        free(one);
        if (bad) {
            coord_slices_free(sl);
            return -1;
        }
        if (!m) {
            /* the text alone: nothing to locate */
        } else if (sl->n && sl->start[sl->n - 1] + sl->len[sl->n - 1] == st) {
            sl->len[sl->n - 1] += ln;
        } else {
            sl->start = xrealloc(sl->start, sizeof(size_t) * (size_t)(sl->n + 1));
            sl->len = xrealloc(sl->len, sizeof(size_t) * (size_t)(sl->n + 1));
            sl->start[sl->n] = st;
            sl->len[sl->n++] = ln;
        }
        sl->total += ln;
        if (!*q) return 0;
        p = q + 1;
    }
}

void coord_slices_free(CoordSlices *sl)
{
    free(sl->start);
    free(sl->len);
    memset(sl, 0, sizeof *sl);
}

static void position_name(const Model *m, int p, StrBuf *out)
{
    (void)m;
    if (p == 0)
        sb_puts(out, "position 0 (BOS)");
    else
        sb_printf(out, "position %d (index %d)", p, p - 1);
}

void coord_param_meaning(const Coords *c, size_t index, StrBuf *out)
{
    const Model *m = c->m;
    int64_t idx[3];
    int t = coord_locate(m, index, idx);
    if (t < 0) return;
    const char *name = m->tensors[t].name;
    int l = -1;
    char kind[16] = "";
    if (sscanf(name, "blocks.%d.%*[a-z].%15s", &l, kind) != 2) l = -1;
    if (!strcmp(name, "embed.W_E")) {
        sb_printf(out, "embedding of token %s writes %s", c->tokens[idx[0]], coord_label(c, (int)idx[1]));
    } else if (!strcmp(name, "pos_embed.W_pos")) {
        sb_puts(out, "embedding of ");
        position_name(m, (int)idx[0], out);
        sb_printf(out, " writes %s", coord_label(c, (int)idx[1]));
    } else if (!strcmp(name, "unembed.W_U")) {
        sb_printf(out, "unembed reads %s for output %s", coord_label(c, (int)idx[0]), c->outvals[idx[1]]);
    } else if (!strcmp(name, "unembed.b_U")) {
        sb_printf(out, "unembed bias of output %s", c->outvals[idx[0]]);
    } else if (l >= 0 && kind[0] && (kind[0] == 'W' || kind[0] == 'b') && strstr(name, ".attn.")) {
        if (!strcmp(kind, "b_O")) {
            sb_printf(out, "block %d attention bias writes %s", l, coord_label(c, (int)idx[0]));
            return;
        }
        coord_head_name(c, l, (int)idx[0], out);
        sb_puts(out, ": ");
        if (!strcmp(kind, "W_Q"))
            sb_printf(out, "query reads %s (QK dim %lld)", coord_label(c, (int)idx[1]), (long long)idx[2]);
        else if (!strcmp(kind, "W_K"))
            sb_printf(out, "key reads %s (QK dim %lld)", coord_label(c, (int)idx[1]), (long long)idx[2]);
        else if (!strcmp(kind, "W_V"))
            sb_printf(out, "value reads %s (OV dim %lld)", coord_label(c, (int)idx[1]), (long long)idx[2]);
        else if (!strcmp(kind, "W_O"))
            sb_printf(out, "output writes %s (OV dim %lld)", coord_label(c, (int)idx[2]), (long long)idx[1]);
        else if (!strcmp(kind, "b_Q"))
            sb_printf(out, "query bias (QK dim %lld)", (long long)idx[1]);
        else if (!strcmp(kind, "b_K"))
            sb_printf(out, "key bias (QK dim %lld)", (long long)idx[1]);
        else if (!strcmp(kind, "b_V"))
            sb_printf(out, "value bias (OV dim %lld)", (long long)idx[1]);
    } else if (l >= 0 && strstr(name, ".mlp.")) {
        if (!strcmp(kind, "W_in")) {
            coord_neuron_name(c, l, (int)idx[1], out);
            sb_printf(out, " reads %s", coord_label(c, (int)idx[0]));
        } else if (!strcmp(kind, "b_in")) {
            coord_neuron_name(c, l, (int)idx[0], out);
            sb_puts(out, " bias");
        } else if (!strcmp(kind, "W_out")) {
            coord_neuron_name(c, l, (int)idx[0], out);
            sb_printf(out, " writes %s", coord_label(c, (int)idx[1]));
        } else if (!strcmp(kind, "b_out")) {
            sb_printf(out, "block %d MLP bias writes %s", l, coord_label(c, (int)idx[0]));
        }
    }
}

/* ---------------------------------------------------------------- units */

CoordUnit *coord_units(const Model *m, int *n)
{
    int L = m->cfg.n_layers, NH = m->cfg.n_heads, HD = m->cfg.d_head, M = m->cfg.d_mlp;
    size_t total = (size_t)L * ((size_t)M + 2 * (size_t)NH * (size_t)HD);
    CoordUnit *u = xmalloc(sizeof *u * (total ? total : 1));
    int k = 0;
    for (int l = 0; l < L; l++) {
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) u[k++] = (CoordUnit){UNIT_QK, l, h, d};
        for (int h = 0; h < NH; h++)
            for (int d = 0; d < HD; d++) u[k++] = (CoordUnit){UNIT_OV, l, h, d};
        for (int j = 0; j < M; j++) u[k++] = (CoordUnit){UNIT_NEURON, l, -1, j};
    }
    *n = k;
    return u;
}

size_t coord_unit_size(const Model *m, const CoordUnit *u)
{
    size_t C = (size_t)m->cfg.d_model;
    return u->kind == UNIT_QK ? 2 * C + 2 : 2 * C + 1;
}

size_t coord_unit_params(const Model *m, const CoordUnit *u, size_t *idx)
{
    const ModelConfig *cf = &m->cfg;
    size_t C = (size_t)cf->d_model, HD = (size_t)cf->d_head, NH = (size_t)cf->n_heads, M = (size_t)cf->d_mlp;
#define OFF(ptr) ((size_t)((ptr) - m->params_memory))
    size_t n = 0, l = (size_t)u->l, j = (size_t)u->j;
    if (u->kind == UNIT_NEURON) {
        for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_in) + l * C * M + c * M + j;
        idx[n++] = OFF(m->params.b_in) + l * M + j;
        for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_out) + l * M * C + j * C + c;
    } else {
        size_t h = (size_t)u->h, w = (l * NH + h) * C * HD, b = (l * NH + h) * HD;
        if (u->kind == UNIT_QK) {
            for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_Q) + w + c * HD + j;
            idx[n++] = OFF(m->params.b_Q) + b + j;
            for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_K) + w + c * HD + j;
            idx[n++] = OFF(m->params.b_K) + b + j;
        } else {
            for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_V) + w + c * HD + j;
            idx[n++] = OFF(m->params.b_V) + b + j;
            for (size_t c = 0; c < C; c++) idx[n++] = OFF(m->params.W_O) + (l * NH + h) * HD * C + j * C + c;
        }
    }
#undef OFF
    return n;
}

void coord_unit_name(const Coords *c, const CoordUnit *u, StrBuf *out)
{
    if (u->kind == UNIT_NEURON) {
        coord_neuron_name(c, u->l, u->j, out);
        return;
    }
    coord_head_name(c, u->l, u->h, out);
    sb_printf(out, " %s dim %d", u->kind == UNIT_QK ? "QK" : "OV", u->j);
}
