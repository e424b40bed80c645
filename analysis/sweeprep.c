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

#include "analysis/plot.h"
#include "analysis/svg.h"

/* The built-in paper table: paper/jain2023_table3.tsv, turned into a string by the Makefile. */
extern const char srep_paper_table3[];

/* Training points read per log for the loss curve (plot_read_log_thin): enough for a picture,
 * few enough that a report over a thousand 10K-step logs stays fast. */
#define MAX_TRAIN_POINTS 100
/* Top entries shown per cell (diff, pruned weights). */
#define TOP_ENTRIES 10

static const char *const T3[4] = {"pt1", "ft1", "pt0", "ft0"};
static const char *const REGIMES[] = {"learned", "learning", "wrapper", "unchanged", "partly-a", "collapsed", "diverged"};
#define NREG ((int)ARRAY_LEN(REGIMES))

typedef struct {
    char *table;
    double lr, ctr, v[4];   /* v in percent, as printed in the paper */
} PaperRow;

enum { RUN_DONE, RUN_FAILED, RUN_PENDING };

typedef struct {
    int sweep, cell;
    const char *id;       /* borrowed from the plan */
    json_t *params;       /* borrowed */
    json_t *seed;         /* borrowed; NULL without a seed key */
    char *dir;
    int status, running, diverged;
    json_t *result, *failed;   /* owned */
    char *err_line;       /* failed: the last non-empty line of its stderr */
    PlotLog log, reft_log, scratch_log;
    int has_log, has_reft, has_scratch;
    const char *regime;   /* finished (or diverged) with the four Table 3 sets, else NULL */
} Run;

typedef struct {
    int sweep;
    json_t *params;       /* owned: the job's grid parameters without seed */
    char *key, *label;
    int *runs, nruns, cap;
    int done, failed, pending, running;
    int has_lrctr;
    double lr, ctr;
    const PaperRow *paper;
    int reg_count[NREG], reg_n;
    const char *regime, *paper_regime;
} Cell;

typedef struct {
    char *dir;
    json_t *plan;         /* owned */
    const char *name, *paper;
    int njobs, done, failed, pending, running;
} Sweep;

struct SrepReport {
    Sweep *sw;
    int nsw;
    Run *runs;
    int nruns;
    Cell *cells;
    int ncells;
    PaperRow *paper;
    int npaper;
};

/* ================================================================ small helpers */

