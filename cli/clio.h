/* clio.h — input and output conventions shared by `tracc eval` and `tracc run`, so their
 * outputs can be diffed: tokens on the command line form one input; without tokens, each
 * stdin line is one input (whitespace-separated tokens, or with --input-format json one JSON
 * array of tokens). Output: one line per input,
 * values separated by spaces (None for no value), or with --json one JSON array per line
 * (null for no value). */
#ifndef TRACC_CLIO_H
#define TRACC_CLIO_H

#include <stdio.h>

#include "runtime/value.h"

struct json_t;

typedef struct {
    char **argv;        /* tokens from the command line, or NULL to read stdin */
    int argc;
    int json;           /* --input-format json: each stdin line is one JSON array of tokens */
    int done;
    int lineno;         /* 1-based number of the input just returned */
    FILE *in;
    char *line;
    size_t cap;
    char **toks;
    size_t tokcap;
    char **owned;       /* json: the token texts of the line just returned */
    int nowned;
    size_t ownedcap;
    int has_nul;        /* the stdin line just returned holds a NUL byte: its tokens stop at
                           the first NUL, so callers should reject it (added for eval) */
    char *bad;          /* json: why the line just returned is not an array of tokens
                           ("column 4: ..." / "element 2: ..."), else NULL */
} InputReader;

/* --input-format text|json: 0 text, 1 json, -1 anything else. */
int input_format_parse(const char *s);

void input_init(InputReader *r, int argc, char **argv, FILE *in);
/* Next input: returns 1 and sets *toks / *ntoks (valid until the next call), or 0 at the
 * end. Blank stdin lines are returned with ntoks = 0 (the caller reports them), and so is a
 * JSON line that is not an array of tokens (with r->bad set). JSON elements: strings are
 * token texts as they are; numbers stand for their text (3 for the token 3), so integer
 * vocabularies can be written as numbers. */
int input_next(InputReader *r, char ***toks, int *ntoks);
/* Why the input just returned cannot be used (NUL byte, not JSON, empty), or NULL; where:
 * "command-line input" / "input line N". Written into b after "WHERE". */
const char *input_problem(const InputReader *r, int ntoks);
void input_where(const InputReader *r, StrBuf *b);
void input_free(InputReader *r);

/* Print one output row: values space-separated (text) or as a JSON array. */
void print_row(FILE *out, const Value *vals, int n, int json);

/* One value as JSON, as print_row writes it (null for no value or a non-finite float;
 * floats as Python's repr). Added for `tracc eval --json --trace`. */
void print_json_value(FILE *out, Value v);
/* j dumped with jansson's flags, a newline, then j released (json_decref). */
void print_json_object(FILE *out, struct json_t *j, size_t flags);
/* n values as a JSON array "[a, b, ...]" (no newline), as print_row writes it. */
void print_json_array(FILE *out, const Value *vals, int n);

/* The --trace table of `tracc eval` and `tracc run`: rows of values under a header of
 * positions, with section lines between them ("after block 0:"). Printed with labels
 * left-aligned and every value column right-aligned to its widest cell (no trailing blanks). */
typedef struct {
    char *label;        /* NULL for a section line */
    char *section;
    int n;
    char **cells;
} TraceRow;

typedef struct {
    TraceRow *rows;
    int nrows;
    size_t cap;
} TraceTable;

void trace_table_row(TraceTable *t, const char *label, const Value *vals, int n);
void trace_table_section(TraceTable *t, const char *text);
void trace_table_print(const TraceTable *t, FILE *out);
void trace_table_free(TraceTable *t);

#endif
