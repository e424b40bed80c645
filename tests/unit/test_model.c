/* test_model.c — the model file: builder, writer, strict reader, and a corpus of corrupt
 * files generated from a valid one (each rejected with a message naming the file, the
 * tensor or key, and what was expected). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "common/sha256.h"
#include "runtime/model.h"
#include "runtime/safetensors.h"
#include "handmade.h"

#define FNAME "t.safetensors"

/* ---------------------------------------------------------------- helpers */

static uint8_t *serialize_or_die(const Model *m, size_t *len)
{
    StrBuf err;
    sb_init(&err);
    uint8_t *buf = NULL;
    if (model_serialize(m, &buf, len, &err)) fail_msg("serialize: %s", err.s);
    sb_free(&err);
    return buf;
}

static Model *parse_ok(const uint8_t *buf, size_t len)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_parse(buf, len, FNAME, &err);
    if (!m) fail_msg("parse: %s", err.s);
    sb_free(&err);
    return m;
}

/* The reader must reject buf with a message that starts with the file name and contains
 * every given fragment. Returns nothing; fails the test otherwise. */
static void expect_reject_v(const uint8_t *buf, size_t len, const char *const *frags)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_parse(buf, len, FNAME, &err);
    if (m) {
        model_free(m);
        fail_msg("accepted a file that should be rejected (wanted '%s')", frags[0] ? frags[0] : "");
    }
    if (getenv("TRACC_TEST_VERBOSE")) fprintf(stderr, "%s\n", err.s);   /* to read the messages */
    if (strncmp(err.s, FNAME ": ", strlen(FNAME) + 2) != 0) fail_msg("message lacks the file: %s", err.s);
    if (!strstr(err.s, "expected")) fail_msg("message lacks 'expected': %s", err.s);
    for (; *frags; frags++)
        if (!strstr(err.s, *frags)) fail_msg("message lacks '%s': %s", *frags, err.s);
    sb_free(&err);
}
#define expect_reject(buf, len, ...) expect_reject_v((buf), (len), (const char *const[]){__VA_ARGS__, NULL})

/* A file split into its parsed header and its data, to corrupt one piece and join again. */
typedef struct {
    json_t *header;
    uint8_t *data;
    size_t data_len;
} Parts;

static Parts split(const uint8_t *buf, size_t len)
{
    Parts p;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    json_error_t je;
    p.header = json_loadb((const char *)buf + 8, (size_t)n, 0, &je);
    assert_non_null(p.header);
    p.data_len = len - 8 - (size_t)n;
    p.data = malloc(p.data_len + 64);
    memcpy(p.data, buf + 8 + n, p.data_len);
    return p;
}

