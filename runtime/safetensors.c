/* safetensors.c — see safetensors.h. */
#include "runtime/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static uint64_t get_u64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void st_describe_json(const json_t *v, StrBuf *out)
{
    if (!v) {
        sb_puts(out, "nothing");
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        sb_puts(out, "an unprintable value");
        return;
    }
    size_t n = strlen(s);
    if (n > 60) {
        /* Cut at a UTF-8 character boundary so the message stays valid text. */
        size_t cut = 57;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
        sb_putn(out, s, cut);
        sb_puts(out, "...");
    } else {
        sb_puts(out, s);
    }
    free(s);
}


static int shape_error(StrBuf *err, const char *file, const char *tname, const json_t *shape)
{
    sb_printf(err, "%s: %s: shape: expected an array of at most %d non-negative integers, found ",
              file, tname, ST_MAX_DIMS);
    st_describe_json(shape, err);
    return -1;
}

static int offsets_error(StrBuf *err, const char *file, const char *tname, const json_t *offs)
{
    sb_printf(err, "%s: %s: data_offsets: expected [begin, end] with 0 <= begin <= end, found ",
              file, tname);
    st_describe_json(offs, err);
    return -1;
}

/* Check one tensor entry of the header and fill t. */
static int parse_entry(StTensor *t, const char *tname, json_t *entry, uint64_t data_len,
                       const char *file, StrBuf *err)
{
    if (!json_is_object(entry)) {
        sb_printf(err, "%s: %s: expected an object {dtype, shape, data_offsets}, found ", file, tname);
        st_describe_json(entry, err);
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(entry, key, val) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return sb_fail(err, "%s: %s: expected only the keys dtype, shape and data_offsets, found '%s'",
                        file, tname, key);
    }
    json_t *dtype = json_object_get(entry, "dtype");
    json_t *shape = json_object_get(entry, "shape");
    json_t *offs = json_object_get(entry, "data_offsets");
    if (!dtype || !shape || !offs)
        return sb_fail(err, "%s: %s: expected the keys dtype, shape and data_offsets, found no '%s'",
                    file, tname, !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    if (!json_is_string(dtype) || strcmp(json_string_value(dtype), "F32") != 0) {
        sb_printf(err, "%s: %s: dtype: expected \"F32\", found ", file, tname);
        st_describe_json(dtype, err);
        return -1;
    }
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS)
        return shape_error(err, file, tname, shape);
    t->name = tname;
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0) return shape_error(err, file, tname, shape);
        uint64_t dv = (uint64_t)json_integer_value(d);
        t->shape[i] = (int64_t)dv;
        if (dv != 0 && numel > UINT64_MAX / 4 / dv) overflow = 1;
        else numel *= dv;
    }
    /* A zero dimension makes any product of the others irrelevant. */
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) overflow = 0, numel = 0;
    if (overflow) {
        sb_printf(err, "%s: %s: shape: expected a size that fits in the file, found ", file, tname);
        st_describe_json(shape, err);
        return -1;
    }
    t->numel = numel;
    if (!json_is_array(offs) || json_array_size(offs) != 2) return offsets_error(err, file, tname, offs);
    json_t *jb = json_array_get(offs, 0), *je = json_array_get(offs, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 ||
        json_integer_value(je) < json_integer_value(jb))
        return offsets_error(err, file, tname, offs);
    t->begin = (uint64_t)json_integer_value(jb);
    t->end = (uint64_t)json_integer_value(je);
    if (t->end > data_len)
        return sb_fail(err, "%s: %s: data_offsets: expected an end within the %llu bytes of tensor data, "
                    "found [%llu, %llu] (is the file truncated?)",
                    file, tname, (unsigned long long)data_len, (unsigned long long)t->begin,
                    (unsigned long long)t->end);
    if (t->end - t->begin != numel * 4) {
        sb_printf(err, "%s: %s: data_offsets: expected %llu bytes (shape ", file, tname,
                  (unsigned long long)(numel * 4));
        st_describe_json(shape, err);
        sb_printf(err, " of F32), found %llu bytes ([%llu, %llu])",
                  (unsigned long long)(t->end - t->begin), (unsigned long long)t->begin,
                  (unsigned long long)t->end);
        return -1;
    }
    return 0;
}

