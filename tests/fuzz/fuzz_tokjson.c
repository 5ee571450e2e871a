// tests/fuzz/fuzz_tokjson.c: Hugging Face tokenizer.json loading through dq_tok_load.
#include "fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[300];
    fz_path(path, sizeof path, "tokenizer.json");
    fz_write(path, data, size);
    fz_tok_file(path, 0, data, size);
    return 0;
}
