/* test_fpmode.c — --flush-subnormals' mode: while set, a subnormal operand reads as 0 (DAZ)
 * and a result too small for a normal float becomes 0 (FTZ), in this thread and in a thread
 * it creates afterwards; fpm_flush_end puts IEEE arithmetic back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <pthread.h>

#include "train/fpmode.h"

static volatile float tiny_normal = 1e-30f, small = 1e-10f, one = 1.0f;
static volatile float subnormal;   /* FLT_MIN / 4, formed while IEEE arithmetic holds */

/* 1 if both a subnormal product and a subnormal operand come out as 0 here */
static int flushes(void)
{
    volatile float product = tiny_normal * small;   /* 1e-40: subnormal, or 0 flushed */
    volatile float read = subnormal * one;          /* the operand itself, or 0 */
    return product == 0.0f && read == 0.0f;
}

static int keeps(void)
{
    volatile float product = tiny_normal * small, read = subnormal * one;
    return product > 0.0f && product < FLT_MIN && read == subnormal;
}

static void *thread_flushes(void *out)
{
    *(int *)out = flushes();
    return NULL;
}

static void test_flush_sets_and_restores(void **state)
{
    (void)state;
    if (!fpm_flush_available()) skip();
    subnormal = FLT_MIN / 4;
    assert_true(subnormal > 0.0f);
    assert_true(keeps());
    FpmSaved s;
    assert_int_equal(fpm_flush_begin(&s), 0);
    assert_true(flushes());
    int child = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_flushes, &child), 0);
    pthread_join(t, NULL);
    assert_true(child);   /* the trainer's shard threads are made this way, per step */
    fpm_flush_end(&s);
    assert_true(keeps());
}

static void test_end_without_begin_changes_nothing(void **state)
{
    (void)state;
    FpmSaved s = {0, 0};
    fpm_flush_end(&s);
    subnormal = FLT_MIN / 4;
    assert_true(keeps());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flush_sets_and_restores),
        cmocka_unit_test(test_end_without_begin_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
