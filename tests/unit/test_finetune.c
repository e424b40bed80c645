/* test_finetune.c — fine-tuning end to end on small compiled programs: the configuration's
 * checks (each naming its flag), task programs checked against the model (vocab, output
 * values, predicates), the data stream (a pure function of seed and step; spurious rates;
 * --at; --no-repeat; JSONL pairs; mixing), a compiled Counter fine-tuned to count another
 * letter to >= 99% accuracy, interrupt + resume giving bit-identical weights, a NaN stopping
 * the run with the last good checkpoint kept, and the output's provenance.
 * Runs from the repository root (reads rasp_examples/). */
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
#include <unistd.h>

#include "common/sha256.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "train/finetune.h"

/* ---------------------------------------------------------------- fixtures */

static char tmpdir[64];
static char model_path[128];   /* count_a compiled at max_len 10 */

static char *tmp_path(const char *name)
{
    char *p = malloc(256);
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static char *write_tmp(const char *name, const char *text)
{
    char *p = tmp_path(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_finetune_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file("rasp_examples/count_a.rasp", NULL, d);
    diag_free(d);
    if (!p) return -1;
    StrBuf err;
    sb_init(&err);
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    Model *m = asm_compile(p, &ao, NULL, &err);
    rasp_free(p);
    if (!m) return -1;
    snprintf(model_path, sizeof model_path, "%s/count_a.safetensors", tmpdir);
    int rc = model_save(m, model_path, &err);
    model_free(m);
    sb_free(&err);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static Model *load_model(void)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_load(model_path, &err);
    if (!m) fail_msg("%s", err.s);
    sb_free(&err);
    return m;
}

/* A configuration: the defaults, then "key", JSON text pairs; NULL ends the list. */
static json_t *config(const char *first, ...)
{
    json_t *c = ft_config_defaults();
    json_object_set_new(c, "model", json_string(model_path));
    va_list ap;
    va_start(ap, first);
    for (const char *k = first; k; k = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        json_error_t je;
        json_t *j = json_loads(v, JSON_DECODE_ANY, &je);
        if (!j) fail_msg("bad JSON for %s: %s", k, v);
        json_object_set_new(c, k, j);
    }
    va_end(ap);
    return c;
}

static void expect_bad_setting(json_t *c, const char *pattern)
{
    FtConfig cfg;
    StrBuf err;
    sb_init(&err);
    int rc = ft_config_parse(&cfg, c, &err);
    if (rc != -1) fail_msg("accepted a configuration that should fail with '%s'", pattern);
    if (!strstr(err.s, pattern)) fail_msg("message '%s' lacks '%s'", err.s, pattern);
    ft_config_free(&cfg);
    json_decref(c);
    sb_free(&err);
}

/* ---------------------------------------------------------------- configuration */

static void test_config_rejects_bad_settings_naming_the_flag(void **state)
{
    (void)state;
    const char *o = "\"/tmp/x.safetensors\"", *t = "\"rasp_examples/count_b.rasp\"";
    expect_bad_setting(config("output", o, "task", t, "lr", "0.0", NULL), "--lr must be > 0, got 0.0");
    expect_bad_setting(config("output", o, "task", t, "lr", "-1e-3", NULL), "--lr must be > 0");
    expect_bad_setting(config("output", o, "task", t, "batch", "0", NULL), "--batch must be a positive integer, got 0");
    expect_bad_setting(config("output", o, "task", t, "steps", "-1", NULL), "--steps must be a non-negative integer");
    expect_bad_setting(config("output", o, "task", t, "optimizer", "\"adam\"", NULL),
                       "--optimizer must be sgd or adamw, got 'adam'");
    expect_bad_setting(config("output", o, "task", t, "schedule", "\"linear\"", NULL), "--schedule must be");
    expect_bad_setting(config("output", o, "task", t, "momentum", "1.0", NULL), "--momentum must be in [0, 1)");
    expect_bad_setting(config("output", o, "task", t, "warmup", "5000", NULL),
                       "--warmup must be from 0 to --steps (1000), got 5000");
    expect_bad_setting(config("output", o, "task", t, "min_lr_ratio", "2.0", NULL), "--min-lr-ratio");
    expect_bad_setting(config("output", o, "task", t, "logit_scale", "0.0", NULL), "--logit-scale must be > 0");
    expect_bad_setting(config("output", o, "task", t, "spurious", "\"p.rasp\"", NULL), "--spurious needs --spurious-rate");
    expect_bad_setting(config("output", o, "task", t, "spurious_rate", "0.5", NULL), "--spurious-rate needs --spurious");
    expect_bad_setting(config("output", o, "task", t, "spurious", "\"p.rasp\"", "spurious_rate", "1.5", NULL),
                       "--spurious-rate must be a number from 0 to 1");
    expect_bad_setting(config("output", o, NULL), "no training data");
    expect_bad_setting(config("output", o, "task", t, "data", "\"d.jsonl\"", NULL), "either --task or --data");
    expect_bad_setting(config("task", t, NULL), "no output file");
    expect_bad_setting(config("output", o, "task", t, "eval", "[{\"name\": \"a b\", \"program\": \"x\"}]", NULL),
                       "--eval a b");
    expect_bad_setting(config("output", o, "task", t, "bogus", "1", NULL), "unknown key 'bogus'");
    FtConfig cfg;
    StrBuf err;
    sb_init(&err);
    json_t *c = config("output", o, "task", t, NULL);
    assert_int_equal(ft_config_parse(&cfg, c, &err), 0);
    assert_true(cfg.opt.lr == 1e-3 && cfg.batch == 96 && cfg.opt.kind == OPTIM_SGD && cfg.logit_scale == 10);
    ft_config_free(&cfg);
    json_decref(c);
    sb_free(&err);
}

/* A preset sits under the flags whatever their order; jain2023 derives its warmup from
 * --steps and scores --at 1; every key's source is recorded and named in messages. */
static void test_preset_under_the_flags_with_sources(void **state)
{
    (void)state;
    json_t *given = json_pack("{s:I, s:i}", "steps", (json_int_t)100, "batch", 8), *src = NULL;
    json_t *c = ft_config_compose(given, "jain2023", &src);
    assert_non_null(c);
    assert_int_equal(json_integer_value(json_object_get(c, "steps")), 100);
    assert_int_equal(json_integer_value(json_object_get(c, "warmup")), 20);   /* 20% of --steps */
    assert_int_equal(json_integer_value(json_object_get(c, "batch")), 8);     /* the flag wins */
    assert_int_equal(json_array_size(json_object_get(c, "at")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(c, "at"), 0)), 1);
    assert_true(json_real_value(json_object_get(c, "init_noise")) == 1e-3);
    assert_string_equal(json_string_value(json_object_get(src, "steps")), "flag");
    assert_string_equal(json_string_value(json_object_get(src, "batch")), "flag");
    assert_string_equal(json_string_value(json_object_get(src, "momentum")), "preset jain2023");
    assert_string_equal(json_string_value(json_object_get(src, "warmup")), "preset jain2023: 20% of --steps");
    assert_string_equal(json_string_value(json_object_get(src, "lr")), "default");
    json_decref(c);
    json_decref(src);
    /* no --steps: the paper's 2000 of 10000; an explicit --warmup or --at wins */
    json_decref(given);
    given = json_pack("{s:[i,i]}", "at", 0, 2);
    c = ft_config_compose(given, "jain2023", NULL);
    assert_int_equal(json_integer_value(json_object_get(c, "warmup")), 2000);
    assert_int_equal(json_array_size(json_object_get(c, "at")), 2);
    json_decref(c);
    json_decref(given);
    assert_null(ft_config_compose(NULL, "jain2024", NULL));
    /* a bad value the user did not give says where it came from */
    json_t *cf = config("output", "\"/tmp/x.safetensors\"", "task", "\"rasp_examples/count_b.rasp\"", "steps", "10",
                        "warmup", "20", NULL);
    json_t *sources = json_pack("{s:s, s:s}", "warmup", "preset jain2023: 20% of --steps", "steps", "default");
    FtConfig cfg;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(ft_config_parse_sourced(&cfg, cf, sources, &err), -1);
    assert_string_equal(err.s, "--warmup must be from 0 to --steps (10, the default), got 20 (from --preset "
                               "jain2023: 20% of --steps)");
    ft_config_free(&cfg);
    json_decref(cf);
    json_decref(sources);
    sb_free(&err);
}

/* --stop-when NAME:ACC (no shell quoting) means NAME>=ACC */
static void test_stop_when_forms(void **state)
{
    (void)state;
    char name[64];
    double a = -1, b = -1;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(ft_parse_stop_when("pt:90%", name, sizeof name, &a, &err), 0);
    assert_string_equal(name, "pt");
    assert_int_equal(ft_parse_stop_when("pt>=0.9", name, sizeof name, &b, &err), 0);
    assert_true(a == b && a == 0.9);
    assert_int_equal(ft_parse_stop_when("ft.1:1", name, sizeof name, &a, &err), 0);
    assert_string_equal(name, "ft.1");
    assert_true(a == 1);
    assert_int_equal(ft_parse_stop_when("pt=0.9", name, sizeof name, &a, &err), -1);
    assert_non_null(strstr(err.s, "expected NAME:ACC"));
    sb_clear(&err);
    assert_int_equal(ft_parse_stop_when(":0.9", name, sizeof name, &a, &err), -1);
    sb_clear(&err);
    assert_int_equal(ft_parse_stop_when("pt:1.5", name, sizeof name, &a, &err), -1);
    assert_non_null(strstr(err.s, "ACC must be a number from 0 to 1"));
    sb_free(&err);
}

static void test_eval_spec_parses_name_program_and_spurious(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    json_t *e = ft_parse_eval_spec("ft0=rasp_examples/count_b.rasp,spurious=p.rasp,rate=0", &err);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "name")), "ft0");
    assert_string_equal(json_string_value(json_object_get(e, "program")), "rasp_examples/count_b.rasp");
    assert_string_equal(json_string_value(json_object_get(e, "spurious")), "p.rasp");
    assert_true(json_real_value(json_object_get(e, "rate")) == 0.0);
    json_decref(e);
    e = ft_parse_eval_spec("pt=x.rasp", &err);
    assert_true(json_is_null(json_object_get(e, "spurious")));
    json_decref(e);
    assert_null(ft_parse_eval_spec("x.rasp", &err));
    assert_non_null(strstr(err.s, "expected NAME=FILE.rasp"));
    sb_clear(&err);
    assert_null(ft_parse_eval_spec("a=x.rasp,rate=2", &err));
    assert_non_null(strstr(err.s, "rate must be a number from 0 to 1"));
    sb_clear(&err);
    assert_null(ft_parse_eval_spec("a=x.rasp,seed=2", &err));
    assert_non_null(strstr(err.s, "unknown part 'seed=2'"));
    sb_free(&err);
}

