/* prune.h — the paper's pruning analysis (Jain et al. 2023, App. D, Alg. 3) and its rollback
 * variant, each change named in program coordinates.
 *
 * One gradient g of the task's cross-entropy (a batch of the task program's samples, the
 * trainer's backward pass) scores every weight w by g * w, the first-order drop of the loss
 * when w is set to 0; the top-K weights are zeroed. With `neurons`, whole hidden units are
 * scored by the sum over their weights (MLP units: W_in column, b_in, W_out row; head
 * dimensions: a QK dimension's W_Q/W_K columns and biases, an OV dimension's W_V column,
 * b_V and W_O row) and zeroed together.
 *
 * Rollback (given the ORIGINAL the model was fine-tuned from): every weight that fine-tuning
 * moved, d = w - w_original, is ranked by |d| (the largest changes first), or with
 * rank_delta = 0 by g * d, the first-order drop of the loss when w is reset to its compiled
 * value (a poor guide when the task loss is saturated, as it is on a wrapper: the model is
 * confidently wrong); the top-K are reset. The search
 * finds the smallest K at which the task accuracy reaches a target: K = 1..64 one by one,
 * then doubling, then bisection inside the last doubling step (accuracy need not be
 * monotone in K, so past 64 this is the smallest K found, not provably the smallest).
 *
 * Resets (`resets`, each "NAME[prefix]+NAME..." as coord_parse_slice reads them): each one on
 * its own sets its slices to 0 (ORIGINAL's values under rollback) and measures every set:
 * ablation of a named component, e.g. a head's value weights, with no ranking involved.
 *
 * Accuracies are exact match at every counted position of a sequence, over a fixed set of
 * sequences drawn as `tracc finetune --eval` draws them (same --eval-seed, same sets). */
#ifndef TRACC_PRUNE_H
#define TRACC_PRUNE_H

#include <stdint.h>

#include "runtime/model.h"

struct json_t;

#define PRUNE_MAX_EVAL 32

typedef struct {
    const char *name, *program, *spurious;   /* spurious may be NULL */
    double rate;
} PruneEval;

typedef struct {
    const char *task;           /* the program whose loss gives the gradient (required) */
    int nat;
    const int *at;              /* RASP indices where the loss counts (NULL: every position) */
    int len_min, len_max;       /* 0: the model's max_len */
    long grad_n;                /* samples in the gradient batch (default 512) */
    uint64_t seed;              /* gradient batch seed (default 1) */
    long eval_n;                /* sequences per evaluation set (default 1000) */
    uint64_t eval_seed;         /* default 12345 (tracc finetune's) */
    double logit_scale;         /* 0: the fine-tuning run's (provenance), else 10 */
    int neurons;
    int nks;
    const long *ks;             /* increasing K values to report */
    const Model *original;      /* rollback: the model to reset towards, or NULL */
    int rank_delta;             /* rollback: rank by |d| (default 1) instead of g * d */
    double target;              /* rollback: task accuracy to reach (default 0.9) */
    int neval;
    PruneEval evals[PRUNE_MAX_EVAL];
    int no_repeat;              /* inputs without repeated tokens (as tracc finetune --no-repeat) */
    long each;                  /* also apply each of the top `each` items on its own (0: no) */
    int nresets;
    const char *const *resets;  /* slices to reset, one row each (above) */
} PruneOptions;

#define PRUNE_OPTIONS_DEFAULT                                                                                          \
    ((PruneOptions){NULL, 0, NULL, 0, 0, 512, 1, 1000, 12345, 0, 0, 0, NULL, NULL, 1, 0.9, 0, {{0}}, 0, 0, 0, NULL})

typedef struct {
    size_t index;               /* weights: parameter index; units: unit number */
    double score;
    double from, to;            /* weights: the value before and after (units: 0, 0) */
    char *id;                   /* "blocks.0.attn.W_K[0, 1, 2]" or "block 0 neuron 18" */
    char *meaning;              /* program coordinates */
} PruneItem;

typedef struct {
    long k;
    double *acc;                /* (1 + neval): the task, then each --eval set */
} PruneRow;

typedef struct {
    double loss;                /* the task loss of the gradient batch */
    double logit_scale;
    long candidates;            /* weights (or units) that could be pruned / rolled back */
    int nitems;
    PruneItem *items;           /* the ranking, up to the largest K needed */
    int neval;
    char **eval_names;          /* (1 + neval): "task", then the --eval names */
    PruneRow base;              /* K = 0 */
    PruneRow original;          /* rollback: the ORIGINAL model's accuracies */
    int nrows;
    PruneRow *rows;             /* one per reported K */
    long found_k;               /* rollback: smallest K reaching the target (-1: none) */
    double found_acc;
    int nsearch;
    PruneRow *search;           /* rollback: every K the search evaluated, in order */
    int neach;
    PruneRow *each;             /* --each: item k (1-based, as `k`) applied alone */
    int nresets;
    PruneRow *resets;           /* one per o->resets entry (k = -1) */
    long *reset_params;         /* parameters each reset covers */
    long *reset_changed;        /* of those, how many it changed */
} PruneResult;

/* Run the analysis on model m. Returns 0, or -1 with a message. */
int prune_run(const Model *m, const PruneOptions *o, PruneResult *r, StrBuf *err);
void prune_result_free(PruneResult *r);

/* Apply the top-K changes of a result to m (a copy of the model the result was computed on;
 * for rollback, o->original gives the values). */
void prune_apply(Model *m, const PruneOptions *o, const PruneResult *r, long k);

/* The provenance object of a model written at K (a new reference). */
struct json_t *prune_provenance(const PruneOptions *o, const PruneResult *r, long k, const char *parent_sha,
                                const Model *parent, const char *original_sha, const char *version);

/* The result as JSON; "ranking" lists the top `list` items (more if --each or a reported
 * K needs them), "ranked" how many the result used. */
struct json_t *prune_json(const PruneOptions *o, const PruneResult *r, long list);

#endif
