/* diag.c — collected diagnostics, rendered GCC-style (see diag.h).
 *
 *   path:3:9: error: unknown name 'foo'
 *       3 | x = foo + 1;
 *         |     ^~~
 *
 * The echoed line is shown as is when it is short and printable. Otherwise (a byte that is
 * not printable ASCII, or a line over LONG_LINE bytes) a window of WINDOW bytes either side
 * of the column is shown, with "..." where it is cut and such bytes as \xNN; the marker is
 * padded by the width of the rendering so the caret stays under the right byte. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define LONG_LINE 200
#define WINDOW 80

typedef struct {
    char *path;
    char *text;
    size_t len;
    size_t *line_start;  /* offset of the first byte of each line */
    int nlines;          /* lines with at least one byte (a final '\n' opens no line) */
} SrcFile;

typedef struct {
    int is_note;         /* 0 error, 1 note, 2 warning */
    Span sp;
    char *msg;
} Msg;

struct Diag {
    SrcFile *files;
    size_t nfiles, files_cap;
    Msg *msgs;
    size_t nmsgs, msgs_cap;
    int errors;          /* every diag_error call, kept or not */
    int dropping;        /* the last error was past the limit: drop its notes too */
};

Diag *diag_new(void)
{
    return xcalloc(1, sizeof(Diag));
}

void diag_free(Diag *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->nfiles; i++) {
        free(d->files[i].path);
        free(d->files[i].text);
        free(d->files[i].line_start);
    }
    for (size_t i = 0; i < d->nmsgs; i++) free(d->msgs[i].msg);
    free(d->files);
    free(d->msgs);
    free(d);
}

int diag_add_file(Diag *d, const char *path, const char *text, size_t len)
{
    XGROW(d->files, d->files_cap, d->nfiles + 1);
    SrcFile *f = &d->files[d->nfiles];
    f->path = xstrdup(path ? path : "<input>");
    f->text = xmalloc(len + 1);
    if (len) memcpy(f->text, text, len);
    f->text[len] = '\0';
    f->len = len;
    size_t cap = 0;
    f->line_start = NULL;
    f->nlines = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 0 || text[i - 1] == '\n') {
            XGROW(f->line_start, cap, (size_t)f->nlines + 1);
            f->line_start[f->nlines++] = i;
        }
    }
    return (int)d->nfiles++;
}

static const SrcFile *file_of(const Diag *d, int file)
{
    if (file < 0 || (size_t)file >= d->nfiles) return NULL;
    return &d->files[file];
}

const char *diag_file_path(const Diag *d, int file)
{
    const SrcFile *f = file_of(d, file);
    return f ? f->path : NULL;
}

const char *diag_file_text(const Diag *d, int file, size_t *len)
{
    const SrcFile *f = file_of(d, file);
    if (len) *len = f ? f->len : 0;
    return f ? f->text : NULL;
}

size_t diag_offset(const Diag *d, int file, int line, int col)
{
    const SrcFile *f = file_of(d, file);
    if (!f) return 0;
    size_t off = line < 1 ? 0 : line <= f->nlines ? f->line_start[line - 1] : f->len;
    off += col > 0 ? (size_t)col - 1 : 0;
    return off > f->len ? f->len : off;
}

void diag_position(const Diag *d, int file, size_t off, int *line, int *col)
{
    const SrcFile *f = file_of(d, file);
    *line = 1;
    *col = (int)off + 1;
    if (!f || f->nlines == 0) return;
    if (off >= f->len && f->text[f->len - 1] == '\n') {   /* past a final newline */
        *line = f->nlines + 1;
        *col = (int)(off - f->len) + 1;
        return;
    }
    int lo = 0, hi = f->nlines - 1;   /* the last line starting at or before off */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (f->line_start[mid] <= off) lo = mid;
        else hi = mid - 1;
    }
    *line = lo + 1;
    *col = (int)(off - f->line_start[lo]) + 1;
}

static void add_msg(Diag *d, int is_note, Span sp, const char *fmt, va_list ap)
{
    StrBuf b;
    sb_init(&b);
    sb_vprintf(&b, fmt, ap);
    XGROW(d->msgs, d->msgs_cap, d->nmsgs + 1);
    d->msgs[d->nmsgs].is_note = is_note;
    d->msgs[d->nmsgs].sp = sp;
    d->msgs[d->nmsgs].msg = b.s;
    d->nmsgs++;
}