static int cmp_begin(const void *a, const void *b)
{
    const StTensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

int st_parse(StFile *f, const void *bytes, size_t len, const char *file, StrBuf *err)
{
    memset(f, 0, sizeof *f);
    const uint8_t *p = bytes;
    if (len < 8)
        return sb_fail(err, "%s: header length: expected 8 bytes, found a file of %zu bytes", file, len);
    uint64_t n = get_u64le(p);
    /* Check the declared length against what is there before touching anything else:
     * a corrupt length must never turn into a huge allocation or a read past the end. */
    if (n > len - 8)
        return sb_fail(err, "%s: header length: expected at most %zu (the bytes after the length field), "
                    "found %llu", file, len - 8, (unsigned long long)n);
    if (n > ST_MAX_HEADER)
        return sb_fail(err, "%s: header length: expected at most %u, found %llu", file, ST_MAX_HEADER,
                    (unsigned long long)n);
    json_error_t je;
    json_t *h = json_loadb((const char *)p + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!h)
        return sb_fail(err, "%s: header: expected JSON, found invalid JSON at byte %d of the header: %s",
                    file, je.position, je.text);
    f->header = h;
    if (!json_is_object(h)) {
        sb_printf(err, "%s: header: expected a JSON object, found ", file);
        st_describe_json(h, err);
        return -1;
    }
    f->data = p + 8 + n;
    f->data_len = len - 8 - n;

    json_t *meta = json_object_get(h, "__metadata__");
    if (meta) {
        if (!json_is_object(meta)) {
            sb_printf(err, "%s: __metadata__: expected an object of strings, found ", file);
            st_describe_json(meta, err);
            return -1;
        }
        const char *key;
        json_t *val;
        json_object_foreach(meta, key, val) {
            if (!json_is_string(val)) {
                sb_printf(err, "%s: __metadata__: %s: expected a string, found ", file, key);
                st_describe_json(val, err);
                return -1;
            }
        }
        f->metadata = meta;
    }

    size_t cap = json_object_size(h);
    f->tensors = xcalloc(cap ? cap : 1, sizeof *f->tensors);
    const char *key;
    json_t *val;
    json_object_foreach(h, key, val) {
        if (!strcmp(key, "__metadata__")) continue;
        StTensor *t = &f->tensors[f->ntensors];
        if (parse_entry(t, key, val, f->data_len, file, err)) return -1;
        f->ntensors++;
    }
    qsort(f->tensors, (size_t)f->ntensors, sizeof *f->tensors, cmp_begin);
    uint64_t at = 0;
    const char *prev = NULL;
    for (int i = 0; i < f->ntensors; i++) {
        const StTensor *t = &f->tensors[i];
        if (t->begin != at) {
            if (!prev)
                return sb_fail(err, "%s: %s: data_offsets: expected to begin at byte 0 (the first tensor), "
                            "found %llu (a gap before it)", file, t->name, (unsigned long long)t->begin);
            if (t->begin > at)
                return sb_fail(err, "%s: %s: data_offsets: expected to begin at byte %llu where %s ends, "
                            "found %llu (a gap of %llu bytes)", file, t->name, (unsigned long long)at,
                            prev, (unsigned long long)t->begin, (unsigned long long)(t->begin - at));
            return sb_fail(err, "%s: %s: data_offsets: expected to begin at byte %llu where %s ends, "
                        "found %llu (overlapping %s)", file, t->name, (unsigned long long)at, prev,
                        (unsigned long long)t->begin, prev);
        }
        at = t->end;
        prev = t->name;
    }
    if (at != f->data_len)
        return sb_fail(err, "%s: tensor data: expected %llu bytes (up to the end of the last tensor), "
                    "found %llu (%llu bytes after the last tensor)", file, (unsigned long long)at,
                    (unsigned long long)f->data_len, (unsigned long long)(f->data_len - at));
    return 0;
}

void st_free(StFile *f)
{
    json_decref(f->header);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const StTensor *st_find(const StFile *f, const char *name)
{
    for (int i = 0; i < f->ntensors; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

void st_read_f32(float *dst, const StFile *f, const StTensor *t)
{
    const uint8_t *src = f->data + t->begin;
    if (host_is_le()) {
        memcpy(dst, src, (size_t)t->numel * 4);
        return;
    }
    for (uint64_t i = 0; i < t->numel; i++) {
        uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                     (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
        memcpy(&dst[i], &u, 4);
    }
}

int st_write(uint8_t **out, size_t *len, const StOut *tensors, int n, json_t *metadata, StrBuf *err)
{
    json_t *h = json_object();
    if (metadata) json_object_set(h, "__metadata__", metadata);
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        const StOut *t = &tensors[i];
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
            numel *= (uint64_t)t->shape[d];
        }
        json_t *e = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                              (json_int_t)at, (json_int_t)(at + numel * 4));
        if (!e || json_object_get(h, t->name) || json_object_set_new(h, t->name, e)) {
            json_decref(h);
            return sb_fail(err, "%s: cannot add this tensor to the header (duplicate or invalid name)",
                        t->name);
        }
        at += numel * 4;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(h);
    if (!text) return sb_fail(err, "header: cannot encode as JSON (a string that is not UTF-8?)");
    size_t hlen = strlen(text);
    size_t padded = (hlen + 7) / 8 * 8;
    size_t total = 8 + padded + (size_t)at;
    uint8_t *buf = xmalloc(total);
    put_u64le(buf, padded);
    memcpy(buf + 8, text, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(text);
    uint8_t *d = buf + 8 + padded;
    for (int i = 0; i < n; i++) {
        const StOut *t = &tensors[i];
        uint64_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (uint64_t)t->shape[k];
        if (host_is_le()) {
            if (numel) memcpy(d, t->data, (size_t)numel * 4);
        } else {
            for (uint64_t j = 0; j < numel; j++) {
                uint32_t u;
                memcpy(&u, &t->data[j], 4);
                for (int b = 0; b < 4; b++) d[4 * j + (uint64_t)b] = (uint8_t)(u >> (8 * b));
            }
        }
        d += numel * 4;
    }
    *out = buf;
    *len = total;
    return 0;
}
