/* test_tracr_io.c — Tracr's reference evaluator against our example programs.
 *
 * tests/data/tracr_io.jsonl holds, for Tracr's library programs at max_seq_len 5
 * and 10 and the paper's Counter at 10 and 46, inputs with the output of Tracr's
 * `rasp.evaluate`. Every row is run through the matching rasp_examples/ program, loaded
 * with the row's vocab and max_len as overrides (as `--vocab` / `--max-len` would), and
 * evaluated by the interpreter. Every row must agree:
 *   - categorical outputs exactly (Python ==, so Tracr's 3.0 equals our 3 and its
 *     True equals 1);
 *   - numerical outputs within 1e-9 + 1e-9·|ref| (Tracr returns the selected value
 *     itself where one position is selected, e.g. False for frac_prevs at index 0,
 *     which compares as 0);
 *   - a null in the reference must be None in ours.
 * Where our semantics differ from Tracr's evaluator (categorical disagreement gives None,
 * Tracr averages or raises), no row of the file is affected: none of these programs
 * aggregates disagreeing values on the reference inputs. Should a future row hit such a
 * case, it must be listed here, not hidden by a weaker comparison.
 *
 * The file is test data in the repository (its provenance: tests/data/README.md), read
 * from the repository root, which is `make test`'s working directory; TRACC_TRACR_IO names
 * another copy. A missing file is a failure, never a skip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"

/* Reference program id -> our example file. */
static const struct {
    const char *program;
    const char *file;
} PROGRAMS[] = {
    {"length", "rasp_examples/length.rasp"},
    {"reverse", "rasp_examples/reverse.rasp"},
    {"hist", "rasp_examples/hist.rasp"},
    {"sort_unique", "rasp_examples/sort_unique.rasp"},
    {"sort", "rasp_examples/sort.rasp"},
    {"frac_prevs", "rasp_examples/frac_prevs.rasp"},
    {"pair_balance", "rasp_examples/pair_balance.rasp"},
    {"shuffle_dyck", "rasp_examples/shuffle_dyck.rasp"},
    {"jain_countA", "rasp_examples/count_a.rasp"},
};
#define NPROGRAMS ((int)ARRAY_LEN(PROGRAMS))
#define EXPECTED_ROWS 360

/* One loaded (file, vocab, max_len): each is checked once and reused for its rows. */
typedef struct {
    const char *file;
    char *vocab;
    int max_len;
    RaspProgram *prog;
    Interp *it;
} Loaded;

typedef struct {
    char *path;         /* the JSONL file */
    char *load_error;   /* why it could not be read/parsed, or NULL */
    json_t **rows;
    int nrows;
    Loaded *loaded;
    int nloaded;
    size_t loadcap;
} State;

static State S;

static char *jsonl_path(void)
{
    const char *env = getenv("TRACC_TRACR_IO");
    return xstrdup(env && *env ? env : "tests/data/tracr_io.jsonl");
}

static int setup(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    S.path = jsonl_path();
    size_t len;
    char *text = read_file(S.path, &len);
    if (!text) {
        StrBuf b;
        sb_init(&b);
        sb_printf(&b, "cannot read %s: %s (run from the repository root, or set "
                  "TRACC_TRACR_IO to the file)", S.path, strerror(errno));
        S.load_error = sb_steal(&b);
        sb_free(&b);
        return 0;   /* every test then fails with this message */
    }
    size_t cap = 0;
    int lineno = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        lineno++;
        if (*line) {
            json_error_t err;
            json_t *row = json_loads(line, 0, &err);
            if (!row || !json_is_object(row)) {
                StrBuf b;
                sb_init(&b);
                sb_printf(&b, "%s:%d: not a JSON object: %s", S.path, lineno, err.text);
                S.load_error = sb_steal(&b);
                sb_free(&b);
                json_decref(row);
                break;
            }
            XGROW(S.rows, cap, (size_t)S.nrows + 1);
            S.rows[S.nrows++] = row;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < S.nloaded; i++) {
        interp_free(S.loaded[i].it);
        rasp_free(S.loaded[i].prog);
        free(S.loaded[i].vocab);
    }
    free(S.loaded);
    for (int i = 0; i < S.nrows; i++) json_decref(S.rows[i]);
    free(S.rows);
    free(S.path);
    free(S.load_error);
    return 0;
}

