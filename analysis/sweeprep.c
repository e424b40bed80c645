/* sweeprep.c — see sweeprep.h and docs/report.md. */
#include "analysis/sweeprep.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analysis/sweeprep_int.h"

/* The built-in paper table: paper/jain2023_table3.tsv, turned into a string by the Makefile. */
extern const char srep_paper_table3[];

const char *const srep_t3[4] = {"pt1", "ft1", "pt0", "ft0"};
const char *const srep_regimes[NREG] = {"learned", "learning", "wrapper", "unchanged", "partly-a", "collapsed", "diverged"};

/* ================================================================ small helpers */

char *srep_take(StrBuf *b)
{
    char *s = sb_steal(b);
    sb_free(b);   /* sb_steal leaves b re-initialized, with a buffer of its own */
    return s;
}

char *srep_path_join(const char *a, const char *b)
{
    StrBuf s;
    sb_init(&s);
    if (b[0] == '/' || !a[0]) sb_puts(&s, b);
    else sb_printf(&s, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
    return srep_take(&s);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* A JSON object from a file: NULL with "PATH:LINE:COL: ..." in err. */
static json_t *load_json_object(const char *path, const char *what, StrBuf *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        sb_printf(err, "%s: not a regular file (expected %s)", path, what);
        return NULL;
    }
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        sb_printf(err, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!j) {
        sb_printf(err, "%s:%d:%d: not valid JSON (%s): expected %s", path, je.line, je.column, je.text, what);
        return NULL;
    }
    if (!json_is_object(j)) {
        sb_printf(err, "%s: not a JSON object: expected %s", path, what);
        json_decref(j);
        return NULL;
    }
    return j;
}

double srep_num(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

double srep_mean(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : NAN;
}

/* Sample standard deviation (divisor n - 1); NaN for n < 2. */
double srep_std(const double *v, int n)
{
    if (n < 2) return NAN;
    double m = srep_mean(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

json_t *srep_num_json(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* {"mean", "std" (sample, n-1; null for n < 2), "n", "values"}. */
json_t *srep_agg_json(const double *v, int n)
{
    json_t *vals = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(vals, json_real(v[i]));
    return json_pack("{s:o, s:o, s:i, s:o}", "mean", srep_num_json(srep_mean(v, n)), "std", srep_num_json(srep_std(v, n)), "n", n,
                     "values", vals);
}

/* "12.3 ± 1.2 (3)", "12.3 (1)", "–" (scale 100: percent). */
void srep_fmt_agg(char *buf, size_t cap, const double *v, int n, double scale, int digits)
{
    if (n == 0) snprintf(buf, cap, "–");
    else if (n == 1) snprintf(buf, cap, "%.*f (1)", digits, scale * v[0]);
    else snprintf(buf, cap, "%.*f ± %.*f (%d)", digits, scale * srep_mean(v, n), digits, scale * srep_std(v, n), n);
}



void srep_vals_push(Vals *a, double x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = xrealloc(a->v, sizeof(double) * (size_t)a->cap);
    }
    a->v[a->n++] = x;
}

/* A JSON scalar as text for labels: numbers as %g, strings as they are. */
void srep_scalar_text(json_t *v, StrBuf *out)
{
    if (json_is_integer(v)) sb_printf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) sb_printf(out, "%g", json_real_value(v));
    else if (json_is_string(v)) sb_puts(out, json_string_value(v));
    else if (json_is_true(v)) sb_puts(out, "true");
    else if (json_is_false(v)) sb_puts(out, "false");
    else if (json_is_null(v)) sb_puts(out, "null");
    else {
        char *s = json_dumps(v, JSON_COMPACT);
        sb_puts(out, s ? s : "?");
        free(s);
    }
}

static int same_num(double a, double b)
{
    return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)) || a == b;
}

/* ================================================================ regime */

const char *srep_regime(double pt1, double ft1, double pt0, double ft0, int diverged)
{
    (void)pt1;   /* no regime turns on it (as in bench/finetune_grid.sh); kept for the table's order */
    if (diverged) return "diverged";
    if (ft0 >= 0.9) return "learned";
    if (pt0 >= 0.9) return "unchanged";
    if (ft1 >= 0.9 && ft0 < 0.5 && pt0 < 0.5) return "wrapper";
    if (ft0 >= 0.5) return "learning";
    if (pt0 >= 0.5) return "partly-a";
    return "collapsed";
}

static int regime_index(const char *r)
{
    for (int i = 0; i < NREG; i++)
        if (!strcmp(srep_regimes[i], r)) return i;
    return -1;
}

/* ================================================================ the paper table */

static int paper_parse(SrepReport *r, const char *text, const char *path, StrBuf *err)
{
    const char *p = text;
    int lineno = 0;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *line = xstrndup(p, n);
        p = e ? e + 1 : p + n;
        lineno++;
        if (n && line[n - 1] == '\r') line[--n] = 0;
        if (!n || line[0] == '#' || !strncmp(line, "table\t", 6)) {
            free(line);
            continue;
        }
        char *f[8];
        int nf = 0;
        for (char *q = line; nf < 8;) {
            f[nf++] = q;
            char *t = strchr(q, '\t');
            if (!t) break;
            *t = 0;
            q = t + 1;
        }
        PaperRow row = {0};
        int ok = nf == 7;
        double *dst[6] = {&row.lr, &row.ctr, &row.v[0], &row.v[1], &row.v[2], &row.v[3]};
        for (int i = 0; ok && i < 6; i++) {
            char *end;
            *dst[i] = strtod(f[i + 1], &end);
            ok = end != f[i + 1] && !*end && isfinite(*dst[i]);
        }
        if (!ok) {
            sb_printf(err, "%s:%d: expected 7 tab-separated fields: table, lr, spurious-rate and the numbers "
                           "pt1, ft1, pt0, ft0",
                      path, lineno);
            free(line);
            return -1;
        }
        row.table = xstrdup(f[0]);
        free(line);
        r->paper = xrealloc(r->paper, sizeof(PaperRow) * (size_t)(r->npaper + 1));
        r->paper[r->npaper++] = row;
    }
    return 0;
}

static int paper_has_table(const SrepReport *r, const char *name)
{
    for (int i = 0; i < r->npaper; i++)
        if (!strcmp(r->paper[i].table, name)) return 1;
    return 0;
}

/* ================================================================ loading */

static int read_log(const char *rundir, json_t *name, const char *what, PlotLog *log, const char *result_path,
                    StrBuf *err)
{
    if (!json_is_string(name))
        return sb_fail(err, "%s: \"%s\" must be a file name (relative to the run directory)", result_path, what);
    char *p = srep_path_join(rundir, json_string_value(name));
    size_t len;
    char *text = read_file(p, &len);
    if (!text) {
        sb_printf(err, "%s: cannot read %s (named by %s): %s", p, what, result_path, strerror(errno));
        free(p);
        return -1;
    }
    int rc = plot_read_log_thin(log, p, text, len, MAX_TRAIN_POINTS, err);
    if (rc) plot_log_free(log);
    free(text);
    free(p);
    return rc;
}

