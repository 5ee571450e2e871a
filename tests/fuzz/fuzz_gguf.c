// tests/fuzz/fuzz_gguf.c: the GGUF reader (dq_gguf_parse + every getter on every key) and a
// GGUF vocabulary through dq_tok_load.
#include "fuzz_tok_common.h"
#include "tokenizer/gguf.h"

static void walk(const dq_gguf *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const dq_gguf_kv *kv = &g->kv[i];
        int64_t iv;
        double fv;
        int bv;
        const char *s;
        uint64_t len;
        (void)strlen(kv->key);
        if (dq_gguf_find(g, kv->key) == NULL) abort();
        dq_gguf_get_int(g, kv->key, &iv), dq_gguf_get_float(g, kv->key, &fv), dq_gguf_get_bool(g, kv->key, &bv);
        if (dq_gguf_get_str(g, kv->key, &s, &len)) {
            volatile uint8_t x = 0;
            for (uint64_t j = 0; j < len; j++) x ^= (uint8_t)s[j];
            (void)x;
        }
        if (kv->type == DQ_GGUF_ARRAY) {
            uint64_t n = kv->arr_n < 64 ? kv->arr_n : 64;
            for (uint64_t j = 0; j < n; j++) {
                if (dq_gguf_arr_str(kv, j, &s, &len)) {
                    volatile uint8_t x = 0;
                    for (uint64_t k = 0; k < len; k++) x ^= (uint8_t)s[k];
                    (void)x;
                }
                dq_gguf_arr_int(kv, j, &iv), dq_gguf_arr_float(kv, j, &fv);
            }
            if (kv->arr_n) dq_gguf_arr_int(kv, kv->arr_n - 1, &iv), dq_gguf_arr_str(kv, kv->arr_n - 1, &s, &len);
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) (void)strlen(g->tensors[i].name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // Parse from an exact-size heap copy so ASan sees any read past the end.
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    dq_gguf g;
    dq_err e = {0};
    memset(&g, 0, sizeof g);
    if (dq_gguf_parse(&g, copy, size, "fuzz.gguf", &e) == DQ_OK) {
        walk(&g);
        dq_gguf_free(&g);
    } else if (e.msg[0] == 0 || strchr(e.msg, '\n')) {
        abort();
    }
    free(copy);
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        char path[300];
        fz_path(path, sizeof path, "vocab.gguf");
        fz_write(path, data, size);
        fz_tok_file(path, 0, data, size);
    }
    return 0;
}
