/* model.c — see model.h. The reader checks in this order, cheapest first, and stops at the
 * first problem: container (safetensors.c), format keys, config, the other metadata,
 * tensor names and shapes against config, then the values themselves (all finite).
 * Nothing is allocated from a size the file declares before that size is checked against
 * the bytes actually present. */
#include "runtime/model.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/outfile.h"
#include "common/sha256.h"
#include "runtime/safetensors.h"

/* Largest parameter count model_new accepts (2^36 floats = 256 GiB): beyond that a
 * config is a mistake, not a model. */
#define MODEL_MAX_PARAMS ((size_t)1 << 36)

/* ---------------------------------------------------------------- layout */

/* The per-block tensors, in the order of the block (kind-major: all layers' W_Q, then all
 * layers' b_Q, ...), with their shapes as letters resolved by dim_of. */
typedef struct {
    const char *suffix;     /* after "blocks.{l}." */
    const char *dims;       /* letters: h = NH, c = C, d = HD, m = M */
} KindDef;

static const KindDef KINDS[] = {
    {"attn.W_Q", "hcd"}, {"attn.b_Q", "hd"}, {"attn.W_K", "hcd"}, {"attn.b_K", "hd"},
    {"attn.W_V", "hcd"}, {"attn.b_V", "hd"}, {"attn.W_O", "hdc"}, {"attn.b_O", "c"},
    {"mlp.W_in", "cm"},  {"mlp.b_in", "m"},  {"mlp.W_out", "mc"}, {"mlp.b_out", "c"},
};
#define NKINDS ((int)ARRAY_LEN(KINDS))

static int64_t dim_of(const ModelConfig *c, char letter)
{
    switch (letter) {
    case 'h': return c->n_heads;
    case 'c': return c->d_model;
    case 'd': return c->d_head;
    case 'm': return c->d_mlp;
    case 'v': return c->d_vocab;
    case 'n': return c->n_ctx;
    case 'o': return c->d_vocab_out;
    default: return 0;
    }
}

static const char *dim_name(char letter)
{
    switch (letter) {
    case 'h': return "n_heads";
    case 'c': return "d_model";
    case 'd': return "d_head";
    case 'm': return "d_mlp";
    case 'v': return "d_vocab";
    case 'n': return "n_ctx";
    case 'o': return "d_vocab_out";
    default: return "?";
    }
}

/* Letters of each table entry, parallel to model_layout's order. */
static const char *entry_dims(const ModelConfig *c, int i)
{
    int L = c->n_layers;
    if (i == 0) return "vc";
    if (i == 1) return "nc";
    if (i < 2 + NKINDS * L) return KINDS[(i - 2) / (L ? L : 1)].dims;
    return i == 2 + NKINDS * L ? "co" : "o";
}

int model_num_tensors(const ModelConfig *cfg)
{
    return 4 + NKINDS * cfg->n_layers;
}

static void set_entry(ModelTensor *t, const char *name, const ModelConfig *c, const char *dims,
                      size_t *offset)
{
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = (int)strlen(dims);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        t->shape[d] = dim_of(c, dims[d]);
        t->numel *= (size_t)t->shape[d];
    }
    t->offset = *offset;
    *offset += t->numel;
}

size_t model_layout(const ModelConfig *cfg, ModelTensor *table)
{
    ModelTensor scratch;
    size_t off = 0;
    int i = 0;
    char name[sizeof scratch.name];   /* the longest, "blocks.NN.mlp.W_out", fits */
#define ENTRY(nm, dims) set_entry(table ? &table[i++] : &scratch, (nm), cfg, (dims), &off)
    ENTRY("embed.W_E", "vc");
    ENTRY("pos_embed.W_pos", "nc");
    for (int k = 0; k < NKINDS; k++)
        for (int l = 0; l < cfg->n_layers; l++) {
            snprintf(name, sizeof name, "blocks.%d.%s", l, KINDS[k].suffix);
            ENTRY(name, KINDS[k].dims);
        }
    ENTRY("unembed.W_U", "co");
    ENTRY("unembed.b_U", "o");
#undef ENTRY
    return off;
}

void model_point_params(ModelParams *p, float *block, const ModelConfig *c)
{
    size_t L = (size_t)c->n_layers, C = (size_t)c->d_model;
    float **kind_ptr[NKINDS] = {&p->W_Q, &p->b_Q, &p->W_K, &p->b_K, &p->W_V, &p->b_V,
                                &p->W_O, &p->b_O, &p->W_in, &p->b_in, &p->W_out, &p->b_out};
    float *at = block;
    p->W_E = at;
    at += (size_t)c->d_vocab * C;
    p->W_pos = at;
    at += (size_t)c->n_ctx * C;
    for (int k = 0; k < NKINDS; k++) {
        size_t per = 1;
        for (const char *d = KINDS[k].dims; *d; d++) per *= (size_t)dim_of(c, *d);
        *kind_ptr[k] = at;
        at += L * per;
    }
    p->W_U = at;
    at += C * (size_t)c->d_vocab_out;
    p->b_U = at;
}

const ModelTensor *model_find_tensor(const Model *m, const char *name)
{
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

size_t model_count_nonzero(const Model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->num_params; i++) n += m->params_memory[i] != 0.0f;
    return n;
}

/* ---------------------------------------------------------------- messages */

/* "<file>: <key>: expected <what>, found <JSON of v, or nothing>" */
static int bad(StrBuf *err, const char *file, const char *key, const char *what, const json_t *v)
{
    sb_printf(err, "%s: %s: expected %s, found ", file, key, what);
    if (v) st_describe_json(v, err);
    else sb_puts(err, "nothing (the key is missing)");
    return -1;
}

/* An array of the wrong length says how long it is rather than what it holds. */
static int bad_array(StrBuf *err, const char *file, const char *key, const char *what, const json_t *v)
{
    if (!json_is_array(v)) return bad(err, file, key, what, v);
    sb_printf(err, "%s: %s: expected %s, found an array of %zu", file, key, what, json_array_size(v));
    return -1;
}

/* ---------------------------------------------------------------- values */

void model_value_text(Value v, StrBuf *out)
{
    char buf[64];
    switch (v.kind) {
    case VAL_NONE: sb_puts(out, "None"); break;
    case VAL_BOOL: sb_puts(out, v.u.i ? "true" : "false"); break;
    case VAL_INT: sb_printf(out, "%" PRId64, v.u.i); break;
    case VAL_FLOAT:
        fmt_double(v.u.f, buf, sizeof buf);
        sb_puts(out, buf);
        break;
    case VAL_STR: sb_puts(out, v.u.s); break;
    }
}