/* ---------------------------------------------------------------- programs against the model */

static void test_task_with_another_vocab_names_both_sets(void **state)
{
    (void)state;
    Model *m = load_model();
    char *p = write_tmp("xy.rasp", "vocab {x, y};\nmax_len 4;\noutput tokens == \"x\";\n");
    DataProgram dp;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(data_program_load(&dp, p, "--task", DATA_TARGET, m, &err), -1);
    assert_non_null(strstr(err.s, "--task"));
    assert_non_null(strstr(err.s, "its vocab {x, y} differs from the model's {a, b, c, d, e, f, g, h, i}"));
    data_program_free(&dp);
    free(p);
    sb_free(&err);
    model_free(m);
}

static void test_task_output_values_must_be_the_models(void **state)
{
    (void)state;
    Model *m = load_model();
    /* outputs letters, the model outputs counts */
    char *p = write_tmp("letters.rasp", "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 4;\noutput tokens;\n");
    DataProgram dp;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(data_program_load(&dp, p, "--task", DATA_TARGET, m, &err), -1);
    assert_non_null(strstr(err.s, "its output values {a, b, c, d, e, f, g, h, i} are not all among the model's "
                                  "output values {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}"));
    data_program_free(&dp);
    /* a predicate must be boolean */
    assert_int_equal(data_program_load(&dp, "rasp_examples/count_b.rasp", "--spurious", DATA_PREDICATE, m, &err), -1);
    assert_non_null(strstr(err.s, "must be boolean"));
    data_program_free(&dp);
    /* an unreadable file */
    sb_clear(&err);
    assert_int_equal(data_program_load(&dp, "/nonexistent/x.rasp", "--task", DATA_TARGET, m, &err), -1);
    assert_non_null(strstr(err.s, "--task /nonexistent/x.rasp: cannot read"));
    data_program_free(&dp);
    /* a program with errors shows them */
    char *bad = write_tmp("bad.rasp", "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 4;\noutput nothing;\n");
    sb_clear(&err);
    assert_int_equal(data_program_load(&dp, bad, "--task", DATA_TARGET, m, &err), -1);
    assert_non_null(strstr(err.s, "the program has errors"));
    assert_non_null(strstr(err.s, "bad.rasp:3:"));
    data_program_free(&dp);
    free(bad);
    free(p);
    sb_free(&err);
    model_free(m);
}

