/* redo.c — `tracc sweep redo DIR STAGE`: one analysis stage run again on every finished job.
 *
 * A sweep's fine-tuned models outlive the tracc that analysed them; when a newer tracc reads
 * more (decompile's idle check), re-running that one stage on the stored models is seconds
 * per job where the sweep took hours. The stage's planned command is run with argv[0]
 * replaced by this binary, under the job's lock; its output replaces after.STAGE in
 * result.json (written atomically) and result.json's "redone" records which tracc made it.
 * The fine-tuning and a shared stage (Scr.+FT, one run for several jobs) are not redone:
 * they are not analyses of the job's model. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sweep/sweep.h"

/* The stage named `stage` of a job, or NULL. */
static json_t *job_stage(json_t *job, const char *stage)
{
    json_t *stj;
    size_t i;
    json_array_foreach(json_object_get(job, "stages"), i, stj)
    {
        const char *n = json_string_value(json_object_get(stj, "name"));
        if (n && !strcmp(n, stage)) return stj;
    }
    return NULL;
}

/* Why `stage` cannot be redone in this plan (a message), or NULL. */
static const char *refuse(json_t *plan, const char *stage, StrBuf *names)
{
    if (!strcmp(stage, "finetune")) return "the fine-tuning is not an analysis: plan a new sweep to run it again";
    int found = 0;
    json_t *job, *stj;
    size_t i, k;
    json_array_foreach(json_object_get(plan, "jobs"), i, job)
    {
        json_array_foreach(json_object_get(job, "stages"), k, stj)
        {
            const char *n = json_string_value(json_object_get(stj, "name"));
            if (!n) continue;
            if (i == 0 && strcmp(n, "finetune")) sb_printf(names, "%s%s", names->len ? ", " : "", n);
            if (strcmp(n, stage)) continue;
            found = 1;
            if (json_object_get(stj, "shared"))
                return "it is shared by several jobs (one run each), not an analysis of one job's model";
        }
    }
    return found ? NULL : "";
}

/* What a redo runs: the plan, the stage, this tracc, and the options added after `--`. */
typedef struct {
    json_t *plan;
    const char *dir, *stage, *tracc, *version;
    char *const *extra;
    int nextra, quiet;
    int skip_redone;   /* skip jobs whose stage this version already redid with these options */
} RedoCtx;

/* The added options as the JSON array "redone" records. */
static json_t *extra_json(const RedoCtx *x)
{
    json_t *a = json_array();
    for (int i = 0; i < x->nextra; i++) json_array_append_new(a, json_string(x->extra[i]));
    return a;
}

/* Whether result.json says the stage was redone by this version with exactly x's options. */
static int already_redone(const RedoCtx *x, json_t *result)
{
    json_t *rec = json_object_get(json_object_get(result, "redone"), x->stage);
    const char *v = json_string_value(json_object_get(rec, "version"));
    if (!v || strcmp(v, x->version)) return 0;
    json_t *have = json_object_get(rec, "extra");
    if (!x->nextra) return have == NULL;
    json_t *want = extra_json(x);
    int same = have && json_equal(have, want);
    json_decref(want);
    return same;
}

/* The stage's planned command with argv[0] this tracc, then the added options, then `last`
 * (may be NULL); NULL-terminated, *n its length. Free with free_argv. */
static char **stage_argv(const RedoCtx *x, json_t *stj, const char *last, size_t *n)
{
    json_t *argvj = json_object_get(stj, "argv");
    size_t np = json_array_size(argvj), k = 0;
    char **argv = xcalloc(np + (size_t)x->nextra + 2, sizeof *argv);
    argv[k++] = xstrdup(x->tracc);
    for (size_t i = 1; i < np; i++) argv[k++] = xstrdup(json_string_value(json_array_get(argvj, i)));
    for (int i = 0; i < x->nextra; i++) argv[k++] = xstrdup(x->extra[i]);
    if (last) argv[k++] = xstrdup(last);
    *n = k;
    return argv;
}

static void free_argv(char **argv, size_t n)
{
    for (size_t i = 0; i < n; i++) free(argv[i]);
    free(argv);
}

/* Run the stage of one done job again. 0 redone, 1 its stage failed (message in err), -1 an
 * error writing (message in err). */
