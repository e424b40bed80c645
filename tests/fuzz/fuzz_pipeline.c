/* fuzz_pipeline.c — libFuzzer harness: a program that the front end accepts (at a small
 * max_len and table budget, so each input stays cheap) is interpreted, compiled and verified
 * on every input. Besides crashes it checks the compiler's promise: a model whose bounds
 * claim exactness must agree with the interpreter everywhere (abort otherwise). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = 3;
    fo.table_budget = 1 << 16;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("rasp_examples/fuzz.rasp", (const char *)data, size, &fo, d);
    if (p && p->nvocab <= 4) {
        StrBuf err;
        sb_init(&err);
        AsmOptions ao = ASM_OPTIONS_DEFAULT;
        AsmSummary sum;
        Model *m = asm_compile(p, &ao, &sum, &err);
        /* a checked program may be refused for its size, never for an internal collision */
        if (!m && strstr(err.s, "collide")) {
            fprintf(stderr, "checked but not compilable: %s\n", err.s);
            abort();
        }
        if (m && m->num_params < (1u << 20)) {
            VerifyOptions vo = VERIFY_OPTIONS_DEFAULT;
            vo.mode = VERIFY_EXHAUSTIVE;
            VerifyReport rep;
            sb_clear(&err);
            if (!verify_model(m, p, &vo, &rep, &err)) {
                if (sum.exact && rep.failed_inputs) {
                    fprintf(stderr, "proved exact but wrong: %s\n", rep.cx_culprit ? rep.cx_culprit : "?");
                    abort();
                }
                verify_report_free(&rep);
            }
        }
        model_free(m);
        sb_free(&err);
    }
    rasp_free(p);
    diag_free(d);
    return 0;
}
