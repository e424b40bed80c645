/* fpmode.h — how the CPU treats subnormal floats during a fine-tuning run.
 *
 * By default tracc computes with IEEE subnormals, like every other tracc arithmetic. Some
 * CPUs (Intel Xeons among them) take a microcode path for each subnormal operand or result;
 * a collapsed model at a high learning rate then spends most of a step there
 * (docs/benchmarks.md). `tracc finetune --flush-subnormals` sets the SSE control bits FTZ
 * (results too small for a normal float become 0) and DAZ (subnormal operands read as 0) for
 * the run: faster on such CPUs, and another rounding — the trained model's bytes differ from
 * a run without it wherever a subnormal would have been formed, as with another kernel family.
 *
 * The bits belong to the thread that sets them; threads it creates afterwards inherit them
 * (POSIX: a new thread starts with its creator's floating-point environment), which is how
 * the trainer's per-step shard threads get them. OpenBLAS's own threads would not, so the
 * trainer keeps OpenBLAS on the calling thread for the whole run (backward.h's pool). */
#ifndef TRACC_FPMODE_H
#define TRACC_FPMODE_H

/* 1 where tracc can set the flush bits (x86 with SSE: x86-64 always), else 0. */
int fpm_flush_available(void);

typedef struct {
    unsigned csr;   /* the control word before fpm_flush_begin */
    int set;        /* fpm_flush_begin changed it */
} FpmSaved;

/* Flush subnormals on this thread (and the threads it creates from now on). -1 where
 * unavailable, with nothing changed. */
int fpm_flush_begin(FpmSaved *saved);

/* Put back what fpm_flush_begin found. */
void fpm_flush_end(const FpmSaved *saved);

#endif
