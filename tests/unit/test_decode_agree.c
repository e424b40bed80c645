/* test_decode_agree.c — `run --trace`, `diff --inputs` and `probe` read s-ops the same way:
 * on a model whose weights were perturbed (so decoded values sit near the decision
 * thresholds), the agreement counts diff and probe report equal those computed from the
 * values run --trace prints (dec_sop_value), s-op by s-op and stage by stage, on the same
 * sampled inputs run one at a time. And every command judges outputs by one rule. Needs OPENBLAS_NUM_THREADS=1 (tests/run.sh pins it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff.h"
#include "analysis/probe.h"
#include "analysis/readout.h"
#include "common/rng.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"
#include "compiler/back/verify.h"
#include "runtime/decode.h"
#include "runtime/forward.h"

#include "testprog.h"

static void perturb(Model *m, double sigma, uint64_t seed)
{
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->num_params; i++)
        m->params_memory[i] += (float)(sigma * (2.0 * rng_uniform(&r) - 1.0));
}

/* What run --trace prints for s-op ds at one residual row, judged against the interpreter's
 * value index want of s: the printed text (categorical) or float (numerical). */
static int trace_agrees(const DecSop *ds, const RaspSop *s, const float *row, int32_t want)
{
    Value got = dec_sop_value(ds, row);
    Value exp = want == RASP_NONE ? val_none() : s->vals[want];
    if (!ds->categorical) {
        if (!val_is_number(exp)) return 0;
        double y = val_as_double(exp);
        return fabs(got.u.f - y) <= 1e-4 * fmax(1.0, fabs(y));
    }
    StrBuf a, b;
    sb_init(&a);
    sb_init(&b);
    val_format(got, &a);
    val_format(exp, &b);
    int same = !strcmp(a.s, b.s);
    sb_free(&a);
    sb_free(&b);
    return same;
}

/* One input through the model alone (batch of one, as `tracc run --trace a b c` does). */
static void forward_one(FwdState *st, const Model *m, const int32_t *row_of, const int32_t *toks, int n)
{
    int32_t rows[RASP_MAX_LEN + 1];
    int len;
    dec_pack_batch(m, row_of, toks, (size_t)n, &n, 1, rows, &len);
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.record_resid = 1;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(fwd_forward(st, m, rows, &len, 1, len, &fo, &err), 0);
    sb_free(&err);
}

