/* job.c — `tracc sweep job DIR ID`: one job, idempotent and restartable.
 *
 * Under an flock on runs/ID/lock (inherited by the stage processes, so the lock lives as
 * long as any of them), each stage of the plan runs as a child `tracc` process unless its
 * output (stage-NAME.json, written atomically with the job's config_sha256) is already
 * there; a fine-tuning stage with a checkpoint resumes from it. result.json is written
 * last, atomically, so its existence means done.
 *
 * Each stage's cost (CPU time of its process, user + system, and wall time) is recorded with
 * its output and summed in result.json's "cost". A run of a stage that does not finish
 * (interrupted, or failed) adds its cost to runs/ID/cost-NAME.json, which the run that
 * finishes takes in; a stage resumed from a checkpoint with no such record (its earlier run
 * was killed outright) says so ("uncounted"), and the job's cost is then not "complete". */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/outfile.h"
#include "sweep/sweep.h"

static volatile sig_atomic_t job_stop;
static volatile pid_t job_child;

static void on_stop(int sig)
{
    job_stop = sig;
    if (job_child > 0) kill(job_child, SIGTERM);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* The value of "config_sha256" in a JSON file, or "" (missing or unreadable). */
static void file_sha(const char *path, char out[65])
{
    out[0] = 0;
    StrBuf e;
    sb_init(&e);
    json_t *j = file_exists(path) ? sw_read_json(path, &e) : NULL;
    const char *s = json_string_value(json_object_get(j, "config_sha256"));
    if (s) snprintf(out, 65, "%s", s);
    json_decref(j);
    sb_free(&e);
}

/* The "output" of a stage file (NULL if unreadable: the stage then runs again), and its
 * "cost" into *cost when cost is not NULL (NULL when it has none). */
static json_t *json_output_of(const char *path, json_t **cost)
{
    StrBuf e;
    sb_init(&e);
    json_t *sj = sw_read_json(path, &e);
    json_t *o = json_incref(json_object_get(sj, "output"));
    if (cost) *cost = o ? json_incref(json_object_get(sj, "cost")) : NULL;
    json_decref(sj);
    sb_free(&e);
    return o;
}

/* The value after `flag` in argv, or NULL. */
static const char *argv_after(json_t *argv, const char *flag)
{
    for (size_t i = 0; i + 1 < json_array_size(argv); i++)
        if (!strcmp(json_string_value(json_array_get(argv, i)), flag)) return json_string_value(json_array_get(argv, i + 1));
    return NULL;
}

/* What one run of a stage took: CPU seconds of its process (user + system, threads
 * included) and wall seconds; resumed: it continued from a checkpoint. */
typedef struct {
    double cpu_s, wall_s;
    int resumed;
} StageCost;

/* Run one stage's argv; stdout into `out`, stderr appended to errfd, its cost into *cost.
 * Exit code. */
static int run_stage(json_t *argvj, int threads, int errfd, StrBuf *out, StageCost *cost, StrBuf *err)
{
    memset(cost, 0, sizeof *cost);
    size_t n = json_array_size(argvj);
    char **argv = xcalloc(n + 6, sizeof *argv);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) argv[k++] = xstrdup(json_string_value(json_array_get(argvj, i)));
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", threads);
    if (n > 1 && !strcmp(argv[1], "finetune")) {
        argv[k++] = xstrdup("--threads");
        argv[k++] = xstrdup(tbuf);
        const char *ck = argv_after(argvj, "--checkpoint");
        if (ck && file_exists(ck)) {
            argv[k++] = xstrdup("--resume");
            argv[k++] = xstrdup(ck);
            cost->resumed = 1;
        }
    }
    argv[k] = NULL;
    {
        StrBuf h;
        sb_init(&h);
        sb_puts(&h, "== ");
        for (size_t i = 0; i < k; i++) {
            if (i) sb_putc(&h, ' ');
            sw_shell_quote(&h, argv[i]);
        }
        sb_putc(&h, '\n');
        if (write(errfd, h.s, h.len) < 0) {}
        sb_free(&h);
    }
    char tmpl[] = "/tmp/tracc-stage-XXXXXX";
    int ofd = mkstemp(tmpl);
    int code = -1;
    if (ofd < 0) {
        sb_printf(err, "cannot create a temporary file: %s", strerror(errno));
        goto done;
    }
    unlink(tmpl);
    double t0 = sw_now();
    pid_t pid = sw_spawn(argv, NULL, ofd, errfd, SIGTERM);
    if (pid < 0) {
        sb_printf(err, "cannot start %s: %s", argv[0], strerror(errno));
        close(ofd);
        goto done;
    }
    job_child = pid;
    if (job_stop) kill(pid, SIGTERM);
    int status;
    sw_wait(pid, &status, &cost->cpu_s);
    job_child = 0;
    cost->wall_s = sw_now() - t0;
    code = sw_exit_code(status);
    lseek(ofd, 0, SEEK_SET);
    char buf[65536];
    ssize_t r;
    while ((r = read(ofd, buf, sizeof buf)) > 0) sb_putn(out, buf, (size_t)r);
    close(ofd);
done:
    for (size_t i = 0; i < k; i++) free(argv[i]);
    free(argv);
    return code;
}