static uint8_t *join_raw(const char *header, size_t hlen, const uint8_t *data, size_t dlen, size_t *len)
{
    *len = 8 + hlen + dlen;
    uint8_t *b = malloc(*len + 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (dlen) memcpy(b + 8 + hlen, data, dlen);
    return b;
}

static uint8_t *join(const Parts *p, size_t *len)
{
    char *h = json_dumps(p->header, JSON_COMPACT | JSON_SORT_KEYS);
    uint8_t *b = join_raw(h, strlen(h), p->data, p->data_len, len);
    free(h);
    return b;
}

static void parts_free(Parts *p)
{
    json_decref(p->header);
    free(p->data);
}

static json_t *meta(Parts *p) { return json_object_get(p->header, "__metadata__"); }

/* Parse the JSON text of a metadata key (to edit it); put_meta_json stores it back. */
static json_t *get_meta_json(Parts *p, const char *key)
{
    json_t *v = json_loads(json_string_value(json_object_get(meta(p), key)), JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

static void put_meta_json(Parts *p, const char *key, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_object_set_new(meta(p), key, json_string(s));
    free(s);
    json_decref(v);
}

static void set_meta_text(Parts *p, const char *key, const char *text)
{
    json_object_set_new(meta(p), key, json_string(text));
}

static json_t *entry(Parts *p, const char *name)
{
    json_t *e = json_object_get(p->header, name);
    assert_non_null(e);
    return e;
}

static void set_offsets(Parts *p, const char *name, long long b, long long e)
{
    json_object_set_new(entry(p, name), "data_offsets", json_pack("[I, I]", (json_int_t)b, (json_int_t)e));
}

static long long offset_of(Parts *p, const char *name, int which)
{
    return (long long)json_integer_value(json_array_get(json_object_get(entry(p, name), "data_offsets"),
                                                         (size_t)which));
}

/* Remove a tensor and its bytes, keeping every other tensor contiguous. */
static void drop_tensor(Parts *p, const char *name)
{
    long long b = offset_of(p, name, 0), e = offset_of(p, name, 1);
    memmove(p->data + b, p->data + e, p->data_len - (size_t)e);
    p->data_len -= (size_t)(e - b);
    json_object_del(p->header, name);
    const char *key;
    json_t *v;
    json_object_foreach(p->header, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        long long tb = offset_of(p, key, 0), te = offset_of(p, key, 1);
        if (tb >= e) set_offsets(p, key, tb - (e - b), te - (e - b));
    }
}

/* Append a tensor with the given shape and float contents at the end of the data. */
static void add_tensor(Parts *p, const char *name, json_t *shape, const float *vals, size_t n)
{
    p->data = realloc(p->data, p->data_len + n * 4 + 64);
    memcpy(p->data + p->data_len, vals, n * 4);
    json_object_set_new(p->header, name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                                   "data_offsets", (json_int_t)p->data_len,
                                                   (json_int_t)(p->data_len + n * 4)));
    p->data_len += n * 4;
}

static uint8_t *g_valid;      /* the copy_prev model, serialized */
static size_t g_valid_len;

static int setup(void **state)
{
    (void)state;
    Model *m = hm_copy_prev();
    g_valid = serialize_or_die(m, &g_valid_len);
    model_free(m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(g_valid);
    return 0;
}

/* Apply one edit to a fresh copy of the valid file and check the rejection. */
#define EDIT_AND_EXPECT(edit, ...)                         \
    do {                                                   \
        Parts p = split(g_valid, g_valid_len);             \
        edit;                                              \
        size_t blen;                                       \
        uint8_t *b = join(&p, &blen);                      \
        expect_reject(b, blen, __VA_ARGS__);               \
        free(b);                                           \
        parts_free(&p);                                    \
    } while (0)

/* ---------------------------------------------------------------- round trip */

static void test_model_write_read_write_is_byte_identical(void **state)
{
    (void)state;
    Model *builders[3] = {hm_copy_prev(), hm_one_neuron(), hm_random(7, 2, 2, 3, 4, 6, 1, 0, 0.5)};
    for (int i = 0; i < 3; i++) {
        size_t l1, l2;
        uint8_t *b1 = serialize_or_die(builders[i], &l1);
        Model *m2 = parse_ok(b1, l1);
        uint8_t *b2 = serialize_or_die(m2, &l2);
        assert_int_equal(l1, l2);
        assert_memory_equal(b1, b2, l1);
        model_free(m2);
        free(b1);
        free(b2);
        model_free(builders[i]);
    }
}

static void test_model_read_gives_back_what_was_built(void **state)
{
    (void)state;
    Model *a = hm_copy_prev();
    size_t len;
    uint8_t *buf = serialize_or_die(a, &len);
    Model *b = parse_ok(buf, len);
    assert_memory_equal(&a->cfg, &b->cfg, sizeof a->cfg);
    assert_int_equal(a->num_params, b->num_params);
    assert_memory_equal(a->params_memory, b->params_memory, a->num_params * sizeof(float));
    assert_int_equal(b->bos, 3);
    assert_int_equal(b->pad, 4);
    for (int i = 0; i < 5; i++) assert_string_equal(a->vocab[i].u.s, b->vocab[i].u.s);
    assert_string_equal(b->output_name, "prev");
    assert_false(b->output_numerical);
    assert_string_equal(b->output_values[3].u.s, "-");
    for (int i = 0; i < 12; i++) assert_string_equal(a->residual[i], b->residual[i]);
    assert_true(json_equal(a->layers, b->layers));
    assert_string_equal(b->program, "# hand-built: the previous token\n");
    char hex[65];
    sha256_hex(b->program, strlen(b->program), hex);
    assert_string_equal(b->program_sha256, hex);
    assert_true(json_is_null(b->compiler));
    /* the typed pointers sit where the table says */
    assert_ptr_equal(b->params.W_Q, b->params_memory + model_find_tensor(b, "blocks.0.attn.W_Q")->offset);
    assert_ptr_equal(b->params.b_U, b->params_memory + model_find_tensor(b, "unembed.b_U")->offset);
    model_free(a);
    model_free(b);
    free(buf);
}

static void test_model_header_is_padded_sorted_json_with_string_metadata(void **state)
{
    (void)state;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | g_valid[i];
    assert_int_equal(n % 8, 0);
    assert_int_equal(g_valid[8], '{');
    assert_int_equal(g_valid[8 + n - 1] == ' ' || g_valid[8 + n - 1] == '}', 1);
    Parts p = split(g_valid, g_valid_len);
    json_t *md = meta(&p);
    static const char *const keys[] = {"format", "format_version", "config", "vocab", "bos", "pad",
                                       "output", "residual", "layers", "program", "program_sha256",
                                       "compiler", "provenance"};
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) assert_true(json_is_string(json_object_get(md, keys[i])));
    assert_string_equal(json_string_value(json_object_get(md, "format")), "tracc-model");
    assert_string_equal(json_string_value(json_object_get(md, "format_version")), "1");
    assert_string_equal(json_string_value(json_object_get(md, "bos")), "\"BOS\"");
    json_t *cfg = get_meta_json(&p, "config");
    assert_int_equal(json_integer_value(json_object_get(cfg, "n_ctx")), 5);
    assert_string_equal(json_string_value(json_object_get(cfg, "attention_dir")), "causal");
    assert_true(json_is_null(json_object_get(cfg, "normalization_type")));
    json_decref(cfg);
    /* 2 + 12 per block + 2 tensors */
    assert_int_equal(json_object_size(p.header), 1 + 16);
    parts_free(&p);
}

static void test_model_unknown_metadata_config_fields_and_optim_tensors_survive(void **state)
{
    (void)state;
    Parts p = split(g_valid, g_valid_len);
    set_meta_text(&p, "zz_note", "kept verbatim");
    json_t *cfg = get_meta_json(&p, "config");
    json_object_set_new(cfg, "model_name", json_string("copy-prev"));
    put_meta_json(&p, "config", cfg);
    float st[3] = {1, 2, 3};
    add_tensor(&p, "optim.m.embed.W_E", json_pack("[i]", 3), st, 3);
    size_t len;
    uint8_t *b = join(&p, &len);
    Model *m = parse_ok(b, len);
    const ModelExtraTensor *e = model_find_extra_tensor(m, "optim.m.embed.W_E");
    assert_non_null(e);
    assert_int_equal(e->numel, 3);
    assert_true(e->data[2] == 3.0f);
    size_t l2;
    uint8_t *b2 = serialize_or_die(m, &l2);
    Parts q = split(b2, l2);
    assert_string_equal(json_string_value(json_object_get(meta(&q), "zz_note")), "kept verbatim");
    json_t *cfg2 = get_meta_json(&q, "config");
    assert_string_equal(json_string_value(json_object_get(cfg2, "model_name")), "copy-prev");
    json_decref(cfg2);
    assert_non_null(json_object_get(q.header, "optim.m.embed.W_E"));
    /* and that second file is itself a fixed point */
    Model *m3 = parse_ok(b2, l2);
    size_t l3;
    uint8_t *b3 = serialize_or_die(m3, &l3);
    assert_int_equal(l2, l3);
    assert_memory_equal(b2, b3, l2);
    model_free(m3);
    free(b3);
    parts_free(&q);
    free(b2);
    model_free(m);
    free(b);
    parts_free(&p);
}

static void test_model_save_is_atomic_and_load_reads_it_back(void **state)
{
    (void)state;
    char dir[] = "/tmp/tracc-test-model-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    Model *m = hm_one_neuron();
    StrBuf err;
    sb_init(&err);
    assert_int_equal(model_save(m, path, &err), 0);
    Model *back = model_load(path, &err);
    assert_non_null(back);
    assert_true(back->output_numerical);
    /* nothing but the file itself in the folder: the temporary was renamed */
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    assert_int_equal(n, 1);
    /* an invalid model is refused and leaves no file behind */
    Model *bad = hm_one_neuron();
    bad->bos = bad->pad;
    char path2[256];
    snprintf(path2, sizeof path2, "%s/bad.safetensors", dir);
    sb_clear(&err);
    assert_int_equal(model_save(bad, path2, &err), -1);
    assert_non_null(strstr(err.s, "pad"));
    assert_int_equal(access(path2, F_OK), -1);
    sb_clear(&err);
    snprintf(path2, sizeof path2, "%s/missing.safetensors", dir);
    assert_null(model_load(path2, &err));
    assert_non_null(strstr(err.s, "missing.safetensors: cannot open"));
    model_free(bad);
    model_free(back);
    model_free(m);
    sb_free(&err);
    unlink(path);
    rmdir(dir);
}

static void test_model_builder_rejects_bad_config_and_unset_metadata(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    ModelConfig c = {.n_layers = 1, .d_model = 0, .d_head = 1, .n_heads = 1, .d_mlp = 1, .d_vocab = 3,
                     .d_vocab_out = 1, .n_ctx = 3, .attn_scale = 1};
    assert_null(model_new(&c, &err));
    assert_non_null(strstr(err.s, "config.d_model: expected an integer >= 1, found 0"));
    c.d_model = 1 << 20;
    c.d_mlp = 1 << 20;
    c.n_layers = 1 << 10;
    sb_clear(&err);
    assert_null(model_new(&c, &err));
    assert_non_null(strstr(err.s, "parameters"));
    c = (ModelConfig){.n_layers = 1, .d_model = 2, .d_head = 1, .n_heads = 1, .d_mlp = 1, .d_vocab = 3,
                      .d_vocab_out = 1, .n_ctx = 3, .attn_scale = 1};
    Model *m = model_new(&c, &err);
    assert_non_null(m);
    uint8_t *buf;
    size_t len;
    sb_clear(&err);
    assert_int_equal(model_serialize(m, &buf, &len, &err), -1);
    assert_non_null(strstr(err.s, "vocab"));
    /* a NaN weight is refused on the way out too */
    Value v[3] = {val_str("x"), val_str("BOS"), val_str("PAD")};
    model_set_vocab(m, v, 1, 2);
    model_set_output(m, "o", 1, NULL);
    const char *labels[2] = {"o", "one"};
    model_set_residual(m, labels);
    m->params.W_U[1] = NAN;
    sb_clear(&err);
    assert_int_equal(model_serialize(m, &buf, &len, &err), -1);
    assert_non_null(strstr(err.s, "unembed.W_U: expected finite values, found nan at [1, 0]"));
    m->params.W_U[1] = 0;
    sb_clear(&err);
    assert_int_equal(model_serialize(m, &buf, &len, &err), 0);
    free(buf);
    assert_int_equal(model_set_meta(m, "vocab", "x"), -1);
    model_free(m);
    sb_free(&err);
}

static void test_model_layout_matches_tracr_parameter_count(void **state)
{
    (void)state;
    /* The paper's Counter at N = 46 (Tracr compiles it to 187,334 parameters without an unembed:
     * tests/data/tracr_sizes.tsv, row jain_countA 46). */
    ModelConfig c = {.n_layers = 3, .d_model = 155, .d_head = 48, .n_heads = 1, .d_mlp = 94,
                     .d_vocab = 11, .d_vocab_out = 47, .n_ctx = 47, .attn_scale = 1};
    size_t n = model_layout(&c, NULL);
    assert_int_equal(n, 187334 + 155 * 47 + 47);
    assert_int_equal(model_num_tensors(&c), 2 + 12 * 3 + 2);
    ModelTensor *t = calloc((size_t)model_num_tensors(&c), sizeof *t);
    model_layout(&c, t);
    assert_string_equal(t[2].name, "blocks.0.attn.W_Q");
    assert_string_equal(t[3].name, "blocks.1.attn.W_Q");
    assert_int_equal(t[2].shape[1], 155);
    size_t end = t[model_num_tensors(&c) - 1].offset + t[model_num_tensors(&c) - 1].numel;
    assert_int_equal(end, n);
    /* a gradient block of the same layout gets the same pointers, shifted */
    float *block = calloc(n, sizeof(float));
    ModelParams p;
    model_point_params(&p, block, &c);
    assert_ptr_equal(p.W_K, block + t[2 + 2 * 3].offset);
    assert_ptr_equal(p.b_U, block + n - 47);
    free(block);
    free(t);
}

static void test_model_encode_matches_tokens_by_text(void **state)
{
    (void)state;
    ModelConfig c = {.n_layers = 0, .d_model = 1, .d_vocab = 5, .d_vocab_out = 1, .n_ctx = 4,
                     .attn_scale = 1};
    Model *m = hm_new_or_die(&c);
    Value v[5] = {val_int(3), val_int(-1), val_str("x"), val_str("BOS"), val_str("PAD")};
    model_set_vocab(m, v, 3, 4);
    StrBuf err;
    sb_init(&err);
    int32_t ids[8];
    char *ok[3] = {"3", "x", "-1"};
    assert_int_equal(model_encode(m, ok, 3, ids, &err), 0);
    assert_int_equal(ids[0], 3);
    assert_int_equal(ids[1], 0);
    assert_int_equal(ids[2], 2);
    assert_int_equal(ids[3], 1);
    char *unknown[1] = {"z"};
    assert_int_equal(model_encode(m, unknown, 1, ids, &err), -1);
    assert_string_equal(err.s, "token 'z' is not in the vocab {3, -1, x}");
    sb_clear(&err);
    char *bos[1] = {"BOS"};
    assert_int_equal(model_encode(m, bos, 1, ids, &err), -1);
    assert_non_null(strstr(err.s, "'BOS' is BOS"));
    sb_clear(&err);
    char *pad[1] = {"PAD"};
    assert_int_equal(model_encode(m, pad, 1, ids, &err), -1);
    assert_non_null(strstr(err.s, "'PAD' is PAD"));
    sb_clear(&err);
    char *toolong[4] = {"x", "x", "x", "x"};
    assert_int_equal(model_encode(m, toolong, 4, ids, &err), -1);
    assert_string_equal(err.s, "4 tokens, longer than max_len 3 (the model's n_ctx 4 less BOS)");
    sb_clear(&err);
    assert_int_equal(model_encode(m, NULL, 0, ids, &err), -1);
    assert_non_null(strstr(err.s, "empty input"));
    sb_free(&err);
    model_free(m);
}

/* ---------------------------------------------------------------- corrupt corpus */

static void test_corrupt_truncated_at_every_offset(void **state)
{
    (void)state;
    for (size_t cut = 0; cut < g_valid_len; cut++) {
        uint8_t *b = malloc(cut + 1);
        memcpy(b, g_valid, cut);
        StrBuf err;
        sb_init(&err);
        Model *m = model_parse(b, cut, FNAME, &err);
        if (m) fail_msg("truncated at %zu: accepted", cut);
        assert_int_equal(strncmp(err.s, FNAME ": ", strlen(FNAME) + 2), 0);
        if (cut < 8) assert_non_null(strstr(err.s, "header length: expected 8 bytes"));
        sb_free(&err);
        free(b);
    }
    /* and a truncation inside the tensor data names the tensor that runs off the end */
    expect_reject(g_valid, g_valid_len - 4, "unembed", "is the file truncated?");
}

static void test_corrupt_flipped_header_bytes_never_crash(void **state)
{
    (void)state;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | g_valid[i];
    static const uint8_t masks[] = {0x01, 0x20, 0x80};
    int rejected = 0, total = 0;
    uint8_t *b = malloc(g_valid_len);
    for (size_t at = 0; at < 8 + n; at++)
        for (size_t k = 0; k < ARRAY_LEN(masks); k++) {
            memcpy(b, g_valid, g_valid_len);
            b[at] ^= masks[k];
            StrBuf err;
            sb_init(&err);
            Model *m = model_parse(b, g_valid_len, FNAME, &err);
            total++;
            if (m) {
                model_free(m);   /* e.g. a flipped letter inside a label: still a valid model */
            } else {
                rejected++;
                if (strncmp(err.s, FNAME ": ", strlen(FNAME) + 2) != 0) fail_msg("bad message: %s", err.s);
            }
            sb_free(&err);
        }
    free(b);
    /* Most flips break the structure; those that do not change only free text. */
    assert_true(rejected > total / 2);
}

static void test_corrupt_header_length_past_the_end_or_huge(void **state)
{
    (void)state;
    uint8_t *b = malloc(g_valid_len);
    memcpy(b, g_valid, g_valid_len);
    uint64_t huge = (uint64_t)1 << 60;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(huge >> (8 * i));
    expect_reject(b, g_valid_len, "header length", "found 1152921504606846976");
    uint64_t past = g_valid_len - 8 + 1;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(past >> (8 * i));
    expect_reject(b, g_valid_len, "header length: expected at most");
    free(b);
}

static void test_corrupt_header_not_json(void **state)
{
    (void)state;
    size_t len;
    const char *texts[] = {"not json at all!", "{\"a\": 1", "[1, 2, 3]       ", "{\"x\":1,\"x\":2}  "};
    const char *frags[] = {"header: expected JSON", "header: expected JSON", "header: expected a JSON object",
                           "header: expected JSON"};
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        uint8_t *b = join_raw(texts[i], strlen(texts[i]), NULL, 0, &len);
        expect_reject(b, len, frags[i]);
        free(b);
    }
    uint8_t *b = join_raw("{}", 2, NULL, 0, &len);
    expect_reject(b, len, "__metadata__", "not a tracc model file");
    free(b);
}

static void test_corrupt_offsets_overlap_gap_out_of_range(void **state)
{
    (void)state;
    EDIT_AND_EXPECT({
        long long b0 = offset_of(&p, "unembed.b_U", 0);
        long long e0 = offset_of(&p, "unembed.b_U", 1);
        set_offsets(&p, "unembed.b_U", b0 - 4, e0 - 4);
    }, "unembed.b_U", "overlapping", "data_offsets");
    EDIT_AND_EXPECT({
        long long b0 = offset_of(&p, "unembed.b_U", 0);
        long long e0 = offset_of(&p, "unembed.b_U", 1);
        set_offsets(&p, "unembed.b_U", b0 + 8, e0 + 8);
        p.data_len += 8;
    }, "unembed.b_U", "a gap of 8 bytes");
    EDIT_AND_EXPECT({
        long long b0 = offset_of(&p, "unembed.b_U", 0);
        long long e0 = offset_of(&p, "unembed.b_U", 1);
        set_offsets(&p, "unembed.b_U", b0 + 1000000, e0 + 1000000);
    }, "unembed.b_U", "data_offsets: expected an end within");
    EDIT_AND_EXPECT(set_offsets(&p, "embed.W_E", 8, 4), "embed.W_E", "0 <= begin <= end");
    EDIT_AND_EXPECT(set_offsets(&p, "embed.W_E", -4, 4), "embed.W_E", "data_offsets");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "data_offsets", json_string("0-4")),
                    "embed.W_E", "data_offsets");
    EDIT_AND_EXPECT({
        long long e0 = offset_of(&p, "unembed.b_U", 1);
        set_offsets(&p, "unembed.b_U", offset_of(&p, "unembed.b_U", 0), e0 - 4);
    }, "unembed.b_U", "expected 16 bytes", "found 12 bytes");
    /* trailing bytes after the last tensor */
    EDIT_AND_EXPECT(p.data_len += 4, "tensor data", "4 bytes after the last tensor");
}

