/* model.h — a model file (docs/model-format.md) in memory.
 *
 * As in llm.c, every parameter lives in one contiguous float block, with a fixed table of
 * named tensors (TransformerLens names) pointing into it; the same layout serves for
 * gradients and optimizer state: allocate model_num_params() floats and model_point_params()
 * into them. The metadata that explains the weights (vocab, output, residual labels, layers,
 * program, compiler, provenance) travels with the model.
 *
 * Reading is checking: model_load/model_parse reject every malformed file with one message
 * "<file>: <tensor or key>: expected X, found Y" and never read out of bounds. Writing is
 * deterministic (write -> read -> write is byte-identical) and atomic.
 *
 * Dimension letters used in shape comments: L layers, C d_model, NH heads, HD d_head,
 * M d_mlp, V d_vocab (input tokens, BOS and PAD included), VO d_vocab_out, N n_ctx. */
#ifndef TRACC_MODEL_H
#define TRACC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/util.h"
#include "runtime/value.h"

struct json_t;   /* jansson; include <jansson.h> to work with the JSON-valued fields */

#define MODEL_FORMAT "tracc-model"
#define MODEL_FORMAT_VERSION "1"
#define MODEL_MAX_DIM 0x7fffffff   /* every config size must fit an int */
#define MODEL_MAX_LAYERS 65536      /* keeps the tensor count (4 + 12 L) small */

typedef struct {
    int n_layers;       /* L  (>= 0) */
    int d_model;        /* C  (>= 1) */
    int d_head;         /* HD (>= 0) */
    int n_heads;        /* NH (>= 0) */
    int d_mlp;          /* M  (>= 0) */
    int d_vocab;        /* V  (>= 2: BOS and PAD are rows too) */
    int d_vocab_out;    /* VO (>= 1; 1 for a numerical output) */
    int n_ctx;          /* N  (>= 2: max_len + 1, position 0 is BOS) */
    int causal;         /* attention_dir: 1 "causal", 0 "bidirectional" */
    int use_attn_scale; /* divide attention logits by attn_scale */
    double attn_scale;  /* finite, > 0 */
} ModelConfig;

/* Pointers into one block laid out by model_layout (parameters, gradients, Adam moments). */
typedef struct {
    float *W_E;     /* (V, C)          embed.W_E */
    float *W_pos;   /* (N, C)          pos_embed.W_pos */
    float *W_Q;     /* (L, NH, C, HD)  blocks.{l}.attn.W_Q */
    float *b_Q;     /* (L, NH, HD)     blocks.{l}.attn.b_Q */
    float *W_K;     /* (L, NH, C, HD) */
    float *b_K;     /* (L, NH, HD) */
    float *W_V;     /* (L, NH, C, HD) */
    float *b_V;     /* (L, NH, HD) */
    float *W_O;     /* (L, NH, HD, C)  blocks.{l}.attn.W_O */
    float *b_O;     /* (L, C)          blocks.{l}.attn.b_O */
    float *W_in;    /* (L, C, M)       blocks.{l}.mlp.W_in */
    float *b_in;    /* (L, M) */
    float *W_out;   /* (L, M, C)       blocks.{l}.mlp.W_out */
    float *b_out;   /* (L, C) */
    float *W_U;     /* (C, VO)         unembed.W_U */
    float *b_U;     /* (VO)            unembed.b_U */
} ModelParams;

/* One named tensor of the file: where it sits in a block of the model's layout. */
typedef struct {
    char name[48];      /* TransformerLens name, e.g. "blocks.2.attn.W_Q" */
    int ndim;
    int64_t shape[3];
    size_t offset;      /* in floats, from the start of the block */
    size_t numel;
} ModelTensor;

/* A tensor kept alongside the model, e.g. a checkpoint's optimizer state ("optim." names). */
typedef struct {
    char *name;
    int ndim;
    int64_t shape[8];
    size_t numel;
    float *data;
} ModelExtraTensor;