static json_t *value_to_json(Value v)
{
    switch (v.kind) {
    case VAL_BOOL: return json_boolean(v.u.i);
    case VAL_INT: return json_integer((json_int_t)v.u.i);
    case VAL_FLOAT: return isfinite(v.u.f) ? json_real(v.u.f) : NULL;
    case VAL_STR: return v.u.s ? json_string(v.u.s) : NULL;
    case VAL_NONE: return NULL;
    }
    return NULL;
}

/* ---------------------------------------------------------------- config */

static const char *const CONFIG_KEYS[] = {
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx",
    "act_fn", "normalization_type", "attention_dir", "use_attn_scale", "attn_scale",
};
static const int CONFIG_MIN[] = {0, 1, 0, 0, 0, 2, 1, 2};

static int *config_field(ModelConfig *c, int i)
{
    int *f[] = {&c->n_layers, &c->d_model, &c->d_head, &c->n_heads,
                &c->d_mlp, &c->d_vocab, &c->d_vocab_out, &c->n_ctx};
    return f[i];
}

/* The parameter count of a config, or 0 past MODEL_MAX_PARAMS. Counted in doubles so that
 * no product of int sizes can overflow (doubles are exact far past 2^36). */
static size_t checked_params(const ModelConfig *c)
{
    double total = 0;
    total += (double)c->d_vocab * c->d_model + (double)c->n_ctx * c->d_model;
    total += (double)c->n_layers * (3.0 * c->n_heads * c->d_model * c->d_head +
                                    3.0 * c->n_heads * c->d_head +
                                    (double)c->n_heads * c->d_head * c->d_model + c->d_model +
                                    2.0 * c->d_model * c->d_mlp + c->d_mlp + c->d_model);
    total += (double)c->d_model * c->d_vocab_out + c->d_vocab_out;
    if (total > (double)MODEL_MAX_PARAMS) return 0;
    return (size_t)total;
}

static int config_check(const ModelConfig *c, const char *file, StrBuf *err)
{
    ModelConfig cc = *c;
    for (int i = 0; i < 8; i++) {
        int v = *config_field(&cc, i);
        if (v < CONFIG_MIN[i])
            return sb_fail(err, "%s: config.%s: expected an integer >= %d, found %d", file,
                        CONFIG_KEYS[i], CONFIG_MIN[i], v);
    }
    if (c->n_layers > MODEL_MAX_LAYERS)
        return sb_fail(err, "%s: config.n_layers: expected at most %d, found %d", file, MODEL_MAX_LAYERS,
                    c->n_layers);
    if (!isfinite(c->attn_scale) || c->attn_scale <= 0)
        return sb_fail(err, "%s: config.attn_scale: expected a finite number > 0, found %g", file,
                    c->attn_scale);
    if (!checked_params(c))
        return sb_fail(err, "%s: config: expected at most %zu parameters in all, found a config "
                    "with more", file, MODEL_MAX_PARAMS);
    return 0;
}

static int parse_config(ModelConfig *c, json_t **extra, json_t *j, const char *file, StrBuf *err)
{
    char key[64];
    if (!json_is_object(j)) return bad(err, file, "config", "a JSON object", j);
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 8; i++) {
        json_t *v = json_object_get(j, CONFIG_KEYS[i]);
        snprintf(key, sizeof key, "config.%s", CONFIG_KEYS[i]);
        char what[64];
        snprintf(what, sizeof what, "an integer >= %d", CONFIG_MIN[i]);
        if (!json_is_integer(v) || json_integer_value(v) < CONFIG_MIN[i] ||
            json_integer_value(v) > MODEL_MAX_DIM)
            return bad(err, file, key, what, v);
        *config_field(c, i) = (int)json_integer_value(v);
    }
    json_t *v = json_object_get(j, "act_fn");
    if (!json_is_string(v) || strcmp(json_string_value(v), "relu"))
        return bad(err, file, "config.act_fn", "\"relu\"", v);
    v = json_object_get(j, "normalization_type");
    if (!json_is_null(v)) return bad(err, file, "config.normalization_type", "null (no layer norm)", v);
    v = json_object_get(j, "attention_dir");
    if (!json_is_string(v) ||
        (strcmp(json_string_value(v), "causal") && strcmp(json_string_value(v), "bidirectional")))
        return bad(err, file, "config.attention_dir", "\"bidirectional\" or \"causal\"", v);
    c->causal = !strcmp(json_string_value(v), "causal");
    v = json_object_get(j, "use_attn_scale");
    if (!json_is_boolean(v)) return bad(err, file, "config.use_attn_scale", "true or false", v);
    c->use_attn_scale = json_is_true(v);
    v = json_object_get(j, "attn_scale");
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) <= 0)
        return bad(err, file, "config.attn_scale", "a finite number > 0", v);
    c->attn_scale = json_number_value(v);
    if (config_check(c, file, err)) return -1;
    *extra = json_deep_copy(j);
    for (size_t i = 0; i < ARRAY_LEN(CONFIG_KEYS); i++) json_object_del(*extra, CONFIG_KEYS[i]);
    return 0;
}

static json_t *config_to_json(const Model *m)
{
    const ModelConfig *c = &m->cfg;
    json_t *j = json_deep_copy(m->config_extra);
    ModelConfig cc = *c;
    for (int i = 0; i < 8; i++) json_object_set_new(j, CONFIG_KEYS[i], json_integer(*config_field(&cc, i)));
    json_object_set_new(j, "act_fn", json_string("relu"));
    json_object_set_new(j, "normalization_type", json_null());
    json_object_set_new(j, "attention_dir", json_string(c->causal ? "causal" : "bidirectional"));
    json_object_set_new(j, "use_attn_scale", json_boolean(c->use_attn_scale));
    json_object_set_new(j, "attn_scale", json_real(c->attn_scale));
    return j;
}

/* ---------------------------------------------------------------- building */

