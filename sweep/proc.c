/* proc.c — child processes and small file helpers for the sweep modules. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/outfile.h"
#include "sweep/sweep.h"

int sw_exit_code(int status)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

int sw_spawn(char *const argv[], const char *cwd, int out_fd, int err_fd, int deathsig)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* child: only async-signal-safe calls until exec */
    if (deathsig) {
        prctl(PR_SET_PDEATHSIG, deathsig);
        if (getppid() != parent) _exit(128 + deathsig);   /* the parent died before prctl */
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) {
        dup2(nul, 0);
        if (nul > 2) close(nul);
    }
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    if (cwd && chdir(cwd)) _exit(127);
    execv(argv[0], argv);
    _exit(127);
}

double sw_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int sw_wait(pid_t pid, int *status, double *cpu_s)
{
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    *status = 0;
    while (wait4(pid, status, 0, &ru) < 0)
        if (errno != EINTR) return -1;
    if (cpu_s)
        *cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    return 0;
}

int sw_capture(char *const argv[], const char *cwd, StrBuf *out, StrBuf *errout, StrBuf *err)
{
    return sw_capture_timed(argv, cwd, out, errout, NULL, NULL, err);
}

int sw_capture_timed(char *const argv[], const char *cwd, StrBuf *out, StrBuf *errout, double *cpu_s, double *wall_s,
                     StrBuf *err)
{
    double t0 = sw_now();
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe(po) || pipe(pe)) {
        sb_printf(err, "cannot create a pipe: %s", strerror(errno));
        goto fail;
    }
    fcntl(po[0], F_SETFD, FD_CLOEXEC);
    fcntl(pe[0], F_SETFD, FD_CLOEXEC);
    int pid = sw_spawn(argv, cwd, po[1], pe[1], SIGTERM);
    if (pid < 0) {
        sb_printf(err, "cannot start %s: %s", argv[0], strerror(errno));
        goto fail;
    }
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;
    /* read both pipes until both close, so a child filling one pipe never blocks */
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_n = 2;
    char buf[8192];
    while (open_n > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !fds[i].revents) continue;
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                StrBuf *dst = i == 0 ? out : errout;
                if (dst) sb_putn(dst, buf, (size_t)n);
            } else if (n == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_n--;
            }
        }
    }
    if (fds[0].fd >= 0) close(fds[0].fd);
    if (fds[1].fd >= 0) close(fds[1].fd);
    int status;
    if (sw_wait(pid, &status, cpu_s)) return sb_fail(err, "waitpid: %s", strerror(errno));
    if (wall_s) *wall_s = sw_now() - t0;
    int code = sw_exit_code(status);
    if (code == 127 && errout && !errout->len) sb_printf(errout, "cannot run %s\n", argv[0]);
    return code;
fail:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
    }
    return -1;
}

