// tokenizer/gguf.h: a bounds-checked reader for GGUF files (versions 2 and 3): header,
// every metadata value type including nested arrays, tensor infos and the data offset
// (general.alignment). It reads from a caller-owned buffer (a mmap or a whole-file read)
// and keeps pointers into it, so the buffer must outlive the dq_gguf.
#ifndef DYNQ_GGUF_H
#define DYNQ_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "../common.h"

enum {
    DQ_GGUF_U8 = 0, DQ_GGUF_I8 = 1, DQ_GGUF_U16 = 2, DQ_GGUF_I16 = 3, DQ_GGUF_U32 = 4, DQ_GGUF_I32 = 5,
    DQ_GGUF_F32 = 6, DQ_GGUF_BOOL = 7, DQ_GGUF_STRING = 8, DQ_GGUF_ARRAY = 9, DQ_GGUF_U64 = 10,
    DQ_GGUF_I64 = 11, DQ_GGUF_F64 = 12, DQ_GGUF_NTYPES
};

typedef struct dq_gguf_kv {
    const char *key;       // NUL-terminated copy
    uint32_t type;         // DQ_GGUF_*
    uint32_t arr_type;     // element type when type == ARRAY
    uint64_t arr_n;        // element count when type == ARRAY
    const uint8_t *data;   // scalar: the value bytes; STRING: the bytes (str_len); ARRAY: first element
    uint64_t str_len;      // STRING
    uint64_t *str_off;     // ARRAY of STRING: offset of element i's u64 length field from data
} dq_gguf_kv;

typedef struct dq_gguf_tensor {
    const char *name;      // NUL-terminated copy
    uint32_t n_dims;
    uint64_t dims[4];
    uint32_t type;         // ggml type
    uint64_t offset;       // from the start of the data section
    uint64_t nbytes;       // 0 when the ggml type's size is unknown to this reader
} dq_gguf_tensor;

typedef struct dq_gguf {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    dq_gguf_kv *kv;
    dq_gguf_tensor *tensors;
    uint64_t alignment;    // general.alignment, default 32
    uint64_t data_offset;  // start of the tensor data section in the file
    const uint8_t *base;
    size_t size;
} dq_gguf;

// Parses the header, metadata and tensor infos of data[0..size). path names the file in errors.
int dq_gguf_parse(dq_gguf *g, const uint8_t *data, size_t size, const char *path, dq_err *e);
void dq_gguf_free(dq_gguf *g);
const dq_gguf_kv *dq_gguf_find(const dq_gguf *g, const char *key);  // NULL if absent

// Typed getters: return 1 and set *out when the key exists and converts exactly
// (any integer type for ints, F32/F64 for floats, BOOL for bools), else 0.
int dq_gguf_get_int(const dq_gguf *g, const char *key, int64_t *out);
int dq_gguf_get_float(const dq_gguf *g, const char *key, double *out);
int dq_gguf_get_bool(const dq_gguf *g, const char *key, int *out);
int dq_gguf_get_str(const dq_gguf *g, const char *key, const char **s, uint64_t *len);  // not NUL-terminated
// Array elements (i < arr_n): strings, any integer type, or F32/F64.
int dq_gguf_arr_str(const dq_gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);
int dq_gguf_arr_int(const dq_gguf_kv *kv, uint64_t i, int64_t *out);
int dq_gguf_arr_float(const dq_gguf_kv *kv, uint64_t i, double *out);
// Size in bytes of ggml tensor type t holding n elements; 0 if unknown or n not a block multiple.
uint64_t dq_gguf_type_size(uint32_t t, uint64_t n);

#endif