/* The last non-empty line of a text (at most 300 bytes). */
static char *last_line(const char *t)
{
    const char *end = t + strlen(t);
    while (end > t && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *b = end;
    while (b > t && b[-1] != '\n') b--;
    size_t n = (size_t)(end - b);
    return xstrndup(b, n > 300 ? 300 : n);
}

static int load_failed(Run *u, const char *fpath, StrBuf *err)
{
    u->failed = load_json_object(fpath, "a failed job's record {\"id\", \"exit\", \"stage\", \"stderr\"}", err);
    if (!u->failed) return -1;
    json_t *id = json_object_get(u->failed, "id");
    if (id && (!json_is_string(id) || strcmp(json_string_value(id), u->id)))
        return sb_fail(err, "%s: \"id\" is not this job's (\"%s\")", fpath, u->id);
    json_t *se = json_object_get(u->failed, "stderr");
    if (json_is_string(se)) {
        char *p = srep_path_join(u->dir, json_string_value(se));
        size_t len;
        char *text = read_file(p, &len);
        free(p);
        if (text) {
            const char *stage = json_string_value(json_object_get(u->failed, "stage"));
            /* the trainer's message when the loss, gradient or a weight stops being finite */
            if ((!stage || !strcmp(stage, "finetune")) && strstr(text, "stopped, nothing written") &&
                (strstr(text, " is nan") || strstr(text, " is inf") || strstr(text, " is not finite")))
                u->diverged = 1;
            u->err_line = last_line(text);
            free(text);
        }
    }
    return 0;
}

static int load_result(Run *u, const char *rpath, StrBuf *err)
{
    u->result = load_json_object(rpath, "a job's result (tracc sweep writes it)", err);
    if (!u->result) return -1;
    json_t *id = json_object_get(u->result, "id");
    if (!json_is_string(id) || strcmp(json_string_value(id), u->id))
        return sb_fail(err, "%s: \"id\" must be this job's id \"%s\"", rpath, u->id);
    json_t *ft = json_object_get(u->result, "finetune");
    if (!json_is_object(ft) || !json_is_object(json_object_get(ft, "eval"))) {
        sb_printf(err, "%s: \"finetune\" must be the object `tracc finetune --json` prints (with \"eval\")", rpath);
        return -1;
    }
    const char *name;
    json_t *set;
    json_object_foreach(json_object_get(ft, "eval"), name, set)
    {
        if (!json_is_object(set) || !json_is_number(json_object_get(set, "acc")))
            return sb_fail(err, "%s: finetune.eval.%s must be an object with a number \"acc\"", rpath, name);
    }
    json_t *log = json_object_get(u->result, "log");
    if (log && !json_is_null(log)) {
        if (read_log(u->dir, log, "log", &u->log, rpath, err)) return -1;
        u->has_log = 1;
    }
    json_t *after = json_object_get(u->result, "after");
    if (after && !json_is_null(after) && !json_is_object(after))
        return sb_fail(err, "%s: \"after\" must be an object of analysis results", rpath);
    json_t *rl = json_object_get(after, "reft_log"), *sl = json_object_get(after, "scratch_log");
    if (rl && !json_is_null(rl)) {
        if (read_log(u->dir, rl, "after.reft_log", &u->reft_log, rpath, err)) return -1;
        u->has_reft = 1;
    }
    if (sl && !json_is_null(sl)) {
        if (read_log(u->dir, sl, "after.scratch_log", &u->scratch_log, rpath, err)) return -1;
        u->has_scratch = 1;
    }
    return 0;
}

/* A job dir with neither file: running if another process holds its lock. */
static int lock_held(const char *dir)
{
    char *p = srep_path_join(dir, "lock");
    int fd = open(p, O_RDONLY);
    free(p);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

/* The grid key of the fine-tuning seed: "seed", or "finetune.seed" when the sweep file had to
 * say which command's seed it varies (a compile seed changes the model: it makes cells). */
static int is_seed_key(const char *k)
{
    return !strcmp(k, "seed") || !strcmp(k, "finetune.seed");
}

static int cell_of(SrepReport *r, int sweep, json_t *params)
{
    json_t *p = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v) if (!is_seed_key(k)) json_object_set(p, k, v);
    char *key = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    for (int i = r->ncells - 1; i >= 0; i--)
        if (r->cells[i].sweep == sweep && !strcmp(r->cells[i].key, key)) {
            free(key);
            json_decref(p);
            return i;
        }
    r->cells = xrealloc(r->cells, sizeof(Cell) * (size_t)(r->ncells + 1));
    Cell *c = &r->cells[r->ncells];
    memset(c, 0, sizeof *c);
    c->sweep = sweep;
    c->params = p;
    c->key = key;
    StrBuf l;
    sb_init(&l);
    json_object_foreach(p, k, v)
    {
        sb_printf(&l, "%s%s=", l.len ? " " : "", k);
        srep_scalar_text(v, &l);
    }
    if (!l.len) sb_puts(&l, "(all jobs)");
    c->label = srep_take(&l);
    json_t *lr = json_object_get(p, "lr"), *ctr = json_object_get(p, "spurious-rate");
    if (json_is_number(lr) && json_is_number(ctr)) {
        c->has_lrctr = 1;
        c->lr = json_number_value(lr);
        c->ctr = json_number_value(ctr);
    }
    return r->ncells++;
}

static int load_sweep(SrepReport *r, int si, const char *dir, StrBuf *err)
{
    Sweep *s = &r->sw[si];
    s->dir = xstrdup(dir);
    struct stat st;
    if (stat(dir, &st) != 0) return sb_fail(err, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return sb_fail(err, "%s: not a directory (expected a sweep directory written by `tracc sweep plan`)", dir);
    char *pp = srep_path_join(dir, "plan.json");
    if (!file_exists(pp)) {
        sb_printf(err, "%s: no plan.json: not a sweep directory (write one with `tracc sweep plan SWEEP.json -o %s`)",
                  dir, dir);
        free(pp);
        return -1;
    }
    s->plan = load_json_object(pp, "a sweep plan (tracc sweep plan writes it)", err);
    if (!s->plan) {
        free(pp);
        return -1;
    }
    json_t *ver = json_object_get(s->plan, "tracc_sweep"), *jobs = json_object_get(s->plan, "jobs");
    json_t *name = json_object_get(s->plan, "name"), *paper = json_object_get(s->plan, "paper");
    int rc = -1;
    if (!json_is_integer(ver)) {
        sb_printf(err, "%s: not a sweep plan (no \"tracc_sweep\": 1)", pp);
        goto out;
    }
    if (json_integer_value(ver) != 1) {
        sb_printf(err, "%s: sweep plan format %lld; this tracc reads format 1", pp, (long long)json_integer_value(ver));
        goto out;
    }
    if (!json_is_array(jobs)) {
        sb_printf(err, "%s: \"jobs\" must be an array", pp);
        goto out;
    }
    if (paper && !json_is_null(paper) && !json_is_string(paper)) {
        sb_printf(err, "%s: \"paper\" must be a table name or null", pp);
        goto out;
    }
    s->name = json_is_string(name) ? json_string_value(name) : dir;
    s->paper = json_string_value(paper);
    if (s->paper && !paper_has_table(r, s->paper)) {
        StrBuf known;
        sb_init(&known);
        for (int i = 0; i < r->npaper; i++)
            if (!i || strcmp(r->paper[i].table, r->paper[i - 1].table))
                sb_printf(&known, "%s%s", known.len ? ", " : "", r->paper[i].table);
        sb_printf(err, "%s: \"paper\": no table \"%s\" in the paper data (known: %s)", pp, s->paper, known.s);
        sb_free(&known);
        goto out;
    }
    size_t nj = json_array_size(jobs);
    r->runs = xrealloc(r->runs, sizeof(Run) * ((size_t)r->nruns + nj));
    for (size_t j = 0; j < nj; j++) {
        json_t *job = json_array_get(jobs, j);
        json_t *id = json_object_get(job, "id"), *params = json_object_get(job, "params");
        json_t *jd = json_object_get(job, "dir");
        if (!json_is_string(id) || !json_is_object(params) || !json_is_string(jd)) {
            sb_printf(err, "%s: jobs[%zu] must be an object with \"id\" (string), \"params\" (object) and \"dir\"", pp,
                      j);
            goto out;
        }
        Run *u = &r->runs[r->nruns++];
        memset(u, 0, sizeof *u);
        u->sweep = si;
        u->id = json_string_value(id);
        u->params = params;
        u->seed = json_object_get(params, "seed");
        if (!u->seed) u->seed = json_object_get(params, "finetune.seed");
        u->dir = srep_path_join(dir, json_string_value(jd));
        u->cell = cell_of(r, si, params);
        Cell *c = &r->cells[u->cell];
        if (c->nruns == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4;
            c->runs = xrealloc(c->runs, sizeof(int) * (size_t)c->cap);
        }
        c->runs[c->nruns++] = r->nruns - 1;
        char *rp = srep_path_join(u->dir, "result.json"), *fp = srep_path_join(u->dir, "failed.json");
        /* as `tracc sweep status` decides: a held lock means running, even over an old
         * failed.json (the job is being retried) */
        if (file_exists(rp)) u->status = RUN_DONE;
        else if (lock_held(u->dir)) u->status = RUN_PENDING, u->running = 1;
        else if (file_exists(fp)) u->status = RUN_FAILED;
        else u->status = RUN_PENDING;
        free(rp);
        free(fp);
        s->njobs++;
        if (u->status == RUN_DONE) s->done++, c->done++;
        else if (u->status == RUN_FAILED) s->failed++, c->failed++;
        else s->pending++, c->pending++, s->running += u->running, c->running += u->running;
    }
    rc = 0;
out:
    free(pp);
    return rc;
}

/* Reading the finished and failed runs' files is most of a report's time and each run is
 * independent: a few threads share them (jansson parses separate documents safely once its
 * hash seed is set: the plan's objects have set it, json_object_seed makes sure). Each run keeps its own
 * error; the first in plan order is reported, so messages do not depend on timing. */
typedef struct {
    SrepReport *r;
    int next;                /* the next run to take */
    pthread_mutex_t mu;
    StrBuf *errs;            /* (nruns) */
    char *failed;            /* (nruns) 1 if the run's files are bad */
} Loader;

static void *loader_main(void *arg)
{
    Loader *L = arg;
    for (;;) {
        pthread_mutex_lock(&L->mu);
        int i = L->next++;
        pthread_mutex_unlock(&L->mu);
        if (i >= L->r->nruns) return NULL;
        Run *u = &L->r->runs[i];
        if (u->status == RUN_PENDING) continue;
        char *p = srep_path_join(u->dir, u->status == RUN_DONE ? "result.json" : "failed.json");
        sb_init(&L->errs[i]);
        L->failed[i] = (char)(u->status == RUN_DONE ? load_result(u, p, &L->errs[i]) : load_failed(u, p, &L->errs[i])) != 0;
        free(p);
    }
}

static int load_runs(SrepReport *r, StrBuf *err)
{
    Loader L = {.r = r};
    pthread_mutex_init(&L.mu, NULL);
    L.errs = xcalloc((size_t)r->nruns + 1, sizeof(StrBuf));
    L.failed = xcalloc((size_t)r->nruns + 1, 1);
    json_object_seed(0);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    if (nt > r->nruns / 16 + 1) nt = r->nruns / 16 + 1;   /* small sweeps: no threads */
    pthread_t th[8];
    int started[8] = {0};
    for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, loader_main, &L) == 0;
    loader_main(&L);
    for (int t = 1; t < nt; t++)
        if (started[t]) pthread_join(th[t], NULL);
    int rc = 0;
    for (int i = 0; i < r->nruns; i++) {
        if (L.failed[i] && !rc) {
            sb_puts(err, L.errs[i].s);
            rc = -1;
        }
        if (r->runs[i].status != RUN_PENDING) sb_free(&L.errs[i]);
    }
    free(L.errs);
    free(L.failed);
    pthread_mutex_destroy(&L.mu);
    return rc;
}

/* The value of eval set `name`, key `metric` ("acc", "acc_decoded", "loss") of a finished run. */
static double run_eval(const Run *u, const char *name, const char *metric)
{
    json_t *ev = json_object_get(json_object_get(u->result, "finetune"), "eval");
    return srep_num(json_object_get(json_object_get(ev, name), metric));
}

static void classify(SrepReport *r)
{
    for (int i = 0; i < r->nruns; i++) {
        Run *u = &r->runs[i];
        if (u->status == RUN_FAILED && u->diverged) u->regime = "diverged";
        if (u->status != RUN_DONE) continue;
        double a[4];
        int ok = 1;
        for (int k = 0; k < 4; k++) ok &= isfinite(a[k] = run_eval(u, srep_t3[k], "acc"));
        if (ok) u->regime = srep_regime(a[0], a[1], a[2], a[3], 0);
    }
    for (int ci = 0; ci < r->ncells; ci++) {
        Cell *c = &r->cells[ci];
        for (int k = 0; k < c->nruns; k++) {
            const char *g = r->runs[c->runs[k]].regime;
            if (g) c->reg_count[regime_index(g)]++, c->reg_n++;
        }
        int best = -1, tie = 0;
        for (int g = 0; g < NREG; g++) {
            if (!c->reg_count[g]) continue;
            if (best < 0 || c->reg_count[g] > c->reg_count[best]) best = g, tie = 0;
            else if (c->reg_count[g] == c->reg_count[best]) tie = 1;
        }
        c->regime = best < 0 ? NULL : tie ? "mixed" : srep_regimes[best];
        const char *tab = r->sw[c->sweep].paper;
        for (int p = 0; tab && c->has_lrctr && p < r->npaper; p++) {
            const PaperRow *pr = &r->paper[p];
            if (!strcmp(pr->table, tab) && same_num(pr->lr, c->lr) && same_num(pr->ctr, c->ctr)) {
                c->paper = pr;
                c->paper_regime = srep_regime(pr->v[0] / 100, pr->v[1] / 100, pr->v[2] / 100, pr->v[3] / 100, 0);
                break;
            }
        }
    }
}

SrepReport *srep_load(const char *const *dirs, int ndirs, const char *paper_tsv, const char *paper_path,
                      StrBuf *err)
{
    SrepReport *r = xcalloc(1, sizeof *r);
    if (paper_parse(r, paper_tsv ? paper_tsv : srep_paper_table3,
                    paper_tsv ? paper_path : "paper/jain2023_table3.tsv (built in)", err))
        goto fail;
    r->sw = xcalloc((size_t)ndirs, sizeof(Sweep));
    for (int i = 0; i < ndirs; i++) {
        r->nsw = i + 1;
        if (load_sweep(r, i, dirs[i], err)) goto fail;
    }
    if (load_runs(r, err)) goto fail;
    classify(r);
    return r;
fail:
    srep_free(r);
    return NULL;
}

void srep_free(SrepReport *r)
{
    if (!r) return;
    for (int i = 0; i < r->nruns; i++) {
        Run *u = &r->runs[i];
        free(u->dir);
        free(u->err_line);
        json_decref(u->result);
        json_decref(u->failed);
        if (u->has_log) plot_log_free(&u->log);
        if (u->has_reft) plot_log_free(&u->reft_log);
        if (u->has_scratch) plot_log_free(&u->scratch_log);
    }
    for (int i = 0; i < r->ncells; i++) {
        json_decref(r->cells[i].params);
        free(r->cells[i].key);
        free(r->cells[i].label);
        free(r->cells[i].runs);
    }
    for (int i = 0; i < r->nsw; i++) {
        free(r->sw[i].dir);
        json_decref(r->sw[i].plan);
    }
    for (int i = 0; i < r->npaper; i++) free(r->paper[i].table);
    free(r->paper);
    free(r->sw);
    free(r->runs);
    free(r->cells);
    free(r);
}


/* ================================================================ aggregation (the JSON) */

typedef struct {
    int n;
    double *x, *mean, *lo, *hi;
    int *cnt;
} Curve;

int srep_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Mean, min and max over series at each x any of them has (series sorted by x, as plot.c
 * leaves them). */
static void curve_build(Curve *cv, const PlotSeries *const *ss, int ns)
{
    memset(cv, 0, sizeof *cv);
    size_t tot = 0;
    for (int i = 0; i < ns; i++) tot += (size_t)ss[i]->n;
    if (!tot) return;
    double *xs = xmalloc(sizeof(double) * tot);
    size_t k = 0;
    for (int i = 0; i < ns; i++)
        for (int j = 0; j < ss[i]->n; j++) xs[k++] = ss[i]->x[j];
    qsort(xs, tot, sizeof(double), srep_cmp_double);
    int n = 0;
    for (size_t j = 0; j < tot; j++)
        if (!n || xs[j] != xs[n - 1]) xs[n++] = xs[j];
    cv->n = n;
    cv->x = xs;
    cv->mean = xcalloc((size_t)n, sizeof(double));
    cv->lo = xmalloc(sizeof(double) * (size_t)n);
    cv->hi = xmalloc(sizeof(double) * (size_t)n);
    cv->cnt = xcalloc((size_t)n, sizeof(int));
    for (int j = 0; j < n; j++) cv->lo[j] = INFINITY, cv->hi[j] = -INFINITY;
    for (int i = 0; i < ns; i++) {
        int q = 0;
        for (int j = 0; j < ss[i]->n; j++) {
            while (q < n && xs[q] < ss[i]->x[j]) q++;
            double y = ss[i]->y[j];
            if (q == n || !isfinite(y)) continue;
            cv->mean[q] += y;
            cv->lo[q] = fmin(cv->lo[q], y);
            cv->hi[q] = fmax(cv->hi[q], y);
            cv->cnt[q]++;
        }
    }
    for (int j = 0; j < n; j++)
        if (cv->cnt[j]) cv->mean[j] /= cv->cnt[j];
        else cv->mean[j] = cv->lo[j] = cv->hi[j] = NAN;
}

static void curve_free(Curve *cv)
{
    free(cv->x);
    free(cv->mean);
    free(cv->lo);
    free(cv->hi);
    free(cv->cnt);
}

static json_t *curve_json(const Curve *cv)
{
    json_t *a[5];
    for (int i = 0; i < 5; i++) a[i] = json_array();
    for (int j = 0; j < cv->n; j++) {
        json_array_append_new(a[0], json_real(cv->x[j]));
        json_array_append_new(a[1], srep_num_json(cv->mean[j]));
        json_array_append_new(a[2], srep_num_json(cv->lo[j]));
        json_array_append_new(a[3], srep_num_json(cv->hi[j]));
        json_array_append_new(a[4], json_integer(cv->cnt[j]));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "step", a[0], "mean", a[1], "min", a[2], "max", a[3], "n", a[4]);
}



void srep_names_add(Names *ns, const char *s)
{
    for (int i = 0; i < ns->n; i++)
        if (!strcmp(ns->v[i], s)) return;
    ns->v = xrealloc(ns->v, sizeof(char *) * (size_t)(ns->n + 1));
    ns->v[ns->n++] = s;
}

/* The curves of one kind of log (0 fine-tuning, 1 reFT, 2 Scr.+FT) over a cell's runs:
 * {"loss": curve, "eval": {NAME: curve}}, or NULL without logs. */
static const PlotLog *run_log(const Run *u, int which)
{
    if (which == 0) return u->has_log ? &u->log : NULL;
    if (which == 1) return u->has_reft ? &u->reft_log : NULL;
    return u->has_scratch ? &u->scratch_log : NULL;
}

static json_t *cell_curves(const SrepReport *r, const Cell *c, int which)
{
    const PlotSeries **ss = xmalloc(sizeof(PlotSeries *) * (size_t)(c->nruns + 1));
    int ns = 0;
    Names en = {0};
    for (int k = 0; k < c->nruns; k++) {
        const PlotLog *g = run_log(&r->runs[c->runs[k]], which);
        if (!g) continue;
        ss[ns++] = &g->loss;
        for (int e = 0; e < g->neval; e++) srep_names_add(&en, g->eval_acc[e].name);
    }
    json_t *out = NULL;
    if (ns) {
        Curve cv;
        curve_build(&cv, ss, ns);
        out = json_pack("{s:i, s:s, s:o, s:o}", "runs", ns, "band", "min-max over runs", "loss", curve_json(&cv),
                        "eval", json_object());
        curve_free(&cv);
        for (int e = 0; e < en.n; e++) {
            int m = 0;
            for (int k = 0; k < c->nruns; k++) {
                const PlotLog *g = run_log(&r->runs[c->runs[k]], which);
                for (int q = 0; g && q < g->neval; q++)
                    if (!strcmp(g->eval_acc[q].name, en.v[e])) ss[m++] = &g->eval_acc[q];
            }
            curve_build(&cv, ss, m);
            json_object_set_new(json_object_get(out, "eval"), en.v[e], curve_json(&cv));
            curve_free(&cv);
        }
    }
    free(en.v);
    free(ss);
    return out;
}

/* after.<method>: the key itself, or any object (or array element) of `after` whose "method"
 * is `method` (prune and rollback both come from `tracc prune --json`). */
json_t *srep_after(const Run *u, const char *method, int by_method)
{
    json_t *after = json_object_get(u->result, "after");
    if (!json_is_object(after)) return NULL;
    json_t *v = json_object_get(after, method);
    if (!by_method) return json_is_object(v) || json_is_array(v) ? v : NULL;
    const char *m = json_string_value(json_object_get(v, "method"));
    if (json_is_object(v) && (!m || !strcmp(m, method))) return v;
    const char *key;
    json_object_foreach(after, key, v)
    {
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_is_array(v) ? json_array_get(v, i) : v;
            const char *mm = json_string_value(json_object_get(o, "method"));
            if (mm && !strcmp(mm, method)) return o;
        }
    }
    return NULL;
}

