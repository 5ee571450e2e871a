// tests/fuzz/fuzz_tokblob.c: dq_tok_deserialize (the tokenizer section of a .dynq file) on
// arbitrary bytes, from an exact-size heap copy.
#include "fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    dq_tokenizer *tok = NULL;
    dq_err e = {0};
    if (dq_tok_deserialize(&tok, copy, size, "blob", &e) == DQ_OK) {
        fz_exercise_tok(tok, data, size);
        dq_tok_free(tok);
    } else if (e.msg[0] == 0 || strchr(e.msg, '\n') || tok) {
        abort();
    }
    free(copy);
    return 0;
}