void diag_error(Diag *d, Span sp, const char *fmt, ...)
{
    d->errors++;
    d->dropping = d->errors > DIAG_MAX_ERRORS;
    if (d->dropping) return;
    va_list ap;
    va_start(ap, fmt);
    add_msg(d, 0, sp, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, Span sp, const char *fmt, ...)
{
    if (d->dropping) return;
    va_list ap;
    va_start(ap, fmt);
    add_msg(d, 2, sp, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Span sp, const char *fmt, ...)
{
    if (d->dropping) return;
    va_list ap;
    va_start(ap, fmt);
    add_msg(d, 1, sp, fmt, ap);
    va_end(ap);
}

int diag_errors(const Diag *d) { return d->errors; }

static int plain(unsigned char c) { return (c >= 0x20 && c < 0x7f) || c == '\t'; }

/* Width of byte c as rendered (tabs count 1: they are kept as tabs). When escaping, a
 * backslash is doubled so that "\\x41" in the source cannot be mistaken for an escape. */
static int rendered_width(unsigned char c, int escaping)
{
    if (!escaping) return 1;
    if (c == '\\') return 2;
    return plain(c) ? 1 : 4;
}

/* The source line and the caret line under it. */
static void render_source(StrBuf *b, const SrcFile *f, Span sp)
{
    if (sp.line < 1 || sp.line > f->nlines) return;
    size_t start = f->line_start[sp.line - 1];
    size_t end = start;
    while (end < f->len && f->text[end] != '\n') end++;
    if (end > start && f->text[end - 1] == '\r') end--;   /* CRLF files */
    const unsigned char *s = (const unsigned char *)f->text + start;
    size_t n = end - start;

    size_t col = sp.col >= 1 ? (size_t)sp.col - 1 : 0;   /* 0-based byte of the caret */
    if (col > n) col = n;
    size_t last;                                          /* 0-based last byte of the span */
    if (sp.end_line == sp.line && sp.end_col >= sp.col) last = (size_t)sp.end_col - 1;
    else if (sp.end_line > sp.line) last = n ? n - 1 : 0;
    else last = col;
    if (last >= n) last = n ? n - 1 : 0;
    if (last < col) last = col;

    int simple = n <= LONG_LINE;
    for (size_t i = 0; simple && i < n; i++) simple = plain(s[i]);
    size_t ws = 0, we = n;
    if (!simple) {
        ws = col > WINDOW ? col - WINDOW : 0;
        we = n - col > WINDOW ? col + WINDOW : n;
        if (last >= we) last = we ? we - 1 : 0;
        if (last < col) last = col;
    }

    sb_printf(b, "%5d | ", sp.line);
    if (ws > 0) sb_puts(b, "...");
    for (size_t i = ws; i < we; i++) {
        if (!simple && s[i] == '\\') sb_puts(b, "\\\\");
        else if (plain(s[i])) sb_putc(b, (char)s[i]);
        else sb_printf(b, "\\x%02x", s[i]);
    }
    if (we < n) sb_puts(b, "...");
    sb_putc(b, '\n');

    sb_puts(b, "      | ");
    if (ws > 0) sb_puts(b, "   ");
    for (size_t i = ws; i < col; i++) {
        if (s[i] == '\t') sb_putc(b, '\t');
        else for (int k = rendered_width(s[i], !simple); k > 0; k--) sb_putc(b, ' ');
    }
    sb_putc(b, '^');
    int tildes = col < n ? rendered_width(s[col], !simple) - 1 : 0;
    for (size_t i = col + 1; i <= last && i < n; i++) tildes += rendered_width(s[i], !simple);
    for (int k = 0; k < tildes; k++) sb_putc(b, '~');
    sb_putc(b, '\n');
}

static void render_msg(StrBuf *b, const Diag *d, const Msg *m)
{
    const char *kind = m->is_note == 1 ? "note" : m->is_note == 2 ? "warning" : "error";
    const SrcFile *f = file_of(d, m->sp.file);
    if (!f) {
        sb_printf(b, "%s: %s\n", kind, m->msg);
        return;
    }
    if (m->sp.line < 1) {
        sb_printf(b, "%s: %s: %s\n", f->path, kind, m->msg);
        return;
    }
    if (m->sp.col < 1) {
        sb_printf(b, "%s:%d: %s: %s\n", f->path, m->sp.line, kind, m->msg);
        return;
    }
    sb_printf(b, "%s:%d:%d: %s: %s\n", f->path, m->sp.line, m->sp.col, kind, m->msg);
    render_source(b, f, m->sp);
}

char *diag_render(const Diag *d)
{
    StrBuf b;
    sb_init(&b);
    for (size_t i = 0; i < d->nmsgs; i++) render_msg(&b, d, &d->msgs[i]);
    if (d->errors > DIAG_MAX_ERRORS) sb_puts(&b, "error: too many errors; stopping\n");
    return b.s; /* the caller owns it */
}

int diag_print(const Diag *d, FILE *out)
{
    char *s = diag_render(d);
    fputs(s, out);
    free(s);
    return d->errors;
}
