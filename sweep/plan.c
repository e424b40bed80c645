/* plan.c — `tracc sweep plan`: a sweep file expanded into jobs (docs/sweeps.md).
 *
 * The sweep file's keys are the subcommands' long flag names. What each subcommand accepts
 * is not copied here: the known keys are read from `tracc CMD --help`, and the values are
 * checked by running the real option parsers (`tracc CMD ... --check-only`) on one job per
 * grid value. The start models are compiled at plan time (the compile is their check),
 * into a temporary directory that becomes DIR only when everything passed. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/sha256.h"
#include "common/outfile.h"
#include "sweep/sweep.h"

/* A growable argv. */
typedef struct {
    char **v;
    size_t n, cap;
} Args;

static void args_push(Args *a, const char *s)
{
    XGROW(a->v, a->cap, a->n + 2);
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

static void args_free(Args *a)
{
    for (size_t i = 0; i < a->n; i++) free(a->v[i]);
    free(a->v);
    memset(a, 0, sizeof *a);
}

static json_t *args_json(const Args *a)
{
    json_t *j = json_array();
    for (size_t i = 0; i < a->n; i++) json_array_append_new(j, json_string(a->v[i]));
    return j;
}

static void sha_hex_of_json(json_t *v, char hex[65])
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    sha256_hex(s, strlen(s), hex);
    free(s);
}

/* ---- what each subcommand accepts, from its --help ---- */

typedef struct {
    const char *tracc;
    json_t *known;   /* command -> {long option: true} */
} Ctx;

static json_t *known_keys(Ctx *c, const char *cmd, StrBuf *err)
{
    json_t *k = json_object_get(c->known, cmd);
    if (k) return k;
    char *argv[] = {(char *)c->tracc, (char *)cmd, "--help", NULL};
    StrBuf out;
    sb_init(&out);
    int rc = sw_capture(argv, NULL, &out, NULL, err);
    if (rc != 0) {
        if (rc > 0) sb_printf(err, "`%s %s --help` failed (exit %d)", c->tracc, cmd, rc);
        sb_free(&out);
        return NULL;
    }
    k = json_object();
    for (const char *p = out.s; (p = strstr(p, "--")); ) {
        p += 2;
        size_t n = 0;
        while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= '0' && p[n] <= '9') || (p[n] == '-' && n > 0)) n++;
        if (n > 0 && p[0] >= 'a' && p[0] <= 'z') {
            char *key = xstrndup(p, n);
            json_object_set_new(k, key, json_true());
            free(key);
        }
        p += n;
    }
    sb_free(&out);
    /* testing only (not in --help): slows each step so tests can kill a run mid-way */
    if (!strcmp(cmd, "finetune")) json_object_set_new(k, "test-step-delay", json_true());
    json_object_set_new(c->known, cmd, k);
    return k;
}

/* Keys the sweep sets itself (outputs, logs, checkpoints, machine-readable output). */
const char *sw_managed_key(const char *cmd, const char *stage, const char *key)
{
    static const char *common[] = {"output", "json", "help", "check-only", "quiet"};
    for (size_t i = 0; i < ARRAY_LEN(common); i++)
        if (!strcmp(key, common[i])) return "the sweep sets it";
    if (!strcmp(cmd, "finetune")) {
        static const char *ft[] = {"log", "checkpoint", "resume"};
        for (size_t i = 0; i < ARRAY_LEN(ft); i++)
            if (!strcmp(key, ft[i])) return "the sweep sets it";
        if (!strcmp(key, "threads")) return "set by `tracc sweep run --threads` (results do not depend on it)";
    }
    if (!strcmp(cmd, "prune")) {
        if (!strcmp(key, "write-k")) return "the sweep writes no pruned model";
        if (!strcmp(key, "rollback")) return strcmp(stage, "rollback") ? "use the stage after.rollback" : "the sweep sets it";
    }
    if (!strcmp(cmd, "decompile") && !strcmp(key, "diff")) return "the stored --json holds the diff";
    return NULL;
}

/* ---- paths: relative to the sweep file, checked now ---- */

static int looks_like_path(const char *s, size_t n)
{
    static const char *ext[] = {".rasp", ".jsonl", ".json", ".safetensors"};
    for (size_t i = 0; i < ARRAY_LEN(ext); i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !memcmp(s + n - e, ext[i], e)) return 1;
    }
    return 0;
}

/* Resolve one path token against base; 0, or -1 with a message naming key. */
static int resolve_token(const char *tok, size_t n, const char *base, const char *key, StrBuf *out, StrBuf *err)
{
    StrBuf p;
    sb_init(&p);
    if (tok[0] != '/') sb_printf(&p, "%s/", base);
    sb_putn(&p, tok, n);
    char real[PATH_MAX];
    if (!realpath(p.s, real)) {
        sb_printf(err, "%s: %.*s: %s", key, (int)n, tok, strerror(errno));
        sb_free(&p);
        return -1;
    }
    struct stat st;
    if (stat(real, &st) || !S_ISREG(st.st_mode)) {
        sb_printf(err, "%s: %.*s: not a regular file", key, (int)n, tok);
        sb_free(&p);
        return -1;
    }
    sb_puts(out, real);
    sb_free(&p);
    return 0;
}

/* A string value with its file names (tokens between , = : ending in .rasp/.jsonl/...)
 * made absolute; whole=1: the whole string is a path whatever its name. */
static json_t *resolve_string(const char *s, int whole, const char *base, const char *key, StrBuf *err)
{
    StrBuf out;
    sb_init(&out);
    if (whole) {
        if (resolve_token(s, strlen(s), base, key, &out, err)) goto fail;
    } else {
        const char *p = s;
        for (;;) {
            size_t n = strcspn(p, SW_VALUE_SEPS);
            if (n && looks_like_path(p, n)) {
                if (resolve_token(p, n, base, key, &out, err)) goto fail;
            } else {
                sb_putn(&out, p, n);
            }
            if (!p[n]) break;
            sb_putc(&out, p[n]);
            p += n + 1;
        }
    }
    json_t *v = json_string(out.s);
    sb_free(&out);
    return v;
fail:
    sb_free(&out);
    return NULL;
}

/* Every string in section (values and list elements) resolved in place. */
static int resolve_section(json_t *sec, const char *secname, const char *base, StrBuf *err)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(sec, tmp, key, v) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", secname, key);
        int whole = !strcmp(secname, "compile") && !strcmp(key, "program");
        if (json_is_string(v)) {
            json_t *r = resolve_string(json_string_value(v), whole, base, name, err);
            if (!r) return -1;
            json_object_set_new(sec, key, r);
        } else if (json_is_array(v)) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                if (!json_is_string(e)) continue;
                json_t *r = resolve_string(json_string_value(e), whole, base, name, err);
                if (!r) return -1;
                json_array_set_new(v, i, r);
            }
        }
    }
    return 0;
}

