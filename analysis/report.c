/* report.c — see report.h. */
#include "analysis/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/readout.h"
#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"

int rep_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno == ERANGE || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

void rep_pct(double x, char *buf, size_t cap)
{
    if (!isfinite(x))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.1f%%", 100.0 * x);
}

RaspProgram *rep_load_program(const Model *m, const char *path, Diag *d, StrBuf *err)
{
    if (!path) return verify_program_of(m, d, err);
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    fo.max_len = m->cfg.n_ctx - 1;
    RaspProgram *p = rasp_load_file(path, &fo, d);
    if (!p) return NULL;
    int32_t *rows = xmalloc(sizeof(int32_t) * (size_t)(p->nvocab + 1));
    StrBuf e;
    sb_init(&e);
    if (ro_vocab_rows(m, p, rows, &e)) {
        sb_printf(err, "%s: %s", path, e.s);
        rasp_free(p);
        p = NULL;
    }
    sb_free(&e);
    free(rows);
    return p;
}
