/* locate.c — a job's configuration without the places it was planned at.
 *
 * A job's configuration hash (plan.json "config_sha256") decides whether a result.json is the
 * result of that job. Hashed as planned, it would name the sweep directory, the tracc binary
 * and the checkout the programs live in, so results copied to a sweep planned anywhere else
 * (a clone at another path, paper/results unpacked) would be run again. The hash is therefore
 * taken over a copy in which those places are names: @START and @SCRATCH for the start models
 * (their bytes are hashed beside the stages), @SHARED for a shared run's folder (named by a hash
 * of its own command), @SWEEP for the sweep directory, @TRACC for the binary and @ROOT for the deepest directory holding the sweep file and every file the stages
 * name outside the sweep. Two sweeps planned from the same files laid out the same way get the
 * same hashes, wherever they are. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "sweep/sweep.h"

/* A place ends at the end of its string, at a '/' (a path under it) or at a separator of a stage
 * option value, and starts at the string's start or after such a separator. */
static int token_end(char c)
{
    return c == 0 || c == '/' || strchr(SW_VALUE_SEPS, c) != NULL;
}

static int token_start(const char *s, const char *at)
{
    return at == s || strchr(SW_VALUE_SEPS, at[-1]) != NULL;
}

/* s with every token-bounded occurrence of place (a path) replaced by name. */
static char *replace_place(const char *s, const char *place, const char *name)
{
    size_t n = strlen(place);
    StrBuf b;
    sb_init(&b);
    const char *p = s;
    for (const char *at; n && (at = strstr(p, place));) {
        int whole = token_start(s, at) && token_end(at[n]);
        sb_putn(&b, p, (size_t)(at - p) + (whole ? 0 : 1));
        if (whole) sb_puts(&b, name);
        p = at + (whole ? n : 1);
    }
    sb_puts(&b, p);
    char *r = xstrdup(b.s);
    sb_free(&b);
    return r;
}

/* Shorten root to the deepest directory that holds path too. */
static void common_dir(char *root, const char *path)
{
    size_t i = 0, last = 0;
    while (root[i] && root[i] == path[i]) {
        if (root[i] == '/') last = i;
        i++;
    }
    if (!root[i] && (path[i] == '/' || !path[i])) return;   /* root holds path */
    root[last] = 0;                                        /* "" is the file system's root */
}

/* Every absolute path token of the strings under v (not in the sweep, not the binary) into root. */
static void widen_root(json_t *v, const SwPlaces *pl, char *root)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) widen_root(e, pl, root);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) widen_root(e, pl, root);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t dn = strlen(pl->dir);
        for (const char *p = s;;) {
            size_t n = strcspn(p, SW_VALUE_SEPS);
            int binary = n == strlen(pl->tracc) && !strncmp(p, pl->tracc, n);
            if (n && p[0] == '/' && !binary &&
                !(n >= dn && !strncmp(p, pl->dir, dn) && token_end(p[dn]))) {
                char *tok = xstrdup(p);
                tok[n] = 0;
                char *slash = strrchr(tok, '/');
                if (slash) *slash = 0;   /* the file's directory */
                common_dir(root, tok);
                free(tok);
            }
            if (!p[n]) break;
            p += n + 1;
        }
    }
}

static json_t *rename_places(json_t *v, const char *const *from, const char *const *to, int n)
{
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) json_array_append_new(a, rename_places(e, from, to, n));
        return a;
    }
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) json_object_set_new(o, k, rename_places(e, from, to, n));
        return o;
    }
    if (!json_is_string(v)) return json_deep_copy(v);
    char *s = xstrdup(json_string_value(v));
    for (int i = 0; i < n; i++) {
        if (!from[i] || !from[i][0]) continue;
        char *t = replace_place(s, from[i], to[i]);
        free(s);
        s = t;
    }
    json_t *r = json_string(s);
    free(s);
    return r;
}

json_t *sw_without_places(json_t *cfg, const SwPlaces *pl)
{
    char root[4096];
    snprintf(root, sizeof root, "%s", pl->base);
    widen_root(cfg, pl, root);
    const char *shared = NULL;
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(cfg, "stages"), i, st) {
        const char *sh = json_string_value(json_object_get(st, "shared"));
        if (sh) shared = sh;   /* one per job: the Scr.+FT control */
    }
    /* most specific first: the start models and the binary may lie in the sweep or the checkout */
    const char *from[] = {pl->start, pl->sstart, shared, pl->tracc, pl->dir, root};
    const char *to[] = {"@START", "@SCRATCH", "@SHARED", "@TRACC", "@SWEEP", "@ROOT"};
    return rename_places(cfg, from, to, (int)(sizeof from / sizeof from[0]));
}
