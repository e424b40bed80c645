/* cmd_explain.c — `tracc explain`: what a model file holds, in the program's terms:
 * sizes, the residual layout grouped by s-op (and the fused s-ops of compiler.virtual),
 * and per block the heads and MLP maps with the program operations they implement and the
 * compiler's margins (from the `layers` metadata) next to what the weights themselves show
 * (which heads and neurons carry nonzero weights). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "runtime/decode.h"
#include "runtime/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc explain [options] MODEL\n"
            "\n"
            "Describe a model file: where it came from (program hash, compiler, training),\n"
            "whether the compiler proved it exact, its sizes, the label of every residual\n"
            "dimension grouped by s-op (and the s-ops fused into their readers), and for each\n"
            "block the heads and MLP neurons with the program operations they implement and\n"
            "the margins the compiler recorded for them (docs/compiler.md, section 5). An MLP\n"
            "map's margin is the input error its reading tolerates divided by the error its\n"
            "input can carry: above 1, the map reads every input exactly.\n"
            "\n"
            "options:\n"
            "  --json        one JSON object instead of text\n"
            "  -h, --help    show this help\n");
}

/* ---------------------------------------------------------------- weight statistics */

static size_t count_nonzero(const float *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += x[i] != 0.0f;
    return k;
}

/* Nonzero weights of head h in block l (its Q, K, V, O slices and biases). */
static size_t head_nonzero(const Model *m, int l, int h)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    size_t C = (size_t)c->d_model, HD = (size_t)c->d_head, NH = (size_t)c->n_heads;
    size_t w = ((size_t)l * NH + (size_t)h) * C * HD, b = ((size_t)l * NH + (size_t)h) * HD;
    return count_nonzero(p->W_Q + w, C * HD) + count_nonzero(p->W_K + w, C * HD) +
           count_nonzero(p->W_V + w, C * HD) + count_nonzero(p->b_Q + b, HD) +
           count_nonzero(p->b_K + b, HD) + count_nonzero(p->b_V + b, HD) +
           count_nonzero(p->W_O + ((size_t)l * NH + (size_t)h) * HD * C, HD * C);
}

/* Hidden neurons of block l with any nonzero weight in or out. */
static int neurons_used(const Model *m, int l)
{
    const ModelConfig *c = &m->cfg;
    const ModelParams *p = &m->params;
    size_t C = (size_t)c->d_model, M = (size_t)c->d_mlp;
    const float *w_in = p->W_in + (size_t)l * C * M, *b_in = p->b_in + (size_t)l * M;
    const float *w_out = p->W_out + (size_t)l * M * C;
    int used = 0;
    for (size_t j = 0; j < M; j++) {
        int any = b_in[j] != 0.0f || count_nonzero(w_out + j * C, C) > 0;
        for (size_t i = 0; i < C && !any; i++) any = w_in[i * M + j] != 0.0f;
        used += any;
    }
    return used;
}

/* ---------------------------------------------------------------- text */

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* "0-3, 7" from a sorted list of dimensions. */
static void dim_ranges(StrBuf *b, const int *dims, int n)
{
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && dims[j + 1] == dims[j] + 1) j++;
        if (i) sb_puts(b, ", ");
        if (j > i) sb_printf(b, "%d-%d", dims[i], dims[j]);
        else sb_printf(b, "%d", dims[i]);
        i = j + 1;
    }
}

/* Strings of a JSON array joined by ", ", or "-" when absent or empty. */
static void join_labels(StrBuf *b, const json_t *arr)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        sb_puts(b, "-");
        return;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        if (i) sb_puts(b, ", ");
        const char *s = json_string_value(json_array_get(arr, i));
        sb_puts(b, s ? s : "?");
    }
}

static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

/* ---------------------------------------------------------------- margins
 *
 * The compiler records, per head and per MLP map, the bounds that make the weights exact
 * (docs/compiler.md section 5), and compiler.exact / min_margin for the whole model. They
 * are printed as recorded; a field that is absent is left out. */

static const char *const HEAD_MARGIN_KEYS[] = {"c", "score_gap", "bos_gap", "leak", "output_error", "tolerance"};
static const char *const MLP_MARGIN_KEYS[] = {"tolerance", "input_error", "output_error", "margin"};

/* A recorded bound as text: numbers compactly (errors in exponent form), strings ("inf")
 * as they are. Returns 0 when the field is absent or neither. */