static char *path_join(const char *a, const char *b)
{
    StrBuf s;
    sb_init(&s);
    if (b[0] == '/' || !a[0]) sb_puts(&s, b);
    else sb_printf(&s, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
    return sb_steal(&s);
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

static double num_or_nan(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static double mean_of(const double *v, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : NAN;
}

/* Sample standard deviation (divisor n - 1); NaN for n < 2. */
static double std_of(const double *v, int n)
{
    if (n < 2) return NAN;
    double m = mean_of(v, n), s = 0;
    for (int i = 0; i < n; i++) s += (v[i] - m) * (v[i] - m);
    return sqrt(s / (n - 1));
}

static json_t *num_json(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* {"mean", "std" (sample, n-1; null for n < 2), "n", "values"}. */
static json_t *agg_json(const double *v, int n)
{
    json_t *vals = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(vals, json_real(v[i]));
    return json_pack("{s:o, s:o, s:i, s:o}", "mean", num_json(mean_of(v, n)), "std", num_json(std_of(v, n)), "n", n,
                     "values", vals);
}

/* "12.3 ± 1.2 (3)", "12.3 (1)", "–" (scale 100: percent). */
static void fmt_agg(char *buf, size_t cap, const double *v, int n, double scale, int digits)
{
    if (n == 0) snprintf(buf, cap, "–");
    else if (n == 1) snprintf(buf, cap, "%.*f (1)", digits, scale * v[0]);
    else snprintf(buf, cap, "%.*f ± %.*f (%d)", digits, scale * mean_of(v, n), digits, scale * std_of(v, n), n);
}

typedef struct {
    double *v;
    int n, cap;
} Vals;

static void vals_push(Vals *a, double x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = xrealloc(a->v, sizeof(double) * (size_t)a->cap);
    }
    a->v[a->n++] = x;
}

/* A JSON scalar as text for labels: numbers as %g, strings as they are. */
static void scalar_text(json_t *v, StrBuf *out)
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
        if (!strcmp(REGIMES[i], r)) return i;
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
    if (!json_is_string(name)) {
        sb_printf(err, "%s: \"%s\" must be a file name (relative to the run directory)", result_path, what);
        return -1;
    }
    char *p = path_join(rundir, json_string_value(name));
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
    if (id && (!json_is_string(id) || strcmp(json_string_value(id), u->id))) {
        sb_printf(err, "%s: \"id\" is not this job's (\"%s\")", fpath, u->id);
        return -1;
    }
    json_t *se = json_object_get(u->failed, "stderr");
    if (json_is_string(se)) {
        char *p = path_join(u->dir, json_string_value(se));
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
    if (!json_is_string(id) || strcmp(json_string_value(id), u->id)) {
        sb_printf(err, "%s: \"id\" must be this job's id \"%s\"", rpath, u->id);
        return -1;
    }
    json_t *ft = json_object_get(u->result, "finetune");
    if (!json_is_object(ft) || !json_is_object(json_object_get(ft, "eval"))) {
        sb_printf(err, "%s: \"finetune\" must be the object `tracc finetune --json` prints (with \"eval\")", rpath);
        return -1;
    }
    const char *name;
    json_t *set;
    json_object_foreach(json_object_get(ft, "eval"), name, set)
    {
        if (!json_is_object(set) || !json_is_number(json_object_get(set, "acc"))) {
            sb_printf(err, "%s: finetune.eval.%s must be an object with a number \"acc\"", rpath, name);
            return -1;
        }
    }
    json_t *log = json_object_get(u->result, "log");
    if (log && !json_is_null(log)) {
        if (read_log(u->dir, log, "log", &u->log, rpath, err)) return -1;
        u->has_log = 1;
    }
    json_t *after = json_object_get(u->result, "after");
    if (after && !json_is_null(after) && !json_is_object(after)) {
        sb_printf(err, "%s: \"after\" must be an object of analysis results", rpath);
        return -1;
    }
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
    char *p = path_join(dir, "lock");
    int fd = open(p, O_RDONLY);
    free(p);
    if (fd < 0) return 0;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

static int cell_of(SrepReport *r, int sweep, json_t *params, const char *plan_path, StrBuf *err)
{
    (void)plan_path;
    (void)err;
    json_t *p = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(params, k, v) if (strcmp(k, "seed")) json_object_set(p, k, v);
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
        scalar_text(v, &l);
    }
    if (!l.len) sb_puts(&l, "(all jobs)");
    c->label = sb_steal(&l);
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
    if (stat(dir, &st) != 0) {
        sb_printf(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        sb_printf(err, "%s: not a directory (expected a sweep directory written by `tracc sweep plan`)", dir);
        return -1;
    }
    char *pp = path_join(dir, "plan.json");
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
        u->dir = path_join(dir, json_string_value(jd));
        u->cell = cell_of(r, si, params, pp, err);
        Cell *c = &r->cells[u->cell];
        if (c->nruns == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 4;
            c->runs = xrealloc(c->runs, sizeof(int) * (size_t)c->cap);
        }
        c->runs[c->nruns++] = r->nruns - 1;
        char *rp = path_join(u->dir, "result.json"), *fp = path_join(u->dir, "failed.json");
        if (file_exists(rp)) u->status = RUN_DONE;
        else if (file_exists(fp)) u->status = RUN_FAILED;
        else u->status = RUN_PENDING, u->running = lock_held(u->dir);
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
        char *p = path_join(u->dir, u->status == RUN_DONE ? "result.json" : "failed.json");
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
    return num_or_nan(json_object_get(json_object_get(ev, name), metric));
}

static void classify(SrepReport *r)
{
    for (int i = 0; i < r->nruns; i++) {
        Run *u = &r->runs[i];
        if (u->status == RUN_FAILED && u->diverged) u->regime = "diverged";
        if (u->status != RUN_DONE) continue;
        double a[4];
        int ok = 1;
        for (int k = 0; k < 4; k++) ok &= isfinite(a[k] = run_eval(u, T3[k], "acc"));
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
        c->regime = best < 0 ? NULL : tie ? "mixed" : REGIMES[best];
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

static int cmp_double(const void *a, const void *b)
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
    qsort(xs, tot, sizeof(double), cmp_double);
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
        json_array_append_new(a[1], num_json(cv->mean[j]));
        json_array_append_new(a[2], num_json(cv->lo[j]));
        json_array_append_new(a[3], num_json(cv->hi[j]));
        json_array_append_new(a[4], json_integer(cv->cnt[j]));
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "step", a[0], "mean", a[1], "min", a[2], "max", a[3], "n", a[4]);
}

/* Names in first-seen order. */
typedef struct {
    const char **v;
    int n;
} Names;

static void names_add(Names *ns, const char *s)
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
        for (int e = 0; e < g->neval; e++) names_add(&en, g->eval_acc[e].name);
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
static json_t *find_after(const Run *u, const char *method, int by_method)
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
    double mx = mean_of(x->ranks.v, x->ranks.n), my = mean_of(y->ranks.v, y->ranks.n);
    return mx < my ? -1 : mx > my;
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
        json_t *o = u->status == RUN_DONE ? find_after(u, method, 1) : NULL;
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
            double kv = num_or_nan(json_object_get(row, "k"));
            if (!isfinite(kv)) continue;
            int seen = 0;
            for (j = 0; j < (size_t)ks.n; j++) seen |= ks.v[j] == kv;
            if (!seen) vals_push(&ks, kv);
            const char *name;
            json_t *a;
            json_object_foreach(json_object_get(row, "acc"), name, a) if (strcmp(name, "task")) names_add(&en, name);
        }
    }
    /* keep the K every run reports (rollback adds a row at the K it found, different per run) */
    int nk = 0;
    for (int q = 0; q < ks.n; q++) {
        int all = 1;
        for (int i = 0; i < n && all; i++) {
            json_t *rows = json_object_get(obj[i], "rows");
            int has = num_or_nan(json_object_get(json_object_get(obj[i], "base"), "k")) == ks.v[q];
            for (size_t b = 0; b < json_array_size(rows) && !has; b++)
                has = num_or_nan(json_object_get(json_array_get(rows, b), "k")) == ks.v[q];
            all = has;
        }
        if (all) ks.v[nk++] = ks.v[q];
    }
    ks.n = nk;
    qsort(ks.v, (size_t)ks.n, sizeof(double), cmp_double);
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
                    if (num_or_nan(json_object_get(row, "k")) != ks.v[q]) continue;
                    double a = num_or_nan(json_object_get(json_object_get(row, "acc"), e < 0 ? "task" : en.v[e]));
                    if (isfinite(a)) vals_push(&v, a);
                    break;
                }
            }
            json_array_append_new(e < 0 ? task : json_object_get(evals, en.v[e]), agg_json(v.v, v.n));
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
            double rank = num_or_nan(json_object_get(e, "rank"));
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
            vals_push(&w[f].ranks, rank);
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
    if (!strcmp(method, "rollback")) {
        Vals fk = {0}, orig = {0};
        for (int i = 0; i < n; i++) {
            double f = num_or_nan(json_object_get(obj[i], "found_k"));
            if (isfinite(f)) vals_push(&fk, f);
            double o = num_or_nan(json_object_get(json_object_get(json_object_get(obj[i], "original"), "acc"), "task"));
            if (isfinite(o)) vals_push(&orig, o);
        }
        json_object_set_new(out, "target", json_deep_copy(json_object_get(obj[0], "target")));
        json_object_set_new(out, "found", json_integer(fk.n));
        json_object_set_new(out, "found_k", agg_json(fk.v, fk.n));
        json_object_set_new(out, "original_task", agg_json(orig.v, orig.n));
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
        json_t *o = u->status == RUN_DONE ? find_after(u, key, 0) : NULL;
        if (!json_is_object(o)) continue;
        n++;
        double s = num_or_nan(json_object_get(o, "stopped_at"));
        if (isfinite(s)) vals_push(&stop, s);
        double st = num_or_nan(json_object_get(o, "steps"));
        if (isfinite(st)) vals_push(&steps, st);
        if (!sw) sw = json_string_value(json_object_get(o, "stop_when"));
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(o, "eval"), name, v) names_add(&en, name);
    }
    if (!n) return NULL;
    json_t *ev = json_object();
    for (int e = 0; e < en.n; e++) {
        Vals a = {0};
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? find_after(u, key, 0) : NULL;
            double x = num_or_nan(json_object_get(json_object_get(json_object_get(o, "eval"), en.v[e]), "acc"));
            if (isfinite(x)) vals_push(&a, x);
        }
        json_object_set_new(ev, en.v[e], agg_json(a.v, a.n));
        free(a.v);
    }
    json_t *out = json_pack("{s:i, s:s?, s:i, s:o, s:o, s:o}", "runs", n, "stop_when", sw, "reached", stop.n,
                            "stopped_at", agg_json(stop.v, stop.n), "steps", agg_json(steps.v, steps.n), "evals", ev);
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
            if (json_is_true(json_array_get(sr, k))) any = 1, m += num_or_nan(json_array_get(pr, k));
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
            s += fabs(num_or_nan(json_array_get(json_array_get(b, q), k)) -
                      num_or_nan(json_array_get(json_array_get(a, q), k)));
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
        json_t *o = u->status == RUN_DONE ? find_after(u, "attn", 0) : NULL;
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
            json_t *o = u->status == RUN_DONE ? find_after(u, "attn", 0) : NULL;
            json_t *hh = json_array_get(json_object_get(o, "heads"), hi);
            json_t *pat = json_object_get(hh, "pattern"), *sel = json_object_get(hh, "program_selects");
            size_t nm = json_array_size(pat);
            if (!nm) continue;
            double b = selected_mass(json_array_get(pat, 0), sel);
            if (isfinite(b)) vals_push(&sb, b);
            if (nm < 2) continue;
            double a = selected_mass(json_array_get(pat, nm - 1), sel);
            if (isfinite(a)) vals_push(&sa, a);
            double d = mean_abs_change(json_array_get(pat, 0), json_array_get(pat, nm - 1));
            if (isfinite(d)) vals_push(&ch, d);
        }
        json_array_append_new(heads, json_pack("{s:s?, s:o, s:o, s:o}", "name", json_string_value(json_object_get(h, "name")),
                                               "selected_before", agg_json(sb.v, sb.n), "selected_after",
                                               agg_json(sa.v, sa.n), "mean_abs_change", agg_json(ch.v, ch.n)));
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
            double v = num_or_nan(json_object_get(x, field));
            if (!name || !isfinite(v)) continue;
            int f = 0;
            while (f < ne && strcmp(e[f].name, name)) f++;
            if (f == ne) {
                e = xrealloc(e, sizeof *e * (size_t)(ne + 1));
                memset(&e[ne], 0, sizeof *e);
                e[ne++].name = name;
            }
            vals_push(&e[f].v, v);
            e[f].score += fabs(v) / n;
        }
    }
    qsort(e, (size_t)ne, sizeof *e, cmp_entry);
    json_t *out = json_array();
    for (int f = 0; f < ne; f++) {
        if (f < top) {
            json_t *a = agg_json(e[f].v.v, e[f].v.n);
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
        json_t *o = u->status == RUN_DONE ? find_after(u, "diff", 0) : NULL;
        if (!json_is_object(o)) continue;
        objs[n++] = o;
        double x = num_or_nan(json_object_get(o, "relative"));
        if (isfinite(x)) vals_push(&rel, x);
    }
    json_t *out = NULL;
    if (n)
        out = json_pack("{s:i, s:o, s:o, s:o}", "runs", n, "relative", agg_json(rel.v, rel.n), "largest_changes",
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
            json_t *o = u->status == RUN_DONE ? find_after(u, "probe", 0) : NULL;
            if (!o) continue;
            n += !pass;
            size_t m = json_is_array(o) ? json_array_size(o) : 1;
            for (size_t i = 0; i < m; i++) {
                json_t *s = json_is_array(o) ? json_array_get(o, i) : o;
                const char *sop = json_string_value(json_object_get(s, "sop"));
                if (!sop) continue;
                if (!pass) {
                    names_add(&sn, sop);
                    json_t *st;
                    size_t q;
                    json_array_foreach(json_object_get(s, "stages"), q, st)
                    {
                        const char *w = json_string_value(json_object_get(st, "where"));
                        if (w) names_add(&wn, w);
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
                json_t *o = u->status == RUN_DONE ? find_after(u, "probe", 0) : NULL;
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
                        double dv = num_or_nan(json_object_get(st, "direct"));
                        double lv = num_or_nan(json_object_get(st, "linear_test"));
                        if (isfinite(dv)) vals_push(&d, dv);
                        if (isfinite(lv)) vals_push(&l, lv);
                    }
                }
            }
            if (d.n || l.n)
                json_array_append_new(stages, json_pack("{s:s, s:o, s:o}", "where", wn.v[wi], "direct",
                                                        agg_json(d.v, d.n), "linear_test", agg_json(l.v, l.n)));
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
        json_object_foreach(json_object_get(json_object_get(u->result, "finetune"), "eval"), name, v) names_add(&en, name);
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
                if (isfinite(x)) vals_push(&v, x);
                else missing = 1;
            }
            (void)missing;
            if (m == 0) {
                ev = agg_json(v.v, v.n);
                json_object_set_new(ev, "accuracy", json_string("argmax"));
            } else if (v.n) {
                json_object_set_new(ev, m == 1 ? "decoded" : "loss", agg_json(v.v, v.n));
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
            double x = num_or_nan(json_object_get(json_object_get(u->result, "finetune"), ftk[m]));
            if (isfinite(x)) vals_push(&v, x);
        }
        json_object_set_new(ft, ftk[m], agg_json(v.v, v.n));
        free(v.v);
    }
    json_object_set_new(o, "finetune", ft);
    /* regimes */
    json_object_set_new(o, "regime", c->regime ? json_string(c->regime) : json_null());
    json_t *rc = json_object();
    for (int g = 0; g < NREG; g++)
        if (c->reg_count[g]) json_object_set_new(rc, REGIMES[g], json_integer(c->reg_count[g]));
    json_object_set_new(o, "regimes", rc);
    json_t *per = json_array();
    for (int k = 0; k < c->nruns; k++) {
        const Run *u = &r->runs[c->runs[k]];
        if (u->regime) json_array_append_new(per, json_pack("{s:s, s:s}", "job", u->id, "regime", u->regime));
    }
    json_object_set_new(o, "run_regimes", per);
    if (c->paper) {
        json_t *p = json_pack("{s:s, s:s}", "table", c->paper->table, "unit", "fraction (the paper prints percent)");
        for (int k = 0; k < 4; k++) json_object_set_new(p, T3[k], json_real(c->paper->v[k] / 100));
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
            char *p = path_join(u->dir, json_string_value(se));
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

/* ================================================================ the document (Markdown and HTML) */

/* One list of blocks rendered both ways, so report.md and report.html say the same. */
typedef enum { D_H, D_P, D_TABLE, D_IMG } DKind;

typedef struct {
    DKind k;
    int level, ncol, ncells;
    char *text;       /* heading, paragraph; picture: its alt text */
    char **cells;     /* table: row-major, the first row is the header */
    char *file, *svg; /* picture */
} DBlock;

typedef struct {
    DBlock *b;
    int n;
    int pictures;     /* 0: leave pictures out (stdout) */
} Doc;

static DBlock *d_new(Doc *d, DKind k)
{
    d->b = xrealloc(d->b, sizeof(DBlock) * (size_t)(d->n + 1));
    DBlock *b = &d->b[d->n++];
    memset(b, 0, sizeof *b);
    b->k = k;
    return b;
}

static void d_h(Doc *d, int level, const char *text)
{
    DBlock *b = d_new(d, D_H);
    b->level = level;
    b->text = xstrdup(text);
}

static void d_p(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void d_p(Doc *d, const char *fmt, ...)
{
    StrBuf s;
    sb_init(&s);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&s, fmt, ap);
    va_end(ap);
    d_new(d, D_P)->text = sb_steal(&s);
}

/* A table with ncol columns; the cells follow with d_c, header first. */
static void d_table(Doc *d, int ncol)
{
    d_new(d, D_TABLE)->ncol = ncol;
}

static void d_c(Doc *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void d_c(Doc *d, const char *fmt, ...)
{
    DBlock *b = &d->b[d->n - 1];
    StrBuf s;
    sb_init(&s);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&s, fmt, ap);
    va_end(ap);
    b->cells = xrealloc(b->cells, sizeof(char *) * (size_t)(b->ncells + 1));
    b->cells[b->ncells++] = sb_steal(&s);
}

/* Takes the SVG text. */
static void d_img(Doc *d, const char *file, const char *alt, char *svg)
{
    if (!d->pictures) {
        free(svg);
        return;
    }
    DBlock *b = d_new(d, D_IMG);
    b->file = xstrdup(file);
    b->text = xstrdup(alt);
    b->svg = svg;
}

static void d_free(Doc *d)
{
    for (int i = 0; i < d->n; i++) {
        DBlock *b = &d->b[i];
        free(b->text);
        free(b->file);
        free(b->svg);
        for (int c = 0; c < b->ncells; c++) free(b->cells[c]);
        free(b->cells);
    }
    free(d->b);
}

static void md_cell(StrBuf *o, const char *t)
{
    for (; *t; t++) {
        if (*t == '|') sb_puts(o, "\\|");
        else if (*t == '\n') sb_putc(o, ' ');
        else sb_putc(o, *t);
    }
}

static void d_markdown(const Doc *d, StrBuf *o)
{
    for (int i = 0; i < d->n; i++) {
        const DBlock *b = &d->b[i];
        switch (b->k) {
        case D_H:
            for (int l = 0; l < b->level; l++) sb_putc(o, '#');
            sb_printf(o, " %s\n\n", b->text);
            break;
        case D_P: sb_printf(o, "%s\n\n", b->text); break;
        case D_IMG: sb_printf(o, "![%s](%s)\n\n", b->text, b->file); break;
        case D_TABLE:
            for (int c = 0; c < b->ncells; c++) {
                sb_puts(o, c % b->ncol ? " | " : "| ");
                md_cell(o, b->cells[c]);
                if (c % b->ncol == b->ncol - 1) {
                    sb_puts(o, " |\n");
                    if (c == b->ncol - 1) {
                        for (int k = 0; k < b->ncol; k++) sb_puts(o, "|---");
                        sb_puts(o, "|\n");
                    }
                }
            }
            sb_putc(o, '\n');
            break;
        }
    }
}

static void html_text(StrBuf *o, const char *t)
{
    for (; *t; t++) {
        if (*t == '&') sb_puts(o, "&amp;");
        else if (*t == '<') sb_puts(o, "&lt;");
        else if (*t == '>') sb_puts(o, "&gt;");
        else if (*t == '"') sb_puts(o, "&quot;");
        else sb_putc(o, *t);
    }
}

static void d_html(const Doc *d, const char *title, StrBuf *o)
{
    sb_puts(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>");
    html_text(o, title);
    sb_puts(o, "</title>\n<style>\n"
               "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:24px;color:#111;max-width:1400px}\n"
               "table{border-collapse:collapse;margin:8px 0 18px 0;font-size:13px}\n"
               "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left;vertical-align:top}\n"
               "th{background:#eef2f7}\ntr:nth-child(even) td{background:#fafafa}\n"
               "h1{font-size:24px}h2{font-size:20px;border-bottom:1px solid #ccc;margin-top:32px}h3{font-size:16px}\n"
               "figure{margin:6px 0 18px 0;overflow-x:auto}svg{max-width:100%;height:auto}\n"
               "</style>\n</head>\n<body>\n");
    for (int i = 0; i < d->n; i++) {
        const DBlock *b = &d->b[i];
        switch (b->k) {
        case D_H:
            sb_printf(o, "<h%d>", b->level);
            html_text(o, b->text);
            sb_printf(o, "</h%d>\n", b->level);
            break;
        case D_P:
            sb_puts(o, "<p>");
            html_text(o, b->text);
            sb_puts(o, "</p>\n");
            break;
        case D_IMG: {
            /* inline: drop the XML declaration, keep the <svg> element */
            const char *s = strstr(b->svg, "<svg");
            sb_puts(o, "<figure>\n");
            sb_puts(o, s ? s : "");
            sb_puts(o, "</figure>\n");
            break;
        }
        case D_TABLE:
            sb_puts(o, "<table>\n");
            for (int c = 0; c < b->ncells; c++) {
                int head = c < b->ncol;
                if (c % b->ncol == 0) sb_puts(o, "<tr>");
                sb_puts(o, head ? "<th>" : "<td>");
                html_text(o, b->cells[c]);
                sb_puts(o, head ? "</th>" : "</td>");
                if (c % b->ncol == b->ncol - 1) sb_puts(o, "</tr>\n");
            }
            sb_puts(o, "</table>\n");
            break;
        }
    }
    sb_puts(o, "</body>\n</html>\n");
}

/* ================================================================ pictures */

/* A JSON array of numbers (null: NaN) as doubles; returns the length. */
static int jarr(json_t *a, double **out)
{
    int n = (int)json_array_size(a);
    *out = xmalloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) (*out)[i] = num_or_nan(json_array_get(a, (size_t)i));
    return n;
}

/* Series built from JSON curves, owning their arrays. */
typedef struct {
    SvgSeries *s;
    SvgBand *bands;
    const SvgBand **bp;
    int *color;
    char **names;
    double **arrs;
    int n, narr;
} SeriesSet;

static double *ss_keep(SeriesSet *ss, double *a)
{
    ss->arrs = xrealloc(ss->arrs, sizeof(double *) * (size_t)(ss->narr + 1));
    return ss->arrs[ss->narr++] = a;
}

/* Add a series: a curve object {"step", "mean", "min", "max"}. */
static void ss_add_curve(SeriesSet *ss, json_t *curve, const char *name, int color, int dashed)
{
    if (!curve) return;
    double *x, *m, *lo, *hi;
    int n = jarr(json_object_get(curve, "step"), &x);
    jarr(json_object_get(curve, "mean"), &m);
    jarr(json_object_get(curve, "min"), &lo);
    jarr(json_object_get(curve, "max"), &hi);
    ss_keep(ss, x), ss_keep(ss, m), ss_keep(ss, lo), ss_keep(ss, hi);
    int i = ss->n++;
    ss->s = xrealloc(ss->s, sizeof(SvgSeries) * (size_t)ss->n);
    ss->bands = xrealloc(ss->bands, sizeof(SvgBand) * (size_t)ss->n);
    ss->color = xrealloc(ss->color, sizeof(int) * (size_t)ss->n);
    ss->names = xrealloc(ss->names, sizeof(char *) * (size_t)ss->n);
    ss->names[i] = xstrdup(name);
    ss->s[i] = (SvgSeries){ss->names[i], n, x, m, dashed};
    ss->bands[i] = (SvgBand){lo, hi};
    ss->color[i] = color;
}

/* Pointers into bands are taken once the set is complete (it reallocates while growing). */
static void ss_chart(SeriesSet *ss, SvgChart *c)
{
    free(ss->bp);
    ss->bp = xmalloc(sizeof(SvgBand *) * (size_t)(ss->n ? ss->n : 1));
    for (int i = 0; i < ss->n; i++) ss->bp[i] = &ss->bands[i];
    c->nseries = ss->n;
    c->series = ss->s;
    c->bands = ss->bp;
    c->color_of = ss->color;
}

static void ss_free(SeriesSet *ss)
{
    for (int i = 0; i < ss->narr; i++) free(ss->arrs[i]);
    for (int i = 0; i < ss->n; i++) free(ss->names[i]);
    free(ss->arrs);
    free(ss->names);
    free(ss->s);
    free(ss->bands);
    free(ss->bp);
    free(ss->color);
    memset(ss, 0, sizeof *ss);
}

static char *svg_done(Svg *s)
{
    svg_end(s);
    return sb_steal(&s->b);
}

/* Training loss and every evaluation accuracy against the step: the mean over runs, shaded
 * from the lowest to the highest run. */
static char *curves_svg(json_t *cv, const char *title)
{
    double pw = 520, ph = 330;
    json_t *ev = json_object_get(cv, "eval");
    int rows = ((int)json_object_size(ev) + 2) / 3;
    Svg s;
    svg_begin(&s, 2 * pw + 30, 40 + ph + rows * 15 + 10);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = NAN;
    c.xlabel = "step";
    SeriesSet a = {0}, b = {0};
    ss_add_curve(&a, json_object_get(cv, "loss"), "training loss (mean, band min-max)", 0, 0);
    ss_chart(&a, &c);
    c.title = "training loss";
    c.ylabel = "loss";
    c.logy = 1;
    svg_chart(&s, 10, 40, pw, ph + rows * 15, &c);
    const char *name;
    json_t *v;
    int i = 0;
    json_object_foreach(ev, name, v) ss_add_curve(&b, v, name, i++, 0);
    ss_chart(&b, &c);
    c.title = "evaluation accuracy (argmax; mean, band min-max)";
    c.ylabel = "accuracy";
    c.logy = 0;
    c.ymin = 0;
    c.ymax = 1;
    svg_chart(&s, 20 + pw, 40, pw, ph + rows * 15, &c);
    ss_free(&a);
    ss_free(&b);
    return svg_done(&s);
}

/* A curve object from per-K aggregates: mean, min and max of each one's values. */
static json_t *agg_list_curve(json_t *k, json_t *aggs)
{
    json_t *st = json_array(), *m = json_array(), *lo = json_array(), *hi = json_array();
    for (size_t i = 0; i < json_array_size(aggs); i++) {
        json_t *a = json_array_get(aggs, i), *vals = json_object_get(a, "values"), *x;
        double mn = INFINITY, mx = -INFINITY;
        size_t j;
        json_array_foreach(vals, j, x) mn = fmin(mn, num_or_nan(x)), mx = fmax(mx, num_or_nan(x));
        json_array_append(st, json_array_get(k, i));
        json_array_append(m, json_object_get(a, "mean"));
        json_array_append_new(lo, num_json(mn));
        json_array_append_new(hi, num_json(mx));
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "step", st, "mean", m, "min", lo, "max", hi);
}

static char *prune_svg(json_t *pr, json_t *rb, const char *title)
{
    SeriesSet ss = {0};
    Svg s;
    double w = 640, h = 380;
    int nser = 0;
    if (pr) nser += 1 + (int)json_object_size(json_object_get(pr, "evals"));
    if (rb) nser++;
    h += ((nser + 2) / 3) * 15;
    svg_begin(&s, w + 20, h + 40);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    int col = 0;
    json_t *tmp[64];
    int nt = 0;
    if (pr) {
        tmp[nt] = agg_list_curve(json_object_get(pr, "k"), json_object_get(pr, "task"));
        ss_add_curve(&ss, tmp[nt++], "pruned: pretraining task", col++, 0);
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(pr, "evals"), name, v)
        {
            if (nt == 63) break;
            char lab[200];
            snprintf(lab, sizeof lab, "pruned: %s", name);
            tmp[nt] = agg_list_curve(json_object_get(pr, "k"), v);
            ss_add_curve(&ss, tmp[nt++], lab, col++, 0);
        }
    }
    if (rb) {
        tmp[nt] = agg_list_curve(json_object_get(rb, "k"), json_object_get(rb, "task"));
        ss_add_curve(&ss, tmp[nt++], "rolled back: pretraining task", 0, 1);
    }
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = NAN;
    c.title = "accuracy vs weights pruned / rolled back (mean, band min-max over runs)";
    c.xlabel = "number of weights K";
    c.ylabel = "accuracy";
    c.ymin = 0;
    c.ymax = 1;
    ss_chart(&ss, &c);
    svg_chart(&s, 10, 40, w, h, &c);
    ss_free(&ss);
    for (int i = 0; i < nt; i++) json_decref(tmp[i]);
    return svg_done(&s);
}