static int redo_one(const RedoCtx *x, const char *R, const char *result_path, json_t *result, json_t *stj, StrBuf *err)
{
    const char *tracc = x->tracc, *version = x->version;
    size_t n;
    char **argv = stage_argv(x, stj, NULL, &n);
    StrBuf out, eout;
    sb_init(&out);
    sb_init(&eout);
    double cpu_s = 0, wall_s = 0;
    int code = sw_capture_timed(argv, NULL, &out, &eout, &cpu_s, &wall_s, err);
    free_argv(argv, n);
    const char *name = json_string_value(json_object_get(stj, "name"));
    /* the job's stderr.txt keeps what every run of its stages said */
    char ep[4200];
    snprintf(ep, sizeof ep, "%s/stderr.txt", R);
    FILE *ef = fopen(ep, "a");
    if (ef) {
        fprintf(ef, "== tracc sweep redo %s with %s (version %s), exit %d\n%s", name, tracc, version, code,
                eout.s ? eout.s : "");
        fclose(ef);
    }
    json_t *output = code == 0 ? sw_parse_output(out.s ? out.s : "") : NULL;
    int rc = 0;
    if (code < 0) {
        rc = 1;
    } else if (!output && json_is_true(json_object_get(stj, "optional"))) {
        /* as `sweep job` records an optional stage that failed */
        const char *msg = eout.s && eout.len ? eout.s : "(no message)";
        output = json_pack("{s:s%, s:i}", "error", msg, strcspn(msg, "\n"), "exit", code ? code : 1);
    } else if (!output) {
        const char *msg = eout.s && eout.len ? eout.s : "the stage printed no JSON";
        sb_printf(err, "%s: stage %s exited %d: %.*s", R, name, code, (int)strcspn(msg, "\n"), msg);
        rc = 1;
    }
    if (output) {
        json_t *after = json_object_get(result, "after");
        if (!json_is_object(after)) json_object_set_new(result, "after", after = json_object());
        json_object_set_new(after, name, output);
        json_t *redone = json_object_get(result, "redone");
        if (!json_is_object(redone)) json_object_set_new(result, "redone", redone = json_object());
        /* the redo's own cost; result.json's "cost" stays what the sweep's run took */
        json_t *rec = json_pack("{s:s, s:s, s:f, s:f}", "tracc", tracc, "version", version, "cpu_s", cpu_s, "wall_s",
                                wall_s);
        /* the options added to the planned command: the output is not the plan's alone */
        if (x->nextra) json_object_set_new(rec, "extra", extra_json(x));
        json_object_set_new(redone, name, rec);
        if (sw_write_json(result_path, result, 1, err)) rc = -1;
    }
    sb_free(&out);
    sb_free(&eout);
    return rc;
}

typedef struct {
    long redone, not_done, locked, failed, already;
    int error;   /* a file could not be written or a lock opened: stop */
} RedoCounts;

/* Redo the stage on the done jobs whose plan index is w modulo nw (one worker of nw).
 * Progress and each job's failure go to stderr; a fatal error too, counted in c->error. */
static void redo_jobs(const RedoCtx *x, int w, int nw, RedoCounts *c)
{
    json_t *plan = x->plan;
    const char *dir = x->dir, *stage = x->stage;
    int quiet = x->quiet;
    int tty = nw == 1 && isatty(2);
    json_t *job;
    size_t i;
    json_array_foreach(json_object_get(plan, "jobs"), i, job)
    {
        if ((int)(i % (size_t)nw) != w) continue;
        json_t *stj = job_stage(job, stage);
        const char *id = json_string_value(json_object_get(job, "id"));
        const char *sha = json_string_value(json_object_get(job, "config_sha256"));
        const char *jd = json_string_value(json_object_get(job, "dir"));
        if (!stj || !id || !sha || !jd) continue;
        char R[4096], lockp[4200], resp[4200];
        snprintf(R, sizeof R, "%s/%s", dir, jd);
        snprintf(lockp, sizeof lockp, "%s/lock", R);
        snprintf(resp, sizeof resp, "%s/result.json", R);
        if (access(resp, F_OK)) {
            c->not_done++;
            continue;
        }
        int fd = open(lockp, O_RDWR | O_CREAT, 0644);
        if (fd < 0) {
            fprintf(stderr, "tracc sweep redo: %s: %s\n", lockp, strerror(errno));
            c->error = 1;
            break;
        }
        if (flock(fd, LOCK_EX | LOCK_NB)) {
            close(fd);
            c->locked++;
            continue;
        }
        StrBuf e;
        sb_init(&e);
        json_t *result = sw_read_json(resp, &e);
        const char *have = json_string_value(json_object_get(result, "config_sha256"));
        if (!result || !sw_cfg_is(job, have)) {
            c->not_done++;   /* another configuration's result, or unreadable: `sweep job` redoes it */
        } else if (x->skip_redone && already_redone(x, result)) {
            c->already++;
        } else {
            int r = redo_one(x, R, resp, result, stj, &e);
            if (r == 0) {
                c->redone++;
                if (!quiet)
                    fprintf(stderr, "%stracc sweep redo: %s %s (%ld)%s", tty ? "\r\033[K" : "", stage, id,
                            c->redone, tty ? "" : "\n");
            } else {
                c->failed++;
                fprintf(stderr, "%stracc sweep redo: job %s: %s\n", !quiet && tty && c->redone ? "\n" : "", id, e.s);
                if (r < 0) c->error = 1;
            }
        }
        json_decref(result);
        sb_free(&e);
        close(fd);
        if (c->error) break;
    }
    if (!quiet && tty && c->redone) fputc('\n', stderr);
}

/* nw workers, each a child process over its share of the jobs; their counts come back
 * through one pipe (a RedoCounts is far under PIPE_BUF, so each write is whole). */
