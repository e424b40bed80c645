/* testprog.h — the unit tests' way from an example program to a model: load a .rasp file,
 * compile it, copy a model through its file format, find a residual dimension by label.
 * Shared by test_diff, test_probe, test_prune, test_decode_agree and test_decompile; include
 * it after cmocka.h. Every helper fails the test on error, with the error on stderr. */
#ifndef TRACC_TEST_TESTPROG_H
#define TRACC_TEST_TESTPROG_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "runtime/model.h"

static inline RaspProgram *tp_load(const char *path)
{
    Diag *d = diag_new();
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    RaspProgram *p = rasp_load_file(path, &fo, d);
    if (!p) diag_print(d, stderr);
    diag_free(d);
    assert_non_null(p);
    return p;
}

/* fuse: 1 tracc's default (fused blocks), 0 Tracr's layout (--no-fuse) */
static inline Model *tp_compile(const RaspProgram *p, int fuse)
{
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    ao.fuse = fuse;
    StrBuf err;
    sb_init(&err);
    Model *m = asm_compile(p, &ao, NULL, &err);
    if (!m) fprintf(stderr, "%s\n", err.s);
    sb_free(&err);
    assert_non_null(m);
    return m;
}

/* an independent copy, through serialize and parse */
static inline Model *tp_clone(const Model *m)
{
    uint8_t *data;
    size_t len;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(model_serialize(m, &data, &len, &err), 0);
    Model *c = model_parse(data, len, "clone", &err);
    free(data);
    if (!c) fprintf(stderr, "%s\n", err.s);
    sb_free(&err);
    assert_non_null(c);
    return c;
}

/* the residual dimension labelled `label` */
static inline int tp_dim(const Model *m, const char *label)
{
    for (int d = 0; d < m->cfg.d_model; d++)
        if (!strcmp(m->residual[d], label)) return d;
    fail_msg("no residual label %s", label);
    return -1;
}

#endif
