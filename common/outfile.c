/* outfile.c — checked, atomic outputs; see outfile.h for the rules. */
#include "common/outfile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Longest file name most filesystems take (NAME_MAX), and room for the PID. */
#define OF_NAME_MAX 255
#define OF_PID_DIGITS 10

struct OfStream {
    FILE *f;
    char *path;
    char *flag;
    int errnum;   /* the first failed write's errno, or 0 */
};

/* PATH's folder ("." when it has no '/') and the offset of its last component. */
static char *dir_of(const char *path, size_t *base_at)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *base_at = 0;
        return xstrdup(".");
    }
    *base_at = (size_t)(slash - path) + 1;
    return slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
}

/* The temp-name prefix of PATH's last component: "NAME.tracc-tmp.", NAME shortened so that a
 * PID still fits in a file name. The stale-temp scan uses the same prefix. */
static void tmp_prefix(const char *base, StrBuf *out)
{
    size_t room = OF_NAME_MAX - strlen(OF_TMP_MARK) - OF_PID_DIGITS, n = strlen(base);
    sb_putn(out, base, n < room ? n : room);
    sb_puts(out, OF_TMP_MARK);
}

static void begin(StrBuf *err, const char *flag, const char *path)
{
    if (flag) sb_printf(err, "%s ", flag);
    sb_printf(err, "%s: ", path);
}

/* PATH is absent or a regular file; anything else is described and refused. */
static int target_ok(const char *path, const char *flag, StrBuf *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        begin(err, flag, path);
        sb_printf(err, "cannot check it: %s", strerror(errno));
        return -1;
    }
    if (S_ISREG(st.st_mode)) return 0;
    begin(err, flag, path);
    if (S_ISLNK(st.st_mode)) {
        char to[4096];
        ssize_t n = readlink(path, to, sizeof to - 1);
        to[n > 0 ? n : 0] = 0;
        sb_printf(err, "is a symbolic link%s%s%s; tracc replaces an output by renaming a new file into place, "
                       "which would replace the link: give the path of the file itself",
                  n > 0 ? " (to " : "", to, n > 0 ? ")" : "");
        return -1;
    }
    const char *what = S_ISDIR(st.st_mode)   ? "a folder"
                       : S_ISCHR(st.st_mode) ? "a character device"
                       : S_ISBLK(st.st_mode) ? "a block device"
                       : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    sb_printf(err, "is %s; tracc writes outputs only to regular files (give a file name)", what);
    return -1;
}

int of_check(const char *path, const char *flag, StrBuf *err)
{
    if (!*path) return sb_fail(err, "%s%san empty path is not a file name", flag ? flag : "", flag ? ": " : "");
    size_t base_at;
    char *dir = dir_of(path, &base_at);
    int rc = -1;
    struct stat st;
    if (!path[base_at]) {
        begin(err, flag, path);
        sb_printf(err, "names a folder (it ends in '/'); give a file name");
    } else if (stat(dir, &st) != 0) {
        begin(err, flag, path);
        if (errno == ENOENT) sb_printf(err, "folder %s does not exist", dir);
        else if (errno == ENOTDIR) sb_printf(err, "%s is not a folder (a part of it is a file)", dir);
        else sb_printf(err, "cannot reach folder %s: %s", dir, strerror(errno));
    } else if (!S_ISDIR(st.st_mode)) {
        begin(err, flag, path);
        sb_printf(err, "%s is not a folder", dir);
    } else if (target_ok(path, flag, err)) {
        /* what is at the path first: "/dev/null is a device" says more than "cannot write in /dev" */
    } else if (access(dir, W_OK | X_OK) != 0) {
        begin(err, flag, path);
        sb_printf(err, "cannot write in folder %s: %s", dir, strerror(errno));
    } else {
        of_clean_stale(path);
        rc = 0;
    }
    free(dir);
    return rc;
}

int of_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return !strcmp(a, b);
}