/* ---- options -> argv ---- */

static int value_arg(json_t *v, char *buf, size_t cap)
{
    if (json_is_integer(v)) snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v)) fmt_double(json_real_value(v), buf, cap);
    else if (json_is_string(v)) snprintf(buf, cap, "%s", json_string_value(v));
    else return -1;
    return 0;
}

/* Check one option value's JSON type. */
static int check_value(const char *name, json_t *v, StrBuf *err)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_string(e) && !json_is_number(e))
                return sb_fail(err, "%s: list elements must be strings or numbers", name);
        }
        return 0;
    }
    if (json_is_object(v))
        return sb_fail(err, "%s: an object is not an option value (use a string, number, true/false or a list)", name);
    return 0;
}

/* opts as flags: "preset" first (later flags override it), true -> --key, false/null ->
 * nothing, a list -> the flag repeated. */
static void args_opts(Args *a, json_t *opts, const char *skip)
{
    for (int pass = 0; pass < 2; pass++) {
        const char *key;
        json_t *v;
        json_object_foreach(opts, key, v) {
            if ((pass == 0) != !strcmp(key, "preset")) continue;
            if (skip && !strcmp(key, skip)) continue;
            char flag[128], val[1024];
            snprintf(flag, sizeof flag, "--%s", key);
            if (json_is_true(v)) {
                args_push(a, flag);
            } else if (json_is_array(v)) {
                for (size_t i = 0; i < json_array_size(v); i++)
                    if (!value_arg(json_array_get(v, i), val, sizeof val)) {
                        args_push(a, flag);
                        args_push(a, val);
                    }
            } else if (!value_arg(v, val, sizeof val)) {
                args_push(a, flag);
                args_push(a, val);
            }
        }
    }
}

/* Check a section's keys against the command's options. */
static int check_keys(Ctx *c, json_t *sec, const char *secname, const char *cmd, const char *stage,
                      const char *extra, StrBuf *err)
{
    json_t *known = known_keys(c, cmd, err);
    if (!known) return -1;
    const char *key;
    json_t *v;
    json_object_foreach(sec, key, v) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", secname, key);
        if (extra && !strcmp(key, extra)) continue;
        if (!json_object_get(known, key))
            return sb_fail(err, "%s: unknown key: `tracc %s` has no option --%s", name, cmd, key);
        const char *why = sw_managed_key(cmd, stage, key);
        if (why) return sb_fail(err, "%s: not allowed in a sweep file (%s)", name, why);
        if (check_value(name, v, err)) return -1;
    }
    return 0;
}

/* ---- the sweep ---- */

static const char *STAGES[] = {"prune", "rollback", "reft", "scratch", "diff", "attn", "probe", "decompile"};

static const char *stage_cmd(const char *stage)
{
    if (!strcmp(stage, "prune") || !strcmp(stage, "rollback")) return "prune";
    if (!strcmp(stage, "reft") || !strcmp(stage, "scratch")) return "finetune";
    return stage;
}

typedef struct {
    json_t *file;          /* the parsed sweep file */
    json_t *compile, *finetune, *grid, *after;
    const char **gkeys;    /* grid keys as written */
    const char **gcmd;     /* "compile" or "finetune" for each */
    const char **gopt;     /* the option name (prefix removed) */
    size_t ng;
    size_t njobs;
} Sweep;

