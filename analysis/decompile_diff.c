/* decompile_diff.c — a unified line diff (see decompile.h): the longest common subsequence
 * of the two line lists by dynamic programming, then hunks with 3 lines of context. Programs
 * are a few hundred lines, so the quadratic table is small; above DIFF_MAX_CELLS cells the
 * common prefix and suffix are kept and the middle is printed as one replacement. */
#include "analysis/decompile_int.h"

#include <stdlib.h>
#include <string.h>

/* The buffer's string, the buffer released (sb_steal leaves a fresh empty buffer). */
char *dc_take(StrBuf *b)
{
    char *s = sb_steal(b);
    sb_free(b);
    return s;
}

#define DIFF_CONTEXT 3
#define DIFF_MAX_CELLS (1L << 26)

typedef struct {
    const char **s;
    size_t *len;
    int n;
} Lines;

static void split_lines(const char *t, Lines *l)
{
    int cap = 16;
    l->s = xmalloc(sizeof(char *) * (size_t)cap);
    l->len = xmalloc(sizeof(size_t) * (size_t)cap);
    l->n = 0;
    while (*t) {
        const char *e = strchr(t, '\n');
        size_t n = e ? (size_t)(e - t) : strlen(t);
        if (l->n == cap) {
            cap *= 2;
            l->s = xrealloc(l->s, sizeof(char *) * (size_t)cap);
            l->len = xrealloc(l->len, sizeof(size_t) * (size_t)cap);
        }
        l->s[l->n] = t;
        l->len[l->n++] = n;
        t += n + (e ? 1 : 0);
    }
}

static int same(const Lines *a, int i, const Lines *b, int j)
{
    return a->len[i] == b->len[j] && !memcmp(a->s[i], b->s[j], a->len[i]);
}

/* One edit script entry: ' ' both, '-' only a, '+' only b, with the line indices. */
typedef struct {
    char op;
    int i, j;
} Edit;

static void put_line(StrBuf *o, char c, const Lines *l, int i)
{
    sb_putc(o, c);
    sb_putn(o, l->s[i], l->len[i]);
    sb_putc(o, '\n');
}

char *dc_unified_diff(const char *ta, const char *tb, const char *name_a, const char *name_b)
{
    Lines a, b;
    split_lines(ta, &a);
    split_lines(tb, &b);
    int pre = 0;
    while (pre < a.n && pre < b.n && same(&a, pre, &b, pre)) pre++;
    int suf = 0;
    while (suf < a.n - pre && suf < b.n - pre && same(&a, a.n - 1 - suf, &b, b.n - 1 - suf)) suf++;
    int na = a.n - pre - suf, nb = b.n - pre - suf;
    Edit *ed = xmalloc(sizeof(Edit) * (size_t)(a.n + b.n + 1));
    int ne = 0;
    for (int k = 0; k < pre; k++) ed[ne++] = (Edit){' ', k, k};
    if ((long)(na + 1) * (long)(nb + 1) <= DIFF_MAX_CELLS) {
        /* lcs[i][j]: LCS length of a[pre+i..] and b[pre+j..] */
        int *lcs = xcalloc((size_t)(na + 1) * (size_t)(nb + 1), sizeof(int));
#define LCS(i, j) lcs[(size_t)(i) * (size_t)(nb + 1) + (size_t)(j)]
        for (int i = na - 1; i >= 0; i--)
            for (int j = nb - 1; j >= 0; j--)
                LCS(i, j) = same(&a, pre + i, &b, pre + j) ? LCS(i + 1, j + 1) + 1
                            : (LCS(i + 1, j) >= LCS(i, j + 1) ? LCS(i + 1, j) : LCS(i, j + 1));
        int i = 0, j = 0;
        while (i < na || j < nb) {
            if (i < na && j < nb && same(&a, pre + i, &b, pre + j)) {
                ed[ne++] = (Edit){' ', pre + i, pre + j};
                i++, j++;
            } else if (j >= nb || (i < na && LCS(i + 1, j) >= LCS(i, j + 1))) {
                ed[ne++] = (Edit){'-', pre + i++, -1};
            } else {
                ed[ne++] = (Edit){'+', -1, pre + j++};
            }
        }
#undef LCS
        free(lcs);
    } else {
        for (int i = 0; i < na; i++) ed[ne++] = (Edit){'-', pre + i, -1};
        for (int j = 0; j < nb; j++) ed[ne++] = (Edit){'+', -1, pre + j};
    }
    for (int k = 0; k < suf; k++) ed[ne++] = (Edit){' ', a.n - suf + k, b.n - suf + k};

    StrBuf o;
    sb_init(&o);
    int any = 0;
    for (int k = 0; k < ne && !any; k++) any = ed[k].op != ' ';
    if (any) {
        sb_printf(&o, "--- %s\n+++ %s\n", name_a, name_b);
        int k = 0;
        while (k < ne) {
            while (k < ne && ed[k].op == ' ') k++;
            if (k >= ne) break;
            /* a hunk: from DIFF_CONTEXT before this change to DIFF_CONTEXT after the last
             * change closer than 2 * DIFF_CONTEXT unchanged lines */
            int start = k - DIFF_CONTEXT < 0 ? 0 : k - DIFF_CONTEXT;
            while (start < k && ed[start].op != ' ') start++;
            int end = k;
            for (;;) {
                while (end < ne && ed[end].op != ' ') end++;
                int run = 0;
                while (end + run < ne && ed[end + run].op == ' ') run++;
                if (end + run >= ne || run > 2 * DIFF_CONTEXT) {
                    end += run < DIFF_CONTEXT ? run : DIFF_CONTEXT;
                    break;
                }
                end += run;
            }
            int a0 = -1, b0 = -1, ca = 0, cb = 0;
            for (int t = start; t < end; t++) {
                if (ed[t].op != '+') {
                    if (a0 < 0) a0 = ed[t].i;
                    ca++;
                }
                if (ed[t].op != '-') {
                    if (b0 < 0) b0 = ed[t].j;
                    cb++;
                }
            }
            /* an empty side is numbered by the line before it, as diff -u does */
            if (a0 < 0) {
                a0 = 0;
                for (int t = start; t >= 0; t--)
                    if (ed[t].i >= 0) {
                        a0 = ed[t].i + 1;
                        break;
                    }
                a0 -= 1;
            }
            if (b0 < 0) {
                b0 = 0;
                for (int t = start; t >= 0; t--)
                    if (ed[t].j >= 0) {
                        b0 = ed[t].j + 1;
                        break;
                    }
                b0 -= 1;
            }
            /* "-N" alone for one line, as diff -u writes it */
            sb_printf(&o, "@@ -%d", a0 + 1);
            if (ca != 1) sb_printf(&o, ",%d", ca);
            sb_printf(&o, " +%d", b0 + 1);
            if (cb != 1) sb_printf(&o, ",%d", cb);
            sb_puts(&o, " @@\n");
            for (int t = start; t < end; t++) {
                if (ed[t].op == '+') put_line(&o, '+', &b, ed[t].j);
                else put_line(&o, ed[t].op, &a, ed[t].i);
            }
            k = end;
        }
    }
    free(ed);
    free(a.s);
    free(a.len);
    free(b.s);
    free(b.len);
    return dc_take(&o);
}