static char *refit_svg(json_t *reft, json_t *scr, const char *title)
{
    json_t *re = json_object_get(json_object_get(reft, "curves"), "eval");
    json_t *se = json_object_get(json_object_get(scr, "curves"), "eval");
    SeriesSet ss = {0};
    Names nn = {0};
    const char *name;
    json_t *v;
    json_object_foreach(re, name, v) names_add(&nn, name);
    json_object_foreach(se, name, v) names_add(&nn, name);
    for (int i = 0; i < nn.n; i++) {
        char lab[200];
        snprintf(lab, sizeof lab, "reFT: %s", nn.v[i]);
        ss_add_curve(&ss, json_object_get(re, nn.v[i]), lab, i, 0);
        snprintf(lab, sizeof lab, "Scr.+FT: %s", nn.v[i]);
        ss_add_curve(&ss, json_object_get(se, nn.v[i]), lab, i, 1);
    }
    free(nn.v);
    double w = 640, h = 380 + ((ss.n + 2) / 3) * 15;
    Svg s;
    svg_begin(&s, w + 20, h + 40);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    SvgChart c;
    memset(&c, 0, sizeof c);
    c.vline = NAN;
    c.title = "reverse fine-tuning (solid) vs Scr.+FT (dashed): accuracy (mean, band min-max)";
    c.xlabel = "step";
    c.ylabel = "accuracy";
    c.ymin = 0;
    c.ymax = 1;
    ss_chart(&ss, &c);
    svg_chart(&s, 10, 40, w, h, &c);
    ss_free(&ss);
    return svg_done(&s);
}

