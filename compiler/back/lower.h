/* lower.h — from a checked RaspProgram to a graph of transformer operations, scheduled into
 * blocks (attention sub-layer, then MLP sub-layer).
 *
 * Every s-op the output needs becomes a *node* with a representation in the residual stream:
 *   EMBED    tokens, indices: dimensions written by the embedding;
 *   MAT      dimensions written by an op (a head, an MLP, or a selector width's head + MLP);
 *   VIRTUAL  no dimensions of its own: its one-hot (or its number) is a *linear* function of
 *            dimensions that exist — a categorical map of one categorical s-op, any function
 *            of one categorical s-op, a numerical linear map, a constant — so every reader
 *            (a head's W_Q/W_K/W_V, an MLP's W_in, the unembed) reads it through that linear
 *            form and no MLP is spent on it (docs/compiler.md, "fusion");
 *   FUSED    no dimensions and no linear form: folded into its only consumer's MLP (spec
 *            Decision 7: a map whose only use is another map).
 * With fusion off (--no-fuse) every named s-op is MAT, so it can be read back from the residual.
 *
 * Nodes 0..nsops-1 are the program's s-ops (same ids); internal nodes (tuples of selector
 * keys or queries, for `or` and other non-additive selector formulas) follow.
 *
 * Ops are created in dependency order and scheduled as soon as possible on the alternating
 * sub-layer slots attn0, mlp0, attn1, mlp1, ... (slot 2b is block b's attention, 2b+1 its
 * MLP); for a DAG this gives the fewest blocks. */
#ifndef TRACC_LOWER_H
#define TRACC_LOWER_H

#include <stdint.h>

#include "compiler/front/rasp.h"
#include "common/util.h"

typedef enum {
    LREP_UNUSED,    /* not needed by the output */
    LREP_EMBED,
    LREP_MAT,
    LREP_VIRTUAL,
    LREP_FUSED,
} LowerRep;

typedef enum {
    LVIRT_NONE,
    LVIRT_CONST,    /* value index 0 at every real position; the feature is one - tokens:BOS */
    LVIRT_CATFN,    /* own value index = ftab[value index of base]; base is categorical-featured */
    LVIRT_LIN,      /* numerical: lin_coef[0]*lin_node[0] + lin_coef[1]*lin_node[1] */
} LowerVirt;

typedef struct {
    const char *label;      /* residual label stem */
    Encoding enc;
    int nvals;
    const Value *vals;      /* value set; internal nodes: NULL (values are class numbers) */
    int sop;                /* program s-op id, or -1 for an internal node */
    int named;
    int may_none;
    LowerRep rep;
    int op;                 /* MAT: the op writing it; FUSED: the op it was folded into; else -1 */
    /* How the value is a function of another node. Set for VIRTUAL nodes, and also for MAT
     * nodes materialised by LOP_MLP_CAT/LOP_MLP_NUM from what would have been a virtual form. */
    LowerVirt virt;
    int base;               /* CATFN: the node whose value determines this one */
    int32_t *ftab;          /* CATFN: [nvals(base)] -> own value index or RASP_NONE */
    int nlin;
    int lin_node[2];
    double lin_coef[2];
    int ready;              /* slot after which the value can be read; -1 = from the embedding */
    int uses;               /* number of reads by other used nodes and selectors (+1 if output) */
} LowerNode;

typedef enum {
    LOP_AGG,        /* aggregate: one head */
    LOP_SELWIDTH,   /* selector_width: one head writing a scratch dimension + one MLP */
    LOP_MLP_DISC,   /* discretising MLP: numerical input -> table -> out (either encoding) */
    LOP_MLP_CAT,    /* n-ary categorical MLP: inputs' one-hots -> table -> out */
    LOP_MLP_NUM,    /* materialise a numerical node's linear form (MAT numerical virt) */
} LowerOpKind;

/* One literal of an additive selector: score += c * table[k * nvals(qnode) + q]. */
typedef struct {
    int knode, qnode;
    uint8_t *table;
} LowerLit;

typedef struct {
    LowerOpKind kind;
    int out;                /* node it writes */
    /* heads (AGG, SELWIDTH) */
    int sel;                /* program selector id */
    int nlits;
    LowerLit *lits;         /* the selector as an AND of literals (docs/compiler.md) */
    int value;              /* AGG: the node averaged */
    /* MLPs (DISC: in[0] numerical; CAT: n categorical-featured inputs; NUM: none, reads
     * out's own linear form) */
    int nin;
    int *in;
    int32_t *table;         /* DISC: [nvals(in0)]; CAT: mixed radix, in[0] most significant */
    int nfused;
    int *fused;             /* program s-ops folded into this op (FUSED nodes) */
    /* schedule */
    int attn_slot;          /* even slot, or -1 */
    int mlp_slot;           /* odd slot, or -1 */
} LowerOp;

typedef struct {
    int fuse;               /* 1: virtual and fused s-ops (default); 0: every named s-op is MAT */
} LowerOptions;

#define LOWER_OPTIONS_DEFAULT ((LowerOptions){1})

typedef struct {
    const RaspProgram *p;
    LowerOptions opt;
    int nnodes;
    LowerNode *nodes;
    int nops;
    LowerOp *ops;
    int nblocks;
    int output;             /* node id of the output (= program output s-op id) */
    Arena arena;
} LowerProgram;

/* A categorical MLP's plan: each input's values grouped into classes that the table cannot
 * tell apart, the table over class representatives, and the input used as the "column" (the
 * construction spends one hidden unit per combination of the other inputs' classes and
 * distinct output written; docs/compiler.md). Shared by lower (to cost fusion) and craft. */
typedef struct {
    int nin;
    int *nclass;            /* [nin] */
    int **cls;              /* [nin][nvals of input] -> class */
    int32_t *ctab;          /* mixed radix over classes, input 0 most significant */
    int col;                /* -1 when nin == 0 */
    int units;
} LowerCatPlan;

/* sizes[nin]: value counts; table: mixed radix (input 0 most significant) -> output value
 * index or RASP_NONE; skip[nout] (may be NULL): outputs that need no unit (a numerical 0).
 * Returns 0, or -1 with a message in err (if not NULL) when the table is too large. */
int lower_plan(const int *sizes, int nin, const int32_t *table, const uint8_t *skip, int nout,
               LowerCatPlan *pl, StrBuf *err);
void lower_plan_free(LowerCatPlan *pl);

/* NULL with a message in err when the program cannot be compiled (a construct no
 * construction covers; the message names the s-op). */
LowerProgram *lower_program(const RaspProgram *p, const LowerOptions *opt, StrBuf *err);
void lower_free(LowerProgram *lp);

/* The numerical value of value index j of a node (numbers, booleans as 0/1); 0 otherwise. */
double lower_num(const LowerNode *n, int j);
/* 1 if the node's one-hot is a linear function of residual dimensions (EMBED, MAT categorical,
 * or a VIRTUAL CONST/CATFN); the base and table it reads through are returned (base -2 for a
 * constant, whose table has one entry). */
int lower_catview(const LowerProgram *lp, int node, int *base, const int32_t **tab);
/* Block of an op's slot; the text name of an op kind. */
const char *lower_op_name(LowerOpKind k);

#endif