static void test_corrupt_dtype_and_shape(void **state)
{
    (void)state;
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "blocks.0.mlp.W_in"), "dtype", json_string("F16")),
                    "blocks.0.mlp.W_in: dtype: expected \"F32\", found \"F16\"");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "blocks.0.mlp.W_in"), "dtype", json_integer(32)),
                    "blocks.0.mlp.W_in: dtype");
    EDIT_AND_EXPECT(json_object_del(entry(&p, "blocks.0.mlp.W_in"), "dtype"), "blocks.0.mlp.W_in", "dtype");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "blocks.0.mlp.W_in"), "extra", json_true()),
                    "blocks.0.mlp.W_in", "'extra'");
    EDIT_AND_EXPECT(json_object_set_new(p.header, "embed.W_E", json_integer(3)), "embed.W_E", "an object");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "shape", json_pack("[i, i]", -5, -12)),
                    "embed.W_E: shape");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "shape", json_pack("[f, i]", 5.0, 12)),
                    "embed.W_E: shape");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "shape",
                                        json_pack("[i,i,i,i,i,i,i,i,i]", 1, 1, 1, 1, 1, 1, 1, 5, 12)),
                    "embed.W_E: shape");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "shape",
                                        json_pack("[I, I, I]", (json_int_t)1 << 40, (json_int_t)1 << 40,
                                                  (json_int_t)1 << 40)),
                    "embed.W_E: shape: expected a size that fits");
    /* a shape with the right byte count but the wrong arrangement for the config */
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "embed.W_E"), "shape", json_pack("[i, i]", 12, 5)),
                    "embed.W_E: expected a tensor of shape [5, 12] (d_vocab, d_model), found shape [12, 5]");
    EDIT_AND_EXPECT(json_object_set_new(entry(&p, "blocks.0.attn.W_Q"), "shape", json_pack("[i, i]", 12, 5)),
                    "blocks.0.attn.W_Q: expected a tensor of shape [1, 12, 5] (n_heads, d_model, d_head)");
}

