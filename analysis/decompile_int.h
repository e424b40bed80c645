/* decompile_int.h — internal to analysis/decompile*.c: the state of one decompilation. */
#ifndef TRACC_DECOMPILE_INT_H
#define TRACC_DECOMPILE_INT_H

#include <stdint.h>

#include "analysis/decompile.h"
#include "analysis/readout.h"
#include "compiler/interp/interp.h"
#include "compiler/front/rasp.h"
#include "runtime/forward.h"

#define DC_UNREAD (-3)      /* a position where an s-op could not be read */
#define DC_UNSET (-4)       /* a table entry neither observed nor in the original */
#define DC_NUM_TOL 1e-4     /* numerical values within this (relative) are one value */
#define DC_MAX_EXTRA 4096   /* new values one s-op may take beyond its original set */
#define DC_GAP 3.0f         /* a head's selected keys weigh at least this many times more
                               than the unselected ones (see observe) */
#define DC_FLOOR 1e-3f      /* attention weights below this fraction of the row's largest
                               are "not attended" */
#define DC_PREFER_STRUCTURE 0.05   /* a select over a fused map is read as "the map changed,
                                      the predicate as written" unless a free predicate
                                      explains this fraction of observations more */
#define DC_MAX_EXCEPTIONS 12  /* a select printed as a comparison with listed exceptions */
#define DC_READ_FRAC 0.05   /* a residual label is "read" by an op when its weight row has
                               at least this fraction of the largest row's norm */

enum { DC_SET_TRAIN = 0, DC_SET_UNIFORM = 1 };

/* The values one s-op takes in the model: its original values first (same indices as the
 * program's value set), then values the model decodes that the program does not have. */
typedef struct {
    int n, cap, n0;
    char **txt;
    Value *val;
    int32_t *slots;
    size_t nslots;
    ValKind kind;       /* how a new label's text is read: like the original values */
} DcDict;

int dc_dict_find(const DcDict *d, const char *text);
int dc_dict_add(DcDict *d, const char *text, Arena *a);

/* What was recovered for one s-op. */
typedef struct {
    int changed;        /* the recovered behaviour differs from the original on some
                           observed input */
    const char *form;   /* "unchanged", "comparison", "x + k", "constant", "lookup", ... */
    char *expr;         /* the new expression text (changed and rewritable), else NULL */
    long nobs, nexpl;   /* observations, and how many the recovered table explains */
    int32_t *table;     /* MAP: (nA) SEQMAP: (nA * nB) AGGREGATE: value map (nA)
                           SELWIDTH: (max_len + 1); entries are dictionary indices of the
                           s-op, RASP_NONE, or DC_UNSET */
    uint8_t *seen;      /* (ntable) 1 where the entry was observed: only those constrain the
                           printed form of a changed op (the others are don't care) */
    int ntable, nb;     /* entries; SEQMAP: nB */
    int deflt;          /* AGGREGATE: dictionary index of the default, or RASP_NONE */
    /* MAP, SEQMAP with residual operands: the MLP driven with each operand value's labels
     * agrees with the sampled table on driven_agree of driven_n observed entries, and
     * differs from it on driven_differs entries the samples never reached */
    long driven_n, driven_agree, driven_differs;
    int nreads, nnew;
    char **reads, **newreads;
    const char *note;
} DcRec;

void dc_rec_free(DcRec *r);

typedef struct {
    uint8_t *pred;      /* (nK * nQ) over the dictionaries of keys and queries */
    uint8_t *seen;      /* (nK * nQ) 1 where the pair was observed */
    int nk, nq;
    int observed, changed;
    long nobs, nexpl;
    char *expr;
    const char *form;
    /* the head's QK circuit driven with each (key, query) value's labels agrees with the
     * predicate read from the attention on qk_agree of qk_n observed pairs, and differs from
     * it on qk_differs pairs never observed */
    long qk_n, qk_agree, qk_differs;
} DcSelRec;

typedef struct {
    long *sop_n, *sop_agree, *sop_dontcare;   /* positions compared, agreeing, skipped */
    long out_n, out_agree, out_dontcare;   /* at the answer positions */
    long all_n, all_agree;                  /* at every position */
} DcFid;