static void require_file(void)
{
    if (S.load_error) fail_msg("%s", S.load_error);
}

/* A reference value (token or output) as our Value. Strings point into the JSON. */
static int json_to_value(const json_t *j, Value *v)
{
    if (json_is_null(j)) *v = val_none();
    else if (json_is_boolean(j)) *v = val_bool(json_is_true(j));
    else if (json_is_integer(j)) *v = val_int(json_integer_value(j));
    else if (json_is_real(j)) *v = val_float(json_real_value(j));
    else if (json_is_string(j)) *v = val_str(json_string_value(j));
    else return 0;
    return 1;
}

/* A token's text as `--vocab` and the command line spell it. */
static void token_text(const json_t *j, StrBuf *out)
{
    if (json_is_string(j)) sb_puts(out, json_string_value(j));
    else if (json_is_integer(j)) sb_printf(out, "%lld", (long long)json_integer_value(j));
    else fail_msg("reference token is neither a string nor an integer");
}

static const char *file_for(const char *program)
{
    for (int i = 0; i < NPROGRAMS; i++)
        if (!strcmp(PROGRAMS[i].program, program)) return PROGRAMS[i].file;
    return NULL;
}

static Loaded *load_cached(const char *file, const json_t *vocab, int max_len)
{
    StrBuf vb;
    sb_init(&vb);
    size_t i;
    const json_t *tok;
    json_array_foreach(vocab, i, tok) {
        if (i) sb_putc(&vb, ',');
        token_text(tok, &vb);
    }
    for (int k = 0; k < S.nloaded; k++) {
        Loaded *l = &S.loaded[k];
        if (!strcmp(l->file, file) && !strcmp(l->vocab, vb.s) && l->max_len == max_len) {
            sb_free(&vb);
            return l;
        }
    }
    FrontOptions opt = FRONT_OPTIONS_DEFAULT;
    opt.vocab = vb.s;
    opt.max_len = max_len;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file(file, &opt, d);
    if (!p) {
        char *msg = diag_render(d);
        print_error("%s with --vocab %s --max-len %d:\n%s", file, vb.s, max_len, msg);
        free(msg);
        diag_free(d);
        sb_free(&vb);
        fail_msg("%s does not load", file);
    }
    diag_free(d);
    XGROW(S.loaded, S.loadcap, (size_t)S.nloaded + 1);
    Loaded *l = &S.loaded[S.nloaded++];
    l->file = file;
    l->vocab = sb_steal(&vb);
    sb_free(&vb);
    l->max_len = max_len;
    l->prog = p;
    l->it = interp_new(p, 0);
    assert_non_null(l->it);
    return l;
}

static void describe_row(const json_t *row, StrBuf *out)
{
    char *s = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
    sb_puts(out, s ? s : "?");
    free(s);
}

