/* sema.h — the semantic pass, internal to the front end (frontend.c is its only caller):
 * names, kinds and scope; constants; def expansion; encodings; value sets and tables;
 * loads; declarations; the causal check. Input: every file already parsed. */
#ifndef TRACC_SEMA_H
#define TRACC_SEMA_H

#include "ast.h"
#include "diag.h"
#include "frontend.h"
#include "rasp.h"

typedef struct {
    const char *path;   /* as shown in messages: joined onto the loading file's folder */
    int diag_file;      /* -1 if the file could not be read */
    AstNode *ast;       /* NULL if the file could not be read */
    int err;            /* errno when it could not be read */
} SemaFile;

typedef struct {
    const AstNode *node;    /* an AST_LOAD statement */
    int target;             /* index into SemaInput.files */
} SemaLoad;

typedef struct {
    SemaFile *files;        /* files[0] is the main file */
    int nfiles;
    SemaLoad *loads;
    int nloads;
} SemaInput;

/* Check the program and build the IR (path = the main file's path, kept in the program).
 * Returns NULL when any error was reported to d. */
RaspProgram *sema_check(const SemaInput *in, const FrontOptions *opt, Diag *d);

#endif