/* Attention of every head on the sweep's input: before (the first run's first model), after
 * (the mean over runs of the last model) and the change, program selections outlined. */
static char *attn_svg(const SrepReport *r, const Cell *c, const char *title)
{
    json_t *first = NULL;
    for (int k = 0; k < c->nruns && !first; k++) {
        const Run *u = &r->runs[c->runs[k]];
        json_t *o = u->status == RUN_DONE ? find_after(u, "attn", 0) : NULL;
        if (json_is_object(o)) first = o;
    }
    json_t *pos = json_object_get(first, "positions"), *heads = json_object_get(first, "heads");
    int np = (int)json_array_size(pos), nh = (int)json_array_size(heads);
    if (!np || !nh) return NULL;
    const char **labels = xmalloc(sizeof(char *) * (size_t)np);
    for (int i = 0; i < np; i++) {
        const char *t = json_string_value(json_array_get(pos, (size_t)i));
        labels[i] = t ? t : "?";
    }
    size_t nn = (size_t)np * (size_t)np;
    double *bef = xmalloc(sizeof(double) * nn), *aft = xmalloc(sizeof(double) * nn), *chg = xmalloc(sizeof(double) * nn);
    unsigned char *mark = xmalloc(nn);
    double cell = np > 30 ? 7 : np > 16 ? 11 : 16;
    SvgHeatmap hm;
    memset(&hm, 0, sizeof hm);
    hm.rows = hm.cols = np;
    hm.row_labels = hm.col_labels = labels;
    hm.cell = cell;
    hm.xlabel = "key";
    hm.ylabel = "query";
    double pw, ph;
    hm.v = bef;
    hm.title = "after (mean of 100 runs)";   /* the longest panel title sets the width */
    svg_heatmap_size(&hm, &pw, &ph);
    hm.diverging = 1;
    double pw2, ph2;
    svg_heatmap_size(&hm, &pw2, &ph2);
    double rowh = fmax(ph, ph2) + 70;
    Svg s;
    svg_begin(&s, 2 * pw + pw2 + 60, 40 + nh * rowh);
    svg_text(&s, 12, 24, "start", 15, 0, 1, "#000000", title);
    for (int h = 0; h < nh; h++) {
        json_t *fh = json_array_get(heads, (size_t)h);
        json_t *sel = json_object_get(fh, "program_selects");
        int na = 0;
        memset(aft, 0, sizeof(double) * nn);
        json_t *p0 = json_array_get(json_object_get(fh, "pattern"), 0);   /* pattern[model][query][key] */
        for (size_t q = 0; q < nn; q++) {
            bef[q] = num_or_nan(json_array_get(json_array_get(p0, q / (size_t)np), q % (size_t)np));
            mark[q] = json_is_true(json_array_get(json_array_get(sel, q / (size_t)np), q % (size_t)np));
        }
        for (int k = 0; k < c->nruns; k++) {
            const Run *u = &r->runs[c->runs[k]];
            json_t *o = u->status == RUN_DONE ? find_after(u, "attn", 0) : NULL;
            json_t *pat = json_object_get(json_array_get(json_object_get(o, "heads"), (size_t)h), "pattern");
            size_t nm = json_array_size(pat);
            json_t *last = json_array_get(pat, nm ? nm - 1 : 0);
            if (nm < 2 || (int)json_array_size(last) != np) continue;
            for (size_t q = 0; q < nn; q++) aft[q] += num_or_nan(json_array_get(json_array_get(last, q / (size_t)np), q % (size_t)np));
            na++;
        }
        for (size_t q = 0; q < nn; q++) {
            aft[q] = na ? aft[q] / na : NAN;
            chg[q] = aft[q] - bef[q];
        }
        double y = 40 + h * rowh;
        const char *hn = json_string_value(json_object_get(fh, "name"));
        char sub[160];
        svg_text(&s, 12, y + 14, "start", 13, 0, 1, "#000000", hn ? hn : "head");
        y += 22;
        hm.mark = mark;
        hm.mark_legend = "selected by the program";
        hm.diverging = 0;
        hm.vmax = 1;
        hm.scale_label = "attention weight";
        hm.v = bef;
        hm.title = "before (compiled)";
        svg_heatmap(&s, 10, y, &hm);
        if (na) {
            snprintf(sub, sizeof sub, "after (mean of %d run%s)", na, na == 1 ? "" : "s");
            hm.v = aft;
            hm.title = sub;
            svg_heatmap(&s, 30 + pw, y, &hm);
            hm.v = chg;
            hm.diverging = 1;
            hm.vmax = 0;
            hm.title = "change (after - before)";
            hm.scale_label = "change";
            svg_heatmap(&s, 50 + 2 * pw, y, &hm);
        }
    }
    free(labels);
    free(bef);
    free(aft);
    free(chg);
    free(mark);
    return svg_done(&s);
}