static int bound_text(const json_t *o, const char *key, int small, char *buf, size_t cap)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
        return 1;
    }
    if (!json_is_number(v)) return 0;
    double x = json_number_value(v);
    if (x == 0) snprintf(buf, cap, "0");
    else if (small && fabs(x) < 0.01) snprintf(buf, cap, "%.1e", x);
    else snprintf(buf, cap, "%.4g", x);
    return 1;
}

/* "≤" when a <= b (both numbers or "inf"), ">" otherwise. */
static const char *relation(const json_t *o, const char *a, const char *b)
{
    const json_t *x = json_object_get(o, a), *y = json_object_get(o, b);
    double u = json_is_number(x) ? json_number_value(x) : INFINITY;
    double w = json_is_number(y) ? json_number_value(y) : INFINITY;
    return u <= w ? "\u2264" : ">";
}

static int has_any(const json_t *o, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (json_object_get(o, keys[i])) return 1;
    return 0;
}

/* "margin: c=10 score gap 10, BOS gap 5, leak 4.5e-04, output error 1.4e-04" */
static void head_margin_line(StrBuf *b, const json_t *h)
{
    char t[64];
    const char *cons = json_string_value(json_object_get(h, "construction"));
    if (cons && !strcmp(cons, "uniform")) {
        /* docs/compiler.md §10: nothing is selected in the scores, so no sharpness to report */
        sb_puts(b, "uniform attention: writes the BOS share and each key class's fraction; the MLP counts");
        return;
    }
    sb_puts(b, "margin:");
    const char *sep = " ";
    if (bound_text(h, "c", 0, t, sizeof t)) sb_printf(b, " c=%s", t);
    if (bound_text(h, "score_gap", 0, t, sizeof t)) sb_printf(b, "%sscore gap %s", sep, t), sep = ", ";
    if (bound_text(h, "bos_gap", 0, t, sizeof t)) sb_printf(b, "%sBOS gap %s", sep, t), sep = ", ";
    if (bound_text(h, "leak", 1, t, sizeof t)) {
        sb_printf(b, "%sleak %s", sep, t), sep = ", ";
        if (bound_text(h, "tolerance", 1, t, sizeof t)) sb_printf(b, " %s tolerance %s", relation(h, "leak", "tolerance"), t);
    }
    if (bound_text(h, "output_error", 1, t, sizeof t)) sb_printf(b, "%soutput error %s", sep, t);
}

/* "margin 50 (...): tolerance 2.3e-03, input error 4.5e-04, output error 1.4e-04". No relation
 * sign: for a selector width's decoder the input error is relative to x = 1/(w+1) while the
 * tolerance is a gap of x, so only the recorded margin compares them. */
static void mlp_margin_line(StrBuf *b, const json_t *o)
{
    char t[64];
    sb_puts(b, "margin");
    if (bound_text(o, "margin", 0, t, sizeof t)) sb_printf(b, " %s", t);
    /* docs/compiler.md section 5: what the map's reading tolerates over what its input can carry */
    sb_puts(b, " (input error the map tolerates / input error it can get; exact above 1):");
    const char *sep = " ";
    if (bound_text(o, "tolerance", 1, t, sizeof t)) sb_printf(b, "%stolerance %s", sep, t), sep = ", ";
    if (bound_text(o, "input_error", 1, t, sizeof t)) sb_printf(b, "%sinput error %s", sep, t), sep = ", ";
    if (bound_text(o, "output_error", 1, t, sizeof t)) sb_printf(b, "%soutput error %s", sep, t);
}

/* The model-wide line: proved exact or not, from compiler.exact and min_margin. */
static void exactness_line(const Model *m)
{
    const json_t *ex = json_object_get(m->compiler, "exact");
    if (!json_is_boolean(ex)) return;
    char mm[64], oe[64];
    int has_mm = bound_text(m->compiler, "min_margin", 0, mm, sizeof mm);
    int has_oe = bound_text(m->compiler, "output_error", 1, oe, sizeof oe);
    if (json_is_true(ex)) printf("exactness   proved exact on every input: every margin above 1");
    else printf("exactness   not proved exact by the bounds: a margin is at most 1");
    if (has_mm) printf(" (smallest %s)", mm);
    if (has_oe) printf("; output error at most %s", oe);
    printf("\n");
    if (!json_is_true(ex)) printf("            (tracc compile checked it against the interpreter instead)\n");
    if (json_is_object(m->provenance))
        printf("            (bounds of the compiled weights: training has changed the weights since)\n");
}