typedef struct {
    const char *param, *meaning;
    Vals ranks;
} WeightAgg;

static int cmp_weight(const void *a, const void *b)
{
    const WeightAgg *x = a, *y = b;
    if (x->ranks.n != y->ranks.n) return y->ranks.n - x->ranks.n;
    double mx = srep_mean(x->ranks.v, x->ranks.n), my = srep_mean(y->ranks.v, y->ranks.n);
    return mx < my ? -1 : mx > my;
}

/* A run's best weight pruned alone counts as reviving the pretraining task, as the paper
 * claims ("pruning one weight revives the pretraining task by over 60%"), at this gain. */
#define EACH_REVIVED 0.6

/* A prune item's name: its parameter entry, or its unit under --neurons (NULL if neither). */
static const char *item_name(json_t *e)
{
    const char *p = json_string_value(json_object_get(e, "param"));
    return p ? p : json_string_value(json_object_get(e, "unit"));
}

/* `prune --each`: per run the weight whose zeroing alone gives the highest pretraining-task
 * accuracy (the first by g·w rank on a tie), its gain over the unpruned model (base, K = 0),
 * and every set's accuracy then; per cell the best gains aggregated. NULL when no run has
 * "each". */
static json_t *cell_each(json_t **obj, const char **ids, int n)
{
    json_t *runs = json_array();
    Vals gain = {0}, after = {0};
    int items = 0, revived = 0;
    for (int i = 0; i < n; i++) {
        json_t *ea = json_object_get(obj[i], "each"), *e, *best = NULL;
        if (!json_is_array(ea)) continue;
        double bt = NAN;
        size_t j;
        json_array_foreach(ea, j, e)
        {
            double t = srep_num(json_object_get(json_object_get(e, "acc"), "task"));
            if (isfinite(t) && (!best || t > bt)) best = e, bt = t;
        }
        if ((int)json_array_size(ea) > items) items = (int)json_array_size(ea);
        json_t *o = json_pack("{s:s, s:i}", "job", ids[i], "items", (int)json_array_size(ea));
        json_array_append_new(runs, o);
        if (!best) continue;   /* no item with a task accuracy */
        const char *param = item_name(best), *meaning = NULL;
        /* --each applies the ranking's top items in order: item `rank` is the ranking's entry */
        json_t *ri = json_array_get(json_object_get(obj[i], "ranking"),
                                    (size_t)(json_integer_value(json_object_get(best, "rank")) - 1));
        if (param && item_name(ri) && !strcmp(item_name(ri), param))
            meaning = json_string_value(json_object_get(ri, "meaning"));
        double before = srep_num(json_object_get(json_object_get(json_object_get(obj[i], "base"), "acc"), "task"));
        double g = bt - before;
        json_object_set_new(o, "rank", json_deep_copy(json_object_get(best, "rank")));
        json_object_set_new(o, "weight", param ? json_string(param) : json_null());
        json_object_set_new(o, "meaning", meaning ? json_string(meaning) : json_null());
        json_object_set_new(o, "task_before", srep_num_json(before));
        json_object_set_new(o, "task_after", srep_num_json(bt));
        json_object_set_new(o, "gain", srep_num_json(g));
        json_t *ev = json_deep_copy(json_object_get(best, "acc"));
        if (json_is_object(ev)) json_object_del(ev, "task");
        json_object_set_new(o, "evals", json_is_object(ev) ? ev : json_object());
        if (!json_is_object(ev)) json_decref(ev);
        srep_vals_push(&after, bt);
        if (isfinite(g)) {
            srep_vals_push(&gain, g);
            revived += g >= EACH_REVIVED;
        }
    }
    if (!json_array_size(runs)) {
        json_decref(runs);
        return NULL;
    }
    double mx = NAN;
    for (int q = 0; q < gain.n; q++) mx = q && mx >= gain.v[q] ? mx : gain.v[q];
    json_t *out = json_pack("{s:i, s:o, s:o, s:o, s:f, s:i, s:o}", "items", items, "best_gain",
                            srep_agg_json(gain.v, gain.n), "best_gain_max", srep_num_json(mx), "best_task_after",
                            srep_agg_json(after.v, after.n), "revived_at", EACH_REVIVED, "revived", revived, "runs",
                            runs);
    free(gain.v), free(after.v);
    return out;
}