void sw_capture_many(char **const argvs[], size_t n, int par, int *code, StrBuf *errout)
{
    pid_t *pid = xcalloc(n ? n : 1, sizeof *pid);
    int *fd = xcalloc(n ? n : 1, sizeof *fd);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    size_t next = 0, running = 0;
    while (next < n || running > 0) {
        while (next < n && running < (size_t)par) {
            char tmpl[] = "/tmp/tracc-check-XXXXXX";
            fd[next] = mkstemp(tmpl);
            if (fd[next] >= 0) {
                unlink(tmpl);
                fcntl(fd[next], F_SETFD, FD_CLOEXEC);
            }
            pid[next] = fd[next] < 0 ? -1 : sw_spawn(argvs[next], NULL, nul, fd[next], SIGTERM);
            if (pid[next] < 0) {
                code[next] = -1;
                sb_printf(&errout[next], "cannot start %s: %s", argvs[next][0], strerror(errno));
            } else {
                running++;
            }
            next++;
        }
        int status;
        pid_t p = wait(&status);
        if (p < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (size_t i = 0; i < next; i++)
            if (pid[i] == p) {
                code[i] = sw_exit_code(status);
                pid[i] = 0;
                running--;
            }
    }
    for (size_t i = 0; i < n; i++) {
        if (fd[i] < 0) continue;
        lseek(fd[i], 0, SEEK_SET);
        char buf[4096];
        ssize_t r;
        while ((r = read(fd[i], buf, sizeof buf)) > 0) sb_putn(&errout[i], buf, (size_t)r);
        close(fd[i]);
    }
    if (nul >= 0) close(nul);
    free(pid);
    free(fd);
}

void sw_shell_quote(StrBuf *b, const char *s)
{
    int plain = *s != 0;
    for (const char *p = s; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%", *p)) plain = 0;
    if (plain) {
        sb_puts(b, s);
        return;
    }
    sb_putc(b, '\'');
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            sb_puts(b, "'\\''");
        else
            sb_putc(b, *p);
    }
    sb_putc(b, '\'');
}

json_t *sw_read_json(const char *path, StrBuf *err)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        sb_printf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(text, len, 0, &je);
    free(text);
    if (!v) sb_printf(err, "%s:%d: %s", path, je.line, je.text);
    return v;
}

int sw_write_json(const char *path, json_t *v, int pretty, StrBuf *err)
{
    char *s = json_dumps(v, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    if (!s) return sb_fail(err, "%s: cannot serialize", path);
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, s);
    sb_putc(&b, '\n');
    free(s);
    int rc = of_write(path, b.s, b.len, err);
    sb_free(&b);
    return rc;
}

int sw_mkdirs(const char *path, StrBuf *err)
{
    char *p = xstrdup(path);
    for (char *q = p + 1;; q++) {
        if (*q == '/' || !*q) {
            char c = *q;
            *q = 0;
            if (mkdir(p, 0777) && errno != EEXIST) {
                sb_printf(err, "cannot create %s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            *q = c;
            if (!c) break;
        }
    }
    free(p);
    return 0;
}

void sw_clear_dir(const char *path, const char *keep)
{
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && !strcmp(e->d_name, keep))) continue;
        StrBuf p;
        sb_init(&p);
        sb_printf(&p, "%s/%s", path, e->d_name);
        sw_rm_tree(p.s);
        sb_free(&p);
    }
    if (d) closedir(d);
}

void sw_rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st)) return;
    if (S_ISDIR(st.st_mode)) {
        sw_clear_dir(path, NULL);
        rmdir(path);
    } else {
        unlink(path);
    }
}

void sw_catch_stop(void (*handler)(int), struct sigaction *old_int, struct sigaction *old_term)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;   /* no SA_RESTART: waitpid returns EINTR, so loops see the flag */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
}

const char *sw_pin_blas(json_t *plan)
{
    const char *pin = json_string_value(json_object_get(plan, "blas_core"));
    if (pin) setenv("OPENBLAS_CORETYPE", pin, 1);
    return pin;
}

int sw_blas_mismatch(json_t *output, const char *pin, StrBuf *msg)
{
    const char *b = json_string_value(json_object_get(output, "blas"));
    if (!pin || !b) return 0;
    for (const char *p = b; *p;) {
        size_t n = strcspn(p, "+");
        if (n != strlen(pin) || strncasecmp(p, pin, n)) {
            sb_printf(msg, "it ran on OpenBLAS's %s kernels, not the sweep's blas-core %s (a name OpenBLAS does not know, "
                           "or a CPU it cannot run that kernel on)", b, pin);
            return 1;
        }
        p += n + (p[n] == '+');
    }
    return 0;
}

/* Parse a command's stdout: one JSON value, or JSON lines (-> array). */
json_t *sw_parse_output(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    if (v) return v;
    json_t *arr = json_array();
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n) {
            json_t *e = json_loadb(p, n, JSON_DECODE_ANY, NULL);
            if (!e) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, e);
        }
        p += n + (nl ? 1 : 0);
    }
    if (!json_array_size(arr)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}
