/* run.c — `tracc sweep run` (a local pool over the plan's jobs) and `tracc sweep status`. */
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

#include "sweep/sweep.h"


static int exists_in(const char *dir, const char *rdir, const char *file)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/%s", dir, rdir, file);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Held by a running job? (a shared probe: it never blocks a job for long, and a job that
 * meets it just waits or is retried) */
static int is_locked(const char *dir, const char *rdir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/lock", dir, rdir);
    int fd = open(p, O_RDONLY);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

/* Done with this configuration? (result.json's config_sha256 is the plan's) */
static int job_done(const char *dir, json_t *job)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/result.json", dir, json_string_value(json_object_get(job, "dir")));
    struct stat st;
    if (stat(p, &st)) return 0;
    StrBuf e;
    sb_init(&e);
    json_t *r = sw_read_json(p, &e);
    sb_free(&e);
    int same = sw_cfg_is(job, json_string_value(json_object_get(r, "config_sha256")));
    json_decref(r);
    return same;
}

int sw_cfg_is(json_t *job, const char *have)
{
    if (!have || !*have) return 0;
    const char *now = json_string_value(json_object_get(job, "config_sha256"));
    const char *then = json_string_value(json_object_get(job, "config_sha256_paths"));
    return (now && !strcmp(have, now)) || (then && !strcmp(have, then));
}

/* Done only with this configuration: a result.json of another (a sweep re-planned elsewhere,
 * a result copied in) is what `sweep job` runs again, so it counts as pending. */
int sw_job_state(const char *dir, json_t *job)
{
    const char *rdir = json_string_value(json_object_get(job, "dir"));
    if (job_done(dir, job)) return SW_DONE;
    if (is_locked(dir, rdir)) return SW_RUNNING;
    if (exists_in(dir, rdir, "failed.json")) return SW_FAILED;
    return SW_PENDING;
}

json_t *sw_load_plan(const char *dir, StrBuf *err)
{
    StrBuf p;
    sb_init(&p);
    sb_printf(&p, "%s/plan.json", dir);
    json_t *plan = sw_read_json(p.s, err);
    if (plan && !json_is_array(json_object_get(plan, "jobs"))) {
        sb_printf(err, "%s: not a sweep plan (no jobs)", p.s);
        json_decref(plan);
        plan = NULL;
    }
    if (!plan && !err->len) sb_printf(err, "%s: cannot read", p.s);
    sb_free(&p);
    return plan;
}

/* The job's failed.json (NULL when missing or unreadable). */
static json_t *read_failed(const char *dir, const char *rdir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/failed.json", dir, rdir);
    StrBuf e;
    sb_init(&e);
    json_t *f = sw_read_json(p, &e);
    sb_free(&e);
    return f;
}

static volatile sig_atomic_t run_stop;
static void on_run_signal(int sig) { run_stop = sig; }

static void fmt_dur(double s, char *buf, size_t cap)
{
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, cap, "%lds", t);
}