json_t *srep_find_reset(json_t *resets, const char *spec)
{
    json_t *x;
    size_t j;
    json_array_foreach(resets, j, x)
    {
        const char *s = json_string_value(json_object_get(x, "reset"));
        if (s && !strcmp(s, spec)) return x;
    }
    return NULL;
}

/* `prune --reset` (or rollback's): for each named ablation, in the order the runs list them, every
 * set's accuracy after it and, from the same runs, before it (the prune run's base), aggregated
 * over the cell's runs. NULL when no run has resets. */
static json_t *cell_resets(json_t **obj, const char **ids, int n)
{
    Names specs = {0}, en = {0};
    for (int i = 0; i < n; i++) {
        json_t *e;
        size_t j;
        json_array_foreach(json_object_get(obj[i], "resets"), j, e)
        {
            const char *spec = json_string_value(json_object_get(e, "reset")), *name;
            json_t *a;
            if (!spec) continue;
            srep_names_add(&specs, spec);
            json_object_foreach(json_object_get(e, "acc"), name, a) srep_names_add(&en, name);
        }
    }
    if (!specs.n) {
        free(specs.v), free(en.v);
        return NULL;
    }
    json_t *out = json_array();
    json_t **hit = xmalloc(sizeof(json_t *) * (size_t)n), **base = xmalloc(sizeof(json_t *) * (size_t)n);
    for (int q = 0; q < specs.n; q++) {
        /* the runs that have this ablation: its entry and their unablated accuracies */
        json_t *jobs = json_array(), *after = json_object(), *before = json_object(), *params = NULL;
        int nh = 0;
        for (int i = 0; i < n; i++) {
            json_t *x = srep_find_reset(json_object_get(obj[i], "resets"), specs.v[q]);
            if (!x) continue;
            if (!nh) params = json_object_get(x, "params");
            json_array_append_new(jobs, json_string(ids[i]));
            hit[nh] = json_object_get(x, "acc");
            base[nh++] = json_object_get(json_object_get(obj[i], "base"), "acc");
        }
        for (int e = 0; e < en.n; e++) {
            Vals va = {0}, vb = {0};
            for (int h = 0; h < nh; h++) {
                double a = srep_num(json_object_get(hit[h], en.v[e])), b = srep_num(json_object_get(base[h], en.v[e]));
                if (isfinite(a)) srep_vals_push(&va, a);
                if (isfinite(b)) srep_vals_push(&vb, b);
            }
            json_object_set_new(after, en.v[e], srep_agg_json(va.v, va.n));
            json_object_set_new(before, en.v[e], srep_agg_json(vb.v, vb.n));
            free(va.v), free(vb.v);
        }
        json_array_append_new(out, json_pack("{s:s, s:O, s:i, s:o, s:o, s:o}", "reset", specs.v[q], "params",
                                             params ? params : json_null(), "runs", nh, "jobs", jobs, "acc", after,
                                             "base", before));
    }
    free(hit), free(base);
    free(specs.v), free(en.v);
    return out;
}

