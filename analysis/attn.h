/* attn.h — attention patterns of one input through one or two models (a compiled model and
 * its fine-tuned copy), with the program's own selection for each head's selector beside
 * them: what the head should attend to according to the interpreter. */
#ifndef TRACC_ATTN_H
#define TRACC_ATTN_H

#include <stdint.h>

#include "analysis/diff.h"
#include "compiler/front/rasp.h"
#include "runtime/model.h"

struct json_t;

typedef struct {
    int n, T;               /* input tokens; positions (BOS first) */
    char **labels;          /* (T) "BOS" then the tokens */
    int L, NH;
    int nmodels;            /* 1 or 2 */
    float *pattern[2];      /* (L, NH, T, T): [l][h][query][key] */
    int nheads;             /* heads listed */
    int *head_l, *head_h;   /* (nheads) */
    char **head_names;      /* (nheads) "block 0 head 0 (count_a = selector_width(bin_idx))" */
    uint8_t **selected;     /* (nheads) T x T, 1 where the program's selector selects (model
                               positions, the BOS row and column never); NULL when unknown */
} AttnMaps;

/* Run model a (and b, when not NULL; it must be compatible with a) on one input of n tokens.
 * Heads: block `block` (or every block when < 0) and head `head` (every head when < 0);
 * when both are < 0, only heads the model's `layers` describe (all when it has none).
 * p: the program for the selection overlay, or NULL. hard: hard attention.
 * Returns 0, or -1 with a message (bad tokens, block or head out of range). */
int attn_run(AttnMaps *am, const Model *a, const Model *b, const RaspProgram *p, char *const *toks, int n,
             int block, int head, int hard, StrBuf *err);
void attn_free(AttnMaps *am);

/* The weight of key k for query q of listed head i in model w. */
float attn_weight(const AttnMaps *am, int w, int i, int q, int k);

/* An axis label of position t: "BOS", or "I:TOKEN" with the token's RASP index I. */
void attn_axis_label(const AttnMaps *am, int t, StrBuf *out);

struct json_t *attn_json(const AttnMaps *am, const char *const *model_names);
/* One SVG: per listed head a row of heatmaps (each model, and AFTER - BEFORE for two),
 * positions ("I:TOKEN") on both axes, the program's selection outlined. */
void attn_svg(const AttnMaps *am, const char *const *model_names, const char *title, StrBuf *out);

/* How each listed head's attention moved from model a to model b over sampled inputs, as
 * `tracc diff --inputs` measures it (diff_inputs: the same inputs, rows and total-variation
 * distance): per head the mean and max TV of a query row and the share of query rows whose
 * most-attended key moved. Heads are chosen as attn_run chooses them. */
typedef struct {
    long ninputs;
    int len_min, len_max;
    uint64_t seed;
    int nat;                /* query rows compared: RASP indices at[] (0: every position) */
    const int *at;
    int nheads;
    int *head_l, *head_h;   /* (nheads) */
    char **head_names;
    long *rows;             /* query rows compared */
    double *mean_tv, *max_tv, *moved;   /* moved: share of rows whose argmax key differs */
} AttnSummary;

/* p: the models' program (its vocab and max_len give the inputs). o: as for diff_inputs
 * (len_min/len_max 0 for the program's max_len, the training length; at: the query rows).
 * Returns 0, or -1 with a message. */
int attn_summary(AttnSummary *s, const Model *a, const Model *b, const RaspProgram *p, int block, int head,
                 const DiffInputOptions *o, StrBuf *err);
void attn_summary_free(AttnSummary *s);
struct json_t *attn_summary_json(const AttnSummary *s, const char *const *model_names);

#endif