/* ---------------------------------------------------------------- the data stream */

static DataSpec spec_of(const char *task, const int *at, int nat)
{
    DataSpec s;
    memset(&s, 0, sizeof s);
    s.task = task;
    s.len_min = s.len_max = 10;
    s.at = at;
    s.nat = nat;
    s.task_flag = "--task";
    return s;
}

static int count_tok(const DataBatch *b, int seq, int32_t row)
{
    int n = 0;
    for (int t = 1; t < b->lens[seq]; t++) n += b->tokens[(size_t)seq * b->T + t] == row;
    return n;
}

static void test_batches_are_a_pure_function_of_seed_and_step(void **state)
{
    (void)state;
    Model *m = load_model();
    int at[1] = {1};
    DataSpec s = spec_of("rasp_examples/count_b.rasp", at, 1);
    s.len_min = 3;
    StrBuf err;
    sb_init(&err);
    DataGen *g = data_gen_new(&s, m, &err), *g2 = data_gen_new(&s, m, &err);
    assert_non_null(g);
    DataBatch a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    assert_int_equal(data_gen_batch(g, 7, 3, 20, &a, &err), 0);
    assert_int_equal(data_gen_batch(g, 7, 4, 20, &c, &err), 0);   /* another step in between */
    assert_int_equal(data_gen_batch(g2, 7, 3, 20, &b, &err), 0);
    assert_int_equal(a.T, b.T);
    assert_memory_equal(a.tokens, b.tokens, sizeof(int32_t) * 20 * (size_t)a.T);
    assert_memory_equal(a.target, b.target, sizeof(int32_t) * (size_t)a.R);
    assert_true(c.T != a.T || memcmp(a.tokens, c.tokens, sizeof(int32_t) * 20 * (size_t)a.T) != 0);
    /* --at 1: one row per sequence at model position 2, labelled with count(b) */
    int32_t brow = (int32_t)model_token_row(m, "b");
    assert_int_equal(a.R, 20);
    for (int r = 0; r < a.R; r++) {
        assert_int_equal(a.seq[r], r);
        assert_int_equal(a.pos[r], 2);
        assert_int_equal(a.target[r], count_tok(&a, r, brow));   /* output column k is the value k */
        assert_true(a.lens[r] >= 4 && a.lens[r] <= 11);
        assert_int_equal(a.tokens[(size_t)r * a.T], m->bos);
    }
    data_batch_free(&a);
    data_batch_free(&b);
    data_batch_free(&c);
    data_gen_free(g);
    data_gen_free(g2);
    sb_free(&err);
    model_free(m);
}