/* The last non-empty line a stage wrote to stderr (errfd from offset at on), without the
 * "Try 'tracc CMD --help'." hint; "(no message)" when it wrote nothing. */
static char *stage_message(int errfd, off_t at)
{
    off_t end = lseek(errfd, 0, SEEK_END);
    StrBuf b;
    sb_init(&b);
    char buf[4096];
    for (off_t pos = at; at >= 0 && pos < end;) {
        ssize_t r = pread(errfd, buf, sizeof buf, pos);
        if (r <= 0) break;
        sb_putn(&b, buf, (size_t)r);
        pos += r;
    }
    const char *last = NULL;
    size_t lastn = 0;
    for (const char *p = b.s ? b.s : ""; *p;) {
        size_t n = strcspn(p, "\n");
        if (n && strncmp(p, "Try '", 5) && strncmp(p, "== ", 3)) last = p, lastn = n;
        p += n + (p[n] ? 1 : 0);
    }
    char *m = last ? xstrndup(last, lastn) : xstrdup("(no message)");
    sb_free(&b);
    return m;
}

/* runs/ID/cost-NAME.json: the cost of a stage's runs that did not finish. */
static void partial_cost_path(const char *R, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/cost-%s.json", R, name);
}

/* The stage's partial record (at path p) with run c added: {"cpu_s", "wall_s", "runs"};
 * *had: whether a record was there. */
static json_t *cost_with_run(const char *p, const StageCost *c, int *had)
{
    StrBuf e;
    sb_init(&e);
    json_t *j = file_exists(p) ? sw_read_json(p, &e) : NULL;
    sb_free(&e);
    *had = j != NULL;
    json_t *o = json_pack("{s:f, s:f, s:I}", "cpu_s", c->cpu_s + json_number_value(json_object_get(j, "cpu_s")),
                          "wall_s", c->wall_s + json_number_value(json_object_get(j, "wall_s")), "runs",
                          (json_int_t)1 + json_integer_value(json_object_get(j, "runs")));
    json_decref(j);
    return o;
}

/* Add one unfinished run's cost to the stage's partial record (best effort: a record that
 * cannot be written leaves the next run "uncounted"). */
static void add_partial_cost(const char *R, const char *name, const StageCost *c)
{
    char p[4200];
    partial_cost_path(R, name, p, sizeof p);
    int had;
    json_t *j = cost_with_run(p, c, &had);
    StrBuf e;
    sb_init(&e);
    sw_write_json(p, j, 0, &e);
    sb_free(&e);
    json_decref(j);
}

/* The cost record of a stage that has just finished with cost c: its unfinished runs taken
 * in (and their record removed). */