static void print_values_line(const DecSop *s)
{
    /* Long value lists (indices at a large max_len) are elided in the middle. */
    const int head = 12, tail = 3;
    for (int k = 0; k < s->ndims; k++) {
        if (s->ndims > head + tail + 1 && k == head) {
            printf(" ... (%d values)", s->ndims);
            k = s->ndims - tail - 1;
            continue;
        }
        printf("%s%s", k ? " " : "", s->values[k]);
    }
}

/* The s-ops the compiler fused into their readers (compiler.virtual): no dimensions, read
 * through linear forms; listed with the residual s-ops their forms read. */
static void explain_virtual(const Model *m, DecLayout *d)
{
    StrBuf err, b;
    sb_init(&err);
    sb_init(&b);
    int nres = d->nsops, skipped = dec_layout_add_virtual(d, m, &err);
    int nv = d->nsops - nres;
    if (nv > 0 || skipped) {
        const char **owner = xcalloc((size_t)m->cfg.d_model + 1, sizeof(char *));
        size_t w = 0;
        for (int s = 0; s < d->nsops; s++) {
            const DecSop *sop = &d->sops[s];
            for (int k = 0; !sop->isvirtual && k < sop->ndims; k++) owner[sop->dims[k]] = sop->name;
            if (sop->isvirtual && strlen(sop->name) > w) w = strlen(sop->name);
        }
        printf("\nfused s-ops (%d: no dimensions; read through linear forms of the residual)\n", nv);
        for (int s = 0; s < d->nsops; s++) {
            const DecSop *sop = &d->sops[s];
            if (!sop->isvirtual) continue;
            /* the residual s-ops its forms read, in residual order */
            sb_clear(&b);
            int nread = 0;
            for (int r = 0; r < d->nsops; r++) {
                const DecSop *rs = &d->sops[r];
                if (rs->isvirtual) continue;
                int reads = 0;
                for (int t = 0; t < sop->form_start[sop->ndims] && !reads; t++)
                    reads = owner[sop->form_dim[t]] == rs->name && sop->form_coef[t] != 0.0f;
                if (reads) sb_printf(&b, "%s%s", nread++ ? ", " : "", rs->name);
            }
            printf("  %-*s  %-11s  reads %s", (int)w, sop->name, sop->categorical ? "categorical" : "numerical",
                   nread ? b.s : "nothing (constant)");
            if (sop->categorical) {
                printf("; values ");
                print_values_line(sop);
            }
            printf("\n");
        }
        if (skipped)
            printf("  (%d entr%s of compiler.virtual not usable: %s)\n", skipped, skipped == 1 ? "y" : "ies", err.s);
        free(owner);
    }
    sb_free(&err);
    sb_free(&b);
}

