/* util.h — checked allocation, a growable string buffer, small helpers.
 * Allocation failure is the one fatal path in the library: it prints and aborts,
 * because no caller could do anything better with a NULL. */
#ifndef TRACC_UTIL_H
#define TRACC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Grow *p (an array of elem-sized items with capacity *cap) to hold at least need items. */
void xgrow(void **p, size_t *cap, size_t need, size_t elem);
#define XGROW(arr, cap, need) xgrow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* Growable, always NUL-terminated byte string. */
typedef struct {
    char *s;      /* NUL-terminated contents (never NULL after sb_init) */
    size_t len;
    size_t cap;
} StrBuf;

void sb_init(StrBuf *b);
void sb_free(StrBuf *b);
void sb_clear(StrBuf *b);
void sb_putc(StrBuf *b, char c);
void sb_puts(StrBuf *b, const char *s);
void sb_putn(StrBuf *b, const char *s, size_t n);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_vprintf(StrBuf *b, const char *fmt, va_list ap);
char *sb_steal(StrBuf *b);   /* returns the heap string, leaves b empty */
/* Append a formatted message and return -1: `return sb_fail(err, "...", ...);` */
int sb_fail(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Read a whole file. Returns a heap buffer (NUL-terminated; *len excludes the NUL),
 * or NULL with errno set. */
char *read_file(const char *path, size_t *len);

/* Shortest decimal that reads back as the same double, always marked as a float
 * ("2.0", "0.1", "1e-07", "inf", "nan"), as Python's repr prints floats. */
void fmt_double(double x, char *buf, size_t cap);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
