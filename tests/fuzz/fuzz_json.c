// tests/fuzz/fuzz_json.c: dq_json_parse on arbitrary bytes, then a walk over the whole tree
// (every string, key and lookup) so that a tree with bad lengths or pointers is caught by ASan.
#include "fuzz_common.h"
#include "tokenizer/json.h"

static size_t walk(const dq_json *j, int depth) {
    size_t acc = (size_t)j->type;
    if (j->type == DQ_JSON_STRING) {
        for (size_t i = 0; i < j->str_len; i++) acc += (unsigned char)j->str[i];
        if (j->str[j->str_len] != 0) abort();  // documented NUL terminator
    }
    if (j->type == DQ_JSON_ARRAY || j->type == DQ_JSON_OBJECT) {
        for (size_t i = 0; i < j->n; i++) {
            if (j->type == DQ_JSON_OBJECT) {
                acc += j->key_lens[i] + strlen(j->keys[i]);
                // A key present must be found (a key with an embedded NUL cannot be named by a C string).
                if (strlen(j->keys[i]) == j->key_lens[i] && dq_json_get(j, j->keys[i]) == NULL) abort();
            }
            acc += walk(&j->items[i], depth + 1);
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    dq_json *root = NULL;
    dq_err e = {0};
    int rc = dq_json_parse(&root, (const char *)data, size, "fuzz.json", &e);
    if (rc == DQ_OK) {
        volatile size_t s = walk(root, 0);
        (void)s;
        dq_json_free(root);
    } else if (e.msg[0] == 0 || strchr(e.msg, '\n')) {
        abort();  // an error must carry a one-line message
    }
    return 0;
}
