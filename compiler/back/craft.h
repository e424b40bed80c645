/* craft.h — the weights of each lowered op, on labelled residual directions, and the margins
 * that make them exact (docs/compiler.md has the constructions and the error analysis).
 *
 * Everything here works in double on dense matrices over the residual (D dimensions); the
 * assembler copies the results into the model's float32 tensors. A *feature* is a linear
 * function of the residual: the one-hot of a categorical node's value (for a VIRTUAL node, a
 * sum of its base's dimensions), or a numerical node's number.
 *
 * Error model: every node carries a bound on how far its residual representation can be
 * from the exact one (categorical: l1 over its one-hot; numerical: absolute), from attention
 * leakage, float32 rounding and inherited input errors. Each op checks its inputs against
 * the tolerance its construction has (a discretiser's ramp sits a quarter gap away from every
 * input value; a categorical unit fires at 1 and stays off at <= -1); margin = tolerance /
 * bound, and a model whose every margin exceeds 1 is exact on its whole input space. */
#ifndef TRACC_CRAFT_H
#define TRACC_CRAFT_H

#include "compiler/back/lower.h"

/* The residual layout (built by asm_layout in assemble.c). */
typedef struct {
    int D;
    int one, tok0, bos, pad, idx0;  /* tokens:<vocab i> is tok0 + i; indices:p is idx0 + p */
    int *node_dim;          /* [nnodes] first dimension of a node with dimensions, else -1 */
    int *scratch;           /* [nops] a selector width's first scratch dimension, else -1 */
    int *nscratch;          /* [nops] how many (1, or 1 + key classes for the uniform
                               construction: craft_sw_uniform) */
    char **labels;          /* [D] */
} CraftLayout;

typedef struct {
    double sharpness;       /* > 0: every head uses this c (testing); 0: chosen per head */
    int balanced;           /* 1: spend the freedom exact constructions leave on conditioning
                               (docs/compiler.md, "Conditioning"); 0: Tracr-style gains */
} CraftPolicy;

#define CRAFT_POLICY_DEFAULT ((CraftPolicy){0})

typedef struct {
    int op;                 /* index into LowerProgram.ops */
    /* attention: AGG and SELWIDTH */
    int has_head;
    int dqk, dv;            /* real sizes of the QK and OV parts */
    double *wq, *wk;        /* [D][dqk] */
    double *wv;             /* [D][dv] */
    double *wo;             /* [dv][D] */
    double *bos_write;      /* [D] what the head writes at the BOS position (cleaned by assembly) */
    double c;               /* sharpness: a selected key scores c above an unselected one */
    double score_noise;     /* bound on how far a score can move through noisy inputs */
    double leak;            /* bound on the attention weight outside the selected keys */
    int keep_gains;         /* 1: --conditioning balanced leaves this head's Q/K, V/O split */
    /* MLP: DISC, CAT, NUM, and SELWIDTH's decoder */
    int units;
    double *win;            /* [D][units] (without the BOS gate, added by assembly) */
    double *wout;           /* [units][D] */
    double tol;             /* the construction's tolerance on its input error */
    double in_err;          /* bound on that input error */
    double out_err;         /* bound on the output's error */
    double margin;          /* tol / in_err (INFINITY when the input is exact) */
} CraftOp;

typedef struct {
    int nops;
    CraftOp *ops;
    double *err;            /* [nnodes] error bound of every node with dimensions (l1 over a
                               categorical node's one-hot: what a head summing a row sees) */
    double *err_max;        /* [nnodes] bound on the error of any one dimension (what the
                               output's argmax sees); <= err */
    double out_err;         /* bound on the output's error as the unembed reads it */
    double out_margin;      /* tolerance of the output check / out_err */
    double min_margin;      /* over every op and the output */
    int exact;              /* min_margin > 1: provably right on every input */
    int mix_sop;            /* a categorical aggregate that may average different values
                               and is read by another op (its margin is 0), or -1 */
} CraftResult;

/* Build every op's weights. Returns 0, or -1 with a message. */
int craft_all(const LowerProgram *lp, const CraftLayout *lay, const CraftPolicy *pol,
              CraftResult *res, StrBuf *err);
void craft_free(CraftResult *res);

/* The uniform selector width (docs/compiler.md §10): used for a selector_width op under
 * --conditioning balanced when its selector is one literal whose query values fall into at
 * most 4 classes. Returns its number of key classes (key values grouped by which query values
 * select them) when it applies, else 0. The layout records it (CraftLayout.nscratch) and
 * craft_all follows the layout. */
int craft_sw_uniform(const CraftPolicy *pol, const LowerProgram *lp, const LowerOp *op);

/* f += coef * (the one-hot feature of value j of node), or of its number; f has D entries.
 * A node without a categorical (numerical) view adds nothing. */
void craft_feat_cat(const LowerProgram *lp, const CraftLayout *lay, int node, int j, double coef,
                    double *f);
void craft_feat_num(const LowerProgram *lp, const CraftLayout *lay, int node, double coef, double *f);

#endif