/* Pruning or rollback over a cell's runs: accuracy vs the number of weights K, and the
 * weights (ranked 1..largest K) named in program terms with how many runs ranked them. */
static json_t *cell_prune(const SrepReport *r, const Cell *c, const char *method)
{
    json_t **obj = xmalloc(sizeof(json_t *) * (size_t)c->nruns);
    const char **ids = xmalloc(sizeof(char *) * (size_t)c->nruns);
    int n = 0;
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? srep_after(u, method, 1) : NULL;
        if (o) obj[n] = o, ids[n++] = u->id;
    }
    if (!n) {
        free(obj);
        free(ids);
        return NULL;
    }
    /* the K values and evaluation names */
    Vals ks = {0};
    Names en = {0};
    for (int i = 0; i < n; i++) {
        json_t *rows = json_object_get(obj[i], "rows"), *row;
        size_t j;
        json_t *base = json_object_get(obj[i], "base");
        for (int b = -1; b < (int)json_array_size(rows); b++) {
            row = b < 0 ? base : json_array_get(rows, (size_t)b);
            double kv = srep_num(json_object_get(row, "k"));
            if (!isfinite(kv)) continue;
            int seen = 0;
            for (j = 0; j < (size_t)ks.n; j++) seen |= ks.v[j] == kv;
            if (!seen) srep_vals_push(&ks, kv);
            const char *name;
            json_t *a;
            json_object_foreach(json_object_get(row, "acc"), name, a) if (strcmp(name, "task")) srep_names_add(&en, name);
        }
    }
    /* keep the K every run reports (rollback adds a row at the K it found, different per run) */
    int nk = 0;
    for (int q = 0; q < ks.n; q++) {
        int all = 1;
        for (int i = 0; i < n && all; i++) {
            json_t *rows = json_object_get(obj[i], "rows");
            int has = srep_num(json_object_get(json_object_get(obj[i], "base"), "k")) == ks.v[q];
            for (size_t b = 0; b < json_array_size(rows) && !has; b++)
                has = srep_num(json_object_get(json_array_get(rows, b), "k")) == ks.v[q];
            all = has;
        }
        if (all) ks.v[nk++] = ks.v[q];
    }
    ks.n = nk;
    qsort(ks.v, (size_t)ks.n, sizeof(double), srep_cmp_double);
    json_t *kj = json_array(), *task = json_array(), *evals = json_object();
    for (int e = 0; e < en.n; e++) json_object_set_new(evals, en.v[e], json_array());
    for (int q = 0; q < ks.n; q++) {
        json_array_append_new(kj, json_integer((json_int_t)ks.v[q]));
        for (int e = -1; e < en.n; e++) {
            Vals v = {0};
            for (int i = 0; i < n; i++) {
                json_t *rows = json_object_get(obj[i], "rows");
                for (int b = -1; b < (int)json_array_size(rows); b++) {
                    json_t *row = b < 0 ? json_object_get(obj[i], "base") : json_array_get(rows, (size_t)b);
                    if (srep_num(json_object_get(row, "k")) != ks.v[q]) continue;
                    double a = srep_num(json_object_get(json_object_get(row, "acc"), e < 0 ? "task" : en.v[e]));
                    if (isfinite(a)) srep_vals_push(&v, a);
                    break;
                }
            }
            json_array_append_new(e < 0 ? task : json_object_get(evals, en.v[e]), srep_agg_json(v.v, v.n));
            free(v.v);
        }
    }
    double kmax = ks.n ? ks.v[ks.n - 1] : 0;
    if (!strcmp(method, "rollback") || kmax < 1) kmax = 20;
    /* the weights, by how many runs put them in the top kmax, then mean rank */
    WeightAgg *w = NULL;
    int nw = 0;
    for (int i = 0; i < n; i++) {
        json_t *rk = json_object_get(obj[i], "ranking"), *e;
        size_t j;
        json_array_foreach(rk, j, e)
        {
            double rank = srep_num(json_object_get(e, "rank"));
            const char *param = json_string_value(json_object_get(e, "param"));
            if (!param || !(rank <= kmax)) continue;
            int f = 0;
            while (f < nw && strcmp(w[f].param, param)) f++;
            if (f == nw) {
                w = xrealloc(w, sizeof *w * (size_t)(nw + 1));
                memset(&w[nw], 0, sizeof *w);
                w[nw].param = param;
                w[nw].meaning = json_string_value(json_object_get(e, "meaning"));
                nw++;
            }
            srep_vals_push(&w[f].ranks, rank);
        }
    }
    qsort(w, (size_t)nw, sizeof *w, cmp_weight);
    json_t *wj = json_array();
    for (int f = 0; f < nw; f++) {
        json_t *rk = json_array();
        for (int q = 0; q < w[f].ranks.n; q++) json_array_append_new(rk, json_integer((json_int_t)w[f].ranks.v[q]));
        if (f < 2 * TOP_ENTRIES)
            json_array_append_new(wj, json_pack("{s:s, s:s?, s:i, s:o}", "param", w[f].param, "meaning", w[f].meaning,
                                                "runs", w[f].ranks.n, "ranks", rk));
        else json_decref(rk);
        free(w[f].ranks.v);
    }
    free(w);
    json_t *idj = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(idj, json_string(ids[i]));
    json_t *out = json_pack("{s:i, s:o, s:o, s:o, s:o, s:o, s:i}", "runs", n, "jobs", idj, "k", kj, "task", task,
                            "evals", evals, "weights", wj, "weights_top", (int)kmax);
    json_t *each = strcmp(method, "prune") ? NULL : cell_each(obj, ids, n);
    if (each) json_object_set_new(out, "each", each);
    json_t *resets = cell_resets(obj, ids, n);
    if (resets) json_object_set_new(out, "resets", resets);
    if (!strcmp(method, "rollback")) {
        Vals fk = {0}, orig = {0};
        for (int i = 0; i < n; i++) {
            double f = srep_num(json_object_get(obj[i], "found_k"));
            if (isfinite(f)) srep_vals_push(&fk, f);
            double o = srep_num(json_object_get(json_object_get(json_object_get(obj[i], "original"), "acc"), "task"));
            if (isfinite(o)) srep_vals_push(&orig, o);
        }
        json_object_set_new(out, "target", json_deep_copy(json_object_get(obj[0], "target")));
        json_object_set_new(out, "found", json_integer(fk.n));
        json_object_set_new(out, "found_k", srep_agg_json(fk.v, fk.n));
        json_object_set_new(out, "original_task", srep_agg_json(orig.v, orig.n));
        free(fk.v);
        free(orig.v);
    }
    free(ks.v);
    free(en.v);
    free(obj);
    free(ids);
    return out;
}