int sw_run(const char *dir, const SwRunOpts *o, const char *tracc, StrBuf *err)
{
    json_t *plan = sw_load_plan(dir, err);
    if (!plan) return 1;
    json_t *jobs = json_object_get(plan, "jobs");
    size_t n = json_array_size(jobs);
    size_t *queue = xcalloc(n + 1, sizeof *queue), *deferred = xcalloc(n + 1, sizeof *deferred);
    pid_t *pids = xcalloc((size_t)o->jobs, sizeof *pids);
    size_t *slot_job = xcalloc((size_t)o->jobs, sizeof *slot_job);
    size_t nq = 0, nd = 0, done = 0, failed = 0, finished_here = 0;
    json_t *failures = json_array();
    for (size_t i = 0; i < n; i++) {
        if (job_done(dir, json_array_get(jobs, i))) done++;
        else queue[nq++] = i;
    }
    size_t already = done;
    int tty = isatty(2);
    struct sigaction old_int, old_term;
    run_stop = 0;
    sw_catch_stop(on_run_signal, &old_int, &old_term);
    double t0 = sw_now();
    char tbuf[16];
    snprintf(tbuf, sizeof tbuf, "%d", o->threads);
    if (!o->quiet)
        fprintf(stderr, "tracc sweep run: %zu jobs, %zu done already, %zu to run, %d at a time\n", n, done, nq, o->jobs);
    int wait_mode = 0;
    size_t qi = 0;
    int running = 0, need_print = 0;
    for (;;) {
        while (!run_stop && running < o->jobs && qi < nq) {
            size_t jix = queue[qi++];
            json_t *job = json_array_get(jobs, jix);
            char *argv[] = {(char *)tracc, "sweep", "job", (char *)dir, (char *)json_string_value(json_object_get(job, "id")),
                            wait_mode ? "--wait" : "--no-wait", "--threads", tbuf, "--quiet", NULL};
            int slot = 0;
            while (pids[slot]) slot++;
            pid_t pid = sw_spawn(argv, NULL, -1, -1, SIGTERM);
            if (pid < 0) {
                sb_printf(err, "cannot start %s: %s", tracc, strerror(errno));
                run_stop = SIGTERM;
                break;
            }
            pids[slot] = pid;
            slot_job[slot] = jix;
            running++;
        }
        if (need_print && !o->quiet) {
            size_t pending = nq - qi + nd;
            double el = sw_now() - t0;
            char eta[32] = "?";
            if (done + failed == n) snprintf(eta, sizeof eta, "0s");
            else if (finished_here > 0)   /* wall time per finished job, so far */
                fmt_dur(el / (double)finished_here * (double)(pending + (size_t)running), eta, sizeof eta);
            fprintf(stderr, "%ssweep: %zu/%zu done, %zu failed, %d running, %zu pending, ETA %s%s", tty ? "\r\033[K" : "",
                    done, n, failed, running, pending, eta, tty ? "" : "\n");
            need_print = 0;
        }
        if (running == 0) {
            if (run_stop || nd == 0) break;
            /* jobs another runner held: wait for each, then run it if it is still not done */
            memcpy(queue, deferred, nd * sizeof *queue);
            nq = nd;
            nd = 0;
            qi = 0;
            wait_mode = 1;
            continue;
        }
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) {
                if (run_stop)
                    for (int s = 0; s < o->jobs; s++)
                        if (pids[s]) kill(pids[s], SIGTERM);
                continue;
            }
            break;
        }
        int slot = -1;
        for (int s = 0; s < o->jobs; s++)
            if (pids[s] == pid) slot = s;
        if (slot < 0) continue;
        pids[slot] = 0;
        running--;
        json_t *job = json_array_get(jobs, slot_job[slot]);
        int code = sw_exit_code(status);
        if (code == 0) {
            done++;
            finished_here++;
        } else if (code == SW_LOCKED) {
            deferred[nd++] = slot_job[slot];
        } else if (!run_stop) {
            failed++;
            finished_here++;
            json_array_append(failures, job);
        }
        need_print = code != SW_LOCKED;
    }
    if (!o->quiet && tty) fputc('\n', stderr);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    int rc = 0;
    size_t i;
    json_t *job;
    json_array_foreach(failures, i, job) {
        const char *rdir = json_string_value(json_object_get(job, "dir"));
        json_t *f = read_failed(dir, rdir);
        fprintf(stderr, "failed: job %s (stage %s, exit %lld): %s/%s/stderr.txt\n",
                json_string_value(json_object_get(job, "id")),
                json_string_value(json_object_get(f, "stage")) ? json_string_value(json_object_get(f, "stage")) : "?",
                (long long)json_integer_value(json_object_get(f, "exit")), dir, rdir);
        json_decref(f);
        rc = 1;
    }
    if (run_stop) {
        if (!err->len) sb_printf(err, "interrupted (signal %d): run it again to continue", (int)run_stop);
        rc = 1;
    } else if (!o->quiet) {
        fprintf(stderr, "tracc sweep run: %zu of %zu jobs done (%zu in this run, %zu before), %zu failed, %.1f s\n", done, n,
                done - already, already, failed, sw_now() - t0);
    }
    if (err->len) rc = 1;
    json_decref(failures);
    json_decref(plan);
    free(queue);
    free(deferred);
    free(pids);
    free(slot_job);
    return rc;
}

/* Where a running job is: its first stage without a record (stage-NAME.json), and for a
 * training stage the last step its --log reached of the steps its "start" line announced
 * (a resumed run appends to the same log). {"stage", "step", "steps"}; the last two absent
 * when unknown. For `sweep status`: a paper job runs for an hour or more. The log's planned
 * path is under the plan's directory (planned), read under DIR (a sweep moved after planning). */
