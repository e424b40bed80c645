/* report.c — see report.h. */
#include "analysis/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/readout.h"
#include "common/sha256.h"
#include "compiler/frontend.h"
#include "compiler/verify.h"

int rep_file_sha256(const char *path, char hex[65], StrBuf *err)
{
    size_t len;
    char *data = read_file(path, &len);
    if (!data) {
        sb_printf(err, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    sha256_hex(data, len, hex);
    free(data);
    return 0;
}

int rep_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int rep_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-') return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = (uint64_t)v;
    return 0;
}

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
