/* fuzz_decompile.c — libFuzzer harness: any bytes as a model file, and what the reader
 * accepts decompiled against the program it carries (few sampled inputs, so each input is
 * cheap). A clear refusal is the expected answer to most inputs; a crash, leak or
 * sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>

#include "analysis/decompile.h"
#include "runtime/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    StrBuf err;
    sb_init(&err);
    Model *m = model_parse(data, size, "fuzz.safetensors", &err);
    if (m && m->num_params < (1u << 20)) {
        DcOptions o = DC_OPTIONS_DEFAULT;
        o.n = 16;
        DcResult r;
        sb_clear(&err);
        if (!dc_decompile(m, &o, &r, &err)) dc_result_free(&r);
    }
    model_free(m);
    sb_free(&err);
    return 0;
}