Model *model_new(const ModelConfig *cfg, StrBuf *err)
{
    if (config_check(cfg, "model", err)) return NULL;
    Model *m = xcalloc(1, sizeof *m);
    arena_init(&m->arena);
    m->cfg = *cfg;
    m->ntensors = model_num_tensors(cfg);
    m->tensors = xcalloc((size_t)m->ntensors, sizeof *m->tensors);
    m->num_params = model_layout(cfg, m->tensors);
    m->params_memory = xcalloc(m->num_params ? m->num_params : 1, sizeof(float));
    model_point_params(&m->params, m->params_memory, cfg);
    m->bos = m->pad = -1;
    m->output_name = "";
    model_set_program(m, "");
    m->layers = json_array();
    m->compiler = json_null();
    m->provenance = json_null();
    m->config_extra = json_object();
    m->output_extra = json_object();
    m->meta_extra = json_object();
    return m;
}

void model_free(Model *m)
{
    if (!m) return;
    free(m->params_memory);
    free(m->tensors);
    json_decref(m->layers);
    json_decref(m->compiler);
    json_decref(m->provenance);
    json_decref(m->config_extra);
    json_decref(m->output_extra);
    json_decref(m->meta_extra);
    model_clear_extra_tensors(m);
    arena_free(&m->arena);
    free(m);
}

static Value copy_value(Arena *a, Value v)
{
    if (v.kind == VAL_STR && v.u.s) v.u.s = arena_strdup(a, v.u.s);
    return v;
}

void model_set_vocab(Model *m, const Value *tokens, int bos, int pad)
{
    m->vocab = arena_alloc(&m->arena, sizeof(Value) * (size_t)m->cfg.d_vocab);
    for (int i = 0; i < m->cfg.d_vocab; i++) m->vocab[i] = copy_value(&m->arena, tokens[i]);
    m->bos = bos;
    m->pad = pad;
}

void model_set_output(Model *m, const char *name, int numerical, const Value *values)
{
    m->output_name = arena_strdup(&m->arena, name ? name : "");
    m->output_numerical = numerical != 0;
    m->output_values = NULL;
    if (!numerical) {
        m->output_values = arena_alloc(&m->arena, sizeof(Value) * (size_t)m->cfg.d_vocab_out);
        for (int i = 0; i < m->cfg.d_vocab_out; i++)
            m->output_values[i] = copy_value(&m->arena, values[i]);
    }
}

void model_set_residual(Model *m, const char *const *labels)
{
    m->residual = arena_alloc(&m->arena, sizeof(char *) * (size_t)m->cfg.d_model);
    for (int i = 0; i < m->cfg.d_model; i++)
        m->residual[i] = labels[i] ? arena_strdup(&m->arena, labels[i]) : NULL;
}

void model_set_program(Model *m, const char *source)
{
    m->program = arena_strdup(&m->arena, source ? source : "");
    sha256_hex(m->program, strlen(m->program), m->program_sha256);
}

static void replace_json(json_t **slot, json_t *v)
{
    json_t *old = *slot;
    *slot = v ? json_incref(v) : json_null();
    json_decref(old);
}

void model_set_layers(Model *m, json_t *layers) { replace_json(&m->layers, layers); }
void model_set_compiler(Model *m, json_t *compiler) { replace_json(&m->compiler, compiler); }
void model_set_provenance(Model *m, json_t *provenance) { replace_json(&m->provenance, provenance); }

static const char *const META_KEYS[] = {
    "format", "format_version", "config", "vocab", "bos", "pad", "output", "residual",
    "layers", "program", "program_sha256", "compiler", "provenance",
};

static int is_meta_key(const char *key)
{
    for (size_t i = 0; i < ARRAY_LEN(META_KEYS); i++)
        if (!strcmp(key, META_KEYS[i])) return 1;
    return 0;
}

int model_set_meta(Model *m, const char *key, const char *value)
{
    if (is_meta_key(key)) return -1;
    if (!value) {
        json_object_del(m->meta_extra, key);
        return 0;
    }
    json_t *s = json_string(value);
    if (!s) return -1;
    return json_object_set_new(m->meta_extra, key, s) ? -1 : 0;
}

static int add_extra(Model *m, const char *name, int ndim, const int64_t *shape, size_t numel,
                     float *data_owned)
{
    for (int i = 0; i < m->nextra; i++)
        if (!strcmp(m->extra[i].name, name)) {
            free(m->extra[i].data);
            m->extra[i].ndim = ndim;
            memcpy(m->extra[i].shape, shape, sizeof(int64_t) * (size_t)ndim);
            m->extra[i].numel = numel;
            m->extra[i].data = data_owned;
            return 0;
        }
    m->extra = xrealloc(m->extra, sizeof *m->extra * (size_t)(m->nextra + 1));
    ModelExtraTensor *t = &m->extra[m->nextra++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = numel;
    t->data = data_owned;
    return 0;
}

int model_set_extra_tensor(Model *m, const char *name, int ndim, const int64_t *shape,
                           const float *data, StrBuf *err)
{
    if (strncmp(name, "optim.", 6) != 0)
        return sb_fail(err, "%s: expected a name beginning with \"optim.\"", name);
    if (ndim < 0 || ndim > 8) return sb_fail(err, "%s: expected at most 8 dimensions, found %d", name, ndim);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return sb_fail(err, "%s: expected non-negative dimensions", name);
        numel *= (size_t)shape[i];
    }
    float *copy = xmalloc(numel * sizeof(float) + 1);
    if (numel) memcpy(copy, data, numel * sizeof(float));
    return add_extra(m, name, ndim, shape, numel, copy);
}

void model_clear_extra_tensors(Model *m)
{
    for (int i = 0; i < m->nextra; i++) {
        free(m->extra[i].name);
        free(m->extra[i].data);
    }
    free(m->extra);
    m->extra = NULL;
    m->nextra = 0;
}

const ModelExtraTensor *model_find_extra_tensor(const Model *m, const char *name)
{
    for (int i = 0; i < m->nextra; i++)
        if (!strcmp(m->extra[i].name, name)) return &m->extra[i];
    return NULL;
}

/* ---------------------------------------------------------------- metadata checks */

static json_t *parse_json_text(json_t *meta, const char *key, const char *file, StrBuf *err)
{
    json_t *s = json_object_get(meta, key);
    if (!s) {
        bad(err, file, key, "a JSON text", NULL);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loads(json_string_value(s), JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) sb_fail(err, "%s: %s: expected a JSON text, found invalid JSON at byte %d: %s", file, key,
                 je.position, je.text);
    return v;
}

static int text_equal_token(Value v, const char *text)
{
    if (v.kind == VAL_STR) return !strcmp(v.u.s, text);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v.u.i);
    return !strcmp(buf, text);
}

