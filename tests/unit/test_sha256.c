/* test_sha256.c — SHA-256 against the FIPS 180-4 / NIST example vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/sha256.h"

static void check_hex(const char *msg, const char *want)
{
    char hex[65];
    sha256_hex(msg, strlen(msg), hex);
    assert_string_equal(hex, want);
}

static void test_sha256_empty_message(void **state)
{
    (void)state;
    check_hex("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_abc(void **state)
{
    (void)state;
    check_hex("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_two_block_message(void **state)
{
    (void)state;
    check_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_896_bit_message(void **state)
{
    (void)state;
    check_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
              "klmnopqrlmnopqrsmnopqrstnopqrstu",
              "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

static void test_sha256_million_a_in_odd_chunks(void **state)
{
    (void)state;
    /* Feed the million 'a's in chunks of varying size to exercise the partial-block path. */
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    Sha256 c;
    sha256_init(&c);
    size_t left = 1000000, step = 1;
    while (left > 0) {
        size_t n = step < left ? step : left;
        sha256_update(&c, chunk, n);
        left -= n;
        step = step % 983 + 7;   /* 7..989, within the chunk */
    }
    uint8_t d[32];
    sha256_final(&c, d);
    static const uint8_t want[32] = {
        0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
        0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    assert_memory_equal(d, want, 32);
}

static void test_sha256_lengths_around_the_padding_boundary(void **state)
{
    (void)state;
    /* 55, 56 and 64 bytes fall on either side of the length field; incremental and
     * one-shot hashing must agree byte for byte. */
    char msg[130];
    for (int i = 0; i < 130; i++) msg[i] = (char)('A' + i % 26);
    for (size_t n = 50; n <= 130; n++) {
        uint8_t one[32], inc[32];
        sha256(msg, n, one);
        Sha256 c;
        sha256_init(&c);
        for (size_t i = 0; i < n; i++) sha256_update(&c, msg + i, 1);
        sha256_final(&c, inc);
        assert_memory_equal(one, inc, 32);
    }
    char hex[65];
    memset(msg, 'a', 64);
    sha256_hex(msg, 64, hex);
    assert_string_equal(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_empty_message),
        cmocka_unit_test(test_sha256_abc),
        cmocka_unit_test(test_sha256_two_block_message),
        cmocka_unit_test(test_sha256_896_bit_message),
        cmocka_unit_test(test_sha256_million_a_in_odd_chunks),
        cmocka_unit_test(test_sha256_lengths_around_the_padding_boundary),
    };
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
