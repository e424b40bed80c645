/* clio.h — input and output conventions shared by `tracc eval` and `tracc run`, so their
 * outputs can be diffed: tokens on the command line form one input; without tokens, each
 * stdin line is one input (whitespace-separated tokens). Output: one line per input,
 * values separated by spaces (None for no value), or with --json one JSON array per line
 * (null for no value). */
#ifndef TRACC_CLIO_H
#define TRACC_CLIO_H

#include <stdio.h>

#include "runtime/value.h"

typedef struct {
    char **argv;        /* tokens from the command line, or NULL to read stdin */
    int argc;
    int done;
    int lineno;         /* 1-based number of the input just returned */
    FILE *in;
    char *line;
    size_t cap;
    char **toks;
    size_t tokcap;
    int has_nul;        /* the stdin line just returned holds a NUL byte: its tokens stop at
                           the first NUL, so callers should reject it (added for eval) */
} InputReader;

void input_init(InputReader *r, int argc, char **argv, FILE *in);
/* Next input: returns 1 and sets *toks / *ntoks (valid until the next call), or 0 at the
 * end. Blank stdin lines are returned with ntoks = 0 (the caller reports them). */
int input_next(InputReader *r, char ***toks, int *ntoks);
void input_free(InputReader *r);

/* Print one output row: values space-separated (text) or as a JSON array. */
void print_row(FILE *out, const Value *vals, int n, int json);

/* One value as JSON, as print_row writes it (null for no value or a non-finite float;
 * floats as Python's repr). Added for `tracc eval --json --trace`. */
void print_json_value(FILE *out, Value v);
/* n values as a JSON array "[a, b, ...]" (no newline), as print_row writes it. */
void print_json_array(FILE *out, const Value *vals, int n);

#endif