static int parse_vocab(Model *m, json_t *j, const char *file, StrBuf *err)
{
    char key[64];
    char what[64];
    snprintf(what, sizeof what, "an array of %d tokens (config.d_vocab)", m->cfg.d_vocab);
    if (!json_is_array(j) || json_array_size(j) != (size_t)m->cfg.d_vocab)
        return bad_array(err, file, "vocab", what, j);
    m->vocab = arena_alloc(&m->arena, sizeof(Value) * (size_t)m->cfg.d_vocab);
    StrBuf t;
    sb_init(&t);
    for (int i = 0; i < m->cfg.d_vocab; i++) {
        json_t *v = json_array_get(j, (size_t)i);
        snprintf(key, sizeof key, "vocab[%d]", i);
        if (json_is_string(v)) {
            m->vocab[i] = val_str(arena_strndup(&m->arena, json_string_value(v), json_string_length(v)));
            if (strlen(m->vocab[i].u.s) != json_string_length(v) || json_string_length(v) == 0) {
                sb_free(&t);
                return bad(err, file, key, "a non-empty string without NUL bytes or an integer", v);
            }
        } else if (json_is_integer(v)) {
            m->vocab[i] = val_int(json_integer_value(v));
        } else {
            sb_free(&t);
            return bad(err, file, key, "a string or an integer", v);
        }
        /* Inputs are matched by text, so two tokens with one text form would be ambiguous. */
        sb_clear(&t);
        model_value_text(m->vocab[i], &t);
        for (int k = 0; k < i; k++)
            if (text_equal_token(m->vocab[k], t.s)) {
                snprintf(what, sizeof what, "a token unlike vocab[%d]", k);
                sb_free(&t);
                return bad(err, file, key, what, v);
            }
    }
    sb_free(&t);
    return 0;
}

static int find_token_row(const Model *m, json_t *v)
{
    for (int i = 0; i < m->cfg.d_vocab; i++) {
        Value t = m->vocab[i];
        if (t.kind == VAL_STR && json_is_string(v) && !strcmp(t.u.s, json_string_value(v))) return i;
        if (t.kind == VAL_INT && json_is_integer(v) && t.u.i == json_integer_value(v)) return i;
    }
    return -1;
}

static int parse_output(Model *m, json_t *j, const char *file, StrBuf *err)
{
    if (!json_is_object(j)) return bad(err, file, "output", "an object {name, encoding, values}", j);
    json_t *name = json_object_get(j, "name");
    if (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name))
        return bad(err, file, "output.name", "a string", name);
    m->output_name = arena_strdup(&m->arena, json_string_value(name));
    json_t *enc = json_object_get(j, "encoding");
    if (!json_is_string(enc) ||
        (strcmp(json_string_value(enc), "categorical") && strcmp(json_string_value(enc), "numerical")))
        return bad(err, file, "output.encoding", "\"categorical\" or \"numerical\"", enc);
    m->output_numerical = !strcmp(json_string_value(enc), "numerical");
    json_t *vals = json_object_get(j, "values");
    char what[96];
    if (m->output_numerical) {
        if (m->cfg.d_vocab_out != 1)
            return sb_fail(err, "%s: config.d_vocab_out: expected 1 for a numerical output, found %d",
                        file, m->cfg.d_vocab_out);
        if (!json_is_array(vals) || json_array_size(vals) != 0)
            return bad(err, file, "output.values", "[] for a numerical output", vals);
        m->output_values = NULL;
    } else {
        snprintf(what, sizeof what, "an array of %d values (config.d_vocab_out)", m->cfg.d_vocab_out);
        if (!json_is_array(vals) || json_array_size(vals) != (size_t)m->cfg.d_vocab_out)
            return bad_array(err, file, "output.values", what, vals);
        m->output_values = arena_alloc(&m->arena, sizeof(Value) * (size_t)m->cfg.d_vocab_out);
        for (int i = 0; i < m->cfg.d_vocab_out; i++) {
            json_t *v = json_array_get(vals, (size_t)i);
            char key[64];
            snprintf(key, sizeof key, "output.values[%d]", i);
            Value *o = &m->output_values[i];
            if (json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v))
                *o = val_str(arena_strdup(&m->arena, json_string_value(v)));
            else if (json_is_integer(v)) *o = val_int(json_integer_value(v));
            else if (json_is_real(v)) *o = val_float(json_real_value(v));
            else if (json_is_boolean(v)) *o = val_bool(json_is_true(v));
            else return bad(err, file, key, "a string, a number or a boolean", v);
        }
    }
    json_decref(m->output_extra);
    m->output_extra = json_deep_copy(j);
    json_object_del(m->output_extra, "name");
    json_object_del(m->output_extra, "encoding");
    json_object_del(m->output_extra, "values");
    return 0;
}

/* The s-op name of a label: before the first ':' (labels never contain ':' otherwise). */
static size_t label_name_len(const char *s)
{
    const char *c = strchr(s, ':');
    return c ? (size_t)(c - s) : strlen(s);
}

static int parse_residual(Model *m, json_t *j, const char *file, StrBuf *err)
{
    char what[96], key[64];
    snprintf(what, sizeof what, "an array of %d labels (config.d_model)", m->cfg.d_model);
    if (!json_is_array(j) || json_array_size(j) != (size_t)m->cfg.d_model)
        return bad_array(err, file, "residual", what, j);
    int C = m->cfg.d_model;
    m->residual = arena_alloc(&m->arena, sizeof(char *) * (size_t)C);
    for (int i = 0; i < C; i++) {
        json_t *v = json_array_get(j, (size_t)i);
        snprintf(key, sizeof key, "residual[%d]", i);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v) || json_string_value(v)[0] == ':')
            return bad(err, file, key, "a label \"name\" or \"name:value\"", v);
        m->residual[i] = arena_strdup(&m->arena, json_string_value(v));
    }
    /* Distinct labels; one s-op is either numerical (bare name) or categorical (name:value).
     * Every pair is compared, so what depends on one label only is computed once. */
    size_t *nlen = xmalloc(sizeof(size_t) * (size_t)(C ? C : 1));
    for (int i = 0; i < C; i++) nlen[i] = label_name_len(m->residual[i]);
    for (int i = 0; i < C; i++) {
        const char *a = m->residual[i];
        size_t na = nlen[i];
        snprintf(key, sizeof key, "residual[%d]", i);
        for (int k = 0; k < i; k++) {
            const char *b = m->residual[k];
            size_t nb = nlen[k];
            if (!strcmp(a, b)) {
                free(nlen);
                snprintf(what, sizeof what, "a label unlike residual[%d]", k);
                return bad(err, file, key, what, json_array_get(j, (size_t)i));
            }
            if (na == nb && !strncmp(a, b, na) && (a[na] == ':') != (b[nb] == ':')) {
                snprintf(what, sizeof what, "the same encoding as residual[%d] (%s)", k, b);
                free(nlen);
                return bad(err, file, key, what, json_array_get(j, (size_t)i));
            }
        }
    }
    free(nlen);
    return 0;
}