static void test_corrupt_shapes_disagree_with_config(void **state)
{
    (void)state;
    const char *fields[] = {"n_heads", "d_head", "d_mlp", "d_model", "n_ctx", "d_vocab_out"};
    const int values[] = {2, 6, 3, 13, 6, 5};
    const char *tensors[] = {"blocks.0.attn.W_Q", "blocks.0.attn.W_Q", "blocks.0.mlp.W_in", "",
                             "pos_embed.W_pos", "unembed.W_U"};
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        Parts p = split(g_valid, g_valid_len);
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, fields[i], json_integer(values[i]));
        put_meta_json(&p, "config", cfg);
        size_t len;
        uint8_t *b = join(&p, &len);
        /* d_model and d_vocab_out also size metadata arrays, which are checked first */
        if (!strcmp(fields[i], "d_model")) expect_reject(b, len, "residual: expected an array of 13 labels");
        else if (!strcmp(fields[i], "d_vocab_out")) expect_reject(b, len, "output.values");
        else expect_reject(b, len, tensors[i], "expected a tensor of shape");
        free(b);
        parts_free(&p);
    }
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "n_layers", json_integer(2));
        put_meta_json(&p, "config", cfg);
    }, "layers: expected an array of one entry per block (config.n_layers 2)");
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "n_layers", json_integer(2));
        put_meta_json(&p, "config", cfg);
        set_meta_text(&p, "layers", "[]");
    }, "blocks.1.attn.W_Q: expected a tensor of shape [1, 12, 5] (n_heads, d_model, d_head), found none");
    /* Sizes far beyond the file are reported, never allocated. */
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "n_layers", json_integer(65536));
        json_object_set_new(cfg, "d_mlp", json_integer(4096));
        put_meta_json(&p, "config", cfg);
        set_meta_text(&p, "layers", "[]");
    }, "blocks.1.attn.W_Q: expected a tensor of shape [1, 12, 5] (n_heads, d_model, d_head), found none");
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "d_mlp", json_integer(1 << 24));
        put_meta_json(&p, "config", cfg);
    }, "blocks.0.mlp.W_in: expected a tensor of shape [12, 16777216] (d_model, d_mlp), found shape [12, 1]");
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "n_layers", json_integer(65537));
        put_meta_json(&p, "config", cfg);
    }, "config.n_layers: expected at most 65536, found 65537");
    EDIT_AND_EXPECT({
        json_t *cfg = get_meta_json(&p, "config");
        json_object_set_new(cfg, "d_model", json_integer(2000000000));
        json_object_set_new(cfg, "d_mlp", json_integer(2000000000));
        put_meta_json(&p, "config", cfg);
    }, "config: expected at most 68719476736 parameters");
}