/* ================================================================ the sections */

/* An aggregate {"values"} as "12.3 ± 1.2 (3)" (scale 100: percent). */
static void agg_text(json_t *agg, double scale, int digits, char *buf, size_t cap)
{
    double *v;
    int n = jarr(json_object_get(agg, "values"), &v);
    fmt_agg(buf, cap, v, n, scale, digits);
    free(v);
}

static int cell_has_t3(json_t *cj)
{
    json_t *ev = json_object_get(cj, "evals");
    for (int k = 0; k < 4; k++)
        if (!json_object_get(ev, T3[k])) return 0;
    return 1;
}

static void regime_text(const Cell *c, StrBuf *o)
{
    if (!c->reg_n) {
        sb_puts(o, "–");
        return;
    }
    int first = 1;
    for (int g = 0; g < NREG; g++)
        if (c->reg_count[g]) {
            sb_printf(o, "%s%s %d/%d", first ? "" : ", ", REGIMES[g], c->reg_count[g], c->reg_n);
            first = 0;
        }
}

/* The cell's grid parameters other than lr and spurious-rate, as "k=v ...", or "". */
static void other_params(const Cell *c, StrBuf *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(c->params, k, v)
    {
        if (!strcmp(k, "lr") || !strcmp(k, "spurious-rate")) continue;
        sb_printf(o, "%s%s=", o->len ? " " : "", k);
        scalar_text(v, o);
    }
}

