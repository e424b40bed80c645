/* fuzz_model.c — libFuzzer harness: any bytes as a model file. What the reader accepts is
 * then run (a forward pass on a short input, decoded as `tracc run` decodes) and, when it
 * carries a program, that program is loaded, as `tracc explain` and `verify` would. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compiler/back/verify.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "runtime/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_parse(data, size, "fuzz.safetensors", &err);
    if (m) {
        /* a forward pass on BOS + up to 3 tokens, when the shapes allow it */
        int T = m->cfg.n_ctx < 4 ? m->cfg.n_ctx : 4;
        if (T >= 1 && m->cfg.d_vocab > 0 && (size_t)m->cfg.d_model * (size_t)m->cfg.d_vocab < (1u << 24)) {
            int32_t toks[4];
            for (int i = 0; i < T; i++) toks[i] = i == 0 ? m->bos : (i - 1) % m->cfg.d_vocab;
            int lens[1] = {T};
            FwdState st;
            fwd_init(&st);
            FwdOptions fo = FWD_OPTIONS_DEFAULT;
            if (!fwd_forward(&st, m, toks, lens, 1, T, &fo, &err) && m->cfg.d_vocab_out > 0)
                for (int i = 0; i < T; i++) (void)dec_output(m, st.logits + (size_t)i * (size_t)m->cfg.d_vocab_out);
            fwd_free(&st);
        }
        Diag *d = diag_new();
        sb_clear(&err);
        RaspProgram *p = verify_program_of(m, d, &err);
        rasp_free(p);
        diag_free(d);
        model_free(m);
    }
    sb_free(&err);
    return 0;
}