static void test_corrupt_missing_and_unknown_tensors(void **state)
{
    (void)state;
    static const char *const names[] = {"embed.W_E", "pos_embed.W_pos", "blocks.0.attn.b_K", "blocks.0.mlp.W_out",
                                        "unembed.W_U", "unembed.b_U"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        Parts p = split(g_valid, g_valid_len);
        drop_tensor(&p, names[i]);
        size_t len;
        uint8_t *b = join(&p, &len);
        expect_reject(b, len, names[i], "found none (the tensor is missing)");
        free(b);
        parts_free(&p);
    }
    float one = 1;
    EDIT_AND_EXPECT(add_tensor(&p, "blocks.0.attn.W_X", json_pack("[i]", 1), &one, 1), "blocks.0.attn.W_X",
                    "unknown tensor");
    EDIT_AND_EXPECT(add_tensor(&p, "blocks.1.attn.W_Q", json_pack("[i]", 1), &one, 1), "blocks.1.attn.W_Q",
                    "unknown tensor");
}

static void test_corrupt_non_finite_weights(void **state)
{
    (void)state;
    float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *what[3] = {"found nan at [0, 1, 2]", "found inf at [0, 1, 2]", "found -inf at [0, 1, 2]"};
    for (int i = 0; i < 3; i++) {
        EDIT_AND_EXPECT({
            long long b0 = offset_of(&p, "blocks.0.attn.W_Q", 0);
            memcpy(p.data + b0 + 4 * (1 * 5 + 2), &bad[i], 4);
        }, "blocks.0.attn.W_Q: expected finite values", what[i]);
    }
    float nanv = NAN;
    EDIT_AND_EXPECT(add_tensor(&p, "optim.v", json_pack("[i]", 1), &nanv, 1), "optim.v: expected finite values");
}