/* reFT or Scr.+FT: steps to the --stop-when target (runs that reached it), final accuracies,
 * and the curves of its log. */
static json_t *cell_refit(const SrepReport *r, const Cell *c, const char *key)
{
    Vals stop = {0}, steps = {0};
    int n = 0;
    const char *sw = NULL;
    Names en = {0};
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? srep_after(u, key, 0) : NULL;
        if (!json_is_object(o)) continue;
        n++;
        double s = srep_num(json_object_get(o, "stopped_at"));
        if (isfinite(s)) srep_vals_push(&stop, s);
        double st = srep_num(json_object_get(o, "steps"));
        if (isfinite(st)) srep_vals_push(&steps, st);
        if (!sw) sw = json_string_value(json_object_get(o, "stop_when"));
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(o, "eval"), name, v) srep_names_add(&en, name);
    }
    if (!n) return NULL;
    json_t *ev = json_object();
    for (int e = 0; e < en.n; e++) {
        Vals a = {0};
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? srep_after(u, key, 0) : NULL;
            double x = srep_num(json_object_get(json_object_get(json_object_get(o, "eval"), en.v[e]), "acc"));
            if (isfinite(x)) srep_vals_push(&a, x);
        }
        json_object_set_new(ev, en.v[e], srep_agg_json(a.v, a.n));
        free(a.v);
    }
    json_t *out = json_pack("{s:i, s:s?, s:i, s:o, s:o, s:o}", "runs", n, "stop_when", sw, "reached", stop.n,
                            "stopped_at", srep_agg_json(stop.v, stop.n), "steps", srep_agg_json(steps.v, steps.n), "evals", ev);
    json_t *cv = cell_curves(r, c, !strcmp(key, "reft") ? 1 : 2);
    if (cv) json_object_set_new(out, "curves", cv);
    free(stop.v);
    free(steps.v);
    free(en.v);
    return out;
}

/* Attention mass on the keys the program's selector selects, averaged over the queries that
 * select something; NaN without selections. */
static double selected_mass(json_t *pat, json_t *sel)
{
    double s = 0;
    int nq = 0;
    for (size_t q = 0; q < json_array_size(pat); q++) {
        json_t *pr = json_array_get(pat, q), *sr = json_array_get(sel, q);
        double m = 0;
        int any = 0;
        for (size_t k = 0; k < json_array_size(pr); k++)
            if (json_is_true(json_array_get(sr, k))) any = 1, m += srep_num(json_array_get(pr, k));
        if (any) s += m, nq++;
    }
    return nq ? s / nq : NAN;
}

static double mean_abs_change(json_t *a, json_t *b)
{
    double s = 0;
    long n = 0;
    for (size_t q = 0; q < json_array_size(a); q++)
        for (size_t k = 0; k < json_array_size(json_array_get(a, q)); k++) {
            s += fabs(srep_num(json_array_get(json_array_get(b, q), k)) -
                      srep_num(json_array_get(json_array_get(a, q), k)));
            n++;
        }
    return n ? s / n : NAN;
}

static json_t *cell_attn(const SrepReport *r, const Cell *c)
{
    json_t *first = NULL, *heads = json_array();
    int n = 0;
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? srep_after(u, "attn", 0) : NULL;
        if (json_is_object(o) && json_is_array(json_object_get(o, "heads"))) {
            if (!first) first = o;
            n++;
        }
    }
    if (!first) {
        json_decref(heads);
        return NULL;
    }
    json_t *fh = json_object_get(first, "heads"), *h;
    size_t hi;
    json_array_foreach(fh, hi, h)
    {
        Vals sb = {0}, sa = {0}, ch = {0};
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? srep_after(u, "attn", 0) : NULL;
            json_t *hh = json_array_get(json_object_get(o, "heads"), hi);
            json_t *pat = json_object_get(hh, "pattern"), *sel = json_object_get(hh, "program_selects");
            size_t nm = json_array_size(pat);
            if (!nm) continue;
            double b = selected_mass(json_array_get(pat, 0), sel);
            if (isfinite(b)) srep_vals_push(&sb, b);
            if (nm < 2) continue;
            double a = selected_mass(json_array_get(pat, nm - 1), sel);
            if (isfinite(a)) srep_vals_push(&sa, a);
            double d = mean_abs_change(json_array_get(pat, 0), json_array_get(pat, nm - 1));
            if (isfinite(d)) srep_vals_push(&ch, d);
        }
        json_array_append_new(heads, json_pack("{s:s?, s:o, s:o, s:o}", "name", json_string_value(json_object_get(h, "name")),
                                               "selected_before", srep_agg_json(sb.v, sb.n), "selected_after",
                                               srep_agg_json(sa.v, sa.n), "mean_abs_change", srep_agg_json(ch.v, ch.n)));
        free(sb.v);
        free(sa.v);
        free(ch.v);
    }
    return json_pack("{s:i, s:O, s:O, s:o}", "runs", n, "positions", json_object_get(first, "positions"), "models",
                     json_object_get(first, "models"), "heads", heads);
}

typedef struct {
    const char *name;
    Vals v;
    double score;
} EntryAgg;

static int cmp_entry(const void *a, const void *b)
{
    const EntryAgg *x = a, *y = b;
    return x->score > y->score ? -1 : x->score < y->score;
}

/* Entries of a list (after.diff.<list>) grouped by "name" over runs: value `field` per run,
 * ranked by the mean of |value| over all n runs (a run that does not list it counts 0). */
static json_t *entries_agg(json_t *const *objs, int n, const char *list, const char *field, int top)
{
    EntryAgg *e = NULL;
    int ne = 0;
    for (int i = 0; i < n; i++) {
        json_t *l = json_object_get(objs[i], list), *x;
        size_t j;
        json_array_foreach(l, j, x)
        {
            const char *name = json_string_value(json_object_get(x, "name"));
            double v = srep_num(json_object_get(x, field));
            if (!name || !isfinite(v)) continue;
            int f = 0;
            while (f < ne && strcmp(e[f].name, name)) f++;
            if (f == ne) {
                e = xrealloc(e, sizeof *e * (size_t)(ne + 1));
                memset(&e[ne], 0, sizeof *e);
                e[ne++].name = name;
            }
            srep_vals_push(&e[f].v, v);
            e[f].score += fabs(v) / n;
        }
    }
    qsort(e, (size_t)ne, sizeof *e, cmp_entry);
    json_t *out = json_array();
    for (int f = 0; f < ne; f++) {
        if (f < top) {
            json_t *a = srep_agg_json(e[f].v.v, e[f].v.n);
            json_object_set_new(a, "name", json_string(e[f].name));
            json_array_append_new(out, a);
        }
        free(e[f].v.v);
    }
    free(e);
    return out;
}