typedef struct {
    ModelConfig cfg;

    /* Parameters: one block, the named table into it (in file order), typed pointers. */
    size_t num_params;
    float *params_memory;   /* (num_params) */
    ModelParams params;
    int ntensors;
    ModelTensor *tensors;

    /* Metadata needed to run the model. Strings live in `arena`. */
    Value *vocab;           /* (V) the token of each W_E row: VAL_STR or VAL_INT */
    int bos, pad;           /* rows of BOS and PAD in vocab */
    const char *output_name;
    int output_numerical;   /* 1: one W_U column holding the value */
    Value *output_values;   /* (VO) the value of each W_U column; NULL when numerical */
    const char **residual;  /* (C) the label of each residual dimension */

    /* Metadata that explains the model. */
    const char *program;    /* full source, loads expanded ("" when unknown) */
    char program_sha256[65];
    struct json_t *layers;      /* array (see docs/model-format.md), [] when no detail */
    struct json_t *compiler;    /* object, or JSON null for a model not made by the compiler */
    struct json_t *provenance;  /* object, or JSON null */
    struct json_t *config_extra;/* config fields other than the ones above, kept verbatim */
    struct json_t *output_extra;/* likewise for the output object */
    struct json_t *meta_extra;  /* unknown __metadata__ keys: object of string -> string */

    int nextra;
    ModelExtraTensor *extra;

    Arena arena;
} Model;

/* ---- layout ---- */

/* Fills table (if not NULL; room for model_num_tensors entries) and returns the number
 * of parameters (floats) of the layout. */
size_t model_layout(const ModelConfig *cfg, ModelTensor *table);
int model_num_tensors(const ModelConfig *cfg);
/* Point p into block, a buffer of model_layout(cfg, NULL) floats. */
void model_point_params(ModelParams *p, float *block, const ModelConfig *cfg);
/* The table entry of a tensor name, or NULL. */
const ModelTensor *model_find_tensor(const Model *m, const char *name);
/* Parameters that are not exactly zero. */
size_t model_count_nonzero(const Model *m);

/* ---- building by hand (tests, bench, the compiler) ---- */

/* A model with zeroed parameters and placeholder metadata: vocab/output/residual must be
 * set before saving (model_save checks everything). Returns NULL with a message when the
 * config is invalid. */
Model *model_new(const ModelConfig *cfg, StrBuf *err);
void model_free(Model *m);

/* Each copies what it is given. Tokens: VAL_STR or VAL_INT; bos/pad: rows. */
void model_set_vocab(Model *m, const Value *tokens, int bos, int pad);
/* values: VO values (VAL_BOOL/INT/FLOAT/STR), ignored when numerical. */
void model_set_output(Model *m, const char *name, int numerical, const Value *values);
void model_set_residual(Model *m, const char *const *labels);
void model_set_program(Model *m, const char *source);     /* also sets program_sha256 */
/* The model takes its own reference to each JSON value. */
void model_set_layers(Model *m, struct json_t *layers);
void model_set_compiler(Model *m, struct json_t *compiler);
void model_set_provenance(Model *m, struct json_t *provenance);
/* An extra __metadata__ key (kept on round trip); value NULL removes it. Keys of the
 * format itself cannot be set this way (returns -1). */
int model_set_meta(Model *m, const char *key, const char *value);
/* Keep an extra tensor (name must begin with "optim."); data is copied. */
int model_set_extra_tensor(Model *m, const char *name, int ndim, const int64_t *shape,
                           const float *data, StrBuf *err);
const ModelExtraTensor *model_find_extra_tensor(const Model *m, const char *name);
/* Drop every extra tensor. */
void model_clear_extra_tensors(Model *m);

/* ---- reading and writing ---- */

/* Load and check a file. NULL with one message in err on any problem. */
Model *model_load(const char *path, StrBuf *err);
/* The same, and the SHA-256 (hex) of the bytes it loaded: provenance names a file by it. */
Model *model_load_hashed(const char *path, char sha256[65], StrBuf *err);
/* The same from bytes in memory; `name` stands for the file in messages. */
Model *model_parse(const void *data, size_t len, const char *name, StrBuf *err);
/* A deep copy (serialized and parsed again), or NULL with a message. */
Model *model_copy(const Model *m, StrBuf *err);
/* The file's bytes: header + tensors, deterministic. The result is checked by parsing it
 * back, so nothing is written that model_load would reject. Returns 0, or -1 with err. */
int model_serialize(const Model *m, uint8_t **data, size_t *len, StrBuf *err);
/* model_serialize, then an atomic write (temp file in the same folder + rename). */
int model_save(const Model *m, const char *path, StrBuf *err);

/* ---- inputs ---- */

/* Text form of a vocab token or an output value (strings bare, integers in decimal). */
void model_value_text(Value v, StrBuf *out);
/* The vocab row whose text form is `text`, or -1. */
int model_token_row(const Model *m, const char *text);
/* Turn n input tokens into W_E rows with BOS first: ids gets n + 1 entries.
 * Errors (returns -1, message in err without a prefix, worded like `tracc eval`'s): empty
 * input, more than n_ctx - 1 tokens, a token not in the vocab, BOS or PAD given as a token. */
int model_encode(const Model *m, char *const *toks, int n, int32_t *ids, StrBuf *err);

#endif
