/* safetensors.h — the container of the model file, with no knowledge of transformers:
 *   u64 little-endian N | N bytes of JSON header | raw tensor bytes
 * The header maps tensor names to {"dtype", "shape", "data_offsets"} and holds a
 * "__metadata__" object of string -> string.
 *
 * st_parse checks everything a container can get wrong (lengths, JSON, dtype, shapes,
 * offsets in range, contiguous, no overlap, no trailing bytes) and reports the first
 * problem as "<file>: <tensor or key>: expected X, found Y". st_write is deterministic:
 * sorted header keys, no whitespace, spaces up to a multiple of 8, tensors in the order
 * given. Only F32 tensors exist in tracc files. */
#ifndef TRACC_SAFETENSORS_H
#define TRACC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

struct json_t;

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u * 1000u * 1000u)   /* the reference implementation's limit */

typedef struct {
    const char *name;           /* owned by StFile.header */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;        /* byte offsets into the data buffer */
} StTensor;

typedef struct {
    struct json_t *header;      /* the parsed header (owned) */
    struct json_t *metadata;    /* "__metadata__" (borrowed from header), or NULL if absent */
    int ntensors;
    StTensor *tensors;          /* sorted by begin */
    const uint8_t *data;        /* the tensor bytes, inside the caller's buffer */
    uint64_t data_len;
} StFile;

/* Parse and check a container held in memory (which must outlive f). Returns 0, or -1
 * with one message in err; f needs st_free either way. */
int st_parse(StFile *f, const void *bytes, size_t len, const char *name, StrBuf *err);
void st_free(StFile *f);
const StTensor *st_find(const StFile *f, const char *name);
/* Copy a tensor's F32 little-endian bytes into floats (dst has t->numel room). */
void st_read_f32(float *dst, const StFile *f, const StTensor *t);

typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;          /* numel floats (the product of shape) */
} StOut;

/* Build a container: metadata is an object of string -> string (or NULL for none).
 * Returns 0 with a heap buffer in *out, or -1 with err. */
int st_write(uint8_t **out, size_t *len, const StOut *tensors, int n,
             struct json_t *metadata, StrBuf *err);

/* A short rendering of a JSON value for "found ..." in messages (at most ~60 bytes). */
void st_describe_json(const struct json_t *v, StrBuf *out);

#endif
