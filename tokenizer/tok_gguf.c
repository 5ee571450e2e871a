// tokenizer/tok_gguf.c: GGUF vocabulary (tokenizer.ggml.*) -> dq_tokenizer.
#include "tok_internal.h"

int tok_load_gguf(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e) {
    (void)data;
    (void)size;
    *tok = NULL;
    return DQ_ERR(e, DQ_EFILE, "%s: GGUF tokenizers are not supported yet", path);
}