/* Runs one row; returns 1 if it agrees, else prints why and returns 0. */
static int check_row(const json_t *row, const char *file)
{
    const json_t *vocab = json_object_get(row, "vocab");
    const json_t *input = json_object_get(row, "input");
    const json_t *output = json_object_get(row, "output");
    const json_t *jn = json_object_get(row, "max_seq_len");
    assert_true(json_is_array(vocab) && json_is_array(input) && json_is_array(output) &&
                json_is_integer(jn));
    int n = (int)json_array_size(input);
    assert_int_equal(json_array_size(output), (size_t)n);
    Loaded *l = load_cached(file, vocab, (int)json_integer_value(jn));
    const RaspProgram *p = l->prog;

    int32_t *toks = xmalloc(sizeof *toks * (size_t)(n ? n : 1));
    StrBuf t, why;
    sb_init(&t);
    sb_init(&why);
    for (int i = 0; i < n; i++) {
        sb_clear(&t);
        token_text(json_array_get(input, (size_t)i), &t);
        toks[i] = rasp_token_index(p, t.s);
        if (toks[i] < 0) fail_msg("%s: token '%s' is not in the vocab", file, t.s);
    }
    interp_run(l->it, toks, n);
    const RaspSop *out = &p->sops[p->output];
    const int32_t *got = interp_values(l->it, p->output);
    assert_non_null(got);

    int agree = 1;
    for (int i = 0; i < n && agree; i++) {
        Value ref, ours = got[i] == RASP_NONE ? val_none() : out->vals[got[i]];
        if (!json_to_value(json_array_get(output, (size_t)i), &ref))
            fail_msg("%s: reference output %d is not a scalar", file, i);
        if (ref.kind == VAL_NONE || ours.kind == VAL_NONE) {
            agree = ref.kind == ours.kind;
        } else if (out->enc == ENC_NUMERICAL) {
            agree = val_is_number(ref) && val_is_number(ours);
            if (agree) {
                double r = val_as_double(ref), o = val_as_double(ours);
                agree = fabs(o - r) <= 1e-9 + 1e-9 * fabs(r);
            }
        } else {
            agree = val_equal(ref, ours);
        }
        if (!agree) {
            sb_printf(&why, "position %d: reference ", i);
            val_format(ref, &why);
            sb_puts(&why, ", ours ");
            val_format(ours, &why);
        }
    }
    if (!agree) {
        StrBuf r;
        sb_init(&r);
        describe_row(row, &r);
        print_error("MISMATCH %s: %s\n  row %s\n", file, why.s, r.s);
        sb_free(&r);
    }
    sb_free(&t);
    sb_free(&why);
    free(toks);
    return agree;
}

static void check_program(const char *program)
{
    require_file();
    const char *file = file_for(program);
    assert_non_null(file);
    int rows = 0, agree = 0;
    for (int i = 0; i < S.nrows; i++) {
        const json_t *jp = json_object_get(S.rows[i], "program");
        if (!json_is_string(jp) || strcmp(json_string_value(jp), program)) continue;
        rows++;
        agree += check_row(S.rows[i], file);
    }
    print_message("%-13s %3d/%3d rows agree (%s)\n", program, agree, rows, file);
    if (rows == 0) fail_msg("no reference rows for %s in %s", program, S.path);
    assert_int_equal(agree, rows);
}

static void test_reference_file_has_every_row_for_a_known_program(void **state)
{
    (void)state;
    require_file();
    assert_int_equal(S.nrows, EXPECTED_ROWS);
    for (int i = 0; i < S.nrows; i++) {
        const json_t *jp = json_object_get(S.rows[i], "program");
        if (!json_is_string(jp) || !file_for(json_string_value(jp)))
            fail_msg("%s row %d: no example program for \"%s\"", S.path, i + 1,
                     json_is_string(jp) ? json_string_value(jp) : "?");
    }
}

#define PROGRAM_TEST(name, id) \
    static void name(void **state) { (void)state; check_program(id); }
PROGRAM_TEST(test_length_matches_tracr, "length")
PROGRAM_TEST(test_reverse_matches_tracr, "reverse")
PROGRAM_TEST(test_hist_matches_tracr, "hist")
PROGRAM_TEST(test_sort_unique_matches_tracr, "sort_unique")
PROGRAM_TEST(test_sort_matches_tracr, "sort")
PROGRAM_TEST(test_frac_prevs_matches_tracr, "frac_prevs")
PROGRAM_TEST(test_pair_balance_matches_tracr, "pair_balance")
PROGRAM_TEST(test_shuffle_dyck_matches_tracr, "shuffle_dyck")
PROGRAM_TEST(test_count_a_matches_tracr, "jain_countA")

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_file_has_every_row_for_a_known_program),
        cmocka_unit_test(test_length_matches_tracr),
        cmocka_unit_test(test_reverse_matches_tracr),
        cmocka_unit_test(test_hist_matches_tracr),
        cmocka_unit_test(test_sort_unique_matches_tracr),
        cmocka_unit_test(test_sort_matches_tracr),
        cmocka_unit_test(test_frac_prevs_matches_tracr),
        cmocka_unit_test(test_pair_balance_matches_tracr),
        cmocka_unit_test(test_shuffle_dyck_matches_tracr),
        cmocka_unit_test(test_count_a_matches_tracr),
    };
    return cmocka_run_group_tests_name("tracr_io", tests, setup, teardown);
}
