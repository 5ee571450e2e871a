// tokenizer/json.h: a strict JSON parser (RFC 8259) for tokenizer.json, config.json and
// safetensors headers: all escapes including surrogate pairs, nesting limit, errors with
// byte offsets. The tree is immutable after parsing; free it with dq_json_free.
#ifndef DYNQ_JSON_H
#define DYNQ_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "../common.h"

typedef enum {
    DQ_JSON_NULL = 0, DQ_JSON_FALSE, DQ_JSON_TRUE, DQ_JSON_NUMBER, DQ_JSON_STRING,
    DQ_JSON_ARRAY, DQ_JSON_OBJECT
} dq_json_type;

typedef struct dq_json {
    dq_json_type type;
    double num;            // NUMBER
    int64_t inum;          // NUMBER, exact when is_int
    int is_int;            // NUMBER written without fraction/exponent and fits int64
    const char *str;       // STRING: decoded UTF-8, NUL-terminated (may contain NUL: use str_len)
    size_t str_len;
    size_t n;              // ARRAY / OBJECT: number of elements
    struct dq_json *items; // ARRAY elements / OBJECT values (n of them), in file order
    const char **keys;     // OBJECT keys (n), decoded, NUL-terminated
    size_t *key_lens;
} dq_json;

// `what` names the source (file name) for error messages: "<what>: byte N: problem".
int dq_json_parse(dq_json **root, const char *text, size_t len, const char *what, dq_err *e);
void dq_json_free(dq_json *root);
// Object member by key (first match), or NULL if obj is not an object or lacks key.
const dq_json *dq_json_get(const dq_json *obj, const char *key);

#endif
