/* fuzz_frontend.c — libFuzzer harness: any bytes as a .rasp program through the whole front
 * end (lexer, parser, sema, value sets, tables). Loads resolve against the examples folder,
 * so `load "lib/sort.rasp";` reaches real files. A crash, leak or sanitizer report is a bug;
 * an error message is the expected answer to most inputs. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "compiler/front/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.table_budget = 1 << 20;      /* keep each input cheap: budgets are part of what is fuzzed */
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_text("rasp_examples/fuzz.rasp", (const char *)data, size, &fo, d);
    char *msgs = diag_render(d);    /* rendering carets over arbitrary bytes is fuzzed too */
    free(msgs);
    rasp_free(p);
    diag_free(d);
    return 0;
}
