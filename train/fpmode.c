/* fpmode.c — see fpmode.h. */
#include "train/fpmode.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FPM_FTZ 0x8000u   /* MXCSR bit 15: flush to zero */
#define FPM_DAZ 0x0040u   /* MXCSR bit 6: denormals are zero */
#define FPM_HAVE 1
#else
#define FPM_HAVE 0
#endif

int fpm_flush_available(void)
{
    return FPM_HAVE;
}

int fpm_flush_begin(FpmSaved *saved)
{
    saved->set = 0;
    saved->csr = 0;
#if FPM_HAVE
    saved->csr = _mm_getcsr();
    _mm_setcsr(saved->csr | FPM_FTZ | FPM_DAZ);
    saved->set = 1;
    return 0;
#else
    return -1;
#endif
}

void fpm_flush_end(const FpmSaved *saved)
{
#if FPM_HAVE
    if (saved->set) _mm_setcsr(saved->csr);
#else
    (void)saved;
#endif
}