static void test_spurious_rate_picks_the_side_of_the_predicate(void **state)
{
    (void)state;
    Model *m = load_model();
    int at[1] = {1};
    int32_t arow = (int32_t)model_token_row(m, "a"), brow = (int32_t)model_token_row(m, "b");
    StrBuf err;
    sb_init(&err);
    for (int side = 0; side <= 1; side++) {
        DataSpec s = spec_of("rasp_examples/count_b.rasp", at, 1);
        s.spurious = "rasp_examples/b_is_a_plus_1.rasp";
        s.spurious_rate = side;
        DataGen *g = data_gen_new(&s, m, &err);
        if (!g) fail_msg("%s", err.s);
        DataBatch b;
        memset(&b, 0, sizeof b);
        assert_int_equal(data_gen_batch(g, 1, 0, 200, &b, &err), 0);
        for (int i = 0; i < 200; i++)
            assert_int_equal(count_tok(&b, i, brow) == count_tok(&b, i, arow) + 1, side);
        data_batch_free(&b);
        data_gen_free(g);
    }
    /* a rate in between: about that fraction */
    DataSpec s = spec_of("rasp_examples/count_b.rasp", at, 1);
    s.spurious = "rasp_examples/b_is_a_plus_1.rasp";
    s.spurious_rate = 0.3;
    DataGen *g = data_gen_new(&s, m, &err);
    DataBatch b;
    memset(&b, 0, sizeof b);
    assert_int_equal(data_gen_batch(g, 1, 0, 2000, &b, &err), 0);
    int held = 0;
    for (int i = 0; i < 2000; i++) held += count_tok(&b, i, brow) == count_tok(&b, i, arow) + 1;
    assert_true(held > 500 && held < 700);
    data_batch_free(&b);
    data_gen_free(g);
    /* --spurious-others uniform: the other samples are drawn uniformly, so about
     * C + P (1 - C) hold, P the predicate's chance on a uniform input; the same rate with the
     * default draws them where it fails (exactly the ones above) */
    for (int k = 0; k < 2; k++) {
        double rate = k ? 0.3 : 0.0;
        s.spurious_rate = rate;
        s.spurious_uniform = 1;
        g = data_gen_new(&s, m, &err);
        if (!g) fail_msg("%s", err.s);
        double P = data_gen_spurious_fraction(g), want = rate + P * (1 - rate);
        assert_true(P > 0.05 && P < 0.5);
        memset(&b, 0, sizeof b);
        assert_int_equal(data_gen_batch(g, 1, 0, 4000, &b, &err), 0);
        held = 0;
        for (int i = 0; i < 4000; i++) held += count_tok(&b, i, brow) == count_tok(&b, i, arow) + 1;
        /* 4000 Bernoulli draws: 4 standard deviations, plus P's own sampling error */
        double sd = sqrt(want * (1 - want) / 4000) + sqrt(P * (1 - P) / 4000);
        if (fabs(held / 4000.0 - want) > 4 * sd) fail_msg("rate %g: %d of 4000 hold, expected %.3f", rate, held, want);
        data_batch_free(&b);
        data_gen_free(g);
    }
    s.spurious_uniform = 0;
    /* a predicate that never holds: rejected before any work */
    char *never = write_tmp("never.rasp", "vocab {a, b, c, d, e, f, g, h, i};\nmax_len 10;\n"
                                          "output tokens == \"a\" and tokens == \"b\";\n");
    s.spurious = never;
    s.spurious_rate = 0.8;
    sb_clear(&err);
    assert_null(data_gen_new(&s, m, &err));
    assert_non_null(strstr(err.s, "--spurious"));
    assert_non_null(strstr(err.s, "too rare to draw"));
    /* ... but a rate of 0 never needs that side */
    s.spurious_rate = 0;
    g = data_gen_new(&s, m, &err);
    assert_non_null(g);
    data_gen_free(g);
    free(never);
    sb_free(&err);
    model_free(m);
}

