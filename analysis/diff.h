/* diff.h — what changed between two models with the same compiled structure (a compiled
 * model and its fine-tuned descendant), in the program's own terms.
 *
 * The weights are read in program coordinates (analysis/coords.h): each head as its QK form
 * W_Q W_K^T (query label × key label, plus a bias row and column from b_Q, b_K) and its OV
 * map W_V W_O (source label → destination label, plus a bias row from b_V); each MLP map
 * as what its hidden units read (W_in columns and b_in) and write (W_out rows); the
 * embeddings by token and position; the unembed by output value. These matrices are the
 * "components"; their entries are what gets ranked. Products are formed in double, so an
 * entry that the compiled model has exactly zero is exactly zero.
 *
 * With inputs (diff_inputs), both models also run on sampled inputs: every readable s-op of
 * the program (analysis/readout.h) is decoded right after the sub-layer that writes it and
 * compared with the interpreter, every head's attention pattern is compared, and the two
 * models' outputs are compared with each other and with the program. */
#ifndef TRACC_DIFF_H
#define TRACC_DIFF_H

#include <stdint.h>

#include "common/arena.h"
#include "compiler/front/rasp.h"
#include "runtime/model.h"

struct json_t;

/* 0 when a and b share their compiled structure (config, vocab, output, residual labels,
 * layers); else -1 with every difference found, one per line, in why. */
int diff_compatible(const Model *a, const Model *b, StrBuf *why);

typedef enum {
    DIFF_EMBED,         /* W_E: token row -> residual label */
    DIFF_POS,           /* W_pos: position -> residual label */
    DIFF_QK,            /* (C+1) x (C+1): query label x key label, last row/col = bias */
    DIFF_OV,            /* (C+1) x C: source label (last row = b_V) -> destination label */
    DIFF_ATTN_BIAS,     /* b_O: 1 x C */
    DIFF_MLP_IN,        /* (C+1) x n: residual label (last row = b_in) -> hidden unit */
    DIFF_MLP_OUT,       /* n x C: hidden unit -> residual label */
    DIFF_MLP_BIAS,      /* b_out: 1 x C */
    DIFF_UNEMBED,       /* (C+1) x VO: residual label (last row = b_U) -> output value */
} DiffKind;

typedef struct {
    DiffKind kind;
    int block, head;        /* -1 when not applicable */
    int first, last;        /* MLP components: hidden units first .. last-1 */
    const char *name;       /* "block 0 head 0 QK (count_a = selector_width(bin_idx))" */
    int rows, cols;
    const char **row_labels, **col_labels;
    double *before, *after; /* (rows, cols) */
    /* statistics over the entries */
    double norm_before, norm_after, norm_delta;     /* Frobenius */
    double cosine;          /* between before and after (1 when both are zero) */
    double max_abs;         /* largest |after - before| */
    int max_r, max_c;
    long changed;           /* entries with after != before */
    long new_paths;         /* entries exactly 0 before and not after */
} DiffComponent;

typedef struct {
    int comp, r, c;
    double before, after;
} DiffEntry;

typedef struct {
    const char *name;       /* s-op name ("count_a"; scratch names keep their "@") */
    double read_sq, write_sq;   /* sums of squared changes of the entries that read / write it */
} DiffSubspace;

typedef struct {
    const char *name;       /* TransformerLens tensor name */
    double norm_before, norm_delta, max_abs;
    size_t max_index;       /* parameter index of the largest change */
} DiffTensor;

typedef struct {
    const char *name;
    const char *where;      /* the stage it is read at */
    int readable;
    int isvirtual;          /* read through the compiler's linear form (compiler.virtual) */
    long n;                 /* positions compared */
    long agree_before, agree_after;
} DiffSopStat;

typedef struct {
    int block, head;
    const char *name;
    long rows;              /* query rows compared */
    double mean_abs;        /* mean |a - b| over (query, key) pairs of real positions */
    double mean_tv;         /* mean total-variation distance per query row, 0..1 */
    double max_tv;
    long argmax_moved;      /* query rows whose most-attended key (the first largest) differs */
} DiffHeadStat;