static int check_string_list(json_t *v, const char *file, const char *key, StrBuf *err)
{
    if (!v) return 0;
    int ok = json_is_array(v);
    for (size_t i = 0; ok && i < json_array_size(v); i++) ok = json_is_string(json_array_get(v, i));
    return ok ? 0 : bad(err, file, key, "an array of s-op labels", v);
}

static int check_opt_string(json_t *o, const char *field, const char *file, const char *at, StrBuf *err)
{
    json_t *v = json_object_get(o, field);
    if (!v || json_is_string(v)) return 0;
    char key[320];
    snprintf(key, sizeof key, "%s.%s", at, field);
    return bad(err, file, key, "a string", v);
}

static int check_lists(json_t *o, const char *const *fields, const char *file, const char *at,
                       StrBuf *err)
{
    char key[320];
    for (; *fields; fields++) {
        snprintf(key, sizeof key, "%s.%s", at, *fields);
        if (check_string_list(json_object_get(o, *fields), file, key, err)) return -1;
    }
    return 0;
}

static int check_layers(const Model *m, json_t *j, const char *file, StrBuf *err)
{
    char what[128], at[64], key[256];
    const ModelConfig *c = &m->cfg;
    snprintf(what, sizeof what, "an array of one entry per block (config.n_layers %d), or [] for no detail",
             c->n_layers);
    if (!json_is_array(j) || (json_array_size(j) != 0 && json_array_size(j) != (size_t)c->n_layers))
        return bad_array(err, file, "layers", what, j);
    static const char *const head_lists[] = {"query", "key", "value", "output", NULL};
    static const char *const mlp_lists[] = {"inputs", "output", NULL};
    for (size_t l = 0; l < json_array_size(j); l++) {
        json_t *b = json_array_get(j, l);
        snprintf(at, sizeof at, "layers[%zu]", l);
        if (!json_is_object(b)) return bad(err, file, at, "an object {attn, mlp}", b);
        json_t *attn = json_object_get(b, "attn"), *mlp = json_object_get(b, "mlp");
        snprintf(key, sizeof key, "%s.attn", at);
        if (attn && !json_is_array(attn)) return bad(err, file, key, "an array of heads", attn);
        for (size_t h = 0; attn && h < json_array_size(attn); h++) {
            json_t *o = json_array_get(attn, h);
            char hat[128];
            snprintf(hat, sizeof hat, "%s.attn[%zu]", at, h);
            if (!json_is_object(o)) return bad(err, file, hat, "an object describing a head", o);
            json_t *hd = json_object_get(o, "head");
            snprintf(key, sizeof key, "%s.head", hat);
            snprintf(what, sizeof what, "an integer in 0..%d (config.n_heads - 1)", c->n_heads - 1);
            if (!json_is_integer(hd) || json_integer_value(hd) < 0 || json_integer_value(hd) >= c->n_heads)
                return bad(err, file, key, what, hd);
            json_t *dh = json_object_get(o, "d_head");
            snprintf(key, sizeof key, "%s.d_head", hat);
            snprintf(what, sizeof what, "an integer in 0..%d (config.d_head)", c->d_head);
            if (dh && (!json_is_integer(dh) || json_integer_value(dh) < 0 || json_integer_value(dh) > c->d_head))
                return bad(err, file, key, what, dh);
            if (check_opt_string(o, "op", file, hat, err) || check_opt_string(o, "label", file, hat, err) ||
                check_opt_string(o, "selector", file, hat, err) || check_lists(o, head_lists, file, hat, err))
                return -1;
        }
        snprintf(key, sizeof key, "%s.mlp", at);
        if (mlp && !json_is_array(mlp)) return bad(err, file, key, "an array of maps", mlp);
        for (size_t k = 0; mlp && k < json_array_size(mlp); k++) {
            json_t *o = json_array_get(mlp, k);
            char mat[128];
            snprintf(mat, sizeof mat, "%s.mlp[%zu]", at, k);
            if (!json_is_object(o)) return bad(err, file, mat, "an object describing a map", o);
            json_t *nr = json_object_get(o, "neurons");
            snprintf(key, sizeof key, "%s.neurons", mat);
            snprintf(what, sizeof what, "[first, last) with 0 <= first <= last <= %d (config.d_mlp)", c->d_mlp);
            if (nr && (!json_is_array(nr) || json_array_size(nr) != 2 ||
                       !json_is_integer(json_array_get(nr, 0)) || !json_is_integer(json_array_get(nr, 1)) ||
                       json_integer_value(json_array_get(nr, 0)) < 0 ||
                       json_integer_value(json_array_get(nr, 1)) < json_integer_value(json_array_get(nr, 0)) ||
                       json_integer_value(json_array_get(nr, 1)) > c->d_mlp))
                return bad(err, file, key, what, nr);
            if (check_opt_string(o, "op", file, mat, err) || check_opt_string(o, "label", file, mat, err) ||
                check_lists(o, mlp_lists, file, mat, err))
                return -1;
        }
        json_t *dm = json_object_get(b, "d_mlp");
        snprintf(key, sizeof key, "%s.d_mlp", at);
        snprintf(what, sizeof what, "an integer in 0..%d (config.d_mlp)", c->d_mlp);
        if (dm && (!json_is_integer(dm) || json_integer_value(dm) < 0 || json_integer_value(dm) > c->d_mlp))
            return bad(err, file, key, what, dm);
    }
    return 0;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* Everything in __metadata__ except the tensors' own checks. */
static int parse_metadata(Model *m, json_t *meta, const char *file, StrBuf *err)
{
    json_t *v = json_object_get(meta, "format");
    if (!v || strcmp(json_string_value(v), MODEL_FORMAT))
        return bad(err, file, "format", "\"" MODEL_FORMAT "\"", v);
    v = json_object_get(meta, "format_version");
    if (!v || strcmp(json_string_value(v), MODEL_FORMAT_VERSION))
        return bad(err, file, "format_version", "\"" MODEL_FORMAT_VERSION "\" (this tracc reads version "
                   MODEL_FORMAT_VERSION ")", v);

    json_t *j = parse_json_text(meta, "config", file, err);
    if (!j) return -1;
    int rc = parse_config(&m->cfg, &m->config_extra, j, file, err);
    json_decref(j);
    if (rc) return -1;

    if (!(j = parse_json_text(meta, "vocab", file, err))) return -1;
    rc = parse_vocab(m, j, file, err);
    json_decref(j);
    if (rc) return -1;

    const char *which[2] = {"bos", "pad"};
    int *rows[2] = {&m->bos, &m->pad};
    for (int i = 0; i < 2; i++) {
        if (!(j = parse_json_text(meta, which[i], file, err))) return -1;
        *rows[i] = find_token_row(m, j);
        if (*rows[i] < 0) rc = bad(err, file, which[i], "one of the tokens in vocab", j);
        else if (i == 1 && m->pad == m->bos) rc = bad(err, file, "pad", "a token other than bos", j);
        json_decref(j);
        if (rc) return -1;
    }

    if (!(j = parse_json_text(meta, "output", file, err))) return -1;
    rc = parse_output(m, j, file, err);
    json_decref(j);
    if (rc) return -1;

    if (!(j = parse_json_text(meta, "residual", file, err))) return -1;
    rc = parse_residual(m, j, file, err);
    json_decref(j);
    if (rc) return -1;

    /* The keys that explain the model are optional to a reader (defaults below), but what
     * is there must be well formed. */
    if (json_object_get(meta, "layers")) {
        if (!(j = parse_json_text(meta, "layers", file, err))) return -1;
        if (check_layers(m, j, file, err)) {
            json_decref(j);
            return -1;
        }
        m->layers = j;
    } else {
        m->layers = json_array();
    }
    const char *jkeys[2] = {"compiler", "provenance"};
    json_t **slots[2] = {&m->compiler, &m->provenance};
    for (int i = 0; i < 2; i++) {
        if (json_object_get(meta, jkeys[i])) {
            if (!(j = parse_json_text(meta, jkeys[i], file, err))) return -1;
            if (!json_is_object(j) && !json_is_null(j)) {
                rc = bad(err, file, jkeys[i], "an object or null", j);
                json_decref(j);
                return rc;
            }
            *slots[i] = j;
        } else {
            *slots[i] = json_null();
        }
    }
    v = json_object_get(meta, "program");
    model_set_program(m, v ? json_string_value(v) : "");
    if (v && strlen(json_string_value(v)) != json_string_length(v))
        return bad(err, file, "program", "program text without NUL bytes", NULL);
    v = json_object_get(meta, "program_sha256");
    if (v) {
        const char *h = json_string_value(v);
        if (!is_hex64(h)) return bad(err, file, "program_sha256", "64 lowercase hex digits", v);
        if (strcmp(h, m->program_sha256)) {
            char what[128];
            snprintf(what, sizeof what, "%s (the SHA-256 of program)", m->program_sha256);
            return bad(err, file, "program_sha256", what, v);
        }
    }
    m->meta_extra = json_object();
    const char *key;
    json_object_foreach(meta, key, v) {
        if (!is_meta_key(key)) json_object_set(m->meta_extra, key, v);
    }
    return 0;
}

/* ---------------------------------------------------------------- tensors */

static void describe_shape(StrBuf *b, int ndim, const int64_t *shape)
{
    sb_putc(b, '[');
    for (int i = 0; i < ndim; i++) sb_printf(b, "%s%" PRId64, i ? ", " : "", shape[i]);
    sb_putc(b, ']');
}

static void describe_dims(StrBuf *b, const char *dims)
{
    sb_puts(b, " (");
    for (const char *d = dims; *d; d++) sb_printf(b, "%s%s", d == dims ? "" : ", ", dim_name(*d));
    sb_puts(b, ")");
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const ModelTensor *)a)->name, ((const ModelTensor *)b)->name);
}

