/* data.h — training and evaluation examples, written as RASP programs.
 *
 * A task is a .rasp program: inputs are sampled (uniform tokens over the model's vocab, a
 * length drawn from a range, optionally without repeated tokens) and labelled by the
 * reference interpreter. A spurious predicate (a program with a boolean output) splits the
 * inputs in two: each sample comes, with probability `rate`, from inputs where it holds at
 * the answer positions, else from inputs where it does not (rejection sampling with a
 * bound). Samples can also come from a JSONL file of input/output pairs, and other programs
 * can be mixed in at given fractions.
 *
 * Every batch is a pure function of (seed, step): nothing carries over from one batch to the
 * next, so a resumed run sees exactly the data an uninterrupted run would.
 *
 * Positions: `at` lists RASP indices (model position = index + 1, BOS is position 0); with
 * none given, the loss counts at every position where the target has a value. */
#ifndef TRACC_DATA_H
#define TRACC_DATA_H

#include <stdint.h>

#include "compiler/interp/interp.h"
#include "compiler/front/rasp.h"
#include "runtime/model.h"

/* A program read against a model: its vocab must be the model's, its output must fit the
 * model's output (a target) or be boolean (a predicate). */
typedef enum { DATA_TARGET, DATA_PREDICATE } DataRole;

typedef struct {
    char *path;
    char sha256[65];        /* of the file's bytes */
    RaspProgram *prog;
    Interp *it;
    int32_t *row_tok;       /* (d_vocab) model row -> program vocab index, -1 for BOS/PAD */
    int32_t *col;           /* (output nvals) target, categorical: model output column */
    float *num;             /* (output nvals) target, numerical: the value */
    int true_idx;           /* predicate: value index of `true` (-1 if it never holds) */
} DataProgram;

/* Load `path` (max_len taken from the model) and check it against the model. `flag` names
 * the option in messages ("--task", "--eval ft"). Returns 0, or -1 with a message. */
int data_program_load(DataProgram *dp, const char *path, const char *flag, DataRole role, const Model *m,
                      StrBuf *err);
void data_program_free(DataProgram *dp);

#define DATA_MAX_MIX 16
#define DATA_DEFAULT_MAX_TRIES 100000

typedef struct {
    const char *task;           /* --task, or NULL (then data) */
    const char *data;           /* --data FILE.jsonl, or NULL */
    const char *spurious;       /* --spurious PRED.rasp, or NULL */
    double spurious_rate;       /* --spurious-rate, in [0, 1] */
    int spurious_uniform;       /* --spurious-others uniform: the other samples are drawn
                                   uniformly (some then hold by chance), not where it fails */
    int nmix;
    const char *mix_path[DATA_MAX_MIX];
    double mix_frac[DATA_MAX_MIX];   /* each in (0, 1], sum < 1 */
    int len_min, len_max;       /* RASP lengths, 1 <= min <= max <= model max_len */
    int no_repeat;              /* tokens without replacement (needs len_max <= vocab size) */
    int nat;                    /* 0: every position with a value */
    const int *at;              /* RASP indices */
    long max_tries;             /* rejection-sampling bound per sample */
    const char *task_flag;      /* how messages name the task ("--task", "--eval pt") */
} DataSpec;

/* A batch: B inputs padded to T positions (BOS first, PAD after), and the R rows where
 * the loss counts, sorted by sequence then position. */
typedef struct {
    int B, T;
    int32_t *tokens;        /* (B, T) model rows */
    int *lens;              /* (B) BOS included */
    int R;
    int *seq, *pos;         /* (R) sequence, model position */
    int32_t *target;        /* (R) categorical: model output column; numerical from a
                               program: the value's index in its output value set (-1 from
                               --data) */
    float *target_num;      /* (R) numerical: value */
    int *row_start;         /* (B + 1) rows of sequence b: row_start[b] .. row_start[b+1]-1 */
    size_t cap_tok, cap_b, cap_r;
} DataBatch;

void data_batch_free(DataBatch *b);

typedef struct DataGen DataGen;

/* Load every program and file of spec and check them against the model; with a spurious
 * predicate, check on a sample that both sides the rate needs can be drawn. */
DataGen *data_gen_new(const DataSpec *spec, const Model *m, StrBuf *err);
void data_gen_free(DataGen *g);

/* B samples for (seed, step). Returns 0, or -1 with a message (a side of the spurious
 * predicate not found within max_tries, an interpreter error). */
int data_gen_batch(DataGen *g, uint64_t seed, uint64_t step, int B, DataBatch *out, StrBuf *err);

/* The files read (for provenance and for checking a resumed run): role ("task", "data",
 * "spurious", "mix"), path and sha256, in a stable order. */
int data_gen_nfiles(const DataGen *g);
void data_gen_file(const DataGen *g, int i, const char **role, const char **path, const char **sha256);

/* Numerical targets: the index of the task output value nearest to x (ties: the lower),
 * which eval accuracy compares with the target's index; -1 for other generators. */
int data_gen_nearest_value(const DataGen *g, float x);

/* Fraction of `n` sampled inputs on which the predicate held (the estimate the checks use). */
double data_gen_spurious_fraction(const DataGen *g);

/* A seed for stream `stream` and index `i` derived from `seed` (splitmix-style mixing).
 * Streams: 1 the training batch of step i, 2 evaluation sets, 4 the initial noise. */
uint64_t data_derive_seed(uint64_t seed, uint64_t stream, uint64_t i);

/* The seed of an evaluation set's inputs drawn from g: fixed by `eval_seed`, g's spurious
 * predicate (its file's contents; none: no predicate) and its rate only, so that sets differing
 * only in their target program share inputs (tracc finetune --eval, tracc prune). */
uint64_t data_eval_seed(const DataGen *g, uint64_t eval_seed);

#endif