static void test_corrupt_metadata_format_and_config(void **state)
{
    (void)state;
    EDIT_AND_EXPECT(json_object_set_new(p.header, "__metadata__", json_integer(1)), "__metadata__", "an object");
    EDIT_AND_EXPECT(json_object_set_new(meta(&p), "vocab", json_pack("[s]", "a")), "__metadata__: vocab",
                    "expected a string");
    EDIT_AND_EXPECT(set_meta_text(&p, "format", "gguf"), "format: expected \"tracc-model\", found \"gguf\"");
    EDIT_AND_EXPECT(json_object_del(meta(&p), "format"), "format", "missing");
    EDIT_AND_EXPECT(set_meta_text(&p, "format_version", "2"), "format_version: expected \"1\"");
    EDIT_AND_EXPECT(json_object_del(meta(&p), "config"), "config: expected a JSON text, found nothing");
    EDIT_AND_EXPECT(set_meta_text(&p, "config", "{n_layers: 1}"), "config: expected a JSON text, found invalid JSON");
    EDIT_AND_EXPECT(set_meta_text(&p, "config", "[1]"), "config: expected a JSON object");
    static const struct {
        const char *key;
        const char *json;
        const char *frag;
    } cases[] = {
        {"n_layers", "-1", "config.n_layers: expected an integer >= 0, found -1"},
        {"d_model", "\"12\"", "config.d_model: expected an integer >= 1, found \"12\""},
        {"d_model", "1e3", "config.d_model"},
        {"d_vocab", "1", "config.d_vocab: expected an integer >= 2"},
        {"n_ctx", "99999999999", "config.n_ctx"},
        {"act_fn", "\"gelu\"", "config.act_fn: expected \"relu\", found \"gelu\""},
        {"normalization_type", "\"LN\"", "config.normalization_type: expected null"},
        {"attention_dir", "\"sideways\"", "config.attention_dir"},
        {"use_attn_scale", "1", "config.use_attn_scale: expected true or false"},
        {"attn_scale", "0", "config.attn_scale: expected a finite number > 0"},
        {"attn_scale", "\"2\"", "config.attn_scale"},
        {"d_head", NULL, "config.d_head: expected an integer >= 0, found nothing"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        EDIT_AND_EXPECT({
            json_t *cfg = get_meta_json(&p, "config");
            if (cases[i].json) json_object_set_new(cfg, cases[i].key, json_loads(cases[i].json, JSON_DECODE_ANY, NULL));
            else json_object_del(cfg, cases[i].key);
            put_meta_json(&p, "config", cfg);
        }, cases[i].frag);
    }
}

static void test_corrupt_metadata_vocab_output_residual(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *text;
        const char *frag;
    } cases[] = {
        {"vocab", "[\"a\",\"b\",\"c\",\"BOS\"]", "vocab: expected an array of 5 tokens (config.d_vocab)"},
        {"vocab", "[\"a\",\"b\",true,\"BOS\",\"PAD\"]", "vocab[2]: expected a string or an integer, found true"},
        {"vocab", "[\"a\",\"b\",1.5,\"BOS\",\"PAD\"]", "vocab[2]"},
        {"vocab", "[\"a\",\"\",\"c\",\"BOS\",\"PAD\"]", "vocab[1]"},
        {"vocab", "[\"3\",\"b\",3,\"BOS\",\"PAD\"]", "vocab[2]: expected a token unlike vocab[0], found 3"},
        {"vocab", "{\"a\": 1}", "vocab: expected an array"},
        {"bos", "\"START\"", "bos: expected one of the tokens in vocab, found \"START\""},
        {"bos", "3", "bos: expected one of the tokens in vocab, found 3"},
        {"pad", "\"BOS\"", "pad: expected a token other than bos"},
        {"pad", "PAD", "pad: expected a JSON text, found invalid JSON"},
        {"output", "[]", "output: expected an object"},
        {"output", "{\"name\":\"prev\",\"encoding\":\"onehot\",\"values\":[]}", "output.encoding"},
        {"output", "{\"name\":3,\"encoding\":\"categorical\",\"values\":[]}", "output.name"},
        {"output", "{\"name\":\"prev\",\"encoding\":\"categorical\",\"values\":[\"a\"]}",
         "output.values: expected an array of 4 values (config.d_vocab_out)"},
        {"output", "{\"name\":\"prev\",\"encoding\":\"categorical\",\"values\":[\"a\",\"b\",null,\"-\"]}",
         "output.values[2]: expected a string, a number or a boolean, found null"},
        {"output", "{\"name\":\"prev\",\"encoding\":\"numerical\",\"values\":[]}",
         "config.d_vocab_out: expected 1 for a numerical output, found 4"},
        {"residual", "[\"a\"]", "residual: expected an array of 12 labels (config.d_model)"},
        {"residual", "[\"tokens:a\",\"tokens:b\",\"tokens:c\",\"tokens:BOS\",\"pos:0\",\"pos:1\",\"pos:2\",\"pos:3\","
                     "\"pos:4\",\"prev:a\",\"prev:b\",\"prev:a\"]",
         "residual[11]: expected a label unlike residual[9], found \"prev:a\""},
        {"residual", "[\"tokens:a\",\"tokens:b\",\"tokens:c\",\"tokens:BOS\",\"pos:0\",\"pos:1\",\"pos:2\",\"pos:3\","
                     "\"pos:4\",\"prev:a\",\"prev:b\",\"prev\"]",
         "residual[11]: expected the same encoding as residual[9] (prev:a)"},
        {"residual", "[\"tokens:a\",\"tokens:b\",\"tokens:c\",\"tokens:BOS\",\"pos:0\",\"pos:1\",\"pos:2\",\"pos:3\","
                     "\"pos:4\",\"prev:a\",\"prev:b\",\"\"]",
         "residual[11]: expected a label"},
        {"residual", "[\"tokens:a\",\"tokens:b\",\"tokens:c\",\"tokens:BOS\",\"pos:0\",\"pos:1\",\"pos:2\",\"pos:3\","
                     "\"pos:4\",\"prev:a\",\"prev:b\",5]",
         "residual[11]: expected a label"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) EDIT_AND_EXPECT(set_meta_text(&p, cases[i].key, cases[i].text), cases[i].frag);
    EDIT_AND_EXPECT(json_object_del(meta(&p), "residual"), "residual: expected a JSON text, found nothing");
    EDIT_AND_EXPECT(json_object_del(meta(&p), "bos"), "bos");
}

static void test_corrupt_metadata_layers_program_compiler(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *text;
        const char *frag;
    } cases[] = {
        {"layers", "{}", "layers: expected an array of one entry per block"},
        {"layers", "[{},{}]", "layers: expected an array of one entry per block"},
        {"layers", "[3]", "layers[0]: expected an object"},
        {"layers", "[{\"attn\":{}}]", "layers[0].attn: expected an array of heads"},
        {"layers", "[{\"attn\":[{\"head\":1}]}]", "layers[0].attn[0].head: expected an integer in 0..0"},
        {"layers", "[{\"attn\":[{\"op\":\"aggregate\"}]}]", "layers[0].attn[0].head"},
        {"layers", "[{\"attn\":[{\"head\":0,\"d_head\":6}]}]", "layers[0].attn[0].d_head: expected an integer in 0..5"},
        {"layers", "[{\"attn\":[{\"head\":0,\"query\":\"pos\"}]}]", "layers[0].attn[0].query: expected an array"},
        {"layers", "[{\"attn\":[{\"head\":0,\"op\":7}]}]", "layers[0].attn[0].op: expected a string"},
        {"layers", "[{\"mlp\":[{\"neurons\":[0,2]}]}]", "layers[0].mlp[0].neurons: expected [first, last)"},
        {"layers", "[{\"mlp\":[{\"neurons\":[1,0]}]}]", "layers[0].mlp[0].neurons"},
        {"layers", "[{\"mlp\":[{\"inputs\":[1]}]}]", "layers[0].mlp[0].inputs"},
        {"layers", "[{\"d_mlp\":2}]", "layers[0].d_mlp: expected an integer in 0..1"},
        {"program_sha256", "abc", "program_sha256: expected 64 lowercase hex digits"},
        {"program_sha256", "0000000000000000000000000000000000000000000000000000000000000000",
         "program_sha256: expected "},
        {"compiler", "3", "compiler: expected an object or null, found 3"},
        {"provenance", "\"x\"", "provenance: expected an object or null"},
        {"provenance", "{", "provenance: expected a JSON text, found invalid JSON"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) EDIT_AND_EXPECT(set_meta_text(&p, cases[i].key, cases[i].text), cases[i].frag);
    /* the program changed under its hash */
    EDIT_AND_EXPECT(set_meta_text(&p, "program", "output tokens;\n"), "program_sha256: expected",
                    "(the SHA-256 of program)");
}

static void test_model_optional_metadata_keys_default(void **state)
{
    (void)state;
    Parts p = split(g_valid, g_valid_len);
    const char *opt[] = {"layers", "program", "program_sha256", "compiler", "provenance"};
    for (size_t i = 0; i < ARRAY_LEN(opt); i++) json_object_del(meta(&p), opt[i]);
    size_t len;
    uint8_t *b = join(&p, &len);
    Model *m = parse_ok(b, len);
    assert_int_equal(json_array_size(m->layers), 0);
    assert_string_equal(m->program, "");
    assert_string_equal(m->program_sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_true(json_is_null(m->provenance));
    model_free(m);
    free(b);
    parts_free(&p);
}

static void test_model_accepts_unpadded_header_from_other_writers(void **state)
{
    (void)state;
    /* Other safetensors writers may not pad the header; tracc reads them and pads on write. */
    Parts p = split(g_valid, g_valid_len);
    char *h = json_dumps(p.header, JSON_INDENT(1));
    size_t len;
    uint8_t *b = join_raw(h, strlen(h), p.data, p.data_len, &len);
    Model *m = parse_ok(b, len);
    size_t l2;
    uint8_t *b2 = serialize_or_die(m, &l2);
    assert_int_equal(l2, g_valid_len);
    assert_memory_equal(b2, g_valid, l2);
    free(b2);
    model_free(m);
    free(b);
    free(h);
    parts_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_write_read_write_is_byte_identical),
        cmocka_unit_test(test_model_read_gives_back_what_was_built),
        cmocka_unit_test(test_model_header_is_padded_sorted_json_with_string_metadata),
        cmocka_unit_test(test_model_unknown_metadata_config_fields_and_optim_tensors_survive),
        cmocka_unit_test(test_model_save_is_atomic_and_load_reads_it_back),
        cmocka_unit_test(test_model_builder_rejects_bad_config_and_unset_metadata),
        cmocka_unit_test(test_model_layout_matches_tracr_parameter_count),
        cmocka_unit_test(test_model_encode_matches_tokens_by_text),
        cmocka_unit_test(test_model_optional_metadata_keys_default),
        cmocka_unit_test(test_model_accepts_unpadded_header_from_other_writers),
        cmocka_unit_test(test_corrupt_truncated_at_every_offset),
        cmocka_unit_test(test_corrupt_flipped_header_bytes_never_crash),
        cmocka_unit_test(test_corrupt_header_length_past_the_end_or_huge),
        cmocka_unit_test(test_corrupt_header_not_json),
        cmocka_unit_test(test_corrupt_offsets_overlap_gap_out_of_range),
        cmocka_unit_test(test_corrupt_dtype_and_shape),
        cmocka_unit_test(test_corrupt_shapes_disagree_with_config),
        cmocka_unit_test(test_corrupt_missing_and_unknown_tensors),
        cmocka_unit_test(test_corrupt_non_finite_weights),
        cmocka_unit_test(test_corrupt_metadata_format_and_config),
        cmocka_unit_test(test_corrupt_metadata_vocab_output_residual),
        cmocka_unit_test(test_corrupt_metadata_layers_program_compiler),
    };
    return cmocka_run_group_tests_name("model", tests, setup, teardown);
}