static json_t *finished_cost(const char *R, const char *name, const StageCost *c)
{
    char p[4200];
    partial_cost_path(R, name, p, sizeof p);
    int had;
    json_t *o = cost_with_run(p, c, &had);
    if (c->resumed && !had) json_object_set_new(o, "uncounted", json_true());
    unlink(p);
    return o;
}

/* result.json's "cost": the stages' records, their CPU and wall seconds summed (shared
 * runs aside: counted with the shared run), and whether every stage's cost is known. Takes
 * costs. */
static json_t *job_cost(json_t *costs)
{
    double cpu = 0, wall = 0;
    int complete = 1;
    const char *k;
    json_t *c;
    json_object_foreach(costs, k, c)
    {
        if (json_object_get(c, "shared")) continue;
        if (!json_object_get(c, "cpu_s") || json_is_true(json_object_get(c, "uncounted"))) complete = 0;
        cpu += json_number_value(json_object_get(c, "cpu_s"));
        wall += json_number_value(json_object_get(c, "wall_s"));
    }
    return json_pack("{s:f, s:f, s:b, s:o}", "cpu_s", cpu, "wall_s", wall, "complete", complete, "stages", costs);
}

static int copy_file(const char *from, const char *to, StrBuf *err)
{
    size_t len;
    char *d = read_file(from, &len);
    if (!d) return sb_fail(err, "%s: %s", from, strerror(errno));
    int rc = of_write(to, d, len, err);
    free(d);
    return rc;
}