static void test_no_repeat_and_default_positions(void **state)
{
    (void)state;
    Model *m = load_model();
    DataSpec s = spec_of("rasp_examples/count_b.rasp", NULL, 0);
    s.len_min = s.len_max = 9;
    s.no_repeat = 1;
    StrBuf err;
    sb_init(&err);
    DataGen *g = data_gen_new(&s, m, &err);
    assert_non_null(g);
    DataBatch b;
    memset(&b, 0, sizeof b);
    assert_int_equal(data_gen_batch(g, 3, 0, 30, &b, &err), 0);
    for (int i = 0; i < 30; i++) {
        int seen[16] = {0};
        for (int t = 1; t <= 9; t++) assert_int_equal(seen[b.tokens[(size_t)i * b.T + t]]++, 0);
    }
    /* no --at: every position with a value (count_b has one everywhere) */
    assert_int_equal(b.R, 30 * 9);
    data_batch_free(&b);
    data_gen_free(g);
    s.len_max = s.len_min = 10;   /* 10 distinct tokens from 9 letters */
    assert_null(data_gen_new(&s, m, &err));
    assert_non_null(strstr(err.s, "--no-repeat"));
    s.no_repeat = 0;
    int at[1] = {10};
    s.at = at;
    s.nat = 1;
    sb_clear(&err);
    assert_null(data_gen_new(&s, m, &err));
    assert_non_null(strstr(err.s, "--at 10"));
    s.nat = 0;
    s.len_max = 11;
    sb_clear(&err);
    assert_null(data_gen_new(&s, m, &err));
    assert_non_null(strstr(err.s, "--len"));
    sb_free(&err);
    model_free(m);
}