static void table3(Doc *d, const SrepReport *r, json_t *cells, int si, int decoded)
{
    int any_other = 0, any_paper = 0;
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        if (c->sweep != si || !cell_has_t3(json_array_get(cells, (size_t)i))) continue;
        StrBuf o;
        sb_init(&o);
        other_params(c, &o);
        any_other |= o.len > 0;
        any_paper |= c->paper != NULL;
        sb_free(&o);
    }
    int ncol = 2 + any_other + 4 * (1 + (any_paper && !decoded)) + (decoded ? 0 : 2 + 2 * any_paper);
    d_table(d, ncol);
    d_c(d, "η (lr)");
    d_c(d, "C_Tr");
    if (any_other) d_c(d, "other");
    static const char *const head[4] = {"pt1: O_PT, C_Te=1", "ft1: O_FT, C_Te=1", "pt0: O_PT, C_Te=0",
                                        "ft0: O_FT, C_Te=0"};
    for (int k = 0; k < 4; k++) {
        d_c(d, "%s", head[k]);
        if (any_paper && !decoded) d_c(d, "paper");
    }
    if (!decoded) {
        d_c(d, "regime (runs)");
        if (any_paper) d_c(d, "paper's regime"), d_c(d, "same?");
        d_c(d, "jobs done/failed/pending");
    }
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        json_t *cj = json_array_get(cells, (size_t)i);
        if (c->sweep != si || !cell_has_t3(cj)) continue;
        StrBuf o;
        sb_init(&o);
        if (c->has_lrctr) d_c(d, "%g", c->lr), d_c(d, "%g", c->ctr);
        else d_c(d, "–"), d_c(d, "–");
        if (any_other) {
            other_params(c, &o);
            d_c(d, "%s", o.s);
        }
        for (int k = 0; k < 4; k++) {
            json_t *e = json_object_get(json_object_get(cj, "evals"), T3[k]);
            char buf[80];
            agg_text(decoded ? json_object_get(e, "decoded") : e, 100, 1, buf, sizeof buf);
            d_c(d, "%s", buf);
            if (any_paper && !decoded) {
                if (c->paper) d_c(d, "%.1f", c->paper->v[k]);
                else d_c(d, "–");
            }
        }
        if (!decoded) {
            sb_clear(&o);
            regime_text(c, &o);
            d_c(d, "%s", o.s);
            if (any_paper) {
                d_c(d, "%s", c->paper_regime ? c->paper_regime : "–");
                d_c(d, "%s", !c->paper || !c->regime ? "–" : !strcmp(c->regime, c->paper_regime) ? "yes" : "no");
            }
            d_c(d, "%d/%d/%d", c->done, c->failed, c->pending);
        }
        sb_free(&o);
    }
}