static json_t *cell_diff(const SrepReport *r, const Cell *c)
{
    json_t **objs = xmalloc(sizeof(json_t *) * (size_t)c->nruns);
    int n = 0;
    Vals rel = {0};
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? srep_after(u, "diff", 0) : NULL;
        if (!json_is_object(o)) continue;
        objs[n++] = o;
        double x = srep_num(json_object_get(o, "relative"));
        if (isfinite(x)) srep_vals_push(&rel, x);
    }
    json_t *out = NULL;
    if (n)
        out = json_pack("{s:i, s:o, s:o, s:o}", "runs", n, "relative", srep_agg_json(rel.v, rel.n), "largest_changes",
                        entries_agg(objs, n, "largest_changes", "delta", TOP_ENTRIES), "components",
                        entries_agg(objs, n, "components", "norm_delta", 5));
    free(rel.v);
    free(objs);
    return out;
}

/* after.probe: one `tracc probe --json` line (an object) or all of them (an array). */
static json_t *cell_probe(const SrepReport *r, const Cell *c)
{
    json_t *sops = json_array();
    int n = 0;
    Names sn = {0}, wn = {0};
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? srep_after(u, "probe", 0) : NULL;
            if (!o) continue;
            n += !pass;
            size_t m = json_is_array(o) ? json_array_size(o) : 1;
            for (size_t i = 0; i < m; i++) {
                json_t *s = json_is_array(o) ? json_array_get(o, i) : o;
                const char *sop = json_string_value(json_object_get(s, "sop"));
                if (!sop) continue;
                if (!pass) {
                    srep_names_add(&sn, sop);
                    json_t *st;
                    size_t q;
                    json_array_foreach(json_object_get(s, "stages"), q, st)
                    {
                        const char *w = json_string_value(json_object_get(st, "where"));
                        if (w) srep_names_add(&wn, w);
                    }
                }
            }
        }
    if (!n) {
        json_decref(sops);
        return NULL;
    }
    for (int si = 0; si < sn.n; si++) {
        json_t *stages = json_array();
        for (int wi = 0; wi < wn.n; wi++) {
            Vals d = {0}, l = {0};
            for (int k = 0; k < c->nruns; k++) {
                const Run *u = &r->runs[c->runs[k]];
                json_t *o = u->status == RUN_DONE ? srep_after(u, "probe", 0) : NULL;
                size_t m = json_is_array(o) ? json_array_size(o) : o ? 1 : 0;
                for (size_t i = 0; i < m; i++) {
                    json_t *s = json_is_array(o) ? json_array_get(o, i) : o;
                    const char *sop = json_string_value(json_object_get(s, "sop"));
                    if (!sop || strcmp(sop, sn.v[si])) continue;
                    json_t *st;
                    size_t q;
                    json_array_foreach(json_object_get(s, "stages"), q, st)
                    {
                        const char *w = json_string_value(json_object_get(st, "where"));
                        if (!w || strcmp(w, wn.v[wi])) continue;
                        double dv = srep_num(json_object_get(st, "direct"));
                        double lv = srep_num(json_object_get(st, "linear_test"));
                        if (isfinite(dv)) srep_vals_push(&d, dv);
                        if (isfinite(lv)) srep_vals_push(&l, lv);
                    }
                }
            }
            if (d.n || l.n)
                json_array_append_new(stages, json_pack("{s:s, s:o, s:o}", "where", wn.v[wi], "direct",
                                                        srep_agg_json(d.v, d.n), "linear_test", srep_agg_json(l.v, l.n)));
            free(d.v);
            free(l.v);
        }
        json_array_append_new(sops, json_pack("{s:s, s:o}", "sop", sn.v[si], "stages", stages));
    }
    free(sn.v);
    free(wn.v);
    return json_pack("{s:i, s:o}", "runs", n, "sops", sops);
}

static json_t *cell_json(const SrepReport *r, const Cell *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "sweep", json_string(r->sw[c->sweep].name));
    json_object_set(o, "params", c->params);
    json_object_set_new(o, "label", json_string(c->label));
    json_object_set_new(o, "jobs", json_pack("{s:i, s:i, s:i, s:i}", "done", c->done, "failed", c->failed, "pending",
                                             c->pending, "running", c->running));
    /* the finished runs, in the order of every "values" list below */
    json_t *ids = json_array(), *seeds = json_array();
    Names en = {0};
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        if (u->status != RUN_DONE) continue;
        json_array_append_new(ids, json_string(u->id));
        json_array_append(seeds, u->seed ? u->seed : json_null());
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(json_object_get(u->result, "finetune"), "eval"), name, v) srep_names_add(&en, name);
    }
    json_object_set_new(o, "done_jobs", ids);
    json_object_set_new(o, "seeds", seeds);
    json_t *evals = json_object();
    static const char *const metrics[] = {"acc", "acc_decoded", "loss"};
    for (int e = 0; e < en.n; e++) {
        json_t *ev = NULL;
        for (int m = 0; m < 3; m++) {
            Vals v = {0};
            int missing = 0;
            for (int k = 0; k < c->nruns; k++) {
                const Run *u = &r->runs[c->runs[k]];
                if (u->status != RUN_DONE) continue;
                double x = run_eval(u, en.v[e], metrics[m]);
                if (isfinite(x)) srep_vals_push(&v, x);
                else missing = 1;
            }
            (void)missing;
            if (m == 0) {
                ev = srep_agg_json(v.v, v.n);
                json_object_set_new(ev, "accuracy", json_string("argmax"));
            } else if (v.n) {
                json_object_set_new(ev, m == 1 ? "decoded" : "loss", srep_agg_json(v.v, v.n));
            }
            free(v.v);
        }
        json_object_set_new(evals, en.v[e], ev);
    }
    free(en.v);
    json_object_set_new(o, "evals", evals);
    static const char *const ftk[] = {"train_loss", "steps", "seconds"};
    json_t *ft = json_object();
    for (int m = 0; m < 3; m++) {
        Vals v = {0};
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            if (u->status != RUN_DONE) continue;
            double x = srep_num(json_object_get(json_object_get(u->result, "finetune"), ftk[m]));
            if (isfinite(x)) srep_vals_push(&v, x);
        }
        json_object_set_new(ft, ftk[m], srep_agg_json(v.v, v.n));
        free(v.v);
    }
    json_object_set_new(o, "finetune", ft);
    /* regimes */
    json_object_set_new(o, "regime", c->regime ? json_string(c->regime) : json_null());
    json_t *rc = json_object();
    for (int g = 0; g < NREG; g++)
        if (c->reg_count[g]) json_object_set_new(rc, srep_regimes[g], json_integer(c->reg_count[g]));
    json_object_set_new(o, "regimes", rc);
    json_t *per = json_array();
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        if (u->regime) json_array_append_new(per, json_pack("{s:s, s:s}", "job", u->id, "regime", u->regime));
    }
    json_object_set_new(o, "run_regimes", per);
    if (c->paper) {
        json_t *p = json_pack("{s:s, s:s}", "table", c->paper->table, "unit", "fraction (the paper prints percent)");
        for (int k = 0; k < 4; k++) json_object_set_new(p, srep_t3[k], json_real(c->paper->v[k] / 100));
        json_object_set_new(o, "paper", p);
        json_object_set_new(o, "paper_regime", json_string(c->paper_regime));
        json_object_set_new(o, "matches", c->regime ? json_boolean(!strcmp(c->regime, c->paper_regime)) : json_null());
        json_object_set_new(o, "matches_runs",
                            json_integer(c->regime ? c->reg_count[regime_index(c->paper_regime)] : 0));
    } else {
        json_object_set_new(o, "paper", json_null());
        json_object_set_new(o, "paper_regime", json_null());
        json_object_set_new(o, "matches", json_null());
    }
    /* failures */
    json_t *fl = json_array();
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        if (u->status != RUN_FAILED) continue;
        json_t *f = json_pack("{s:s, s:O?, s:O?, s:b, s:s?}", "job", u->id, "stage", json_object_get(u->failed, "stage"),
                              "exit", json_object_get(u->failed, "exit"), "diverged", u->diverged, "message", u->err_line);
        json_t *se = json_object_get(u->failed, "stderr");
        if (json_is_string(se)) {
            char *p = srep_path_join(u->dir, json_string_value(se));
            json_object_set_new(f, "stderr", json_string(p));
            free(p);
        }
        json_array_append_new(fl, f);
    }
    json_object_set_new(o, "failed", fl);
    json_t *x;
    if ((x = cell_curves(r, c, 0))) json_object_set_new(o, "curves", x);
    if ((x = cell_prune(r, c, "prune"))) json_object_set_new(o, "prune", x);
    if ((x = cell_prune(r, c, "rollback"))) json_object_set_new(o, "rollback", x);
    if ((x = cell_refit(r, c, "reft"))) json_object_set_new(o, "reft", x);
    if ((x = cell_refit(r, c, "scratch"))) json_object_set_new(o, "scratch", x);
    if ((x = cell_attn(r, c))) json_object_set_new(o, "attn", x);
    if ((x = cell_diff(r, c))) json_object_set_new(o, "diff", x);
    if ((x = cell_probe(r, c))) json_object_set_new(o, "probe", x);
    if ((x = srep_cell_decompile(r, c))) json_object_set_new(o, "decompile", x);
    return o;
}