static int load_sweep(Ctx *c, Sweep *s, const char *path, const char *base, StrBuf *err)
{
    json_error_t je;
    s->file = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!s->file) return sb_fail(err, "%s:%d: %s", path, je.line, je.text);
    if (!json_is_object(s->file)) return sb_fail(err, "%s: a sweep file is a JSON object", path);
    const char *key;
    json_t *v;
    json_object_foreach(s->file, key, v) {
        static const char *top[] = {"name", "paper", "compile", "finetune", "grid", "after", "comment", "blas-core"};
        int ok = 0;
        for (size_t i = 0; i < ARRAY_LEN(top); i++) ok |= !strcmp(key, top[i]);
        if (!ok) {
            sb_printf(err, "%s: unknown key '%s' (known: name, paper, compile, finetune, grid, after, comment, blas-core)",
                      path, key);
            return -1;
        }
    }
    json_t *name = json_object_get(s->file, "name"), *paper = json_object_get(s->file, "paper");
    if (name && !json_is_string(name)) return sb_printf(err, "%s: name: must be a string", path), -1;
    if (paper && !json_is_string(paper) && !json_is_null(paper))
        return sb_printf(err, "%s: paper: must be a string or null", path), -1;
    json_t *core = json_object_get(s->file, "blas-core");
    if (core) {
        const char *cs = json_string_value(core);
        if (!cs || !*cs || strlen(cs) > 32 || strspn(cs, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(cs))
            return sb_printf(err, "%s: blas-core: must be an OpenBLAS core name such as \"Haswell\"", path), -1;
    }
    static const char *need[] = {"compile", "finetune", "grid"};
    for (size_t i = 0; i < ARRAY_LEN(need); i++) {
        json_t *sec = json_object_get(s->file, need[i]);
        if (!json_is_object(sec))
            return sb_fail(err, "%s: %s: %s", path, need[i], sec ? "must be an object" : "missing");
    }
    s->compile = json_deep_copy(json_object_get(s->file, "compile"));
    s->finetune = json_deep_copy(json_object_get(s->file, "finetune"));
    s->grid = json_deep_copy(json_object_get(s->file, "grid"));
    json_t *after = json_object_get(s->file, "after");
    if (after && !json_is_object(after)) return sb_printf(err, "%s: after: must be an object", path), -1;
    s->after = after ? json_deep_copy(after) : json_object();

    /* compile */
    if (!json_is_string(json_object_get(s->compile, "program")))
        return sb_printf(err, "%s: compile.program: missing (the .rasp file to compile)", path), -1;
    if (check_keys(c, s->compile, "compile", "compile", "", "program", err)) goto named;
    if (resolve_section(s->compile, "compile", base, err)) goto named;
    /* finetune */
    if (check_keys(c, s->finetune, "finetune", "finetune", "finetune", NULL, err)) goto named;
    if (resolve_section(s->finetune, "finetune", base, err)) goto named;
    /* grid */
    s->ng = json_object_size(s->grid);
    if (s->ng == 0) return sb_printf(err, "%s: grid: empty (give at least one key, e.g. \"seed\": [1])", path), -1;
    s->gkeys = xcalloc(s->ng, sizeof *s->gkeys);
    s->gcmd = xcalloc(s->ng, sizeof *s->gcmd);
    s->gopt = xcalloc(s->ng, sizeof *s->gopt);
    json_t *kc = known_keys(c, "compile", err), *kf = known_keys(c, "finetune", err);
    if (!kc || !kf) goto named;
    size_t gi = 0;
    s->njobs = 1;
    json_object_foreach(s->grid, key, v) {
        char name2[256];
        snprintf(name2, sizeof name2, "grid.%s", key);
        const char *opt = key, *cmd = NULL;
        if (!strncmp(key, "compile.", 8)) opt = key + 8, cmd = "compile";
        else if (!strncmp(key, "finetune.", 9)) opt = key + 9, cmd = "finetune";
        else if (json_object_get(kf, key)) cmd = "finetune";
        else if (json_object_get(kc, key) || !strcmp(key, "program")) cmd = "compile";
        json_t *known = cmd && !strcmp(cmd, "compile") ? kc : kf;
        if (!cmd || (!json_object_get(known, opt) && !(!strcmp(cmd, "compile") && !strcmp(opt, "program")))) {
            sb_printf(err, "%s: unknown key: no option --%s of `tracc finetune` or `tracc compile`", name2, opt);
            goto named;
        }
        const char *why = sw_managed_key(cmd, cmd, opt);
        if (why) {
            sb_printf(err, "%s: not allowed in a sweep file (%s)", name2, why);
            goto named;
        }
        if (!json_is_array(v) || json_array_size(v) == 0) {
            sb_printf(err, "%s: must be a non-empty list of values", name2);
            goto named;
        }
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_string(e) && !json_is_number(e) && !json_is_boolean(e)) {
                sb_printf(err, "%s: values must be strings, numbers or true/false", name2);
                goto named;
            }
            if (json_is_string(e)) {
                json_t *r = resolve_string(json_string_value(e), !strcmp(opt, "program"), base, name2, err);
                if (!r) goto named;
                json_array_set_new(v, i, r);
            }
        }
        s->gkeys[gi] = key;
        s->gcmd[gi] = cmd;
        s->gopt[gi] = opt;
        gi++;
        s->njobs *= json_array_size(v);
        if (s->njobs > 1000000) return sb_fail(err, "%s: the grid has more than 1000000 jobs", path);
    }
    /* after */
    json_object_foreach(s->after, key, v) {
        char name2[256];
        snprintf(name2, sizeof name2, "after.%s", key);
        int ok = 0;
        for (size_t i = 0; i < ARRAY_LEN(STAGES); i++) ok |= !strcmp(key, STAGES[i]);
        if (!ok) {
            sb_printf(err, "%s: unknown stage (known: prune, rollback, reft, scratch, diff, attn, probe, decompile)", name2);
            goto named;
        }
        if (!json_is_object(v)) {
            sb_printf(err, "%s: must be an object of `tracc %s` options", name2, stage_cmd(key));
            goto named;
        }
        if (check_keys(c, v, name2, stage_cmd(key), key, !strcmp(key, "attn") ? "tokens" : NULL, err)) goto named;
        if (resolve_section(v, name2, base, err)) goto named;
    }
    json_t *attn = json_object_get(s->after, "attn");
    if (attn) {
        json_t *t = json_object_get(attn, "tokens");
        if (!t || !((json_is_string(t) && json_string_length(t)) || (json_is_array(t) && json_array_size(t)))) {
            sb_printf(err, "%s: after.attn.tokens: missing (the input to show: a string of space-separated tokens or a list)", path);
            return -1;
        }
    }
    if (json_object_get(s->after, "scratch") && !json_is_string(json_object_get(s->finetune, "task"))) {
        sb_printf(err, "%s: after.scratch: needs finetune.task (the program the control model is compiled from)", path);
        return -1;
    }
    return 0;
named:
    {
        /* prefix the file name */
        char *m = xstrdup(err->s);
        sb_clear(err);
        sb_printf(err, "%s: %s", path, m);
        free(m);
    }
    return -1;
}

static void sweep_free(Sweep *s)
{
    json_decref(s->file);
    json_decref(s->compile);
    json_decref(s->finetune);
    json_decref(s->grid);
    json_decref(s->after);
    free(s->gkeys);
    free(s->gcmd);
    free(s->gopt);
}

/* The grid value indices of job j (the last key varies fastest). */
static void job_indices(const Sweep *s, size_t j, size_t *idx)
{
    for (size_t k = s->ng; k-- > 0;) {
        size_t n = json_array_size(json_object_get(s->grid, s->gkeys[k]));
        idx[k] = j % n;
        j /= n;
    }
}

static size_t job_of_indices(const Sweep *s, const size_t *idx)
{
    size_t j = 0;
    for (size_t k = 0; k < s->ng; k++) j = j * json_array_size(json_object_get(s->grid, s->gkeys[k])) + idx[k];
    return j;
}

/* ---- one job ---- */

typedef struct {
    json_t *params;     /* grid key -> value */
    json_t *compile;    /* compile options of its start model (with "program") */
    json_t *finetune;   /* finetune options */
} JobCfg;

static void job_cfg(const Sweep *s, const size_t *idx, JobCfg *jc)
{
    jc->params = json_object();
    jc->compile = json_deep_copy(s->compile);
    jc->finetune = json_deep_copy(s->finetune);
    for (size_t k = 0; k < s->ng; k++) {
        json_t *v = json_array_get(json_object_get(s->grid, s->gkeys[k]), idx[k]);
        /* params keep the file's spelling (relative paths too), the options the resolved value */
        json_object_set(jc->params, s->gkeys[k],
                        json_array_get(json_object_get(json_object_get(s->file, "grid"), s->gkeys[k]), idx[k]));
        json_object_set(!strcmp(s->gcmd[k], "compile") ? jc->compile : jc->finetune, s->gopt[k], v);
    }
}

static void job_cfg_free(JobCfg *jc)
{
    json_decref(jc->params);
    json_decref(jc->compile);
    json_decref(jc->finetune);
}

/* The compile argv (without -o) of a start model: program first. */
static void compile_args(Args *a, const char *tracc, json_t *copts, const char *program)
{
    args_push(a, tracc);
    args_push(a, "compile");
    args_push(a, program ? program : json_string_value(json_object_get(copts, "program")));
    args_opts(a, copts, "program");
    args_push(a, "--json");
}

/* models/<kind>-<hash>.safetensors for a compile argv. */
static char *model_name(const char *kind, const Args *a)
{
    json_t *j = args_json(a);
    json_array_remove(j, 0);   /* not the binary's path: the same model from any build */
    char hex[65];
    sha_hex_of_json(j, hex);
    json_decref(j);
    StrBuf b;
    sb_init(&b);
    sb_printf(&b, "models/%s-%.12s.safetensors", kind, hex);
    char *r = xstrdup(b.s);
    sb_free(&b);
    return r;
}