int of_clean_stale(const char *path)
{
    size_t base_at;
    char *dir = dir_of(path, &base_at);
    StrBuf pre, victim;
    sb_init(&pre);
    sb_init(&victim);
    tmp_prefix(path + base_at, &pre);
    int removed = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, pre.s, pre.len)) continue;
        const char *digits = e->d_name + pre.len;
        size_t nd = strspn(digits, "0123456789");
        if (nd == 0 || nd > OF_PID_DIGITS || digits[nd]) continue;
        long long pid = strtoll(digits, NULL, 10);
        if (pid <= 0 || pid == (long long)getpid() || pid != (long long)(pid_t)pid) continue;
        /* only a process that provably no longer exists (EPERM: it exists, another user's) */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        sb_clear(&victim);
        sb_printf(&victim, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(victim.s, &st) == 0 && S_ISREG(st.st_mode) && unlink(victim.s) == 0) removed++;
    }
    if (d) closedir(d);
    sb_free(&pre);
    sb_free(&victim);
    free(dir);
    return removed;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);   /* the rename is done either way; this only makes it durable sooner */
    close(fd);
}

int of_write(const char *path, const void *data, size_t len, StrBuf *err)
{
    if (target_ok(path, NULL, err)) return -1;
    of_clean_stale(path);
    size_t base_at;
    char *dir = dir_of(path, &base_at);
    StrBuf tmp;
    sb_init(&tmp);
    if (base_at) sb_putn(&tmp, path, base_at);
    tmp_prefix(path + base_at, &tmp);
    sb_printf(&tmp, "%ld", (long)getpid());
    const char *what = NULL;
    int fd = -1, e = 0;
    (void)unlink(tmp.s);   /* ours: this PID's, from an earlier process with the same PID */
    fd = open(tmp.s, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
        e = errno;
        what = "cannot create a file in its folder";
        goto fail;
    }
    struct stat old;
    if (lstat(path, &old) == 0 && S_ISREG(old.st_mode)) (void)fchmod(fd, old.st_mode & 07777);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            e = errno;
            what = "cannot write";
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP) {
        e = errno;
        what = "cannot write (fsync)";
        goto fail;
    }
    int cr = close(fd);
    fd = -1;
    if (cr != 0) {
        e = errno;
        what = "cannot write (close)";
        goto fail;
    }
    if (rename(tmp.s, path) != 0) {
        e = errno;
        what = "cannot rename the new file into place";
        goto fail;
    }
    sync_dir(dir);
    sb_free(&tmp);
    free(dir);
    return 0;
fail:
    if (fd >= 0) close(fd);
    (void)unlink(tmp.s);
    sb_printf(err, "%s: %s: %s; nothing written", path, what, strerror(e));
    sb_free(&tmp);
    free(dir);
    return -1;
}

/* ---------------------------------------------------------------- logs */

OfStream *of_stream_open(const char *path, int append, const char *flag, StrBuf *err)
{
    if (of_check(path, flag, err)) return NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0666);
    FILE *f = fd < 0 ? NULL : fdopen(fd, append ? "a" : "w");
    if (!f) {
        begin(err, flag, path);
        sb_printf(err, "cannot open: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    OfStream *s = xcalloc(1, sizeof *s);
    s->f = f;
    s->path = xstrdup(path);
    s->flag = flag ? xstrdup(flag) : NULL;
    return s;
}

int of_stream_line(OfStream *s, const char *line)
{
    if (s->errnum) return -1;
    errno = 0;
    if (fputs(line, s->f) == EOF || putc('\n', s->f) == EOF || fflush(s->f) != 0) {
        s->errnum = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

int of_stream_failed(const OfStream *s) { return s && s->errnum; }

int of_stream_close(OfStream *s, StrBuf *err)
{
    if (!s) return 0;
    errno = 0;
    if (!s->errnum && (fflush(s->f) != 0 || ferror(s->f))) s->errnum = errno ? errno : EIO;
    if (!s->errnum && fsync(fileno(s->f)) != 0 && errno != EINVAL && errno != ENOTSUP) s->errnum = errno;
    if (fclose(s->f) != 0 && !s->errnum) s->errnum = errno;
    int rc = 0;
    if (s->errnum) {
        begin(err, s->flag, s->path);
        sb_printf(err, "write failed: %s; lines are missing from it", strerror(s->errnum));
        rc = -1;
    }
    free(s->path);
    free(s->flag);
    free(s);
    return rc;
}