typedef struct {
    const Model *m;
    RaspProgram *p;
    const char *src;
    Arena arena;
    DecLayout lay;          /* ro_layout_init: the model's residual and fused s-ops */
    DcDict *dict;           /* (nsops) */
    DcDict out_dict;        /* the model's output values as decoded */

    /* samples: tokens as program vocab indices, concatenated */
    int nsamples, cap_samples;
    int *sample_set, *sample_len;
    long *sample_off;
    int32_t *tok;
    size_t cap_tok;
    long npos;
    int set_count[2];
    int nat, *at;           /* the answer positions (RASP indices): --at, or the trained
                               ones from the provenance; none: every position */
    int at_given;
    int train_len_min, train_len_max;

    /* what the model computes, per position (index sample_off[k] + i) */
    int32_t **dec;          /* (nsops) decoded dictionary index, RASP_NONE, DC_UNREAD; NULL
                               when the s-op has no residual dimensions nor a fused form */
    int32_t *out_dec;       /* output (categorical): out_dict index or RASP_NONE */
    int32_t *ans;           /* the model's answer as a value of the output s-op (its
                               dictionary index, RASP_NONE): what the unembedding, the output
                               s-op's only reader, takes from the residual; NULL when the
                               output s-op has no dimensions */
    double *out_num;        /* output (numerical) */
    int *sel_head;          /* (nsels) block * n_heads + head of the head implementing it, or -1 */
    int *head_slot;         /* (L * NH) index into mask, or -1 */
    uint8_t *head_sw;       /* (L * NH) 1 for a selector width's head */
    int nhead_used;
    uint8_t **mask;         /* per used head: [sample] len x len, [query][key] selected */
    size_t *mask_off;

    /* recovery */
    int32_t **val;          /* (nsops) the value the decompiled op has at each position:
                               decoded for residual s-ops, computed for the others */
    uint8_t **rel;          /* (nsops) positions that can influence the answer positions */
    uint8_t **selrel;       /* (nsels) query positions where the selector can */
    DcRec *rec;             /* (nsops) */
    DcSelRec *srec;         /* (nsels) */
    DcFid fid[2];
} Dc;

const char *dc_op_name(const RaspSop *s);
/* The model's decoder for the program's s-op `label` (ro_find), or NULL when the program has
 * no such s-op or the model cannot read it. */
const DecSop *dc_sop(const Dc *dc, const char *label);
/* The buffer's string; the buffer is released (decompile_diff.c). */
char *dc_take(StrBuf *b);
/* text read with the model's max_len and direction, and `vocab` ("a,b,c") or NULL */
RaspProgram *dc_parse(const Model *m, const char *name, const char *text, const char *vocab, StrBuf *err);
/* What s-op s is observed to hold at a position, for tabulating it: its decoded dimensions,
 * or for the output s-op the model's answer (dc->ans); DC_UNREAD when it cannot be read. */
int32_t dc_obs(const Dc *dc, int s, long pos);
/* Samples first .. end-1 run through a model in batches: after dc_batches_next returns 1,
 * samples k0 .. k0+nb-1 have been run (row k of fs's activations is sample k0 + k, T
 * positions per row, BOS first); 0 when all have been, -1 with a message. row_of:
 * ro_vocab_rows. The samples of a set are contiguous (training ones first), so one set is
 * one range. */
#define DC_BATCH 64
typedef struct {
    FwdState fs;
    int k0, nb, T, end;
    int32_t *rows, *toks;
    int lens[DC_BATCH];
} DcBatches;
void dc_batches_init(DcBatches *b, const Dc *dc, int first, int end);
int dc_batches_next(DcBatches *b, const Dc *dc, const Model *w, const int32_t *row_of, const FwdOptions *fo,
                    StrBuf *err);
void dc_batches_free(DcBatches *b);
/* decompile_idle.c: the unused components fine-tuning put to work (JSON array, a new
 * reference; comment lines appended to c), or NULL with a message. */
struct json_t *dc_idle(const Dc *dc, StrBuf *c, StrBuf *err);
/* decompile_recover.c: fill val, rec and srec in program order. */
void dc_recover(Dc *dc);
/* 1 if query position i selects key position j of sample k under the recovered selector. */
int dc_selects(const Dc *dc, int sel, int k, int i, int j);
/* The whole program text as decompiled so far with src[a, b) replaced by text (heap). */
typedef char *(*DcCompose)(void *ctx, size_t a, size_t b, const char *text);
/* decompile_edit.c: one edit [*ea, *eb) -> *etext (heap) of dc->src after which every op
 * marked in sop_in / sel_in (those inside a def; byte ranges sop_a..sop_b, sel_a..sel_b) has
 * its recovered table; 0 when no single edit does. */
int dc_def_edit(Dc *dc, const size_t *def_lo, const size_t *def_hi, int ndefs, const uint8_t *sop_in,
                const uint8_t *sel_in, const size_t *sop_a, const size_t *sop_b, const size_t *sel_a,
                const size_t *sel_b, DcCompose compose, void *ctx, size_t *ea, size_t *eb, char **etext);
/* decompile_edit.c: the text src[a, b) of a changed op outside a def (s-op s, or selector
 * sel when s < 0) with one literal or operator changed, when that gives the op its recovered
 * table; heap string, or NULL. */
char *dc_op_edit(Dc *dc, int s, int sel, size_t a, size_t b, DcCompose compose, void *ctx);
/* decompile_edit.c: a changed map or sequence map m whose operands are maps without residual
 * dimensions of their own (folded into m's MLP, byte ranges fa..fb): one edit of one of
 * those operands after which the interpreter gives m the model's decoded value wherever it
 * matters; the edit's text (heap) and range, or NULL. */
char *dc_fused_edit(Dc *dc, int m, const size_t *fa, const size_t *fb, int nf, DcCompose compose, void *ctx,
                    size_t *ea, size_t *eb);
/* 1 if program text gives s-op s (or selector sel when s < 0) its recovered table. */
int dc_op_agrees(Dc *dc, int s, int sel, const char *text);
/* decompile_text.c: the program with every changed op rewritten (heap string). */
char *dc_write_program(Dc *dc);

#endif
