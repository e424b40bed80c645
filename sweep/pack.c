/* pack.c — `tracc sweep pack DIR -o OUT`: a sweep's results without its models.
 *
 * A finished paper sweep is gigabytes, nearly all of it weights (start, tuned, reverse
 * fine-tuned and checkpointed models); what `tracc report` and `sweep status` read is a few
 * megabytes of JSON. The pack is that part: the same tree with every `*.safetensors` and
 * every lock left out, so it can be committed, mailed or archived, reported on anywhere, and
 * copied into the same sweep planned anywhere to finish the jobs not done (a done job's
 * result.json carries its configuration's hash, which names no place, so it is not run again). OUT is written as a
 * temporary directory beside it and renamed at the end: it exists whole or not at all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sweep/sweep.h"

typedef struct {
    long files, models, skipped;
    long long bytes, model_bytes;
} PackCount;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Left out of a pack: weights (models, checkpoints, their temp files) and job locks. */
static int left_out(const char *name)
{
    return ends_with(name, ".safetensors") || strstr(name, ".safetensors.") || !strcmp(name, "lock");
}

/* Copy one regular file, checking every write and the close (a full disk fails here). */
static int copy_regular(const char *from, const char *to, long long *bytes, StrBuf *err)
{
    int in = open(from, O_RDONLY), out = -1, rc = -1;
    if (in < 0) return sb_fail(err, "%s: cannot read: %s", from, strerror(errno));
    if ((out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0) {
        sb_printf(err, "%s: cannot write: %s", to, strerror(errno));
        goto done;
    }
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            sb_printf(err, "%s: cannot read: %s", from, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        for (ssize_t w = 0; w < n;) {
            ssize_t k = write(out, buf + w, (size_t)(n - w));
            if (k < 0 && errno == EINTR) continue;
            if (k < 0) {
                sb_printf(err, "%s: cannot write: %s", to, strerror(errno));
                goto done;
            }
            w += k;
        }
        *bytes += n;
    }
    rc = 0;
done:
    if (out >= 0 && close(out) && rc == 0) rc = sb_fail(err, "%s: cannot write: %s", to, strerror(errno));
    close(in);
    return rc;
}

/* Copy the tree at `from` into the existing directory `to`, leaving out what left_out names. */
static int copy_tree(const char *from, const char *to, PackCount *n, StrBuf *err)
{
    DIR *d = opendir(from);
    if (!d) return sb_fail(err, "%s: cannot read: %s", from, strerror(errno));
    int rc = 0;
    struct dirent *e;
    StrBuf a, b;
    sb_init(&a);
    sb_init(&b);
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        sb_clear(&a);
        sb_clear(&b);
        sb_printf(&a, "%s/%s", from, e->d_name);
        sb_printf(&b, "%s/%s", to, e->d_name);
        struct stat st;
        if (lstat(a.s, &st)) {
            rc = sb_fail(err, "%s: %s", a.s, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            if (mkdir(b.s, 0755)) rc = sb_fail(err, "%s: cannot create: %s", b.s, strerror(errno));
            else rc = copy_tree(a.s, b.s, n, err);
        } else if (!S_ISREG(st.st_mode)) {
            n->skipped++;   /* a socket or link a sweep never makes */
        } else if (left_out(e->d_name)) {
            n->models += ends_with(e->d_name, ".safetensors");
            n->model_bytes += st.st_size;
        } else {
            rc = copy_regular(a.s, b.s, &n->bytes, err);
            n->files++;
        }
    }
    closedir(d);
    sb_free(&a);
    sb_free(&b);
    return rc;
}

/* "12.3 MB" */
static void human(char *buf, size_t cap, long long b)
{
    if (b >= 1000000000LL) snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1000000) snprintf(buf, cap, "%.1f MB", b / 1e6);
    else snprintf(buf, cap, "%.1f kB", b / 1e3);
}

/* A done job's result.json in the pack with the configuration hash of a sweep planned anywhere
 * (plan.json "config_sha256"), where its run recorded the one with the places in it (a sweep
 * planned before 2026-12-08, sweep/locate.c): copied into the same sweep planned at another path,
 * the job is done there too. The rest of the record is kept as it was. */
