/* diag.h — diagnostics: source files, spans, GCC-style messages with the source line and a caret.
 * Library code never prints or exits on an error: it reports here and returns; the CLI prints. */
#ifndef TRACC_DIAG_H
#define TRACC_DIAG_H

#include <stdio.h>

/* A source span. Lines and columns are 1-based; columns count bytes (spec Decision 16).
 * file is an index from diag_add_file, or -1 for "no position". end is inclusive. */
typedef struct {
    int file;
    int line, col;
    int end_line, end_col;
} Span;

#define SPAN_NONE ((Span){-1, 0, 0, 0, 0})

typedef struct Diag Diag;

Diag *diag_new(void);
void diag_free(Diag *d);

/* Register a source text; the Diag keeps its own copy (so carets can be drawn later).
 * Returns the file id used in Span.file. */
int diag_add_file(Diag *d, const char *path, const char *text, size_t len);
const char *diag_file_path(const Diag *d, int file);
const char *diag_file_text(const Diag *d, int file, size_t *len);
/* Positions in a registered text, through its line-start table (no rescan from byte 0):
 * the byte offset of 1-based (line, col), clamped to the text's length; and the line and
 * column of a byte offset (an offset at the end of a text that ends in '\n' is column 1
 * of the line after it). */
size_t diag_offset(const Diag *d, int file, int line, int col);
void diag_position(const Diag *d, int file, size_t off, int *line, int *col);

/* Report an error or a note (a note follows the error it explains, e.g. "first defined here").
 * Messages are collected in order; nothing is printed until diag_print. */
void diag_error(Diag *d, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_note(Diag *d, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A warning does not count as an error (diag_errors); its notes follow it. */
void diag_warning(Diag *d, Span sp, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int diag_errors(const Diag *d);

/* Only the first DIAG_MAX_ERRORS errors are kept (with their notes); later ones are counted
 * but dropped, and diag_print ends with "error: too many errors; stopping". Passes may
 * stop early once diag_errors() reaches it. */
#define DIAG_MAX_ERRORS 50

/* Print everything collected so far, each as
 *   path:line:col: error: message
 *       3 | source line
 *         |     ^~~~
 * (no position: "path: error: message", or "error: message" without a file).
 * Returns the number of errors. */
int diag_print(const Diag *d, FILE *out);

/* The same text as diag_print, as one heap string (for tests). */
char *diag_render(const Diag *d);

#endif
