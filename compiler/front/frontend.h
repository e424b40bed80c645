/* frontend.h — from a .rasp file to a checked RaspProgram: read, parse (with loads),
 * check, infer value sets, tabulate. The one entry point the CLI and tests use. */
#ifndef TRACC_FRONTEND_H
#define TRACC_FRONTEND_H

#include "diag.h"
#include "rasp.h"

typedef struct {
    const char *vocab;  /* --vocab override: comma-separated tokens ("a,b,c" or "1,2,3";
                           entries that read as integers are integers), or NULL */
    int max_len;        /* --max-len override, or 0 */
    int causal;         /* --causal override: 1, or -1 to take the file's */
    long long table_budget; /* --table-budget: entries all tables of the program may hold
                               together (maps, sequence maps, selects); 0 = RASP_TABLE_BUDGET */
} FrontOptions;

#define FRONT_OPTIONS_DEFAULT ((FrontOptions){NULL, 0, -1, 0})

/* Returns NULL if any error was reported to d. */
RaspProgram *rasp_load_file(const char *path, const FrontOptions *opt, Diag *d);
/* The same on text in memory; `path` names it in messages and anchors relative loads. */
RaspProgram *rasp_load_text(const char *path, const char *text, size_t len,
                            const FrontOptions *opt, Diag *d);

#endif