int sw_job(const char *dir, const char *id, int wait, int threads, int quiet, StrBuf *err)
{
    int rc = 1, lockfd = -1, errfd = -1, sharedfd = -1;
    json_t *plan = NULL, *job = NULL, *result = NULL;
    StrBuf p, out;
    sb_init(&p);
    sb_init(&out);
    if (!(plan = sw_load_plan(dir, err))) goto out;
    json_t *jobs = json_object_get(plan, "jobs"), *j;
    size_t i;
    json_array_foreach(jobs, i, j) if (!strcmp(json_string_value(json_object_get(j, "id")), id)) job = j;
    if (!job) {
        sb_printf(err, "%s: no job '%s' in plan.json", dir, id);
        goto out;
    }
    const char *sha = json_string_value(json_object_get(job, "config_sha256"));
    char R[4096];
    snprintf(R, sizeof R, "%s/%s", dir, json_string_value(json_object_get(job, "dir")));
    if (sw_mkdirs(R, err)) goto out;

    sb_clear(&p);
    sb_printf(&p, "%s/lock", R);
    if ((lockfd = open(p.s, O_RDWR | O_CREAT, 0644)) < 0) {
        sb_printf(err, "%s: %s", p.s, strerror(errno));
        goto out;
    }
    while (flock(lockfd, LOCK_EX | (wait ? 0 : LOCK_NB))) {
        if (errno == EINTR) continue;
        if (errno == EWOULDBLOCK) {
            rc = SW_LOCKED;
            goto out;
        }
        sb_printf(err, "%s: flock: %s", p.s, strerror(errno));
        goto out;
    }

    char have[65];
    sb_clear(&p);
    sb_printf(&p, "%s/result.json", R);
    char result_path[4096];
    snprintf(result_path, sizeof result_path, "%s", p.s);
    file_sha(result_path, have);
    if (sw_cfg_is(job, have)) {
        rc = 0;   /* done already */
        goto out;
    }
    /* a run dir of another configuration (a result copied in, a re-plan): start afresh */
    sb_clear(&p);
    sb_printf(&p, "%s/config.json", R);
    file_sha(p.s, have);
    if (!sw_cfg_is(job, have)) {
        sw_clear_dir(R, "lock");
        json_t *c = json_pack("{s:s}", "config_sha256", sha);
        int w = sw_write_json(p.s, c, 0, err);
        json_decref(c);
        if (w) goto out;
    }

    sb_clear(&p);
    sb_printf(&p, "%s/stderr.txt", R);
    if ((errfd = open(p.s, O_RDWR | O_CREAT | O_APPEND, 0644)) < 0) {
        sb_printf(err, "%s: %s", p.s, strerror(errno));
        goto out;
    }
    const char *pin = sw_pin_blas(plan);
    if (!getenv("OPENBLAS_NUM_THREADS")) {
        char t[16];
        snprintf(t, sizeof t, "%d", threads);
        setenv("OPENBLAS_NUM_THREADS", t, 1);
    }
    struct sigaction old_int, old_term;
    job_stop = 0;
    sw_catch_stop(on_stop, &old_int, &old_term);

    result = json_pack("{s:s, s:O, s:s}", "id", id, "params", json_object_get(job, "params"), "config_sha256", sha);
    json_t *after = json_object(), *costs = json_object();
    json_t *stj;
    const char *failed_stage = NULL;
    int failed_code = 0;
    json_array_foreach(json_object_get(job, "stages"), i, stj) {
        const char *name = json_string_value(json_object_get(stj, "name"));
        json_t *argvj = json_object_get(stj, "argv");
        const char *shared = json_string_value(json_object_get(stj, "shared"));
        char stage_path[4200];
        snprintf(stage_path, sizeof stage_path, "%s/stage-%s.json", R, name);
        json_t *output = NULL, *cost = NULL;
        file_sha(stage_path, have);
        if (sw_cfg_is(job, have)) output = json_output_of(stage_path, &cost);
        char shared_result[4096] = "";
        if (!output && shared) {
            /* a run shared by several jobs: one of them makes it, the others wait and read */
            if (sw_mkdirs(shared, err)) goto stage_err;
            snprintf(shared_result, sizeof shared_result, "%s/lock", shared);
            if ((sharedfd = open(shared_result, O_RDWR | O_CREAT, 0644)) < 0) {
                sb_printf(err, "%s: %s", shared_result, strerror(errno));
                goto stage_err;
            }
            while (flock(sharedfd, LOCK_EX) && errno == EINTR)
                if (job_stop) break;
            snprintf(shared_result, sizeof shared_result, "%s/result.json", shared);
            if (file_exists(shared_result)) output = json_output_of(shared_result, NULL);
        }
        if (!output) {
            if (job_stop) break;
            sb_clear(&out);
            off_t err_at = lseek(errfd, 0, SEEK_END);
            StageCost sc;
            int code = run_stage(argvj, threads, errfd, &out, &sc, err);
            if (code < 0) goto stage_err;
            if (job_stop) {
                add_partial_cost(shared ? shared : R, name, &sc);
                break;
            }
            int optional = json_is_true(json_object_get(stj, "optional"));
            if (code == 0 && !(output = sw_parse_output(out.s))) {
                const char *m = "tracc sweep job: the stage printed no JSON\n";
                if (write(errfd, m, strlen(m)) < 0) {}
                code = 1;
            }
            if (code != 0 && optional) {
                /* recorded as the stage's output, so a re-run does not try again */
                char *msg = stage_message(errfd, err_at);
                output = json_pack("{s:s, s:i}", "error", msg, "exit", code);
                free(msg);
            } else if (code != 0) {
                add_partial_cost(shared ? shared : R, name, &sc);
                failed_stage = name;
                failed_code = code;
                break;
            }
            cost = finished_cost(shared ? shared : R, name, &sc);
            if (shared) {
                /* the run's cost stays with the shared run (the report counts it once) */
                json_t *sj = json_pack("{s:O, s:o}", "output", output, "cost", cost);
                cost = NULL;
                int w = sw_write_json(shared_result, sj, 0, err);
                json_decref(sj);
                if (w) goto stage_err;
            }
        }
        if (sharedfd >= 0) {
            close(sharedfd);
            sharedfd = -1;
        }
        {
            StrBuf m;
            sb_init(&m);
            if (sw_blas_mismatch(output, pin, &m)) {
                /* not kept, and a stage record of it removed; a checkpoint or shared run made on the
                 * other kernel would give the same again, so the message says how to start afresh */
                unlink(stage_path);
                StrBuf line;
                sb_init(&line);
                sb_printf(&line, "tracc sweep job: stage %s: %s; its output is not kept (to run it afresh: rm -r %s%s%s)\n",
                          name, m.s, R, shared ? " " : "", shared ? shared : "");
                if (write(errfd, line.s, line.len) < 0) {}
                sb_free(&line);
                sb_free(&m);
                json_decref(output);
                json_decref(cost);
                failed_stage = name;
                failed_code = 1;
                break;
            }
            sb_free(&m);
        }
        if (shared) {
            json_decref(cost);
            cost = json_pack("{s:s}", "shared", shared);
        }
        json_t *sj = json_pack("{s:s, s:O, s:O*}", "config_sha256", sha, "output", output, "cost", cost);
        json_object_set_new(costs, name, cost ? cost : json_object());
        int w = sw_write_json(stage_path, sj, 0, err);
        json_decref(sj);
        if (w) {
            json_decref(output);
            goto stage_err;
        }
        if (!strcmp(name, "finetune")) {
            json_object_set_new(result, "finetune", output);
            json_object_set_new(result, "log", json_string("log.jsonl"));
        } else {
            json_object_set_new(after, name, output);
            if (!strcmp(name, "reft")) json_object_set_new(after, "reft_log", json_string("reft.jsonl"));
            if (!strcmp(name, "scratch")) {
                char from[4200], to[4200];
                snprintf(from, sizeof from, "%s/log.jsonl", shared);
                snprintf(to, sizeof to, "%s/scratch.jsonl", R);
                if (!file_exists(to) && copy_file(from, to, err)) goto stage_err;
                json_object_set_new(after, "scratch_log", json_string("scratch.jsonl"));
            }
        }
        continue;
    stage_err:
        json_decref(after);
        json_decref(costs);
        goto restore;
    }
    if (sharedfd >= 0) {
        close(sharedfd);
        sharedfd = -1;
    }
    json_object_set_new(result, "after", after);
    json_object_set_new(result, "cost", job_cost(costs));
    if (job_stop) {
        sb_printf(err, "job %s interrupted (signal %d); run it again to continue", id, (int)job_stop);
        goto restore;
    }
    sb_clear(&p);
    sb_printf(&p, "%s/failed.json", R);
    if (failed_stage) {
        json_t *f = json_pack("{s:s, s:i, s:s, s:s}", "id", id, "exit", failed_code, "stage", failed_stage, "stderr",
                              "stderr.txt");
        if (sw_write_json(p.s, f, 1, err) == 0 && !quiet)
            fprintf(stderr, "tracc sweep job: job %s failed in stage %s (exit %d): see %s/stderr.txt\n", id, failed_stage,
                    failed_code, R);
        json_decref(f);
        goto restore;
    }
    unlink(p.s);
    /* checkpoints are only for resuming */
    json_array_foreach(json_object_get(job, "stages"), i, stj) {
        const char *ck = argv_after(json_object_get(stj, "argv"), "--checkpoint");
        if (ck && !json_object_get(stj, "shared")) unlink(ck);
    }
    if (sw_write_json(result_path, result, 1, err)) goto restore;
    /* result.json holds every stage's output now */
    json_array_foreach(json_object_get(job, "stages"), i, stj) {
        char sp[4200];
        snprintf(sp, sizeof sp, "%s/stage-%s.json", R, json_string_value(json_object_get(stj, "name")));
        unlink(sp);
    }
    rc = 0;
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
out:
    if (sharedfd >= 0) close(sharedfd);
    if (errfd >= 0) close(errfd);
    if (lockfd >= 0) close(lockfd);
    json_decref(result);
    json_decref(plan);
    sb_free(&p);
    sb_free(&out);
    return rc;
}