/* First non-finite value, or -1. */
static int64_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return (int64_t)i;
    return -1;
}

static int nonfinite_error(StrBuf *err, const char *file, const char *name, const float *x,
                           int64_t at, int ndim, const int64_t *shape)
{
    int64_t idx[8];
    int64_t rest = at;
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? rest % shape[d] : 0;
        rest = shape[d] ? rest / shape[d] : 0;
    }
    sb_printf(err, "%s: %s: expected finite values, found %s at ", file, name,
              isnan(x[at]) ? "nan" : x[at] > 0 ? "inf" : "-inf");
    describe_shape(err, ndim, idx);
    return -1;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The file has fewer tensors than the config needs: name the first one missing, without
 * building a table sized by the (unchecked) config. */
static int report_missing(const ModelConfig *c, const StFile *f, const char *file, StrBuf *err)
{
    const char **names = xmalloc(sizeof(char *) * (size_t)(f->ntensors ? f->ntensors : 1));
    for (int i = 0; i < f->ntensors; i++) names[i] = f->tensors[i].name;
    qsort(names, (size_t)f->ntensors, sizeof *names, cmp_str_ptr);
    int nt = model_num_tensors(c), L = c->n_layers;
    char name[64];
    for (int i = 0; i < nt; i++) {
        if (i == 0) snprintf(name, sizeof name, "embed.W_E");
        else if (i == 1) snprintf(name, sizeof name, "pos_embed.W_pos");
        else if (i < 2 + NKINDS * L) snprintf(name, sizeof name, "blocks.%d.%s", (i - 2) % L, KINDS[(i - 2) / L].suffix);
        else snprintf(name, sizeof name, i == 2 + NKINDS * L ? "unembed.W_U" : "unembed.b_U");
        const char *key = name;
        if (bsearch(&key, names, (size_t)f->ntensors, sizeof *names, cmp_str_ptr)) continue;
        const char *dims = entry_dims(c, i);
        int64_t shape[3];
        int nd = (int)strlen(dims);
        for (int d = 0; d < nd; d++) shape[d] = dim_of(c, dims[d]);
        sb_printf(err, "%s: %s: expected a tensor of shape ", file, name);
        describe_shape(err, nd, shape);
        describe_dims(err, dims);
        sb_puts(err, ", found none (the tensor is missing)");
        break;
    }
    free(names);
    return -1;
}

