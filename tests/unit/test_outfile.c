/* test_outfile.c — common/outfile: the pre-check's messages (the path as given, what is wrong),
 * atomic writes that keep a replaced file's mode and leave nothing beside it, refusal of
 * non-regular targets at write time too, stale temps removed only for dead processes, temp
 * names that fit a long output name, same-file detection, and checked log streams. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/outfile.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tracc-test-outfile-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *at(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* check PATH with FLAG: fails with a message containing WANT */
static void refused(const char *path, const char *flag, const char *want)
{
    StrBuf err;
    sb_init(&err);
    assert_int_equal(of_check(path, flag, &err), -1);
    if (!strstr(err.s, want)) fail_msg("message '%s' lacks '%s'", err.s, want);
    sb_free(&err);
}

static pid_t dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return p;
}

static void test_check_messages(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(of_check(at("new.safetensors"), "-o", &err), 0);
    char want[700];
    snprintf(want, sizeof want, "-o %s: folder %s does not exist", at("no/x.svg"), at("no"));
    refused(at("no/x.svg"), "-o", want);
    refused("", "--log", "--log: an empty path is not a file name");
    refused(at("x/"), "--svg", "names a folder");
    refused(dir, "-o", "is a folder");
    refused("/dev/null", "-o", "-o /dev/null: is a character device");
    assert_int_equal(mkfifo(at("fifo"), 0644), 0);
    refused(at("fifo"), "-o", "is a FIFO");
    FILE *f = fopen(at("file"), "w");
    fclose(f);
    refused(at("file/x"), "-o", "is not a folder");
    assert_int_equal(symlink("file", at("link")), 0);
    refused(at("link"), "-o", "is a symbolic link (to file)");
    /* no flag: the message starts with the path */
    sb_clear(&err);
    assert_int_equal(of_check(at("link"), NULL, &err), -1);
    assert_int_equal(strncmp(err.s, dir, strlen(dir)), 0);
    /* a relative path without a folder is checked in "." */
    sb_clear(&err);
    assert_int_equal(of_check("tracc-outfile-test-relative.svg", "-o", &err), 0);
    sb_free(&err);
}

static void test_write_is_atomic_and_keeps_mode(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    const char *p = at("m.bin");
    assert_int_equal(of_write(p, "one", 3, &err), 0);
    assert_int_equal(chmod(p, 0640), 0);
    assert_int_equal(of_write(p, "second", 6, &err), 0);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(st.st_size, 6);
    assert_int_equal(entries(), 1);   /* nothing beside it */
    sb_free(&err);
}

static void test_write_refuses_non_regular(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    assert_int_equal(of_write("/dev/null", "x", 1, &err), -1);
    assert_non_null(strstr(err.s, "/dev/null: is a character device"));
    FILE *f = fopen(at("target"), "w");
    fputs("keep", f);
    fclose(f);
    assert_int_equal(symlink("target", at("ln")), 0);
    sb_clear(&err);
    assert_int_equal(of_write(at("ln"), "new", 3, &err), -1);
    struct stat st;
    assert_int_equal(lstat(at("ln"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(stat(at("target"), &st), 0);
    assert_int_equal(st.st_size, 4);
    /* a missing folder at write time names the output, not a temp file */
    sb_clear(&err);
    assert_int_equal(of_write(at("gone/m.bin"), "x", 1, &err), -1);
    assert_null(strstr(err.s, OF_TMP_MARK));
    assert_non_null(strstr(err.s, at("gone/m.bin")));
    sb_free(&err);
}

static void test_stale_temps(void **state)
{
    (void)state;
    const char *p = at("out.safetensors");
    char dead[600], live[600], other[600], notpid[600];
    snprintf(dead, sizeof dead, "%s%s%ld", p, OF_TMP_MARK, (long)dead_pid());
    snprintf(live, sizeof live, "%s%s%ld", p, OF_TMP_MARK, (long)getppid());
    snprintf(other, sizeof other, "%s%s%ld", at("other.safetensors"), OF_TMP_MARK, (long)dead_pid());
    snprintf(notpid, sizeof notpid, "%s%s12x", p, OF_TMP_MARK);
    const char *all[] = {dead, live, other, notpid};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(all[i], "w");
        assert_non_null(f);
        fclose(f);
    }
    assert_int_equal(of_clean_stale(p), 1);
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(access(notpid, F_OK), 0);
    /* a write cleans as well */
    FILE *f = fopen(dead, "w");
    fclose(f);
    StrBuf err;
    sb_init(&err);
    assert_int_equal(of_write(p, "x", 1, &err), 0);
    assert_int_equal(access(dead, F_OK), -1);
    sb_free(&err);
}

static void test_long_name(void **state)
{
    (void)state;
    char name[256];
    memset(name, 'n', 250);
    strcpy(name + 250, ".svg");   /* 254 characters: the temp name must be shortened */
    StrBuf err;
    sb_init(&err);
    assert_int_equal(of_check(at(name), "-o", &err), 0);
    if (of_write(at(name), "x", 1, &err)) fail_msg("%s", err.s);
    assert_int_equal(access(at(name), F_OK), 0);
    assert_int_equal(entries(), 1);
    sb_free(&err);
}

static void test_same_file(void **state)
{
    (void)state;
    FILE *f = fopen(at("a"), "w");
    fclose(f);
    assert_int_equal(symlink("a", at("b")), 0);
    char other[600];
    snprintf(other, sizeof other, "%s/./a", dir);
    assert_true(of_same_file(at("a"), other));
    assert_true(of_same_file(at("b"), at("a")));
    assert_false(of_same_file(at("a"), at("new")));
    assert_true(of_same_file(at("new"), at("new")));
}

static void test_stream(void **state)
{
    (void)state;
    StrBuf err;
    sb_init(&err);
    OfStream *s = of_stream_open(at("l.jsonl"), 0, "--log", &err);
    assert_non_null(s);
    assert_int_equal(of_stream_line(s, "{\"a\": 1}"), 0);
    assert_false(of_stream_failed(s));
    assert_int_equal(of_stream_close(s, &err), 0);
    s = of_stream_open(at("l.jsonl"), 1, "--log", &err);
    assert_int_equal(of_stream_line(s, "{\"b\": 2}"), 0);
    assert_int_equal(of_stream_close(s, &err), 0);
    size_t len;
    char *text = read_file(at("l.jsonl"), &len);
    assert_string_equal(text, "{\"a\": 1}\n{\"b\": 2}\n");
    free(text);
    /* refused like any output */
    assert_int_equal(symlink("l.jsonl", at("l2")), 0);
    assert_null(of_stream_open(at("l2"), 1, "--log", &err));
    assert_non_null(strstr(err.s, "--log"));
    assert_non_null(strstr(err.s, "symbolic link"));
    assert_int_equal(of_stream_close(NULL, &err), 0);
    sb_free(&err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_check_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_is_atomic_and_keeps_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refuses_non_regular, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_temps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
