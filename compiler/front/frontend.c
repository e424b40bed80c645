/* frontend.c — from a .rasp file to a checked RaspProgram (see frontend.h).
 *
 * Two phases. First every file is read and parsed: the main file, then (breadth-first)
 * each file a `load` names, resolved relative to the loading file and identified by its
 * real path so one file reached by two spellings is parsed once. If any file has a syntax
 * error we stop there: semantic messages about a half-parsed program would mostly be
 * echoes of the syntax error. Second, sema walks the statements, entering loaded files at
 * their `load`s (a missing file or a cycle is reported there).
 *
 * RaspProgram.source is the program as one text: the main file with each `load "x";`
 * statement commented out and followed by the loaded file's text (itself expanded) between
 * `# >>> begin load "x"` and `# <<< end load "x"` lines; a second load of the same file
 * becomes a comment only. This keeps a model file self-describing; it re-parses as one
 * program unless two files' private `_names` clash. */
#include "frontend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ast.h"
#include "sema.h"

typedef struct {
    SemaFile *files;
    char **ident;           /* real path (or the path itself) per file */
    int nfiles;
    size_t capfiles, capident;
    SemaLoad *loads;
    int nloads;
    size_t caploads;
    Arena ast;
    Diag *d;
} Front;

/* `rel` joined onto the folder of `from` (absolute paths stay as they are). */
static char *join_path(const char *from, const char *rel)
{
    if (rel[0] == '/') return xstrdup(rel);
    const char *slash = strrchr(from, '/');
    if (!slash) return xstrdup(rel);
    size_t dl = (size_t)(slash - from) + 1;
    size_t rl = strlen(rel);
    char *p = xmalloc(dl + rl + 1);
    memcpy(p, from, dl);
    memcpy(p + dl, rel, rl + 1);
    return p;
}

static char *identity(const char *path)
{
    char buf[PATH_MAX];
    if (realpath(path, buf)) return xstrdup(buf);
    return xstrdup(path);
}

static int add_file(Front *F, const char *path, char *ident, const char *text, size_t len, int err)
{
    XGROW(F->files, F->capfiles, (size_t)F->nfiles + 1);
    XGROW(F->ident, F->capident, (size_t)F->nfiles + 1);
    SemaFile *f = &F->files[F->nfiles];
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    f->diag_file = -1;
    f->err = err;
    F->ident[F->nfiles] = ident;
    if (text) {
        f->diag_file = diag_add_file(F->d, path, text, len);
        f->ast = parse_program(F->d, f->diag_file, &F->ast);
    }
    return F->nfiles++;
}

/* Read a loaded file; NULL with errno set on failure (a folder reads as EISDIR). */
static char *read_source(const char *path, size_t *len)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        return NULL;
    }
    return read_file(path, len);
}

static void resolve_loads(Front *F)
{
    for (int i = 0; i < F->nfiles; i++) {
        const AstNode *prog = F->files[i].ast;
        if (!prog) continue;
        for (int k = 0; k < prog->nkids; k++) {
            const AstNode *st = prog->kids[k];
            if (st->kind != AST_LOAD || !st->str) continue;
            char *path = join_path(F->files[i].path, st->str);
            char *id = identity(path);
            int target = -1;
            for (int j = 0; j < F->nfiles && target < 0; j++)
                if (!strcmp(F->ident[j], id)) target = j;
            if (target < 0) {
                size_t len = 0;
                char *text = read_source(path, &len);
                int err = text ? 0 : errno;
                target = add_file(F, path, id, text, len, err);
                free(text);
                prog = F->files[i].ast;   /* files may have moved; the AST did not */
            } else {
                free(id);
            }
            free(path);
            XGROW(F->loads, F->caploads, (size_t)F->nloads + 1);
            F->loads[F->nloads++] = (SemaLoad){st, target};
        }
    }
}

/* ---------------------------------------------------------------- expanded source */

static void expand(Front *F, int file, uint8_t *done, StrBuf *out)
{
    const SemaFile *f = &F->files[file];
    size_t len;
    const char *text = diag_file_text(F->d, f->diag_file, &len);
    done[file] = 1;
    size_t pos = 0;
    for (int k = 0; k < f->ast->nkids; k++) {
        const AstNode *st = f->ast->kids[k];
        if (st->kind != AST_LOAD) continue;
        int target = -1;
        for (int i = 0; i < F->nloads; i++)
            if (F->loads[i].node == st) target = F->loads[i].target;
        size_t start = diag_offset(F->d, f->diag_file, st->span.line, st->span.col);
        size_t end = diag_offset(F->d, f->diag_file, st->span.end_line, st->span.end_col) + 1;
        if (end > len) end = len;
        if (start < pos || end <= start) continue;
        sb_putn(out, text + pos, start - pos);
        sb_puts(out, "# ");
        for (size_t i = start; i < end; i++) sb_putc(out, text[i] == '\n' ? ' ' : text[i]);
        if (target >= 0 && F->files[target].ast && !done[target]) {
            sb_printf(out, "\n# >>> begin load \"%s\"\n", st->str);
            expand(F, target, done, out);
            if (out->len && out->s[out->len - 1] != '\n') sb_putc(out, '\n');
            sb_printf(out, "# <<< end load \"%s\"\n", st->str);
        } else {
            sb_puts(out, "  # already loaded above\n");
        }
        pos = end;
    }
    sb_putn(out, text + pos, len - pos);
}

/* ---------------------------------------------------------------- entry points */

RaspProgram *rasp_load_text(const char *path, const char *text, size_t len,
                            const FrontOptions *opt, Diag *d)
{
    Front F;
    memset(&F, 0, sizeof F);
    F.d = d;
    arena_init(&F.ast);
    if (!path) path = "<input>";
    int before = diag_errors(d);
    add_file(&F, path, identity(path), text ? text : "", text ? len : 0, 0);
    resolve_loads(&F);

    RaspProgram *p = NULL;
    if (diag_errors(d) == before) {
        SemaInput in = {F.files, F.nfiles, F.loads, F.nloads};
        p = sema_check(&in, opt, d);
    }
    if (p) {
        StrBuf src;
        sb_init(&src);
        uint8_t *done = xcalloc((size_t)F.nfiles, 1);
        expand(&F, 0, done, &src);
        free(done);
        p->source = arena_strndup(&p->arena, src.s, src.len);
        sb_free(&src);
    }
    for (int i = 0; i < F.nfiles; i++) {
        free((char *)F.files[i].path);
        free(F.ident[i]);
    }
    free(F.files);
    free(F.ident);
    free(F.loads);
    arena_free(&F.ast);
    return p;
}

RaspProgram *rasp_load_file(const char *path, const FrontOptions *opt, Diag *d)
{
    size_t len = 0;
    char *text = read_source(path, &len);
    if (!text) {
        diag_error(d, SPAN_NONE, "cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    RaspProgram *p = rasp_load_text(path, text, len, opt, d);
    free(text);
    return p;
}