static int load_tensors(Model *m, const StFile *f, const char *file, StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    int nt = model_num_tensors(c);
    int nfile = 0;
    for (int i = 0; i < f->ntensors; i++) nfile += strncmp(f->tensors[i].name, "optim.", 6) != 0;
    if (nfile < nt) return report_missing(c, f, file, err);
    m->ntensors = nt;
    m->tensors = xcalloc((size_t)nt, sizeof *m->tensors);
    m->num_params = model_layout(c, m->tensors);
    /* A sorted copy of the expected names to look each file tensor up. */
    ModelTensor *sorted = xmalloc(sizeof *sorted * (size_t)nt);
    memcpy(sorted, m->tensors, sizeof *sorted * (size_t)nt);
    for (int i = 0; i < nt; i++) sorted[i].offset = (size_t)i;   /* remember the table index */
    qsort(sorted, (size_t)nt, sizeof *sorted, cmp_tensor_name);
    const StTensor **found = xcalloc((size_t)nt, sizeof *found);
    int rc = 0;
    for (int i = 0; i < f->ntensors && !rc; i++) {
        const StTensor *t = &f->tensors[i];
        ModelTensor keyt;
        snprintf(keyt.name, sizeof keyt.name, "%s", t->name);
        const ModelTensor *hit = strlen(t->name) < sizeof keyt.name
            ? bsearch(&keyt, sorted, (size_t)nt, sizeof *sorted, cmp_tensor_name) : NULL;
        if (!hit) {
            if (strncmp(t->name, "optim.", 6) != 0)
                rc = sb_fail(err, "%s: %s: expected only the tensors of a model with this config (and "
                          "optim.* state), found an unknown tensor", file, t->name);
            continue;
        }
        found[hit->offset] = t;
    }
    for (int i = 0; i < nt && !rc; i++) {
        const ModelTensor *e = &m->tensors[i];
        const StTensor *t = found[i];
        int same = t && t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = t->shape[d] == e->shape[d];
        if (same) continue;
        sb_printf(err, "%s: %s: expected a tensor of shape ", file, e->name);
        describe_shape(err, e->ndim, e->shape);
        describe_dims(err, entry_dims(c, i));
        if (!t) {
            sb_puts(err, ", found none (the tensor is missing)");
        } else {
            sb_puts(err, ", found shape ");
            describe_shape(err, t->ndim, t->shape);
        }
        rc = -1;
    }
    if (!rc) {
        m->params_memory = xmalloc((m->num_params ? m->num_params : 1) * sizeof(float));
        model_point_params(&m->params, m->params_memory, c);
        for (int i = 0; i < nt && !rc; i++) {
            const ModelTensor *e = &m->tensors[i];
            float *dst = m->params_memory + e->offset;
            st_read_f32(dst, f, found[i]);
            int64_t bad_at = first_nonfinite(dst, e->numel);
            if (bad_at >= 0) rc = nonfinite_error(err, file, e->name, dst, bad_at, e->ndim, e->shape);
        }
    }
    for (int i = 0; i < f->ntensors && !rc; i++) {
        const StTensor *t = &f->tensors[i];
        if (strncmp(t->name, "optim.", 6) != 0) continue;
        float *data = xmalloc((size_t)t->numel * sizeof(float) + 1);
        st_read_f32(data, f, t);
        int64_t bad_at = first_nonfinite(data, (size_t)t->numel);
        if (bad_at >= 0) rc = nonfinite_error(err, file, t->name, data, bad_at, t->ndim, t->shape);
        add_extra(m, t->name, t->ndim, t->shape, (size_t)t->numel, data);
    }
    free(found);
    free(sorted);
    return rc;
}

/* ---------------------------------------------------------------- reading */

Model *model_parse(const void *data, size_t len, const char *file, StrBuf *err)
{
    StFile f;
    if (st_parse(&f, data, len, file, err)) {
        st_free(&f);
        return NULL;
    }
    if (!f.metadata) {
        sb_fail(err, "%s: __metadata__: expected the model's metadata, found nothing (not a tracc model file?)",
             file);
        st_free(&f);
        return NULL;
    }
    Model *m = xcalloc(1, sizeof *m);
    arena_init(&m->arena);
    m->bos = m->pad = -1;
    int rc = parse_metadata(m, f.metadata, file, err);
    if (!rc) rc = load_tensors(m, &f, file, err);
    st_free(&f);
    if (rc) {
        model_free(m);
        return NULL;
    }
    if (!m->config_extra) m->config_extra = json_object();
    if (!m->output_extra) m->output_extra = json_object();
    return m;
}

Model *model_load(const char *path, StrBuf *err)
{
    return model_load_hashed(path, NULL, err);
}

Model *model_load_hashed(const char *path, char sha256[65], StrBuf *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sb_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        sb_fail(err, "%s: expected a regular file", path);
        fclose(fp);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *buf = xmalloc(len ? len : 1);
    size_t got = fread(buf, 1, len, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != len) {
        sb_fail(err, "%s: read error (%zu of %zu bytes)", path, got, len);
        free(buf);
        return NULL;
    }
    Model *m = model_parse(buf, len, path, err);
    if (m && sha256) sha256_hex(buf, len, sha256);
    free(buf);
    return m;
}

/* ---------------------------------------------------------------- writing */

static int put_json_text(json_t *meta, const char *key, json_t *v, StrBuf *err)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s) return sb_fail(err, "%s: cannot encode as JSON (a value missing, not finite, or not UTF-8)", key);
    json_t *str = json_string(s);
    free(s);
    if (!str) return sb_fail(err, "%s: cannot encode as JSON", key);
    json_object_set_new(meta, key, str);
    return 0;
}