static void check_program(const char *path, double sigma, int want_virtual)
{
    RaspProgram *p = tp_load(path);
    Model *a = tp_compile(p, 1), *b = tp_compile(p, 1);
    perturb(b, sigma, 7);
    StrBuf err;
    sb_init(&err);
    DecLayout dl;
    dec_layout_init(&dl, b);
    assert_int_equal(dec_layout_add_virtual(&dl, b, &err), 0);
    int32_t *row_of = xmalloc(sizeof(int32_t) * (size_t)p->nvocab);
    assert_int_equal(ro_vocab_rows(b, p, row_of, &err), 0);
    Interp *it = interp_new(p, 1);
    FwdState st;
    fwd_init(&st);
    int N = p->max_len, C = b->cfg.d_model, S = 1 + 2 * b->cfg.n_layers;
    int32_t toks[RASP_MAX_LEN];

    /* diff --inputs: every s-op it reads, on its inputs (seed 1, length max_len) */
    DiffOptions dopt = DIFF_OPTIONS_DEFAULT;
    DiffResult *r = diff_weights(a, b, &dopt, &err);
    assert_non_null(r);
    DiffInputOptions io = DIFF_INPUT_OPTIONS_DEFAULT;
    io.n = 300;
    assert_int_equal(diff_inputs(r, a, b, p, &io, &err), 0);
    long *agree = xcalloc((size_t)p->nsops, sizeof(long)), *count = xcalloc((size_t)p->nsops, sizeof(long));
    Rng rng;
    rng_seed(&rng, io.seed);
    for (long k = 0; k < io.n; k++) {
        int n = ro_sample(&rng, p->nvocab, N, N, toks);
        assert_int_equal(interp_eval(it, toks, n), 0);
        forward_one(&st, b, row_of, toks, n);
        for (int s = 0; s < p->nsops; s++) {
            const DecSop *ds = ro_find(&dl, &p->sops[s]);
            const int32_t *v = interp_values(it, s);
            if (!ds || !v) continue;
            const float *res = fwd_resid_stage(&st, ds->stage);
            for (int i = 0; i < n; i++) {
                if (v[i] == RASP_NONE && !ds->categorical) continue;
                count[s]++;
                agree[s] += trace_agrees(ds, &p->sops[s], res + (size_t)(i + 1) * C, v[i]);
            }
        }
    }
    int shared = 0, partial = 0, nvirtual = 0;
    for (int k = 0; k < r->inputs->nsops; k++) {
        const DiffSopStat *ss = &r->inputs->sops[k];
        int s = -1;
        for (int i = 0; i < p->nsops && s < 0; i++)
            if (!strcmp(p->sops[i].label, ss->name)) s = i;
        assert_true(s >= 0);
        if (!ss->readable) continue;
        shared++;
        nvirtual += ss->isvirtual;
        if (ss->agree_after != agree[s] || ss->n != count[s])
            fail_msg("%s: diff reads %s as %ld/%ld, run --trace's values give %ld/%ld", path, ss->name,
                     ss->agree_after, ss->n, agree[s], count[s]);
        partial += agree[s] > 0 && agree[s] < count[s];
    }
    assert_true(shared >= 3);
    assert_true(partial >= 1);   /* the perturbation reaches the thresholds somewhere */
    assert_true(nvirtual >= want_virtual);
    diff_free(r);

    /* probe: every readable s-op, every stage, on its test inputs */
    ProbeOptions po = PROBE_OPTIONS_DEFAULT;
    po.train_n = 50;
    po.test_n = 200;
    po.steps = 0;
    for (int s = 0; s < p->nsops; s++) {
        const DecSop *ds = ro_find(&dl, &p->sops[s]);
        if (!ds) continue;
        ProbeResult pr;
        assert_int_equal(probe_run(b, p, p->sops[s].label, &po, &pr, &err), 0);
        assert_true(pr.direct_ok);
        assert_int_equal(pr.written_stage, ds->stage);
        long *ok = xcalloc((size_t)S, sizeof(long));
        rng_seed(&rng, po.seed);
        for (long k = 0; k < po.train_n + po.test_n; k++) {
            int n = ro_sample(&rng, p->nvocab, N, N, toks);
            int pos = (int)rng_below(&rng, (uint32_t)n);
            if (k < po.train_n) continue;
            assert_int_equal(interp_eval(it, toks, n), 0);
            const int32_t *v = interp_values(it, s);
            forward_one(&st, b, row_of, toks, n);
            for (int stg = 0; stg < S; stg++)
                ok[stg] += trace_agrees(ds, &p->sops[s], fwd_resid_stage(&st, stg) + (size_t)(pos + 1) * C,
                                        v ? v[pos] : RASP_NONE);
        }
        for (int stg = 0; stg < S; stg++)
            if (pr.st[stg].direct != (double)ok[stg] / po.test_n)
                fail_msg("%s: probe reads %s after %s as %.4f, run --trace's values give %.4f", path,
                         p->sops[s].label, pr.st[stg].where, pr.st[stg].direct, (double)ok[stg] / po.test_n);
        free(ok);
        probe_result_free(&pr);
    }
    free(agree);
    free(count);
    fwd_free(&st);
    interp_free(it);
    free(row_of);
    dec_layout_free(&dl);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

static void test_trace_diff_probe_agree_categorical(void **state)
{
    (void)state;
    check_program("rasp_examples/count_a.rasp", 0.02, 1);   /* is_a: a virtual s-op */
    check_program("rasp_examples/shuffle_dyck.rasp", 0.02, 1);
}

static void test_trace_diff_probe_agree_numerical(void **state)
{
    (void)state;
    check_program("rasp_examples/frac_prevs.rasp", 0.002, 1);   /* numerical s-ops */
}

/* One output rule: with W_U scaled to 0.4, every top logit is 0.4: the argmax still points at
 * the right value, but run decodes no value, and verify and diff judge it so too. */
static void test_one_output_rule(void **state)
{
    (void)state;
    RaspProgram *p = tp_load("rasp_examples/count_a.rasp");
    Model *a = tp_compile(p, 1), *b = tp_compile(p, 1);
    for (int i = 0; i < b->cfg.d_model * b->cfg.d_vocab_out; i++) b->params.W_U[i] *= 0.4f;
    StrBuf err;
    sb_init(&err);
    VerifyOptions vo = VERIFY_OPTIONS_DEFAULT;
    vo.mode = VERIFY_SAMPLE;
    vo.samples = 50;
    VerifyReport rep;
    assert_int_equal(verify_model(a, p, &vo, &rep, &err), 0);
    assert_int_equal(rep.failed_inputs, 0);
    verify_report_free(&rep);
    assert_int_equal(verify_model(b, p, &vo, &rep, &err), 0);
    assert_int_equal(rep.failed_inputs, rep.inputs);
    assert_string_equal(rep.cx_got, "None");
    verify_report_free(&rep);
    /* run: no value */
    float logits[64];
    assert_true(b->cfg.d_vocab_out <= 64);
    for (int j = 0; j < b->cfg.d_vocab_out; j++) logits[j] = j == 1 ? 0.4f : 0.0f;
    assert_int_equal(dec_output(b, logits).kind, VAL_NONE);
    assert_false(dec_output_agrees(b, logits, b->output_values[1]));
    logits[1] = 0.6f;
    assert_true(dec_output_agrees(b, logits, b->output_values[1]));
    /* diff --inputs: every output right before, none after */
    DiffOptions dopt = DIFF_OPTIONS_DEFAULT;
    DiffResult *r = diff_weights(a, b, &dopt, &err);
    assert_non_null(r);
    DiffInputOptions io = DIFF_INPUT_OPTIONS_DEFAULT;
    io.n = 50;
    assert_int_equal(diff_inputs(r, a, b, p, &io, &err), 0);
    assert_true(r->inputs->out_n > 0);
    assert_int_equal(r->inputs->out_before, r->inputs->out_n);
    assert_int_equal(r->inputs->out_after, 0);
    diff_free(r);
    sb_free(&err);
    model_free(a);
    model_free(b);
    rasp_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_diff_probe_agree_categorical),
        cmocka_unit_test(test_trace_diff_probe_agree_numerical),
        cmocka_unit_test(test_one_output_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
