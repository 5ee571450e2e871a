// tests/fuzz/fuzz_tokbin.c: llama2.c tokenizer.bin (and whatever dq_tok_load detects) from a
// file. The first byte of the input picks the vocabulary-size hint the model would give.
#include "fuzz_tok_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int hints[4] = {512, 0, 1, 32000};
    char path[300];
    fz_path(path, sizeof path, "tokenizer.bin");
    fz_write(path, data + 1, size - 1);
    fz_tok_file(path, hints[data[0] & 3], data + 1, size - 1);
    return 0;
}