/* A shared run's recorded cost (DIR/shared/NAME/result.json, found by the run directory's
 * name so that a moved sweep still reads it), or NULL. */
static json_t *shared_cost(const Sweep *s, const char *shared)
{
    const char *base = strrchr(shared, '/');
    base = base ? base + 1 : shared;
    char *d = srep_path_join(s->dir, "shared"), *dd = srep_path_join(d, base), *p = srep_path_join(dd, "result.json");
    json_t *j = file_exists(p) ? json_load_file(p, 0, NULL) : NULL;
    json_t *c = json_incref(json_object_get(j, "cost"));
    json_decref(j);
    free(p), free(dd), free(d);
    return c;
}

static void add_stage_cpu(json_t *stages, const char *name, double cpu)
{
    json_object_set_new(stages, name, json_real(json_number_value(json_object_get(stages, name)) + cpu));
}

/* What sweep si's finished jobs cost, as `tracc sweep job` recorded it (result.json
 * "cost"): jobs_measured of jobs_done have a record, jobs_complete of those have every
 * stage's; cpu_s and wall_s summed over their own stages and each shared run once (read from
 * DIR/shared/NAME/result.json); stages_cpu_s by stage name. The report JSON's sweep "cost",
 * which the Markdown reads too. */
static json_t *sweep_cost(const SrepReport *r, int si)
{
    const Sweep *s = &r->sw[si];
    double cpu = 0, wall = 0, redo_cpu = 0;
    int measured = 0, complete = 0, nshared = 0, nredone = 0;
    json_t *stages = json_object(), *seen = json_object(), *redo_stages = json_object();
    for (int i = 0; i < r->nruns; i++) {
        const Run *u = &r->runs[i];
        if (u->sweep != si || u->status != RUN_DONE) continue;
        /* `sweep redo`'s own runs (the latest of each stage): beside the sweep's cost, not in it */
        const char *k;
        json_t *rd;
        json_object_foreach(json_object_get(u->result, "redone"), k, rd)
        {
            double c = json_number_value(json_object_get(rd, "cpu_s"));
            nredone++, redo_cpu += c;
            add_stage_cpu(redo_stages, k, c);
        }
        json_t *c = json_object_get(u->result, "cost");
        if (!json_is_object(c)) continue;
        measured++;
        complete += json_is_true(json_object_get(c, "complete"));
        cpu += json_number_value(json_object_get(c, "cpu_s"));
        wall += json_number_value(json_object_get(c, "wall_s"));
        json_t *sc;
        json_object_foreach(json_object_get(c, "stages"), k, sc)
        {
            const char *sh = json_string_value(json_object_get(sc, "shared"));
            if (!sh) add_stage_cpu(stages, k, json_number_value(json_object_get(sc, "cpu_s")));
            else if (!json_object_get(seen, sh)) json_object_set_new(seen, sh, json_string(k));
        }
    }
    /* each shared run once, with the stage name that used it */
    const char *sh;
    json_t *kv;
    json_object_foreach(seen, sh, kv)
    {
        json_t *c = shared_cost(s, sh);
        if (!c) continue;
        nshared++;
        cpu += json_number_value(json_object_get(c, "cpu_s"));
        wall += json_number_value(json_object_get(c, "wall_s"));
        add_stage_cpu(stages, json_string_value(kv), json_number_value(json_object_get(c, "cpu_s")));
        json_decref(c);
    }
    json_decref(seen);
    return json_pack("{s:i, s:i, s:i, s:i, s:f, s:f, s:o, s:{s:i, s:f, s:o}}", "jobs_done", s->done, "jobs_measured",
                     measured, "jobs_complete", complete, "shared_runs", nshared, "cpu_s", cpu, "wall_s", wall,
                     "stages_cpu_s", stages, "redone", "runs", nredone, "cpu_s", redo_cpu, "stages_cpu_s", redo_stages);
}

/* The OpenBLAS kernels sweep si's finished jobs fine-tuned on (`tracc finetune --json` "blas"):
 * {kernel: jobs}, "not recorded" for results from before the record; a run with
 * --flush-subnormals counts as "KERNEL (subnormals flushed)". The report's sweep "blas": runs
 * on different kernels, or with and without the flush, round differently (docs/reproduction.md,
 * "To the bit"). */
static json_t *sweep_blas(const SrepReport *r, int si)
{
    json_t *o = json_object();
    for (int i = 0; i < r->nruns; i++) {
        const Run *u = &r->runs[i];
        if (u->sweep != si || u->status != RUN_DONE) continue;
        json_t *ft = json_object_get(u->result, "finetune");
        const char *k = json_string_value(json_object_get(ft, "blas"));
        char key[160];
        if (!k || !*k) k = "not recorded";
        snprintf(key, sizeof key, "%s%s", k, json_is_true(json_object_get(ft, "flush_subnormals")) ? " (subnormals flushed)" : "");
        json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + 1));
    }
    return o;
}

json_t *srep_json(const SrepReport *r)
{
    json_t *sweeps = json_array();
    int done = 0, failed = 0, pending = 0, running = 0;
    for (int i = 0; i < r->nsw; i++) {
        const Sweep *s = &r->sw[i];
        json_array_append_new(
            sweeps, json_pack("{s:s, s:s, s:s?, s:O?, s:{s:i, s:i, s:i, s:i, s:i}}", "name", s->name, "dir", s->dir,
                              "paper", s->paper, "grid", json_object_get(s->plan, "grid"), "jobs", "total", s->njobs,
                              "done", s->done, "failed", s->failed, "pending", s->pending, "running", s->running));
        /* how many cells compared with the paper have its regime */
        int compared = 0, same = 0;
        for (int c = 0; c < r->ncells; c++) {
            const Cell *cl = &r->cells[c];
            if (cl->sweep != i || !cl->paper || !cl->regime) continue;
            compared++;
            same += !strcmp(cl->regime, cl->paper_regime);
        }
        json_object_set_new(json_array_get(sweeps, (size_t)i), "paper_regimes",
                            json_pack("{s:i, s:i}", "compared", compared, "same", same));
        json_object_set_new(json_array_get(sweeps, (size_t)i), "cost", sweep_cost(r, i));
        json_object_set_new(json_array_get(sweeps, (size_t)i), "blas", sweep_blas(r, i));
        done += s->done, failed += s->failed, pending += s->pending, running += s->running;
    }
    json_t *sweep = r->nsw == 1 ? json_incref(json_array_get(sweeps, 0)) : json_incref(sweeps);
    json_decref(sweeps);
    json_t *cells = json_array();
    for (int i = 0; i < r->ncells; i++) json_array_append_new(cells, cell_json(r, &r->cells[i]));
    json_t *rule = json_pack(
        "{s:s, s:[s,s,s,s,s,s,s], s:s}", "inputs",
        "each run's final argmax accuracies pt1, ft1 (C_Te = 1) and pt0, ft0 (C_Te = 0), as fractions", "order",
        "diverged: the fine-tuning loss, gradient or a weight became non-finite", "learned: ft0 >= 0.9",
        "unchanged: pt0 >= 0.9", "wrapper: ft1 >= 0.9 and ft0 < 0.5 and pt0 < 0.5", "learning: ft0 >= 0.5",
        "partly-a: pt0 >= 0.5", "collapsed: none of these", "cell",
        "the regime of the most runs (\"mixed\" on a tie); paper_regime: the same rule on the paper's numbers");
    return json_pack("{s:i, s:o, s:{s:i, s:i, s:i, s:i}, s:s, s:o, s:o}", "tracc_report", 1, "sweep", sweep, "jobs",
                     "done", done, "failed", failed, "pending", pending, "running", running, "std",
                     "sample standard deviation (divisor n - 1); null when n < 2", "regime_rule", rule, "cells", cells);
}