static int placeless_results(const char *pack, json_t *plan, long *rehashed, StrBuf *err)
{
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(plan, "jobs"), i, job) {
        const char *now = json_string_value(json_object_get(job, "config_sha256"));
        const char *then = json_string_value(json_object_get(job, "config_sha256_paths"));
        if (!now || !then || !strcmp(now, then)) continue;
        StrBuf p, e;
        sb_init(&p);
        sb_init(&e);
        sb_printf(&p, "%s/%s/result.json", pack, json_string_value(json_object_get(job, "dir")));
        struct stat st;
        json_t *r = stat(p.s, &st) ? NULL : sw_read_json(p.s, &e);
        const char *have = json_string_value(json_object_get(r, "config_sha256"));
        int rc = 0;
        if (have && !strcmp(have, then)) {
            json_object_set_new(r, "config_sha256", json_string(now));
            rc = sw_write_json(p.s, r, 1, err);
            (*rehashed)++;
        }
        json_decref(r);
        sb_free(&p);
        sb_free(&e);
        if (rc) return -1;
    }
    return 0;
}

int sw_pack(const char *dir, const char *out, int quiet, StrBuf *err)
{
    json_t *plan = sw_load_plan(dir, err);
    if (!plan) return 1;
    /* what the pack holds, counted as `sweep status` counts (a running job's files so far) */
    int count[4] = {0}, njobs = 0;
    size_t i;
    json_t *job;
    json_array_foreach(json_object_get(plan, "jobs"), i, job) count[sw_job_state(dir, job)]++, njobs++;
    struct stat st;
    int rc = 1;
    long rehashed = 0;
    StrBuf t;
    sb_init(&t);
    if (lstat(out, &st) == 0) {
        sb_printf(err, "%s: exists already (a pack is written to a new directory)", out);
        goto done;
    }
    char rdir[PATH_MAX], rparent[PATH_MAX];
    if (!realpath(dir, rdir)) {
        sb_printf(err, "%s: %s", dir, strerror(errno));
        goto done;
    }
    /* OUT's parent must exist; OUT may not lie inside DIR (the copy would copy itself) */
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", out);
    char *sl = strrchr(parent, '/');
    while (sl && sl > parent && sl[1] == 0) *sl = 0, sl = strrchr(parent, '/');
    if (!sl) strcpy(parent, ".");
    else if (sl == parent) parent[1] = 0;
    else *sl = 0;
    if (!realpath(parent, rparent)) {
        sb_printf(err, "%s: cannot create %s there: %s", parent, out, strerror(errno));
        goto done;
    }
    size_t nd = strlen(rdir);
    if (!strncmp(rparent, rdir, nd) && (rparent[nd] == 0 || rparent[nd] == '/')) {
        sb_printf(err, "%s: inside the sweep directory %s (the pack would copy itself)", out, dir);
        goto done;
    }

    sb_printf(&t, "%s/.tracc-pack-XXXXXX", rparent);
    if (!mkdtemp(t.s)) {
        sb_printf(err, "%s: cannot create %s there: %s", parent, out, strerror(errno));
        goto done;
    }
    PackCount n = {0};
    if (copy_tree(dir, t.s, &n, err) || placeless_results(t.s, plan, &rehashed, err) ||
        (rename(t.s, out) && sb_fail(err, "%s: cannot create: %s", out, strerror(errno)))) {
        sw_rm_tree(t.s);
        goto done;
    }
    rc = 0;
    if (!quiet) {
        char kept[32], left[32];
        human(kept, sizeof kept, n.bytes);
        human(left, sizeof left, n.model_bytes);
        fprintf(stderr,
                "tracc sweep pack: %s: %d jobs (%d done, %d failed, %d running, %d pending); %ld files, %s; left out "
                "%ld models (%s)%s\n",
                out, njobs, count[SW_DONE], count[SW_FAILED], count[SW_RUNNING], count[SW_PENDING], n.files, kept, n.models, left,
                n.skipped ? " and entries that are not files" : "");
        if (rehashed)
            fprintf(stderr, "tracc sweep pack: %ld results given the configuration hash that holds wherever the sweep is "
                            "planned (they were run before tracc had it)\n", rehashed);
    }
    printf("%s\n", out);
done:
    sb_free(&t);
    json_decref(plan);
    return rc;
}