static void build_doc(const SrepReport *r, json_t *j, Doc *d)
{
    json_t *cells = json_object_get(j, "cells");
    StrBuf t;
    sb_init(&t);
    for (int i = 0; i < r->nsw; i++) sb_printf(&t, "%s%s", i ? ", " : "", r->sw[i].name);
    StrBuf h;
    sb_init(&h);
    sb_printf(&h, "Sweep report: %s", t.s);
    d_h(d, 1, h.s);
    sb_free(&h);
    sb_free(&t);
    d_table(d, 7);
    d_c(d, "sweep"), d_c(d, "directory"), d_c(d, "paper table"), d_c(d, "jobs"), d_c(d, "done"), d_c(d, "failed");
    d_c(d, "pending (running)");
    for (int i = 0; i < r->nsw; i++) {
        const Sweep *s = &r->sw[i];
        d_c(d, "%s", s->name), d_c(d, "%s", s->dir), d_c(d, "%s", s->paper ? s->paper : "none");
        d_c(d, "%d", s->njobs), d_c(d, "%d", s->done), d_c(d, "%d", s->failed), d_c(d, "%d (%d)", s->pending, s->running);
    }
    d_p(d, "Aggregates are over the finished runs of a cell (its grid parameters without the seed): mean ± sample "
           "standard deviation (divisor n − 1) (n runs); accuracies in percent. \"argmax\" accuracy counts the "
           "largest logit as the answer (what `tracc finetune --eval` reports as acc); \"decoded\" accuracy counts "
           "no answer when the top logit is ≤ 0.5 (as `tracc run` decodes). Every number and the per-run values it "
           "came from are in report.json.");

    /* failed jobs */
    int nfail = 0;
    for (int i = 0; i < r->nruns; i++) nfail += r->runs[i].status == RUN_FAILED;
    if (nfail) {
        d_h(d, 2, "Failed jobs");
        d_table(d, 6);
        d_c(d, "job"), d_c(d, "cell"), d_c(d, "stage"), d_c(d, "exit"), d_c(d, "message (last line of stderr)");
        d_c(d, "stderr");
        for (int i = 0; i < r->nruns; i++) {
            const Run *u = &r->runs[i];
            if (u->status != RUN_FAILED) continue;
            const char *stage = json_string_value(json_object_get(u->failed, "stage"));
            json_t *ex = json_object_get(u->failed, "exit");
            json_t *se = json_object_get(u->failed, "stderr");
            d_c(d, "%s", u->id), d_c(d, "%s", r->cells[u->cell].label), d_c(d, "%s%s", stage ? stage : "?",
                                                                            u->diverged ? " (diverged)" : "");
            if (json_is_integer(ex)) d_c(d, "%lld", (long long)json_integer_value(ex));
            else d_c(d, "?");
            d_c(d, "%s", u->err_line ? u->err_line : "");
            if (json_is_string(se)) d_c(d, "%s/%s", u->dir, json_string_value(se));
            else d_c(d, "–");
        }
    }

    /* Table 3, per sweep */
    for (int si = 0; si < r->nsw; si++) {
        int has = 0, dec = 0;
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            if (r->cells[i].sweep != si || !cell_has_t3(cj)) continue;
            has = 1;
            dec |= json_object_get(json_object_get(json_object_get(cj, "evals"), "pt1"), "decoded") != NULL;
        }
        if (!has) continue;
        StrBuf hh;
        sb_init(&hh);
        sb_printf(&hh, "Table 3: %s", r->sw[si].name);
        d_h(d, 2, hh.s);
        sb_free(&hh);
        if (r->sw[si].paper)
            d_p(d, "Paper: Jain et al., ICLR 2024 (arXiv 2311.12786), Table 3, rows \"%s\" (one run per cell, no "
                   "error bars; from paper/jain2023_table3.tsv).",
                r->sw[si].paper);
        else d_p(d, "This sweep names no paper table (plan.json \"paper\": null).");
        d_p(d, "Argmax accuracy (%%), mean ± std (n) over runs. Regime of each run from its four final accuracies, "
               "in this order: diverged (the loss became non-finite); learned (ft0 ≥ 90); unchanged (pt0 ≥ 90); "
               "wrapper (ft1 ≥ 90, ft0 < 50, pt0 < 50: it answers the pretraining answer shifted by the "
               "correlation); learning (ft0 ≥ 50); partly-a (pt0 ≥ 50); collapsed (none of these). A cell's regime "
               "is that of most of its runs (\"mixed\" on a tie); the paper's regime applies the same rule to its "
               "numbers.");
        table3(d, r, cells, si, 0);
        if (dec) {
            d_p(d, "Decoded accuracy (%%), mean ± std (n): no answer when the top logit is ≤ 0.5.");
            table3(d, r, cells, si, 1);
        }
    }

    /* every cell: jobs, training loss, the evaluation sets outside Table 3 */
    Names other = {0};
    for (int i = 0; i < r->ncells; i++) {
        const char *name;
        json_t *v;
        json_object_foreach(json_object_get(json_array_get(cells, (size_t)i), "evals"), name, v)
        {
            int t3 = 0;
            for (int k = 0; k < 4; k++) t3 |= !strcmp(name, T3[k]);
            if (!t3) names_add(&other, name);
        }
    }
    d_h(d, 2, "Cells");
    d_p(d, "Final training loss and the evaluation sets not in Table 3 (argmax accuracy, %%; decoded in brackets "
           "when the runs report it), mean ± std (n).");
    d_table(d, 5 + other.n);
    d_c(d, "sweep"), d_c(d, "cell"), d_c(d, "jobs done/failed/pending"), d_c(d, "training loss"), d_c(d, "steps");
    for (int e = 0; e < other.n; e++) d_c(d, "%s", other.v[e]);
    for (int i = 0; i < r->ncells; i++) {
        const Cell *c = &r->cells[i];
        json_t *cj = json_array_get(cells, (size_t)i);
        char buf[120], buf2[80];
        d_c(d, "%s", r->sw[c->sweep].name), d_c(d, "%s", c->label), d_c(d, "%d/%d/%d", c->done, c->failed, c->pending);
        json_t *ft = json_object_get(cj, "finetune");
        agg_text(json_object_get(ft, "train_loss"), 1, 4, buf, sizeof buf);
        d_c(d, "%s", buf);
        agg_text(json_object_get(ft, "steps"), 1, 0, buf, sizeof buf);
        d_c(d, "%s", buf);
        for (int e = 0; e < other.n; e++) {
            json_t *ev = json_object_get(json_object_get(cj, "evals"), other.v[e]);
            agg_text(ev, 100, 1, buf, sizeof buf);
            if (json_object_get(ev, "decoded")) {
                agg_text(json_object_get(ev, "decoded"), 100, 1, buf2, sizeof buf2);
                d_c(d, "%s [%s]", buf, buf2);
            } else d_c(d, "%s", buf);
        }
    }
    free(other.v);

    char file[64], title[600];
    /* learning curves */
    int any = 0;
    for (int i = 0; i < r->ncells; i++) any |= json_object_get(json_array_get(cells, (size_t)i), "curves") != NULL;
    if (any && d->pictures) {
        d_h(d, 2, "Learning curves");
        d_p(d, "Per cell: training loss and the accuracy of every evaluation set against the step; the line is the "
               "mean over the cell's runs, the band spans the lowest to the highest run (min–max). Training loss is "
               "drawn from at most %d evenly spaced logged steps per run.",
            MAX_TRAIN_POINTS);
        for (int i = 0; i < r->ncells; i++) {
            json_t *cv = json_object_get(json_array_get(cells, (size_t)i), "curves");
            if (!cv) continue;
            snprintf(file, sizeof file, "curves_%03d.svg", i + 1);
            int nr = (int)json_integer_value(json_object_get(cv, "runs"));
            snprintf(title, sizeof title, "%s: %s (%d run%s)", r->sw[r->cells[i].sweep].name, r->cells[i].label, nr,
                     nr == 1 ? "" : "s");
            d_h(d, 3, title);
            d_img(d, file, title, curves_svg(cv, title));
        }
    }

    /* pruning and rollback */
    any = 0;
    for (int i = 0; i < r->ncells; i++) {
        json_t *cj = json_array_get(cells, (size_t)i);
        any |= json_object_get(cj, "prune") || json_object_get(cj, "rollback");
    }
    if (any) {
        d_h(d, 2, "Pruning and rollback (Fig. 55/57)");
        d_p(d, "Pretraining-task accuracy (the prune run's --task) after zeroing the top K weights by gradient × "
               "weight of that task's loss (pruned), and after resetting the K weights fine-tuning moved most to "
               "their compiled values (rolled back); mean ± std (n) over runs. Weights are named in the program's "
               "terms; \"runs\" counts the runs that ranked the weight within the top K, \"ranks\" its rank in each.");
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *pr = json_object_get(cj, "prune"), *rb = json_object_get(cj, "rollback");
            if (!pr && !rb) continue;
            snprintf(title, sizeof title, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
            d_h(d, 3, title);
            snprintf(file, sizeof file, "prune_%03d.svg", i + 1);
            d_img(d, file, title, prune_svg(pr, rb, title));
            Vals ks = {0};
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? rb : pr, *x;
                size_t q;
                json_array_foreach(json_object_get(o, "k"), q, x)
                {
                    double kv = num_or_nan(x);
                    int seen = 0;
                    for (int z = 0; z < ks.n; z++) seen |= ks.v[z] == kv;
                    if (!seen) vals_push(&ks, kv);
                }
            }
            qsort(ks.v, (size_t)ks.n, sizeof(double), cmp_double);
            Names en = {0};
            const char *name;
            json_t *v;
            json_object_foreach(json_object_get(pr, "evals"), name, v) names_add(&en, name);
            d_table(d, 2 + en.n + 1);
            d_c(d, "K"), d_c(d, "pruned: task");
            for (int e = 0; e < en.n; e++) d_c(d, "pruned: %s", en.v[e]);
            d_c(d, "rolled back: task");
            for (int q = 0; q < ks.n; q++) {
                d_c(d, "%g", ks.v[q]);
                char buf[80];
                for (int w = 0; w < 2 + en.n; w++) {
                    json_t *o = w == 1 + en.n ? rb : pr, *x, *aggs;
                    aggs = w == 0 || w == 1 + en.n ? json_object_get(o, "task")
                                                   : json_object_get(json_object_get(pr, "evals"), en.v[w - 1]);
                    json_t *found = NULL;
                    size_t z;
                    json_array_foreach(json_object_get(o, "k"), z, x) if (num_or_nan(x) == ks.v[q]) found =
                        json_array_get(aggs, z);
                    if (found) agg_text(found, 100, 1, buf, sizeof buf);
                    else snprintf(buf, sizeof buf, "–");
                    d_c(d, "%s", buf);
                }
            }
            free(ks.v);
            free(en.v);
            if (rb) {
                char fk[80], orig[80];
                agg_text(json_object_get(rb, "found_k"), 1, 1, fk, sizeof fk);
                agg_text(json_object_get(rb, "original_task"), 100, 1, orig, sizeof orig);
                d_p(d, "Rollback: weights needed to bring the task back to the target accuracy %g: %s, found in %d of "
                       "%d runs (the compiled model's task accuracy, %%: %s).",
                    num_or_nan(json_object_get(rb, "target")), fk, (int)json_integer_value(json_object_get(rb, "found")),
                    (int)json_integer_value(json_object_get(rb, "runs")), orig);
            }
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? rb : pr, *x;
                json_t *ws = json_object_get(o, "weights");
                if (!json_array_size(ws)) continue;
                d_p(d, "%s weights (top %d of each run):", w ? "Rolled-back" : "Pruned",
                    (int)json_integer_value(json_object_get(o, "weights_top")));
                d_table(d, 4);
                d_c(d, "weight"), d_c(d, "in the program's terms"), d_c(d, "runs"), d_c(d, "ranks");
                size_t q;
                json_array_foreach(ws, q, x)
                {
                    StrBuf rk;
                    sb_init(&rk);
                    json_t *y;
                    size_t z;
                    json_array_foreach(json_object_get(x, "ranks"), z, y) sb_printf(&rk, "%s%lld", z ? ", " : "",
                                                                                    (long long)json_integer_value(y));
                    const char *mn = json_string_value(json_object_get(x, "meaning"));
                    d_c(d, "%s", json_string_value(json_object_get(x, "param")));
                    d_c(d, "%s", mn ? mn : "");
                    d_c(d, "%lld/%lld", (long long)json_integer_value(json_object_get(x, "runs")),
                        (long long)json_integer_value(json_object_get(o, "runs")));
                    d_c(d, "%s", rk.s);
                    sb_free(&rk);
                }
            }
        }
    }

    /* reverse fine-tuning vs Scr.+FT */
    any = 0;
    for (int i = 0; i < r->ncells; i++) {
        json_t *cj = json_array_get(cells, (size_t)i);
        any |= json_object_get(cj, "reft") || json_object_get(cj, "scratch");
    }
    if (any) {
        d_h(d, 2, "Reverse fine-tuning vs Scr.+FT (Fig. 27)");
        d_p(d, "Steps until the --stop-when target held (runs that reached it; mean ± std (n)), \"reached\" = runs "
               "that reached it of the runs that ran the stage. reFT fine-tunes the fine-tuned model back on the "
               "pretraining task; Scr.+FT fine-tunes a model compiled for the fine-tuning task on the pretraining "
               "task (the control).");
        d_table(d, 6);
        d_c(d, "cell"), d_c(d, "target"), d_c(d, "reFT: steps to target"), d_c(d, "reFT: reached");
        d_c(d, "Scr.+FT: steps to target"), d_c(d, "Scr.+FT: reached");
        for (int i = 0; i < r->ncells; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *a = json_object_get(cj, "reft"), *b = json_object_get(cj, "scratch");
            if (!a && !b) continue;
            const char *sw = json_string_value(json_object_get(a ? a : b, "stop_when"));
            d_c(d, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label), d_c(d, "%s", sw ? sw : "–");
            for (int w = 0; w < 2; w++) {
                json_t *o = w ? b : a;
                char buf[80];
                if (!o) {
                    d_c(d, "–"), d_c(d, "–");
                    continue;
                }
                agg_text(json_object_get(o, "stopped_at"), 1, 0, buf, sizeof buf);
                d_c(d, "%s", buf);
                d_c(d, "%lld/%lld", (long long)json_integer_value(json_object_get(o, "reached")),
                    (long long)json_integer_value(json_object_get(o, "runs")));
            }
        }
        for (int i = 0; i < r->ncells && d->pictures; i++) {
            json_t *cj = json_array_get(cells, (size_t)i);
            json_t *a = json_object_get(cj, "reft"), *b = json_object_get(cj, "scratch");
            if (!json_object_get(a, "curves") && !json_object_get(b, "curves")) continue;
            snprintf(title, sizeof title, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
            d_h(d, 3, title);
            snprintf(file, sizeof file, "reft_%03d.svg", i + 1);
            d_img(d, file, title, refit_svg(a, b, title));
        }
    }

    /* attention */
    any = 0;
    for (int i = 0; i < r->ncells; i++) any |= json_object_get(json_array_get(cells, (size_t)i), "attn") != NULL;
    if (any) {
        d_h(d, 2, "Attention before and after (Fig. 10/45)");
        d_p(d, "Each head's attention on the sweep's attention input: the share of attention on the keys the "
               "program's selector selects (averaged over the queries that select any), before and after "
               "fine-tuning, and the mean absolute change of the pattern; mean ± std (n) over runs, in percent.");
        for (int i = 0; i < r->ncells; i++) {
            json_t *at = json_object_get(json_array_get(cells, (size_t)i), "attn");
            if (!at) continue;
            snprintf(title, sizeof title, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
            d_h(d, 3, title);
            d_table(d, 4);
            d_c(d, "head"), d_c(d, "on selected keys: before"), d_c(d, "on selected keys: after");
            d_c(d, "mean |change|");
            json_t *hd;
            size_t q;
            json_array_foreach(json_object_get(at, "heads"), q, hd)
            {
                char b1[80], b2[80], b3[80];
                const char *hn = json_string_value(json_object_get(hd, "name"));
                agg_text(json_object_get(hd, "selected_before"), 100, 1, b1, sizeof b1);
                agg_text(json_object_get(hd, "selected_after"), 100, 1, b2, sizeof b2);
                agg_text(json_object_get(hd, "mean_abs_change"), 100, 2, b3, sizeof b3);
                d_c(d, "%s", hn ? hn : "?"), d_c(d, "%s", b1), d_c(d, "%s", b2), d_c(d, "%s", b3);
            }
            if (d->pictures) {
                snprintf(file, sizeof file, "attn_%03d.svg", i + 1);
                char *svg = attn_svg(r, &r->cells[i], title);
                if (svg) d_img(d, file, title, svg);
            }
        }
    }

    /* the labelled diff */
    any = 0;
    for (int i = 0; i < r->ncells; i++) any |= json_object_get(json_array_get(cells, (size_t)i), "diff") != NULL;
    if (any) {
        d_h(d, 2, "What fine-tuning changed (labelled diff)");
        d_p(d, "The largest changed entries named in the program's terms (`tracc diff`), grouped over runs and ranked "
               "by the mean |change| over all the cell's runs (a run that does not list an entry among its largest "
               "counts 0); the change as mean ± std (n runs that list it).");
        for (int i = 0; i < r->ncells; i++) {
            json_t *df = json_object_get(json_array_get(cells, (size_t)i), "diff");
            if (!df) continue;
            snprintf(title, sizeof title, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
            d_h(d, 3, title);
            char buf[80];
            agg_text(json_object_get(df, "relative"), 1, 5, buf, sizeof buf);
            d_p(d, "Relative size of the change (|Δθ| / |θ|): %s.", buf);
            d_table(d, 2);
            d_c(d, "entry"), d_c(d, "change");
            json_t *x;
            size_t q;
            json_array_foreach(json_object_get(df, "largest_changes"), q, x)
            {
                agg_text(x, 1, 4, buf, sizeof buf);
                d_c(d, "%s", json_string_value(json_object_get(x, "name"))), d_c(d, "%s", buf);
            }
        }
    }

    /* probes */
    any = 0;
    for (int i = 0; i < r->ncells; i++) any |= json_object_get(json_array_get(cells, (size_t)i), "probe") != NULL;
    if (any) {
        d_h(d, 2, "Probes");
        d_p(d, "Is each s-op still computed? Accuracy (%%) of reading it at each residual stage directly through its "
               "labels and by a linear probe (test inputs), mean ± std (n) over runs (`tracc probe`).");
        for (int i = 0; i < r->ncells; i++) {
            json_t *pb = json_object_get(json_array_get(cells, (size_t)i), "probe");
            if (!pb) continue;
            snprintf(title, sizeof title, "%s: %s", r->sw[r->cells[i].sweep].name, r->cells[i].label);
            d_h(d, 3, title);
            d_table(d, 4);
            d_c(d, "s-op"), d_c(d, "stage"), d_c(d, "direct read"), d_c(d, "linear probe (test)");
            json_t *s, *st;
            size_t q, z;
            json_array_foreach(json_object_get(pb, "sops"), q, s) json_array_foreach(json_object_get(s, "stages"), z, st)
            {
                char b1[80], b2[80];
                agg_text(json_object_get(st, "direct"), 100, 1, b1, sizeof b1);
                agg_text(json_object_get(st, "linear_test"), 100, 1, b2, sizeof b2);
                d_c(d, "%s", json_string_value(json_object_get(s, "sop")));
                d_c(d, "%s", json_string_value(json_object_get(st, "where")));
                d_c(d, "%s", b1), d_c(d, "%s", b2);
            }
        }
    }
}

void srep_markdown(const SrepReport *r, StrBuf *out)
{
    json_t *j = srep_json(r);
    Doc d = {0};
    build_doc(r, j, &d);
    d_markdown(&d, out);
    d_free(&d);
    json_decref(j);
}

static int mkdir_p(const char *path, StrBuf *err)
{
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        char ch = *s;
        if (ch != '/' && ch) continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            sb_printf(err, "%s: cannot create the directory: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = ch;
        if (!ch) break;
    }
    struct stat st;
    int ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok) sb_printf(err, "%s: not a directory", path);
    free(p);
    return ok ? 0 : -1;
}

static int write_text(const char *dir, const char *name, const char *text, StrBuf *err)
{
    char *p = path_join(dir, name);
    int rc = write_file_atomic(p, text, strlen(text), err);
    free(p);
    return rc;
}

int srep_write(const SrepReport *r, const char *outdir, StrBuf *err)
{
    if (mkdir_p(outdir, err)) return -1;
    json_t *j = srep_json(r);
    Doc d = {0};
    d.pictures = 1;
    build_doc(r, j, &d);
    int rc = 0;
    for (int i = 0; i < d.n && !rc; i++)
        if (d.b[i].k == D_IMG) rc = write_text(outdir, d.b[i].file, d.b[i].svg, err);
    StrBuf o;
    sb_init(&o);
    if (!rc) {
        d_markdown(&d, &o);
        rc = write_text(outdir, "report.md", o.s, err);
    }
    if (!rc) {
        sb_clear(&o);
        d_html(&d, d.b[0].text, &o);
        rc = write_text(outdir, "report.html", o.s, err);
    }
    if (!rc) {
        char *s = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        sb_clear(&o);
        sb_puts(&o, s);
        sb_putc(&o, '\n');
        free(s);
        rc = write_text(outdir, "report.json", o.s, err);
    }
    sb_free(&o);
    d_free(&d);
    json_decref(j);
    return rc;
}