static void explain_text(const Model *m, const char *path)
{
    const ModelConfig *c = &m->cfg;
    StrBuf b;
    sb_init(&b);
    printf("model       %s\n", path);
    printf("format      %s, version %s\n", MODEL_FORMAT, MODEL_FORMAT_VERSION);
    if (m->program[0])
        printf("program     sha256 %s (%d line%s)\n", m->program_sha256, count_lines(m->program),
               count_lines(m->program) == 1 ? "" : "s");
    else
        printf("program     none recorded\n");
    if (json_is_object(m->compiler)) {
        char *s = json_dumps(json_object_get(m->compiler, "options"), JSON_COMPACT | JSON_SORT_KEYS);
        printf("compiler    %s %s%s%s\n", jstr(m->compiler, "name", "tracc"), jstr(m->compiler, "version", "?"),
               s ? ", options " : "", s ? s : "");
        free(s);
    } else {
        printf("compiler    none recorded (built by hand or by another tool)\n");
    }
    if (json_is_object(m->compiler)) exactness_line(m);
    if (json_is_object(m->provenance)) {
        char *s = json_dumps(m->provenance, JSON_COMPACT | JSON_SORT_KEYS);
        printf("provenance  %s\n", s ? s : "?");
        free(s);
    } else {
        printf("provenance  none (not trained by tracc)\n");
    }

    size_t total = m->num_params, nz = model_count_nonzero(m);
    printf("\nsizes\n");
    printf("  blocks      %d (each attention then MLP)\n", c->n_layers);
    printf("  d_model     %d residual dimensions\n", c->d_model);
    printf("  heads       %d per block, d_head %d\n", c->n_heads, c->d_head);
    printf("  d_mlp       %d\n", c->d_mlp);
    printf("  vocab       %d rows:", c->d_vocab);
    for (int i = 0; i < c->d_vocab; i++) {
        sb_clear(&b);
        model_value_text(m->vocab[i], &b);
        printf(" %s", b.s);
    }
    printf(" (BOS row %d, PAD row %d)", m->bos, m->pad);
    printf("\n  n_ctx       %d (max_len %d, plus BOS at position 0)\n", c->n_ctx, c->n_ctx - 1);
    printf("  attention   %s, logits ", c->causal ? "causal" : "bidirectional");
    char num[40];
    fmt_double(c->attn_scale, num, sizeof num);
    if (c->use_attn_scale) printf("divided by attn_scale %s\n", num);
    else printf("not scaled\n");
    if (m->output_numerical) {
        printf("  output      %s, numerical (one W_U column)\n", m->output_name);
    } else {
        printf("  output      %s, categorical over %d values:", m->output_name, c->d_vocab_out);
        for (int i = 0; i < c->d_vocab_out; i++) {
            sb_clear(&b);
            model_value_text(m->output_values[i], &b);
            printf(" %s", b.s);
        }
        printf("\n");
    }
    printf("  parameters  %zu in all, %zu nonzero (%.1f%%)\n", total, nz,
           total ? 100.0 * (double)nz / (double)total : 0.0);

    DecLayout d;
    dec_layout_init(&d, m);
    size_t w = 0;
    for (int s = 0; s < d.nsops; s++)
        if (strlen(d.sops[s].name) > w) w = strlen(d.sops[s].name);
    printf("\nresidual (%d dimensions, %d s-ops)\n", c->d_model, d.nsops);
    for (int s = 0; s < d.nsops; s++) {
        const DecSop *sop = &d.sops[s];
        sb_clear(&b);
        dim_ranges(&b, sop->dims, sop->ndims);
        printf("  %-*s  %-11s  %s %*s", (int)w, sop->name, sop->categorical ? "categorical" : "numerical",
               sop->ndims == 1 ? "dim " : "dims", sop->categorical ? -9 : 0, b.s);
        if (sop->categorical) {
            printf("  ");
            print_values_line(sop);
        }
        printf("\n");
    }
    explain_virtual(m, &d);
    dec_layout_free(&d);

    int detail = json_array_size(m->layers) == (size_t)c->n_layers && c->n_layers > 0;
    for (int l = 0; l < c->n_layers; l++) {
        json_t *lay = detail ? json_array_get(m->layers, (size_t)l) : NULL;
        json_t *attn = json_object_get(lay, "attn"), *mlp = json_object_get(lay, "mlp");
        printf("\nblock %d\n", l);
        printf("  attention\n");
        for (int h = 0; h < c->n_heads; h++) {
            size_t hz = head_nonzero(m, l, h);
            json_t *desc = NULL;
            for (size_t k = 0; attn && k < json_array_size(attn); k++)
                if (json_integer_value(json_object_get(json_array_get(attn, k), "head")) == h)
                    desc = json_array_get(attn, k);
            if (!desc) {
                if (hz) printf("    head %d: %zu nonzero weights, not described in the metadata\n", h, hz);
                else if (!detail) printf("    head %d: unused (all weights zero)\n", h);
                continue;
            }
            printf("    head %d: %s -> %s", h, jstr(desc, "op", "?"), jstr(desc, "label", "?"));
            if (json_object_get(desc, "selector")) printf("  selector %s", jstr(desc, "selector", "?"));
            printf("\n");
            sb_clear(&b);
            sb_puts(&b, "query ");
            join_labels(&b, json_object_get(desc, "query"));
            sb_puts(&b, "; key ");
            join_labels(&b, json_object_get(desc, "key"));
            sb_puts(&b, "; value ");
            join_labels(&b, json_object_get(desc, "value"));
            sb_puts(&b, "; output ");
            join_labels(&b, json_object_get(desc, "output"));
            if (json_array_size(json_object_get(desc, "fused")) > 0) {
                sb_puts(&b, "; fused ");   /* read through their linear forms */
                join_labels(&b, json_object_get(desc, "fused"));
            }
            printf("            %s\n", b.s);
            json_t *dh = json_object_get(desc, "d_head");
            if (dh) printf("            d_head %d of %d, %zu nonzero weights\n", (int)json_integer_value(dh),
                           c->d_head, hz);
            else printf("            %zu nonzero weights\n", hz);
            if (has_any(desc, HEAD_MARGIN_KEYS, ARRAY_LEN(HEAD_MARGIN_KEYS))) {
                sb_clear(&b);
                head_margin_line(&b, desc);
                printf("            %s\n", b.s);
            }
        }
        if (detail && json_array_size(attn) == 0 && c->n_heads > 0) printf("    (no heads used)\n");
        int used = neurons_used(m, l);
        json_t *dm = json_object_get(lay, "d_mlp");
        printf("  mlp: %d of %d neurons carry weights", used, c->d_mlp);
        if (dm) printf(" (the program uses %d)", (int)json_integer_value(dm));
        printf("\n");
        for (size_t k = 0; mlp && k < json_array_size(mlp); k++) {
            json_t *o = json_array_get(mlp, k);
            sb_clear(&b);
            join_labels(&b, json_object_get(o, "inputs"));
            printf("    %s -> %s from %s", jstr(o, "op", "?"), jstr(o, "label", "?"), b.s);
            json_t *nr = json_object_get(o, "neurons");
            if (nr) {
                long long a = json_integer_value(json_array_get(nr, 0)), e = json_integer_value(json_array_get(nr, 1));
                if (e - a == 1) printf("; neuron %lld", a);
                else printf("; neurons %lld-%lld (%lld)", a, e - 1, e - a);
            }
            if (json_array_size(json_object_get(o, "fused")) > 0) {
                sb_clear(&b);
                join_labels(&b, json_object_get(o, "fused"));
                printf("; fused %s", b.s);
            }
            printf("\n");
            if (has_any(o, MLP_MARGIN_KEYS, ARRAY_LEN(MLP_MARGIN_KEYS))) {
                sb_clear(&b);
                mlp_margin_line(&b, o);
                printf("      %s\n", b.s);
            }
        }
        if (!detail && used) printf("    (the metadata does not say which maps these neurons implement)\n");
    }
    sb_free(&b);
}