static const char *DATA_KEYS[] = {"task",      "data",      "spurious",  "spurious-rate", "spurious-others",
                                  "mix",       "stop-when", "max-tries"};
static const char *EVAL_KEYS[] = {"at", "len", "eval", "eval-size", "eval-seed"};

/* Fine-tuning options of a reverse run (reft, scratch): the job's, minus the ones that
 * define its data, plus task = the compiled program. */
static json_t *reverse_opts(const JobCfg *jc)
{
    json_t *o = json_deep_copy(jc->finetune);
    for (size_t i = 0; i < ARRAY_LEN(DATA_KEYS); i++) json_object_del(o, DATA_KEYS[i]);
    json_object_set(o, "task", json_object_get(jc->compile, "program"));
    return o;
}

static void overlay(json_t *dst, json_t *src, const char *skip)
{
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v) if (!skip || strcmp(key, skip)) json_object_set(dst, key, v);
}

/* The stages of one job as JSON [{name, argv, [shared]}]; argv[0] is the tracc binary.
 * R is the run dir, start/sstart the start models (absolute). */
static json_t *job_stages(const Sweep *s, const JobCfg *jc, const char *tracc, const char *dir, const char *R,
                          const char *start, const char *sstart)
{
    json_t *stages = json_array();
    StrBuf p;
    sb_init(&p);
    char model[PATH_MAX + 32];
    snprintf(model, sizeof model, "%s/model.safetensors", R);
#define PATHF(...) (sb_clear(&p), sb_printf(&p, __VA_ARGS__), p.s)
    /* finetune */
    {
        Args a = {0};
        json_t *o = json_deep_copy(jc->finetune);
        args_push(&a, tracc);
        args_push(&a, "finetune");
        args_push(&a, start);
        args_opts(&a, o, NULL);
        args_push(&a, "-o"), args_push(&a, model);
        args_push(&a, "--log"), args_push(&a, PATHF("%s/log.jsonl", R));
        args_push(&a, "--checkpoint"), args_push(&a, PATHF("%s/model.ckpt.safetensors", R));
        args_push(&a, "--quiet"), args_push(&a, "--json");
        json_array_append_new(stages, json_pack("{s:s, s:o}", "name", "finetune", "argv", args_json(&a)));
        json_decref(o);
        args_free(&a);
    }
    json_t *reft = json_object_get(s->after, "reft");
    for (size_t si = 0; si < ARRAY_LEN(STAGES); si++) {
        const char *st = STAGES[si];
        json_t *sec = json_object_get(s->after, st);
        if (!sec) continue;
        Args a = {0};
        args_push(&a, tracc);
        args_push(&a, stage_cmd(st));
        json_t *extra = NULL;
        if (!strcmp(st, "prune") || !strcmp(st, "rollback")) {
            json_t *o = json_object();
            json_object_set(o, "task", json_object_get(jc->compile, "program"));
            for (size_t i = 0; i < ARRAY_LEN(EVAL_KEYS); i++)
                if (json_object_get(jc->finetune, EVAL_KEYS[i]))
                    json_object_set(o, EVAL_KEYS[i], json_object_get(jc->finetune, EVAL_KEYS[i]));
            if (!strcmp(st, "prune")) json_object_set_new(o, "top", json_string("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20"));
            else json_object_set_new(o, "rollback", json_string(start));
            overlay(o, sec, NULL);
            args_push(&a, model);
            args_opts(&a, o, NULL);
            args_push(&a, "--json");
            json_decref(o);
        } else if (!strcmp(st, "reft") || !strcmp(st, "scratch")) {
            json_t *o = reverse_opts(jc);
            const char *sub = st;
            if (!strcmp(st, "reft")) {
                json_object_set_new(o, "init-noise", json_integer(0));
                overlay(o, sec, NULL);
            } else {
                if (reft) overlay(o, reft, "init-noise");
                overlay(o, sec, NULL);
            }
            args_push(&a, !strcmp(st, "reft") ? model : sstart);
            args_opts(&a, o, NULL);
            json_decref(o);
            char base[PATH_MAX];
            if (!strcmp(st, "scratch")) {
                /* the control does not depend on the fine-tuned model: one run per distinct
                 * configuration, shared by the jobs that have it */
                json_t *j = args_json(&a);
                char hex[65];
                sha_hex_of_json(j, hex);
                json_decref(j);
                snprintf(base, sizeof base, "%s/shared/scratch-%.12s", dir, hex);
                extra = json_string(base);
                sub = "model";
            } else {
                snprintf(base, sizeof base, "%s", R);
            }
            args_push(&a, "-o"), args_push(&a, PATHF("%s/%s.safetensors", base, sub));
            args_push(&a, "--log"), args_push(&a, PATHF("%s/%s.jsonl", base, !strcmp(st, "scratch") ? "log" : sub));
            args_push(&a, "--checkpoint"), args_push(&a, PATHF("%s/%s.ckpt.safetensors", base, sub));
            args_push(&a, "--quiet"), args_push(&a, "--json");
        } else if (!strcmp(st, "diff")) {
            args_opts(&a, sec, NULL);
            args_push(&a, "--json");
            args_push(&a, start);
            args_push(&a, model);
        } else if (!strcmp(st, "attn")) {
            args_opts(&a, sec, "tokens");
            args_push(&a, "--json");
            args_push(&a, start);
            args_push(&a, model);
            json_t *t = json_object_get(sec, "tokens");
            if (json_is_string(t)) {
                char *cp = xstrdup(json_string_value(t)), *save = NULL;
                for (char *tok = strtok_r(cp, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) args_push(&a, tok);
                free(cp);
            } else {
                for (size_t i = 0; i < json_array_size(t); i++) {
                    char val[256];
                    if (!value_arg(json_array_get(t, i), val, sizeof val)) args_push(&a, val);
                }
            }
        } else {   /* probe, decompile */
            args_opts(&a, sec, NULL);
            args_push(&a, "--json");
            args_push(&a, model);
        }
        json_t *stj = json_pack("{s:s, s:o}", "name", st, "argv", args_json(&a));
        if (extra) json_object_set_new(stj, "shared", extra);
        /* a decompiler that cannot read one fine-tuned model must not cost the job its other
         * results: `sweep job` records its error in after.decompile instead of failing */
        if (!strcmp(st, "decompile")) json_object_set_new(stj, "optional", json_true());
        json_array_append_new(stages, stj);
        args_free(&a);
    }
#undef PATHF
    sb_free(&p);
    return stages;
}

/* ---- plan ---- */

/* A subcommand's error without its "Try 'tracc CMD --help'." line and trailing newline. */
static void trim_message(char *m)
{
    char *t = strstr(m, "\nTry ");
    if (t) *t = 0;
    size_t n = strlen(m);
    while (n && m[n - 1] == '\n') m[--n] = 0;
}

/* s with every occurrence of from replaced by to (a new string). */
static char *replace_all(const char *s, const char *from, const char *to)
{
    StrBuf b;
    sb_init(&b);
    size_t fl = strlen(from);
    for (const char *hit; fl && (hit = strstr(s, from)); s = hit + fl) {
        sb_putn(&b, s, (size_t)(hit - s));
        sb_puts(&b, to);
    }
    sb_puts(&b, s);
    char *r = xstrdup(b.s);
    sb_free(&b);
    return r;
}

/* `tracc decompile` has no --check-only: its options are checked by running it, through its
 * own parser, on the job's start model (compiled into tmpdir by now) with the user's options
 * followed by `--inputs 1` (the user's value is parsed first; the last one wins, so the check
 * is quick). A structure or --at the model does not have fails here, as it would on every job. */
static void decompile_check_args(Args *a, json_t *av, json_t *job, const char *dir, const char *tmpdir)
{
    json_t *ft = json_array_get(json_object_get(json_array_get(json_object_get(job, "stages"), 0), "argv"), 2);
    const char *start = json_string_value(ft);   /* the finetune stage's START: DIR/models/... */
    size_t n = json_array_size(av), dl = strlen(dir);
    for (size_t i = 0; i < n; i++) {
        const char *x = json_string_value(json_array_get(av, i));
        if (i == n - 1 && start && !strncmp(start, dir, dl)) {   /* the fine-tuned model: not there yet */
            char *p = xmalloc(strlen(tmpdir) + strlen(start + dl) + 1);
            sprintf(p, "%s%s", tmpdir, start + dl);
            args_push(a, p);
            free(p);
        } else {
            args_push(a, x);
        }
    }
    args_push(a, "--inputs");
    args_push(a, "1");
}

/* Absolute form of path, which need not exist: realpath of its longest existing prefix. */
static char *abs_path(const char *path)
{
    char *cp = xstrdup(path);
    size_t n = strlen(cp);
    while (n > 1 && cp[n - 1] == '/') cp[--n] = 0;
    char real[PATH_MAX];
    StrBuf rest;
    sb_init(&rest);
    for (;;) {
        if (realpath(cp[0] ? cp : ".", real)) break;
        char *slash = strrchr(cp, '/');
        char *tail = slash ? slash + 1 : cp;
        StrBuf t;
        sb_init(&t);
        sb_printf(&t, "/%s%s", tail, rest.s);
        sb_clear(&rest);
        sb_puts(&rest, t.s);
        sb_free(&t);
        if (slash) {
            *slash = 0;
            if (slash == cp) {   /* "/x": the root exists */
                strcpy(real, "/");
                break;
            }
        } else {
            cp[0] = 0;
        }
    }
    StrBuf out;
    sb_init(&out);
    sb_puts(&out, strcmp(real, "/") ? real : "");
    sb_puts(&out, rest.s);
    free(cp);
    sb_free(&rest);
    char *r = xstrdup(out.s);
    sb_free(&out);
    return r;
}

/* The kernel every job runs on (plan.json "blas_core", OPENBLAS_CORETYPE in `sweep job`): the
 * file's blas-core, or --blas-core (a name, or "none" for none). Outside the jobs' configuration
 * hash: it decides the rounding, not the run asked for, and each result records the kernel used.
 * Checked here by running this tracc with it (`--version` says which kernels it got): OpenBLAS
 * silently takes its own choice for a name it does not know or a kernel the CPU cannot run,
 * and every job would then fail; better one message now. */
static int plan_blas_core(json_t *plan, const char *from_file, const SwPlanOpts *o, StrBuf *err)
{
    const char *core = o->blas_core ? (strcmp(o->blas_core, "none") ? o->blas_core : NULL) : from_file;
    json_object_set_new(plan, "blas_core", core ? json_string(core) : json_null());
    if (!core) return 0;
    char *saved = getenv("OPENBLAS_CORETYPE") ? xstrdup(getenv("OPENBLAS_CORETYPE")) : NULL;
    setenv("OPENBLAS_CORETYPE", core, 1);
    char *argv[] = {(char *)o->tracc, "--version", NULL};
    StrBuf out;
    sb_init(&out);
    int code = sw_capture(argv, NULL, &out, NULL, err);
    if (saved) setenv("OPENBLAS_CORETYPE", saved, 1);
    else unsetenv("OPENBLAS_CORETYPE");
    free(saved);
    const char *got = strstr(out.s, "OpenBLAS kernels: ");
    char name[64] = "";
    if (got) sscanf(got + strlen("OpenBLAS kernels: "), "%63s", name);
    int rc = 0;
    if (code != 0 || !*name) {
        if (!err->len) sb_printf(err, "blas-core %s: cannot run %s --version to check it", core, o->tracc);
        rc = -1;
    } else if (strcasecmp(name, core)) {
        sb_printf(err,
                  "blas-core %s: OpenBLAS here runs its %s kernels instead (a name it does not know, or a CPU that "
                  "cannot run that kernel: Haswell needs x86-64 with AVX2 and FMA); plan with --blas-core none to run "
                  "on this machine's own kernels (the results will not be the same bits as those made on %s), or "
                  "--blas-core %s",
                  core, name, core, name);
        rc = -1;
    }
    sb_free(&out);
    return rc;
}

int sw_plan(const SwPlanOpts *o, StrBuf *err)
{
    int rc = 1;
    Ctx c = {o->tracc, json_object()};
    Sweep s;
    memset(&s, 0, sizeof s);
    char *dir = abs_path(o->dir), *tmpdir = NULL;
    json_t *plan = NULL;
    size_t *idx = NULL;
    StrBuf jobs_txt, msg;
    sb_init(&jobs_txt);
    sb_init(&msg);
    char spath[PATH_MAX], base[PATH_MAX];
    if (!realpath(o->sweep_path, spath)) {
        sb_printf(err, "%s: %s", o->sweep_path, strerror(errno));
        goto out;
    }
    {
        char tmpb[PATH_MAX];
        snprintf(tmpb, sizeof tmpb, "%s", spath);
        snprintf(base, sizeof base, "%s", dirname(tmpb));
    }
    size_t slen;
    char *sweep_text = read_file(spath, &slen);
    if (!sweep_text) {
        sb_printf(err, "%s: %s", o->sweep_path, strerror(errno));
        goto out;
    }

    /* an existing DIR: the same sweep already planned is fine, anything else is refused */
    struct stat st;
    if (!stat(dir, &st)) {
        StrBuf pp;
        sb_init(&pp);
        sb_printf(&pp, "%s/sweep.json", dir);
        size_t olen;
        char *old = read_file(pp.s, &olen);
        sb_free(&pp);
        int same = old && olen == slen && !memcmp(old, sweep_text, slen);
        free(old);
        if (same) {   /* the same file, not a copy elsewhere (its relative paths would differ) */
            sb_init(&pp);
            sb_printf(&pp, "%s/plan.json", dir);
            StrBuf e2;
            sb_init(&e2);
            json_t *op = sw_read_json(pp.s, &e2);
            const char *src = json_string_value(json_object_get(op, "source"));
            same = src && !strcmp(src, spath);
            json_decref(op);
            sb_free(&e2);
            sb_free(&pp);
        }
        if (same) {
            free(sweep_text);
            if (!o->quiet) fprintf(stderr, "tracc sweep plan: %s is already planned from this sweep file; nothing to do\n", o->dir);
            rc = 0;
            goto out;
        }
        int empty = 0;
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(dir);
            struct dirent *e;
            empty = d != NULL;
            while (d && (e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
            if (d) closedir(d);
        }
        if (!empty) {
            free(sweep_text);
            sb_printf(err, "%s: exists and holds something else (plan into a new or empty directory)", o->dir);
            goto out;
        }
    }

    if (load_sweep(&c, &s, spath, base, err)) {
        free(sweep_text);
        goto out;
    }
    /* every fine-tuning stage (finetune, reft, scratch) checkpoints, so a killed one resumes */
    if (!json_object_get(s.finetune, "checkpoint-every"))
        json_object_set_new(s.finetune, "checkpoint-every", json_integer(o->checkpoint_every));

    /* a temporary directory beside DIR's first existing ancestor; renamed to DIR at the end */
    {
        char anc[PATH_MAX];
        snprintf(anc, sizeof anc, "%s", dir);
        while (stat(anc, &st) || !S_ISDIR(st.st_mode)) {
            char *sl = strrchr(anc, '/');
            if (!sl || sl == anc) {
                strcpy(anc, "/");
                break;
            }
            *sl = 0;
        }
        if (!strcmp(anc, dir)) {   /* DIR is an empty directory: use its parent */
            char *sl = strrchr(anc, '/');
            if (sl && sl != anc) *sl = 0;
            else strcpy(anc, "/");
        }
        StrBuf t;
        sb_init(&t);
        sb_printf(&t, "%s/.tracc-plan-XXXXXX", strcmp(anc, "/") ? anc : "");
        tmpdir = xstrdup(t.s);
        sb_free(&t);
        if (!mkdtemp(tmpdir)) {
            sb_printf(err, "%s: cannot create a directory there: %s", o->dir, strerror(errno));
            free(tmpdir);
            tmpdir = NULL;
            free(sweep_text);
            goto out;
        }
    }
    {
        StrBuf p;
        sb_init(&p);
        sb_printf(&p, "%s/models", tmpdir);
        int e1 = sw_mkdirs(p.s, err);
        sb_clear(&p);
        sb_printf(&p, "%s/slurm", tmpdir);
        int e2 = e1 ? 0 : sw_mkdirs(p.s, err);
        sb_free(&p);
        if (e1 || e2) {
            free(sweep_text);
            goto out;
        }
    }

    /* expand; compile each distinct start model once */
    plan = json_pack("{s:i, s:s, s:O, s:O, s:s, s:s, s:s, s:[]}", "tracc_sweep", 1, "name", "", "paper",
                     json_object_get(s.file, "paper") ? json_object_get(s.file, "paper") : json_null(), "grid",
                     json_object_get(s.file, "grid"), "source", spath, "dir", dir, "tracc", o->tracc, "jobs");
    {
        const char *nm = json_string_value(json_object_get(s.file, "name"));
        char b[PATH_MAX];
        snprintf(b, sizeof b, "%s", spath);
        char *bn = basename(b);
        size_t bl = strlen(bn);
        if (bl > 5 && !strcmp(bn + bl - 5, ".json")) bn[bl - 5] = 0;
        json_object_set_new(plan, "name", json_string(nm ? nm : bn));
    }
    /* the kernel every job runs on (OPENBLAS_CORETYPE), outside the jobs' configuration hash:
     * it decides the rounding, not the run asked for, and each result records the kernel used */
    if (plan_blas_core(plan, json_string_value(json_object_get(s.file, "blas-core")), o, err)) goto out;
    json_t *jobs = json_object_get(plan, "jobs"), *models = json_object();   /* rel path -> {argv, sha256} */
    idx = xcalloc(s.ng ? s.ng : 1, sizeof *idx);
    int width = 4;
    for (size_t n = s.njobs; n >= 10000; n /= 10) width++;
    int has_scratch = json_object_get(s.after, "scratch") != NULL;
    const char *kinds[2] = {"start", "scratch"};
    /* every distinct start model, compiled several at a time (stdout, the --json summary,
     * is not needed: the file's hash is what the jobs' configurations record) */
    {
        json_t *todo = json_object();   /* rel -> {argv, params} in plan order */
        for (size_t j = 0; j < s.njobs; j++) {
            job_indices(&s, j, idx);
            JobCfg jc;
            job_cfg(&s, idx, &jc);
            for (int k = 0; k < 1 + has_scratch; k++) {
                Args a = {0};
                compile_args(&a, o->tracc, jc.compile, k ? json_string_value(json_object_get(jc.finetune, "task")) : NULL);
                char *rel = model_name(kinds[k], &a);
                if (!json_object_get(todo, rel))
                    json_object_set_new(todo, rel, json_pack("{s:o, s:O}", "argv", args_json(&a), "params", jc.params));
                free(rel);
                args_free(&a);
            }
            job_cfg_free(&jc);
        }
        size_t nm = json_object_size(todo), mi = 0;
        Args *runs = xcalloc(nm, sizeof *runs);
        char ***argvs = xcalloc(nm, sizeof *argvs);
        int *codes = xcalloc(nm, sizeof *codes);
        StrBuf *cerr = xcalloc(nm, sizeof *cerr);
        const char *rel;
        json_t *m;
        json_object_foreach(todo, rel, m) {
            json_t *av = json_object_get(m, "argv");
            for (size_t i = 0; i < json_array_size(av); i++) args_push(&runs[mi], json_string_value(json_array_get(av, i)));
            char outp[PATH_MAX + 64];
            snprintf(outp, sizeof outp, "%s/%s", tmpdir, rel);
            args_push(&runs[mi], "-o");
            args_push(&runs[mi], outp);
            argvs[mi] = runs[mi].v;
            sb_init(&cerr[mi]);
            if (!o->quiet) fprintf(stderr, "tracc sweep plan: compiling %s\n", rel);
            mi++;
        }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        sw_capture_many(argvs, nm, ncpu < 1 ? 1 : (int)ncpu, codes, cerr);
        int failed = 0;
        mi = 0;
        json_object_foreach(todo, rel, m) {
            char hex[65] = "", outp[PATH_MAX + 64];
            snprintf(outp, sizeof outp, "%s/%s", tmpdir, rel);
            if (!failed && codes[mi] == 0 && sha256_file(outp, hex, err)) failed = 1;
            if (!failed && codes[mi] != 0) {
                trim_message(cerr[mi].s);
                char *ps = json_dumps(json_object_get(m, "params"), JSON_COMPACT);
                sb_printf(err, "%s: compile (the %s model of the job with %s): `tracc compile` failed: %s", spath,
                          strncmp(rel, "models/start", 12) ? "Scr.+FT control" : "start", ps, cerr[mi].s);
                free(ps);
                failed = 1;
            }
            if (!failed) json_object_set_new(models, rel, json_pack("{s:O, s:s}", "argv", json_object_get(m, "argv"), "sha256", hex));
            args_free(&runs[mi]);
            sb_free(&cerr[mi]);
            mi++;
        }
        free(runs);
        free(argvs);
        free(codes);
        free(cerr);
        json_decref(todo);
        if (failed) {
            json_decref(models);
            free(sweep_text);
            goto out;
        }
    }
    for (size_t j = 0; j < s.njobs; j++) {
        job_indices(&s, j, idx);
        JobCfg jc;
        job_cfg(&s, idx, &jc);
        char id[32], R[PATH_MAX], startp[PATH_MAX], sstartp[PATH_MAX] = "";
        snprintf(id, sizeof id, "%0*zu", width & 15, j + 1);
        snprintf(R, sizeof R, "%s/runs/%s", dir, id);
        char *paths[2] = {startp, sstartp};
        for (int k = 0; k < 1 + has_scratch; k++) {
            Args a = {0};
            compile_args(&a, o->tracc, jc.compile, k ? json_string_value(json_object_get(jc.finetune, "task")) : NULL);
            char *rel = model_name(kinds[k], &a);
            snprintf(paths[k], PATH_MAX, "%s/%s", dir, rel);
            free(rel);
            args_free(&a);
        }
        json_t *stages = job_stages(&s, &jc, o->tracc, dir, R, startp, sstartp);
        /* the configuration: every stage's argv and the start models' bytes */
        json_t *cfg = json_pack("{s:O, s:s}", "stages", stages, "start",
                                json_string_value(json_object_get(json_object_get(models, startp + strlen(dir) + 1), "sha256")));
        if (has_scratch)
            json_object_set(cfg, "scratch_start",
                            json_object_get(json_object_get(models, sstartp + strlen(dir) + 1), "sha256"));
        char hex[65], hex_paths[65];
        SwPlaces pl = {dir, o->tracc, base, startp, sstartp};
        json_t *placeless = sw_without_places(cfg, &pl);
        sha_hex_of_json(placeless, hex);
        sha_hex_of_json(cfg, hex_paths);
        json_decref(placeless);
        json_decref(cfg);
        StrBuf line;
        sb_init(&line);
        sw_shell_quote(&line, o->tracc);
        sb_puts(&line, " sweep job ");
        sw_shell_quote(&line, dir);
        sb_printf(&line, " %s", id);
        char rdir[64];
        snprintf(rdir, sizeof rdir, "runs/%s", id);
        json_array_append_new(jobs, json_pack("{s:s, s:O, s:s, s:s, s:s, s:s, s:o}", "id", id, "params", jc.params, "dir",
                                              rdir, "cmd", line.s, "config_sha256", hex, "config_sha256_paths", hex_paths,
                                              "stages", stages));
        sb_puts(&jobs_txt, line.s);
        sb_putc(&jobs_txt, '\n');
        sb_free(&line);
        job_cfg_free(&jc);
    }
    json_object_set_new(plan, "models", models);

    /* check every stage's options with the real parsers: the first job, and one job per
     * other value of each grid key (the others at their first value); each distinct command
     * once, several at a time; the first failure in that order is reported */
    {
        size_t *vi = xcalloc(s.ng, sizeof *vi);
        json_t *checked = json_object();   /* normalized argv -> true */
        Args *checks = NULL;
        char **where = NULL;
        const char **snames = NULL;
        size_t nc = 0, cap = 0, cap2 = 0, cap3 = 0;
        for (size_t kk = 0; kk <= s.ng; kk++) {
            size_t k = kk == 0 ? s.ng : kk - 1;   /* the first job first */
            size_t nv = k < s.ng ? json_array_size(json_object_get(s.grid, s.gkeys[k])) : 1;
            for (size_t v = k < s.ng ? 1 : 0; v < nv; v++) {
                memset(vi, 0, s.ng * sizeof *vi);
                if (k < s.ng) vi[k] = v;
                json_t *job = json_array_get(jobs, job_of_indices(&s, vi));
                json_t *stj;
                size_t si;
                json_array_foreach(json_object_get(job, "stages"), si, stj) {
                    json_t *av = json_object_get(stj, "argv");
                    /* the same options in another job's run dir need no second check */
                    StrBuf norm;
                    sb_init(&norm);
                    const char *rd = json_string_value(json_object_get(job, "dir"));
                    for (size_t i = 1; i < json_array_size(av); i++) {
                        const char *x = json_string_value(json_array_get(av, i)), *hit = strstr(x, rd);
                        if (hit) {
                            sb_putn(&norm, x, (size_t)(hit - x));
                            sb_puts(&norm, "<R>");
                            sb_puts(&norm, hit + strlen(rd));
                        } else {
                            sb_puts(&norm, x);
                        }
                        sb_putc(&norm, '\n');
                    }
                    int seen = json_object_get(checked, norm.s) != NULL;
                    json_object_set_new(checked, norm.s, json_true());
                    sb_free(&norm);
                    if (seen) continue;
                    XGROW(checks, cap, nc + 1);
                    XGROW(where, cap2, nc + 1);
                    XGROW(snames, cap3, nc + 1);
                    Args *a = &checks[nc];
                    memset(a, 0, sizeof *a);
                    const char *sname = json_string_value(json_object_get(stj, "name"));
                    if (!strcmp(sname, "decompile")) decompile_check_args(a, av, job, dir, tmpdir);
                    else
                        for (size_t i = 0; i < json_array_size(av); i++) {
                            args_push(a, json_string_value(json_array_get(av, i)));
                            if (i == 1) args_push(a, "--check-only");
                        }
                    char w[512];
                    if (k < s.ng) {
                        char val[256] = "";
                        json_t *gv = json_array_get(json_object_get(s.grid, s.gkeys[k]), v);
                        if (json_is_boolean(gv)) snprintf(val, sizeof val, "%s", json_is_true(gv) ? "true" : "false");
                        else value_arg(gv, val, sizeof val);
                        snprintf(w, sizeof w, "grid.%s = %s", s.gkeys[k], val);
                    } else {
                        char *ps = json_dumps(json_object_get(job, "params"), JSON_COMPACT);
                        snprintf(w, sizeof w, "%s%s (job %s, grid %s)", strcmp(sname, "finetune") ? "after." : "", sname,
                                 json_string_value(json_object_get(job, "id")), ps);
                        free(ps);
                    }
                    where[nc] = xstrdup(w);
                    snames[nc] = sname;
                    nc++;
                }
            }
        }
        char ***argvs = xcalloc(nc ? nc : 1, sizeof *argvs);
        int *codes = xcalloc(nc ? nc : 1, sizeof *codes);
        StrBuf *cerr = xcalloc(nc ? nc : 1, sizeof *cerr);
        for (size_t i = 0; i < nc; i++) {
            argvs[i] = checks[i].v;
            sb_init(&cerr[i]);
        }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        sw_capture_many(argvs, nc, ncpu < 1 ? 2 : (int)(2 * ncpu), codes, cerr);
        int failed = 0;
        for (size_t i = 0; i < nc; i++) {
            if (codes[i] != 0 && !failed) {
                /* the command's own message names the flag (= the key) */
                trim_message(cerr[i].s);
                char *m = cerr[i].len ? replace_all(cerr[i].s, tmpdir, dir) : xstrdup("(no message)");
                sb_printf(err, "%s: %s: `tracc %s` rejects it%s: %s", spath, where[i], stage_cmd(snames[i]),
                          strcmp(snames[i], "decompile") ? "" : " (run on the start model)", m);
                free(m);
                failed = 1;
            }
            args_free(&checks[i]);
            free(where[i]);
            sb_free(&cerr[i]);
        }
        free(checks);
        free(where);
        free(snames);
        free(argvs);
        free(codes);
        free(cerr);
        free(vi);
        json_decref(checked);
        if (failed) {
            free(sweep_text);
            goto out;
        }
    }

    /* write: sweep.json (verbatim), plan.json, jobs.txt, slurm.sh; then rename into place */
    {
        StrBuf p;
        sb_init(&p);
        int bad = 0;
        sb_printf(&p, "%s/sweep.json", tmpdir);
        bad = bad || of_write(p.s, sweep_text, slen, err);
        free(sweep_text);
        sb_clear(&p);
        sb_printf(&p, "%s/plan.json", tmpdir);
        bad = bad || sw_write_json(p.s, plan, 1, err);
        sb_clear(&p);
        sb_printf(&p, "%s/jobs.txt", tmpdir);
        bad = bad || of_write(p.s, jobs_txt.s, jobs_txt.len, err);
        StrBuf sh;
        sb_init(&sh);
        char jobname[64];   /* the sweep's name, as Slurm can take it */
        snprintf(jobname, sizeof jobname, "%s", json_string_value(json_object_get(plan, "name")));
        for (char *q = jobname; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *q)) *q = '_';
        sb_printf(&sh,
                  "#!/bin/bash\n"
                  "# Written by `tracc sweep plan`: runs line $SLURM_ARRAY_TASK_ID of jobs.txt.\n"
                  "# Submit with: sbatch %s/slurm.sh   (re-submitting after a preemption or a\n"
                  "# failure reruns only what is not done: every job line is idempotent)\n"
                  "#SBATCH --job-name=tracc-%s\n"
                  "#SBATCH --array=1-%zu",
                  dir, jobname, s.njobs);
        if (o->slurm.max_parallel > 0) sb_printf(&sh, "%%%d", o->slurm.max_parallel);
        sb_printf(&sh, "\n#SBATCH --cpus-per-task=%d\n#SBATCH --mem=%s\n#SBATCH --time=%s\n", o->slurm.cpus, o->slurm.mem,
                  o->slurm.time);
        if (o->slurm.partition) sb_printf(&sh, "#SBATCH --partition=%s\n", o->slurm.partition);
        sb_printf(&sh,
                  "#SBATCH --output=%s/slurm/%%A_%%a.out\n"
                  "#SBATCH --open-mode=append\n"
                  "#SBATCH --requeue\n"
                  "set -eu\n"
                  "export OPENBLAS_NUM_THREADS=\"${OPENBLAS_NUM_THREADS:-1}\"\n"
                  "line=$(sed -n \"${SLURM_ARRAY_TASK_ID}p\" ",
                  dir);
        sw_shell_quote(&sh, dir);
        sb_puts(&sh, "/jobs.txt)\n"
                     "if [ -z \"$line\" ]; then echo \"no line $SLURM_ARRAY_TASK_ID in jobs.txt\" >&2; exit 1; fi\n"
                     "exec /bin/sh -c \"$line\"\n");
        sb_clear(&p);
        sb_printf(&p, "%s/slurm.sh", tmpdir);
        bad = bad || of_write(p.s, sh.s, sh.len, err);
        if (!bad) chmod(p.s, 0755);
        sb_free(&sh);
        sb_free(&p);
        if (bad) goto out;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dir);
        char *sl = strrchr(parent, '/');
        if (sl && sl != parent) {
            *sl = 0;
            if (sw_mkdirs(parent, err)) goto out;
        }
        if (rename(tmpdir, dir)) {
            sb_printf(err, "%s: cannot create: %s", o->dir, strerror(errno));
            goto out;
        }
        free(tmpdir);
        tmpdir = NULL;
    }
    if (!o->quiet)
        fprintf(stderr, "tracc sweep plan: %zu jobs in %s (run: tracc sweep run %s -j N; or GNU parallel < jobs.txt; or sbatch slurm.sh)\n",
                s.njobs, o->dir, o->dir);
    printf("%s\n", dir);
    rc = 0;
out:
    if (tmpdir) {
        sw_rm_tree(tmpdir);
        free(tmpdir);
    }
    free(idx);
    json_decref(plan);
    json_decref(c.known);
    sweep_free(&s);
    sb_free(&jobs_txt);
    sb_free(&msg);
    free(dir);
    return rc;
}