static void test_jsonl_pairs_and_their_errors(void **state)
{
    (void)state;
    Model *m = load_model();
    char *good = write_tmp("good.jsonl", "{\"input\": [\"a\", \"b\", \"b\"], \"output\": [1, 2, 0]}\n"
                                         "\n{\"input\": [\"c\"], \"output\": [null]}\n");
    int at[1] = {1};
    DataSpec s = spec_of(NULL, at, 1);
    s.data = good;
    StrBuf err;
    sb_init(&err);
    DataGen *g = data_gen_new(&s, m, &err);
    if (!g) fail_msg("%s", err.s);
    DataBatch b;
    memset(&b, 0, sizeof b);
    assert_int_equal(data_gen_batch(g, 1, 0, 50, &b, &err), 0);
    int rows = 0;
    for (int i = 0; i < 50; i++) {
        if (b.lens[i] == 4) {
            assert_int_equal(b.row_start[i + 1] - b.row_start[i], 1);
            assert_int_equal(b.target[b.row_start[i]], 2);
            rows++;
        } else {
            assert_int_equal(b.lens[i], 2);
            assert_int_equal(b.row_start[i + 1] - b.row_start[i], 0);   /* position 1 absent */
        }
    }
    assert_int_equal(rows, b.R);
    data_batch_free(&b);
    data_gen_free(g);
    const char *bad[][2] = {
        {"{\"input\": [\"a\"], \"output\": [1, 2]}\n", "good.jsonl:1: 2 output values for 1 input tokens"},
        {"{\"input\": [\"z\"], \"output\": [1]}\n", ":1: input token 1 (\"z\") is not in the model's vocab"},
        {"{\"input\": [\"a\"], \"output\": [99]}\n", ":1: output 1 (99) is not one of the model's output values"},
        {"\n\nnot json\n", ":3: invalid JSON"},
        {"[1, 2]\n", ":1: expected an object"},
        {"", "no examples"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char *p = write_tmp("good.jsonl", bad[i][0]);
        s.data = p;
        sb_clear(&err);
        assert_null(data_gen_new(&s, m, &err));
        if (!strstr(err.s, bad[i][1])) fail_msg("'%s' lacks '%s'", err.s, bad[i][1]);
        free(p);
    }
    free(good);
    sb_free(&err);
    model_free(m);
}

static void test_mix_draws_from_both_programs(void **state)
{
    (void)state;
    Model *m = load_model();
    int at[1] = {1};
    DataSpec s = spec_of("rasp_examples/count_b.rasp", at, 1);
    s.nmix = 1;
    s.mix_path[0] = "rasp_examples/count_a.rasp";
    s.mix_frac[0] = 0.5;
    StrBuf err;
    sb_init(&err);
    DataGen *g = data_gen_new(&s, m, &err);
    assert_non_null(g);
    DataBatch b;
    memset(&b, 0, sizeof b);
    assert_int_equal(data_gen_batch(g, 1, 0, 400, &b, &err), 0);
    int32_t arow = (int32_t)model_token_row(m, "a"), brow = (int32_t)model_token_row(m, "b");
    int as_a = 0, as_b = 0;
    for (int i = 0; i < 400; i++) {
        int ca = count_tok(&b, i, arow), cb = count_tok(&b, i, brow);
        if (ca == cb) continue;
        as_a += b.target[i] == ca;
        as_b += b.target[i] == cb;
    }
    assert_true(as_a > 100 && as_b > 100);
    data_batch_free(&b);
    data_gen_free(g);
    s.mix_frac[0] = 1.0;
    assert_null(data_gen_new(&s, m, &err));
    assert_non_null(strstr(err.s, "--mix"));
    sb_free(&err);
    model_free(m);
}

/* ---------------------------------------------------------------- runs */

typedef struct {
    volatile sig_atomic_t stop;
    long stop_at;
} StopCtx;

static void stop_at_step(void *ctx, const FtProgress *p)
{
    StopCtx *s = ctx;
    if (s->stop_at && p->step >= s->stop_at) s->stop = 1;
}

static FtStatus run(json_t *c, FtHooks *h, FtResult *res, StrBuf *err)
{
    FtConfig cfg;
    if (ft_config_parse(&cfg, c, err)) fail_msg("config: %s", err->s);
    FtStatus st = ft_run(&cfg, h, res, err);
    ft_config_free(&cfg);
    json_decref(c);
    return st;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *d = read_file(path, len);
    if (!d) fail_msg("cannot read %s", path);
    return (unsigned char *)d;
}

/* The Counter compiled for "a" learns to count "b" (C_Tr = 0): >= 99% exact match on a
 * fixed evaluation set after 600 AdamW steps, at a fixed seed. */
static void test_compiled_counter_learns_another_letter(void **state)
{
    (void)state;
    char *out = tmp_path("b.safetensors");
    char outj[300];
    snprintf(outj, sizeof outj, "\"%s\"", out);
    json_t *c = config("output", outj, "task", "\"rasp_examples/count_b.rasp\"", "at", "[1]", "optimizer", "\"adamw\"",
                       "lr", "3e-3", "warmup", "50", "steps", "600", "batch", "32", "eval_size", "1000",
                       "eval_every", "0",
                       "eval", "[{\"name\": \"ft\", \"program\": \"rasp_examples/count_b.rasp\"},"
                               " {\"name\": \"pt\", \"program\": \"rasp_examples/count_a.rasp\"}]", NULL);
    FtHooks h;
    memset(&h, 0, sizeof h);
    h.threads = 2;
    h.version = "test";
    FtResult res;
    StrBuf err;
    sb_init(&err);
    FtStatus st = run(c, &h, &res, &err);
    if (st != FT_OK) fail_msg("%s", err.s);
    assert_int_equal(res.neval, 2);
    assert_string_equal(res.eval[0].name, "ft");
    if (!(res.eval[0].acc >= 0.99)) fail_msg("count_b accuracy %.3f < 0.99", res.eval[0].acc);
    assert_true(res.eval[1].acc < 0.5);   /* it no longer counts a */
    /* decoded as `tracc run` does: a right argmax that is not above 0.5 is no value, so never more */
    for (int i = 0; i < 2; i++) assert_true(res.eval[i].acc_decoded >= 0 && res.eval[i].acc_decoded <= res.eval[i].acc);
    assert_int_equal(res.eval[0].n, 1000);
    /* the output keeps the compiled metadata and adds provenance */
    Model *m = model_load(out, &err), *parent = load_model();
    assert_non_null(m);
    assert_string_equal(m->program_sha256, parent->program_sha256);
    assert_true(json_equal(m->layers, parent->layers));
    assert_true(json_equal(m->compiler, parent->compiler));
    for (int i = 0; i < m->cfg.d_model; i++) assert_string_equal(m->residual[i], parent->residual[i]);
    assert_int_equal(m->nextra, 0);
    assert_null(json_object_get(m->meta_extra, FT_STATE_KEY));
    size_t len;
    unsigned char *bytes = slurp(model_path, &len);
    char hex[65];
    sha256_hex(bytes, len, hex);
    free(bytes);
    json_t *pv = m->provenance;
    assert_string_equal(json_string_value(json_object_get(pv, "parent_sha256")), hex);
    assert_int_equal(json_integer_value(json_object_get(pv, "steps")), 600);
    json_t *cfg = json_object_get(pv, "config");
    assert_true(json_real_value(json_object_get(cfg, "lr")) == 3e-3);
    assert_string_equal(json_string_value(json_object_get(cfg, "optimizer")), "adamw");
    assert_null(json_object_get(cfg, "output"));   /* operational settings stay out */
    json_t *ev = json_object_get(json_object_get(pv, "eval"), "ft");
    assert_true(json_real_value(json_object_get(ev, "acc")) == res.eval[0].acc);
    assert_true(json_real_value(json_object_get(ev, "acc_decoded")) == res.eval[0].acc_decoded);
    json_t *files = json_object_get(pv, "files");
    assert_string_equal(json_string_value(json_object_get(json_array_get(files, 0), "role")), "task");
    model_free(m);
    model_free(parent);
    free(out);
    sb_free(&err);
}

/* Stopped at step 7 (as SIGINT would), checkpointed, resumed: the final file is the same
 * bytes as an uninterrupted run's, for SGD and AdamW, with 1 or 2 threads. */
static void test_resume_after_interrupt_is_bit_identical(void **state)
{
    (void)state;
    const char *opts[2] = {"\"sgd\"", "\"adamw\""};
    for (int k = 0; k < 2; k++) {
        char *full = tmp_path("full.safetensors"), *part = tmp_path("part.safetensors");
        char *ckpt = tmp_path("part.ckpt.safetensors"), *log = tmp_path("part.jsonl");
        char fj[300], pj[300], lj[300];
        snprintf(fj, sizeof fj, "\"%s\"", full);
        snprintf(pj, sizeof pj, "\"%s\"", part);
        snprintf(lj, sizeof lj, "\"%s\"", log);
#define SETTINGS "task", "\"rasp_examples/count_b.rasp\"", "at", "[1]", "optimizer", opts[k], "lr", "1e-2", \
                 "warmup", "3", "steps", "15", "batch", "16", "init_noise", "1e-3", "log_every", "1",        \
                 "eval", "[{\"name\": \"ft\", \"program\": \"rasp_examples/count_b.rasp\"}]", "eval_size", "50", \
                 "eval_every", "5"
        FtHooks h;
        memset(&h, 0, sizeof h);
        h.threads = 1;
        FtResult res;
        StrBuf err;
        sb_init(&err);
        assert_int_equal(run(config("output", fj, SETTINGS, NULL), &h, &res, &err), FT_OK);
        StopCtx sc = {0, 7};
        h.stop = &sc.stop;
        h.progress = stop_at_step;
        h.ctx = &sc;
        h.threads = 2;
        FtStatus st = run(config("output", pj, "log", lj, SETTINGS, NULL), &h, &res, &err);
        if (st != FT_INTERRUPTED) fail_msg("status %d: %s", st, err.s);
        assert_int_equal(res.checkpoint_step, 7);
        assert_string_equal(res.checkpoint, ckpt);
        assert_int_equal(access(part, F_OK), -1);   /* nothing but the checkpoint */
        /* resume: the configuration comes from the checkpoint */
        json_t *cc = ft_checkpoint_config(ckpt, NULL, &err);
        assert_non_null(cc);
        json_object_set_new(cc, "model", json_string(ckpt));
        memset(&h, 0, sizeof h);
        h.resume = 1;
        h.parent_check = model_path;
        h.threads = 1;
        st = run(cc, &h, &res, &err);
        if (st != FT_OK) fail_msg("resume: %s", err.s);
        size_t la, lb;
        unsigned char *a = slurp(full, &la), *b = slurp(part, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
        /* the log has each step once, in order */
        unsigned char *lg = slurp(log, &la);
        long last = -1;
        int trains = 0;
        for (char *line = strtok((char *)lg, "\n"); line; line = strtok(NULL, "\n")) {
            json_t *o = json_loads(line, 0, NULL);
            assert_non_null(o);
            if (!strcmp(json_string_value(json_object_get(o, "type")), "train")) {
                long s = (long)json_integer_value(json_object_get(o, "step"));
                assert_true(s == last + 1 || last == -1);
                last = s;
                trains++;
            }
            json_decref(o);
        }
        assert_int_equal(trains, 15);
        free(lg);
        /* a MODEL that is not the parent is refused */
        json_t *c2 = ft_checkpoint_config(ckpt, NULL, &err);
        json_object_set_new(c2, "model", json_string(ckpt));
        h.parent_check = ckpt;
        sb_clear(&err);
        assert_int_equal(run(c2, &h, &res, &err), FT_BAD_SETTING);
        assert_non_null(strstr(err.s, "is not the checkpoint's parent"));
        unlink(full);
        unlink(part);
        unlink(ckpt);
        unlink(log);
        free(full);
        free(part);
        free(ckpt);
        free(log);
        sb_free(&err);
    }
}

static void test_nan_stops_and_keeps_the_last_good_checkpoint(void **state)
{
    (void)state;
    char *out = tmp_path("nan.safetensors"), *ckpt = tmp_path("nan.ckpt.safetensors");
    char oj[300];
    snprintf(oj, sizeof oj, "\"%s\"", out);
    FtHooks h;
    memset(&h, 0, sizeof h);
    h.threads = 1;
    h.test_nan_at = 8;
    FtResult res;
    StrBuf err;
    sb_init(&err);
    FtStatus st = run(config("output", oj, "task", "\"rasp_examples/count_b.rasp\"", "at", "[1]", "steps", "20",
                             "batch", "8", "checkpoint_every", "5", NULL), &h, &res, &err);
    assert_int_equal(st, FT_DIVERGED);
    assert_non_null(strstr(err.s, "step 8: the loss is nan"));
    assert_non_null(strstr(err.s, "the last good checkpoint is"));
    assert_non_null(strstr(err.s, "(step 5)"));
    assert_int_equal(access(out, F_OK), -1);
    json_t *cc = ft_checkpoint_config(ckpt, NULL, &err);
    assert_non_null(cc);
    json_decref(cc);
    Model *m = model_load(ckpt, &err);
    json_t *stj = json_loads(json_string_value(json_object_get(m->meta_extra, FT_STATE_KEY)), 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(stj, "step")), 5);
    assert_non_null(model_find_extra_tensor(m, OPTIM_TENSOR_MOMENTUM));
    json_decref(stj);
    model_free(m);
    /* a real divergence: an absurd learning rate without clipping */
    memset(&h, 0, sizeof h);
    h.threads = 1;
    sb_clear(&err);
    st = run(config("output", oj, "task", "\"rasp_examples/count_b.rasp\"", "at", "[1]", "steps", "50", "batch", "8",
                    "lr", "1e5", "clip", "0.0", "init_noise", "0.1", NULL), &h, &res, &err);
    assert_int_equal(st, FT_DIVERGED);
    assert_non_null(strstr(err.s, "stopped, nothing written"));
    assert_int_equal(access(out, F_OK), -1);
    free(out);
    free(ckpt);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_rejects_bad_settings_naming_the_flag),
        cmocka_unit_test(test_preset_under_the_flags_with_sources),
        cmocka_unit_test(test_stop_when_forms),
        cmocka_unit_test(test_eval_spec_parses_name_program_and_spurious),
        cmocka_unit_test(test_task_with_another_vocab_names_both_sets),
        cmocka_unit_test(test_task_output_values_must_be_the_models),
        cmocka_unit_test(test_batches_are_a_pure_function_of_seed_and_step),
        cmocka_unit_test(test_spurious_rate_picks_the_side_of_the_predicate),
        cmocka_unit_test(test_no_repeat_and_default_positions),
        cmocka_unit_test(test_jsonl_pairs_and_their_errors),
        cmocka_unit_test(test_mix_draws_from_both_programs),
        cmocka_unit_test(test_compiled_counter_learns_another_letter),
        cmocka_unit_test(test_resume_after_interrupt_is_bit_identical),
        cmocka_unit_test(test_nan_stops_and_keeps_the_last_good_checkpoint),
    };
    return cmocka_run_group_tests_name("finetune", tests, setup, teardown);
}