static json_t *job_progress(const char *dir, const char *planned, json_t *job)
{
    const char *rdir = json_string_value(json_object_get(job, "dir"));
    json_t *stages = json_object_get(job, "stages"), *st, *cur = NULL;
    size_t i;
    json_array_foreach(stages, i, st) {
        char f[512];
        snprintf(f, sizeof f, "stage-%s.json", json_string_value(json_object_get(st, "name")));
        if (!exists_in(dir, rdir, f)) {
            cur = st;
            break;
        }
    }
    if (!cur) return NULL;
    json_t *o = json_pack("{s:O}", "stage", json_object_get(cur, "name"));
    json_t *argv = json_object_get(cur, "argv");
    const char *log = NULL;
    for (size_t k = 0; k + 1 < json_array_size(argv); k++) {
        const char *a = json_string_value(json_array_get(argv, k));
        if (a && !strcmp(a, "--log")) log = json_string_value(json_array_get(argv, k + 1));
    }
    char moved[4096];
    size_t pn = planned ? strlen(planned) : 0;
    if (log && pn && !strncmp(log, planned, pn) && log[pn] == '/') {
        snprintf(moved, sizeof moved, "%s%s", dir, log + pn);
        log = moved;
    }
    FILE *fp = log ? fopen(log, "r") : NULL;
    if (!fp) return o;
    char line[1 << 16];
    json_int_t step = -1, steps = -1;
    while (fgets(line, sizeof line, fp)) {
        json_t *l = json_loads(line, 0, NULL);
        if (!l) continue;   /* a line being written, or one longer than the buffer */
        json_t *v = json_object_get(l, "steps");
        if (json_is_integer(v)) steps = json_integer_value(v);
        v = json_object_get(l, "step");
        if (json_is_integer(v)) step = json_integer_value(v);
        json_decref(l);
    }
    fclose(fp);
    if (step >= 0) json_object_set_new(o, "step", json_integer(step));
    if (steps >= 0) json_object_set_new(o, "steps", json_integer(steps));
    return o;
}

int sw_status(const char *dir, int json, StrBuf *err)
{
    json_t *plan = sw_load_plan(dir, err);
    if (!plan) return 1;
    json_t *jobs = json_object_get(plan, "jobs"), *job;
    size_t count[4] = {0}, i;
    json_t *failed = json_array(), *running = json_array(), *progress = json_object();
    json_array_foreach(jobs, i, job) {
        int s = sw_job_state(dir, job);
        count[s]++;
        const char *id = json_string_value(json_object_get(job, "id"));
        const char *rdir = json_string_value(json_object_get(job, "dir"));
        if (s == SW_RUNNING) {
            json_array_append_new(running, json_string(id));
            json_t *pg = job_progress(dir, json_string_value(json_object_get(plan, "dir")), job);
            if (pg) json_object_set_new(progress, id, pg);
        }
        if (s == SW_FAILED) {
            json_t *f = read_failed(dir, rdir);
            char p[4096];
            snprintf(p, sizeof p, "%s/%s/stderr.txt", dir, rdir);
            json_array_append_new(failed, json_pack("{s:s, s:O?, s:O?, s:s}", "id", id, "stage", json_object_get(f, "stage"),
                                                    "exit", json_object_get(f, "exit"), "stderr", p));
            json_decref(f);
        }
    }
    size_t n = json_array_size(jobs);
    if (json) {
        json_t *o = json_pack("{s:O, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "name", json_object_get(plan, "name"), "jobs",
                              (json_int_t)n, "done", (json_int_t)count[SW_DONE], "running", (json_int_t)count[SW_RUNNING],
                              "failed", (json_int_t)count[SW_FAILED], "pending", (json_int_t)count[SW_PENDING],
                              "failed_jobs", failed, "running_jobs", running, "progress", progress);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("%s: %zu jobs: %zu done, %zu running, %zu failed, %zu pending\n", json_string_value(json_object_get(plan, "name")),
               n, count[SW_DONE], count[SW_RUNNING], count[SW_FAILED], count[SW_PENDING]);
        const char *id;
        json_t *pg, *f;
        json_object_foreach(progress, id, pg) {
            json_t *step = json_object_get(pg, "step"), *steps = json_object_get(pg, "steps");
            printf("running: job %s (stage %s", id, json_string_value(json_object_get(pg, "stage")));
            if (step && steps)
                printf(", step %lld of %lld", (long long)json_integer_value(step), (long long)json_integer_value(steps));
            else if (step)
                printf(", step %lld", (long long)json_integer_value(step));
            printf(")\n");
        }
        json_decref(progress);
        json_array_foreach(failed, i, f) {
            json_t *ex = json_object_get(f, "exit");
            printf("failed: job %s (stage %s, exit %lld): %s\n", json_string_value(json_object_get(f, "id")),
                   json_string_value(json_object_get(f, "stage")) ? json_string_value(json_object_get(f, "stage")) : "?",
                   ex ? (long long)json_integer_value(ex) : -1LL, json_string_value(json_object_get(f, "stderr")));
        }
        json_decref(failed);
        json_decref(running);
    }
    json_decref(plan);
    return 0;
}