static void redo_parallel(const RedoCtx *x, int nw, RedoCounts *sum, StrBuf *err)
{
    int pfd[2];
    if (pipe(pfd)) {
        sum->error = 1;
        sb_printf(err, "pipe: %s", strerror(errno));
        return;
    }
    fflush(NULL);
    int started = 0;
    for (int w = 0; w < nw; w++) {
        pid_t pid = fork();
        if (pid < 0) {
            sum->error = 1;
            sb_printf(err, "fork: %s", strerror(errno));
            break;
        }
        if (pid == 0) {
            close(pfd[0]);
            RedoCounts c = {0};
            redo_jobs(x, w, nw, &c);
            ssize_t k = write(pfd[1], &c, sizeof c);
            _exit(k == (ssize_t)sizeof c ? 0 : 1);
        }
        started++;
    }
    close(pfd[1]);
    RedoCounts c;
    int got = 0;
    while (read(pfd[0], &c, sizeof c) == (ssize_t)sizeof c) {
        sum->redone += c.redone, sum->not_done += c.not_done, sum->locked += c.locked, sum->failed += c.failed;
        sum->already += c.already;
        sum->error |= c.error;
        got++;
    }
    close(pfd[0]);
    while (started-- > 0) wait(NULL);
    if (got < nw && !sum->error) {
        sum->error = 1;
        sb_puts(err, "a worker ended without reporting its counts");
    }
}

/* The options added after `--`, checked before any job runs: none the sweep sets itself, and the
 * stage's command accepts them with the planned ones (`--check-only`, on the first job that has
 * the stage). 0, or the exit status to give (2 usage, 1 error) with a message in err. */
static int check_extra(const RedoCtx *x, StrBuf *err)
{
    json_t *job, *stj = NULL;
    size_t i;
    json_array_foreach(json_object_get(x->plan, "jobs"), i, job) if (!stj) stj = job_stage(job, x->stage);
    const char *cmd = json_string_value(json_array_get(json_object_get(stj, "argv"), 1));
    if (!cmd) {
        sb_puts(err, "the plan's stage has no command");
        return 1;
    }
    for (int k = 0; k < x->nextra; k++) {
        const char *a = x->extra[k];
        char key[64];
        if (!strcmp(a, "-o")) snprintf(key, sizeof key, "output");
        else if (!strcmp(a, "-h")) snprintf(key, sizeof key, "help");
        else if (!strncmp(a, "--", 2)) snprintf(key, sizeof key, "%.*s", (int)strcspn(a + 2, "="), a + 2);
        else continue;
        const char *why = sw_managed_key(cmd, x->stage, key);
        if (why) {
            sb_printf(err, "the options after --: %s: %s", a, why);
            return 2;
        }
    }
    size_t n;
    char **argv = stage_argv(x, stj, "--check-only", &n);
    StrBuf eout;
    sb_init(&eout);
    int code = sw_capture(argv, NULL, NULL, &eout, err);
    free_argv(argv, n);
    if (code != 0 && code != -1) {
        const char *m = eout.s && eout.len ? eout.s : "(no message)";
        sb_printf(err, "the options after --: tracc %s refused them (exit %d): %.*s", cmd, code, (int)strcspn(m, "\n"),
                  m);
    }
    sb_free(&eout);
    return code == 0 ? 0 : code == 2 ? 2 : 1;
}

int sw_redo(const char *dir, const char *stage, const char *tracc, const char *version, char *const *extra,
            int nextra, int skip_redone, int jobs, int quiet, StrBuf *err)
{
    StrBuf names;
    sb_init(&names);
    int rc = 1;
    json_t *plan = sw_load_plan(dir, err);
    if (!plan) goto out;
    const char *why = refuse(plan, stage, &names);
    if (why && *why) {
        sb_printf(err, "%s: cannot redo stage '%s': %s", dir, stage, why);
        goto out;
    }
    if (why) {
        sb_printf(err, "%s: no stage '%s' in the plan (its stages after the fine-tuning: %s)", dir, stage,
                  names.len ? names.s : "none");
        goto out;
    }
    /* as `sweep job` runs its stages: one BLAS thread each unless the caller says otherwise,
     * so that a redone stage computes what the sweep's own run would have */
    if (!getenv("OPENBLAS_NUM_THREADS")) setenv("OPENBLAS_NUM_THREADS", "1", 1);
    sw_pin_blas(plan);   /* the analyses on the kernel the sweep pins, as its jobs ran them */
    RedoCtx x = {plan, dir, stage, tracc, version, extra, nextra, quiet, skip_redone};
    if (nextra && (rc = check_extra(&x, err))) goto out;
    rc = 1;
    RedoCounts c = {0};
    if (jobs <= 1) redo_jobs(&x, 0, 1, &c);
    else redo_parallel(&x, jobs, &c, err);
    printf("tracc sweep redo: %s run again on %ld job%s with %s (version %s); %ld not done, %ld held by another "
           "process (skipped), %ld failed",
           stage, c.redone, c.redone == 1 ? "" : "s", tracc, version, c.not_done, c.locked, c.failed);
    if (skip_redone) printf(", %ld redone before with these options (skipped)", c.already);
    putchar('\n');
    rc = c.failed || c.error;
out:
    json_decref(plan);
    sb_free(&names);
    return rc;
}