/* ---------------------------------------------------------------- JSON */

static json_t *value_json(Value v)
{
    switch (v.kind) {
    case VAL_BOOL: return json_boolean(v.u.i);
    case VAL_INT: return json_integer((json_int_t)v.u.i);
    case VAL_FLOAT: return json_real(v.u.f);
    case VAL_STR: return json_string(v.u.s);
    default: return json_null();
    }
}

/* The recorded margin fields of a head or MLP map, verbatim, or NULL when it has none. */
static json_t *margin_object(const json_t *desc, const char *const *keys, size_t n)
{
    if (!has_any(desc, keys, n)) return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(desc, keys[i]);
        if (v) json_object_set(o, keys[i], v);
    }
    return o;
}

static void explain_json(const Model *m, const char *path)
{
    const ModelConfig *c = &m->cfg;
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "format", json_string(MODEL_FORMAT));
    json_object_set_new(o, "format_version", json_string(MODEL_FORMAT_VERSION));
    json_object_set_new(o, "program_sha256", json_string(m->program_sha256));
    json_object_set_new(o, "program_lines", json_integer(count_lines(m->program)));
    json_object_set(o, "compiler", m->compiler);
    /* the compiler's exactness verdict, verbatim (null for a model it did not make) */
    const char *const top[] = {"exact", "min_margin"};
    for (size_t i = 0; i < ARRAY_LEN(top); i++) {
        json_t *v = json_is_object(m->compiler) ? json_object_get(m->compiler, top[i]) : NULL;
        json_object_set(o, top[i], v ? v : json_null());
    }
    json_object_set(o, "provenance", m->provenance);
    json_object_set_new(o, "config", json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:b, s:f}",
                                               "n_layers", c->n_layers, "d_model", c->d_model, "d_head",
                                               c->d_head, "n_heads", c->n_heads, "d_mlp", c->d_mlp, "d_vocab",
                                               c->d_vocab, "d_vocab_out", c->d_vocab_out, "n_ctx", c->n_ctx,
                                               "attention_dir", c->causal ? "causal" : "bidirectional",
                                               "use_attn_scale", c->use_attn_scale, "attn_scale", c->attn_scale));
    json_object_set_new(o, "params", json_pack("{s:I, s:I}", "total", (json_int_t)m->num_params, "nonzero",
                                               (json_int_t)model_count_nonzero(m)));
    json_t *vocab = json_array();
    for (int i = 0; i < c->d_vocab; i++) json_array_append_new(vocab, value_json(m->vocab[i]));
    json_object_set_new(o, "vocab", vocab);
    json_object_set_new(o, "bos", value_json(m->vocab[m->bos]));
    json_object_set_new(o, "pad", value_json(m->vocab[m->pad]));
    json_t *vals = json_array();
    for (int i = 0; !m->output_numerical && i < c->d_vocab_out; i++)
        json_array_append_new(vals, value_json(m->output_values[i]));
    json_object_set_new(o, "output", json_pack("{s:s, s:s, s:o}", "name", m->output_name, "encoding",
                                               m->output_numerical ? "numerical" : "categorical", "values", vals));
    DecLayout d;
    dec_layout_init(&d, m);
    json_t *res = json_array();
    for (int s = 0; s < d.nsops; s++) {
        const DecSop *sop = &d.sops[s];
        json_t *dims = json_array(), *sv = json_array();
        for (int k = 0; k < sop->ndims; k++) {
            json_array_append_new(dims, json_integer(sop->dims[k]));
            if (sop->categorical) json_array_append_new(sv, json_string(sop->values[k]));
        }
        json_array_append_new(res, json_pack("{s:s, s:s, s:o, s:o}", "sop", sop->name, "encoding",
                                             sop->categorical ? "categorical" : "numerical", "dims", dims,
                                             "values", sv));
    }
    dec_layout_free(&d);
    json_object_set_new(o, "residual", res);
    json_t *blocks = json_array();
    int detail = json_array_size(m->layers) == (size_t)c->n_layers;
    for (int l = 0; l < c->n_layers; l++) {
        json_t *lay = detail ? json_array_get(m->layers, (size_t)l) : NULL;
        json_t *attn = json_object_get(lay, "attn"), *mlp = json_object_get(lay, "mlp");
        json_t *heads = json_array();
        for (int h = 0; h < c->n_heads; h++) {
            json_t *jh = json_pack("{s:i, s:I}", "head", h, "nonzero", (json_int_t)head_nonzero(m, l, h));
            for (size_t k = 0; k < json_array_size(attn); k++) {
                json_t *desc = json_array_get(attn, k);
                if (json_integer_value(json_object_get(desc, "head")) != h) continue;
                json_t *mg = margin_object(desc, HEAD_MARGIN_KEYS, ARRAY_LEN(HEAD_MARGIN_KEYS));
                if (mg) json_object_set_new(jh, "margin", mg);
            }
            json_array_append_new(heads, jh);
        }
        json_t *maps = json_array();
        for (size_t k = 0; k < json_array_size(mlp); k++) {
            json_t *e = json_array_get(mlp, k);
            json_t *mg = margin_object(e, MLP_MARGIN_KEYS, ARRAY_LEN(MLP_MARGIN_KEYS));
            if (!mg) continue;
            json_t *jm = json_object();
            const char *const keys[] = {"op", "label", "neurons"};
            for (size_t i = 0; i < ARRAY_LEN(keys); i++)
                if (json_object_get(e, keys[i])) json_object_set(jm, keys[i], json_object_get(e, keys[i]));
            json_object_set_new(jm, "margin", mg);
            json_array_append_new(maps, jm);
        }
        json_t *blk = json_pack("{s:o, s:o, s:i, s:o}", "heads", heads, "mlp_margins", maps, "mlp_neurons_used",
                                neurons_used(m, l), "described", lay ? json_incref(lay) : json_null());
        json_array_append_new(blocks, blk);
    }
    json_object_set_new(o, "blocks", blocks);
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

int cmd_explain(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("explain", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("explain", "%s", "no MODEL given");
    if (argc - optind > 1) return cli_usage_error("explain", "expected one MODEL, got also '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (cli_check_input("explain", NULL, path, CLI_WANT_MODEL)) return 1;
    StrBuf err;
    sb_init(&err);
    Model *m = model_load(path, &err);
    if (!m) {
        fprintf(stderr, "tracc explain: %s\n", err.s);
        sb_free(&err);
        return 1;
    }
    sb_free(&err);
    if (json) explain_json(m, path);
    else explain_text(m, path);
    model_free(m);
    return 0;
}