typedef struct {
    long ninputs;
    int len_min, len_max;
    uint64_t seed;
    int nat;                /* RASP indices compared (0: every position) */
    int *at;
    int nsops;
    DiffSopStat *sops;
    int nheads;
    DiffHeadStat *heads;
    long out_n, out_before, out_after, out_models;  /* output: vs program, and a vs b */
} DiffInputs;

typedef struct {
    char before_sha[65], after_sha[65];     /* of the file bytes ("" when not given) */
    int provenance_names_before;            /* 1: AFTER's provenance.parent_sha256 is BEFORE's;
                                               0: it names another file; -1: no provenance */
    const char *provenance_parent;          /* what it names, or NULL */
    long nparams, nchanged;
    double norm_before, norm_delta;         /* over all raw parameters */
    int ncomp;
    DiffComponent *comp;    /* in model order */
    int *order;             /* (ncomp) components by norm_delta, largest first */
    long nentries;          /* changed entries, all components */
    DiffEntry *top;         /* the largest changes, by |after - before| (ntop of them) */
    int ntop;
    DiffEntry *fresh;       /* the largest new pathways, by |after| (nfresh) */
    int nfresh;
    long nfresh_all;        /* all new pathways */
    int nsub;
    DiffSubspace *sub;      /* by share of the change, largest first */
    double read_total, write_total;
    int ntensors;
    DiffTensor *tensors;    /* in table order */
    int program_differs;    /* same structure, but the `program` texts differ */
    DiffInputs *inputs;     /* NULL unless diff_inputs ran */
    Arena arena;
} DiffResult;

typedef struct {
    int top;                /* entries to keep in each list (default 20) */
    const char *before_sha, *after_sha;  /* file hashes for the provenance check, or NULL */
} DiffOptions;

#define DIFF_OPTIONS_DEFAULT ((DiffOptions){20, NULL, NULL})

/* The weight diff. a and b must be compatible (diff_compatible). NULL with a message when
 * they are not, or when a QK form would not fit in memory. */
DiffResult *diff_weights(const Model *a, const Model *b, const DiffOptions *opt, StrBuf *err);
void diff_free(DiffResult *r);

/* The raw weights only (`tracc diff --tensors`): per tensor and in all, ||before||,
 * ||after - before|| and the largest |change|, for any two models with the same sizes —
 * e.g. two programs compiled to one layout, which diff_weights refuses because their labels
 * differ. Fills nparams, nchanged, norm_*, tensors and the file hashes given in opt; NULL
 * with a message naming the first size that differs. */
DiffResult *diff_tensor_norms(const Model *a, const Model *b, const DiffOptions *opt, StrBuf *err);
/* The tensors part of diff_json: [{"name", "norm_before", "norm_delta", "max_abs"}]. */
struct json_t *diff_tensors_json(const DiffResult *r);

/* "block 0 head 0 QK [query indices:1, key tokens:a]" for entry (comp, r, c). */
void diff_entry_name(const DiffResult *r, const DiffEntry *e, StrBuf *out);

typedef struct {
    long n;                 /* inputs (default 1000) */
    uint64_t seed;          /* default 1 */
    int len_min, len_max;   /* 0: the program's max_len */
    int nat;
    const int *at;          /* RASP indices to compare (NULL: every position) */
    int batch;              /* sequences per forward pass (default 256) */
} DiffInputOptions;

#define DIFF_INPUT_OPTIONS_DEFAULT ((DiffInputOptions){1000, 1, 0, 0, 0, NULL, 256})

/* Run both models on sampled inputs against program p (the models' program). Fills
 * r->inputs. Returns 0, or -1 with a message. */
int diff_inputs(DiffResult *r, const Model *a, const Model *b, const RaspProgram *p,
                const DiffInputOptions *opt, StrBuf *err);

/* The whole result as JSON (a new reference). */
struct json_t *diff_json(const DiffResult *r);

/* Heatmaps of the `ncomp` most changed components (before, after, after - before side by
 * side, labelled in program coordinates) as one SVG document into out. Components larger
 * than max_cells entries are cropped to the rows and columns that changed. */
void diff_svg(const DiffResult *r, int ncomp, const char *title, StrBuf *out);

#endif