static json_t *build_metadata(const Model *m, StrBuf *err)
{
    const ModelConfig *c = &m->cfg;
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string(MODEL_FORMAT));
    json_object_set_new(meta, "format_version", json_string(MODEL_FORMAT_VERSION));
    if (put_json_text(meta, "config", config_to_json(m), err)) goto fail;

    if (!m->vocab) {
        sb_fail(err, "vocab: expected %d tokens, found none (model_set_vocab was not called)", c->d_vocab);
        goto fail;
    }
    json_t *vocab = json_array();
    for (int i = 0; i < c->d_vocab; i++) {
        Value v = m->vocab[i];
        json_t *t = (v.kind == VAL_STR || v.kind == VAL_INT) ? value_to_json(v) : NULL;
        if (!t) {
            json_decref(vocab);
            sb_fail(err, "vocab[%d]: expected a string or an integer token", i);
            goto fail;
        }
        json_array_append_new(vocab, t);
    }
    if (put_json_text(meta, "vocab", vocab, err)) goto fail;
    if (m->bos < 0 || m->bos >= c->d_vocab || m->pad < 0 || m->pad >= c->d_vocab) {
        sb_fail(err, "bos/pad: expected rows of vocab, found %d and %d", m->bos, m->pad);
        goto fail;
    }
    if (put_json_text(meta, "bos", value_to_json(m->vocab[m->bos]), err)) goto fail;
    if (put_json_text(meta, "pad", value_to_json(m->vocab[m->pad]), err)) goto fail;

    json_t *out = json_deep_copy(m->output_extra);
    json_object_set_new(out, "name", json_string(m->output_name ? m->output_name : ""));
    json_object_set_new(out, "encoding", json_string(m->output_numerical ? "numerical" : "categorical"));
    json_t *vals = json_array();
    if (!m->output_numerical) {
        if (!m->output_values) {
            json_decref(vals);
            json_decref(out);
            sb_fail(err, "output.values: expected %d values, found none (model_set_output was not called)",
                 c->d_vocab_out);
            goto fail;
        }
        for (int i = 0; i < c->d_vocab_out; i++) {
            json_t *t = value_to_json(m->output_values[i]);
            if (!t) {
                json_decref(vals);
                json_decref(out);
                sb_fail(err, "output.values[%d]: expected a string, a finite number or a boolean", i);
                goto fail;
            }
            json_array_append_new(vals, t);
        }
    }
    json_object_set_new(out, "values", vals);
    if (put_json_text(meta, "output", out, err)) goto fail;

    if (!m->residual) {
        sb_fail(err, "residual: expected %d labels, found none (model_set_residual was not called)", c->d_model);
        goto fail;
    }
    json_t *res = json_array();
    for (int i = 0; i < c->d_model; i++) {
        json_t *s = m->residual[i] ? json_string(m->residual[i]) : NULL;
        if (!s) {
            json_decref(res);
            sb_fail(err, "residual[%d]: expected a label", i);
            goto fail;
        }
        json_array_append_new(res, s);
    }
    if (put_json_text(meta, "residual", res, err)) goto fail;
    if (put_json_text(meta, "layers", json_incref(m->layers), err)) goto fail;
    json_t *prog = json_string(m->program);
    if (!prog) {
        sb_fail(err, "program: expected UTF-8 text");
        goto fail;
    }
    json_object_set_new(meta, "program", prog);
    json_object_set_new(meta, "program_sha256", json_string(m->program_sha256));
    if (put_json_text(meta, "compiler", json_incref(m->compiler), err)) goto fail;
    if (put_json_text(meta, "provenance", json_incref(m->provenance), err)) goto fail;
    const char *key;
    json_t *v;
    json_object_foreach(m->meta_extra, key, v) {
        json_object_set(meta, key, v);
    }
    return meta;
fail:
    json_decref(meta);
    return NULL;
}

static int serialize_named(const Model *m, const char *name, uint8_t **data, size_t *len, StrBuf *err)
{
    StrBuf e;
    sb_init(&e);
    json_t *meta = build_metadata(m, &e);
    if (!meta) {
        sb_printf(err, "%s: %s", name, e.s);
        sb_free(&e);
        return -1;
    }
    int n = m->ntensors + m->nextra;
    StOut *outs = xcalloc((size_t)n, sizeof *outs);
    for (int i = 0; i < m->ntensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        outs[i] = (StOut){t->name, t->ndim, t->shape, m->params_memory + t->offset};
    }
    for (int i = 0; i < m->nextra; i++) {
        const ModelExtraTensor *t = &m->extra[i];
        outs[m->ntensors + i] = (StOut){t->name, t->ndim, t->shape, t->data};
    }
    int rc = st_write(data, len, outs, n, meta, &e);
    free(outs);
    json_decref(meta);
    if (rc) {
        sb_printf(err, "%s: %s", name, e.s);
        sb_free(&e);
        return -1;
    }
    sb_free(&e);
    /* Write only what we can read back: the reader is the one definition of "valid". */
    Model *back = model_parse(*data, *len, name, err);
    if (!back) {
        free(*data);
        *data = NULL;
        *len = 0;
        return -1;
    }
    model_free(back);
    return 0;
}

int model_serialize(const Model *m, uint8_t **data, size_t *len, StrBuf *err)
{
    return serialize_named(m, "model", data, len, err);
}

int model_save(const Model *m, const char *path, StrBuf *err)
{
    uint8_t *data;
    size_t len;
    if (serialize_named(m, path, &data, &len, err)) return -1;
    int rc = of_write(path, data, len, err);
    free(data);
    return rc;
}

/* ---------------------------------------------------------------- inputs */

int model_token_row(const Model *m, const char *text)
{
    for (int i = 0; i < m->cfg.d_vocab; i++)
        if (text_equal_token(m->vocab[i], text)) return i;
    return -1;
}

int model_encode(const Model *m, char *const *toks, int n, int32_t *ids, StrBuf *err)
{
    int max_len = m->cfg.n_ctx - 1;
    if (n == 0) return sb_fail(err, "empty input (give at least one token)");
    if (n > max_len)
        return sb_fail(err, "%d tokens, longer than max_len %d (the model's n_ctx %d less BOS)", n, max_len,
                    m->cfg.n_ctx);
    ids[0] = m->bos;
    for (int i = 0; i < n; i++) {
        int row = model_token_row(m, toks[i]);
        if (row < 0 || row == m->bos || row == m->pad) {
            sb_printf(err, "token '%s' is %s the vocab {", toks[i],
                      row < 0 ? "not in" : row == m->bos ? "BOS, not an input token of" : "PAD, not an input token of");
            int first = 1;
            for (int k = 0; k < m->cfg.d_vocab; k++) {
                if (k == m->bos || k == m->pad) continue;
                if (!first) sb_puts(err, ", ");
                first = 0;
                model_value_text(m->vocab[k], err);
            }
            sb_puts(err, "}");
            return -1;
        }
        ids[i + 1] = row;
    }
    return 0;
}

Model *model_copy(const Model *m, StrBuf *err)
{
    uint8_t *data;
    size_t len;
    if (model_serialize(m, &data, &len, err)) return NULL;
    Model *c = model_parse(data, len, "(copy)", err);
    free(data);
    return c;
}
