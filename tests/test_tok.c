// tests/test_tok.c: tokenizer tests. With no arguments runs the self-contained checks
// (GGUF vocabulary test vectors, round trips, serialization, malformed inputs, JSON).
// As a helper for tests/test_tok_spm.sh:
//   test_tok --dump FILE HINT ITEMS   prints the ids of each line of ITEMS (no BOS)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/json.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static const char *shared;
static int failures;

#define CHECK(name, cond, ...)                                                 \
    do {                                                                       \
        if (cond) printf("ok %s\n", name);                                     \
        else {                                                                 \
            printf("FAIL %s: ", name);                                         \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
            failures++;                                                        \
        }                                                                      \
    } while (0)

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

// Pre-tokenizer splits of NUL-separated items: UTF-8 byte lengths of the fragments, one line each.
static int split_dump(const char *fam, const char *items) {
    int pre = !strcmp(fam, "gpt2") ? PRE_GPT2 : !strcmp(fam, "llama3") ? PRE_LLAMA3 : !strcmp(fam, "qwen2") ? PRE_QWEN2 : -1;
    dq_err e = {0};
    uint8_t *d;
    size_t n;
    if (pre < 0 || dq_read_file(items, &d, &n, &e)) {
        fprintf(stderr, "bad family or items file: %s\n", e.msg);
        return 2;
    }
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != 0) continue;
        size_t *ends, nf, prev = 0;
        if (tok_pre_split(pre, (const char *)d + s, i - s, &ends, &nf)) return 2;
        for (size_t k = 0; k < nf; k++) {
            printf(k ? " %zu" : "%zu", ends[k] - prev);
            prev = ends[k];
        }
        printf("\n");
        free(ends);
        s = i + 1;
    }
    free(d);
    return 0;
}

// ---------------------------------------------------------------- GGUF test vectors
static void vocab_family(const char *fam) {
    char path[1024], name[128];
    snprintf(name, sizeof name, "tok_vocab_%s", fam);
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-%s.gguf", shared, fam);
    dq_err e = {0};
    dq_tokenizer *t;
    if (dq_tok_load(&t, path, 0, &e)) {
        CHECK(name, 0, "%s", e.msg);
        return;
    }
    char ip[1100], op[1100];
    snprintf(ip, sizeof ip, "%s.inp", path);
    snprintf(op, sizeof op, "%s.out", path);
    uint8_t *inp, *out;
    size_t ni, no;
    if (dq_read_file(ip, &inp, &ni, &e) || dq_read_file(op, &out, &no, &e)) {
        CHECK(name, 0, "%s", e.msg);
        dq_tok_free(t);
        return;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t sl = strlen(sep);
    char *ic = (char *)inp, *oc = (char *)out;
    int ncase = 0, nbad = 0;
    char first_bad[600] = "";
    while (*ic) {
        char *end = strstr(ic, sep);
        char *nl = strchr(oc, '\n');
        if (!end || !nl) break;
        *nl = 0;
        int32_t *ids;
        size_t k;
        if (dq_tok_encode(t, ic, (size_t)(end - ic), 0, &ids, &k, &e)) {
            if (!nbad) snprintf(first_bad, sizeof first_bad, "case %d: %s", ncase, e.msg);
            nbad++;
            ncase++;
            ic = end + sl;
            oc = nl + 1;
            continue;
        }
        char got[4096] = "";
        size_t gl = 0;
        for (size_t j = 0; j < k && gl < sizeof got - 16; j++) gl += (size_t)snprintf(got + gl, sizeof got - gl, " %d", ids[j]);
        free(ids);
        const char *want = oc;
        while (*want == ' ') want++;
        const char *g = got[0] == ' ' ? got + 1 : got;
        char wbuf[4096];
        snprintf(wbuf, sizeof wbuf, "%s", want);
        size_t wl = strlen(wbuf);
        while (wl && (wbuf[wl - 1] == ' ' || wbuf[wl - 1] == '\r')) wbuf[--wl] = 0;
        if (strcmp(g, wbuf) != 0) {
            if (!nbad)
                snprintf(first_bad, sizeof first_bad, "case %d \"%.60s\": got [%.200s] want [%.200s]", ncase, ic, g,
                         wbuf);
            nbad++;
        }
        ncase++;
        ic = end + sl;
        oc = nl + 1;
    }
    CHECK(name, ncase == 46 && nbad == 0, "%d of %d cases differ; first: %s", nbad, ncase, first_bad);
    free(inp);
    free(out);
    dq_tok_free(t);
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], atoi(argv[3]), argv[4]);
    if (argc == 4 && strcmp(argv[1], "--split") == 0) return split_dump(argv[2], argv[3]);
    shared = getenv("DYNQ_SHARED");
    if (!shared) shared = "../shared";
    const char *fams[] = {"llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-llm", "bert-bge"};
    for (int i = 0; i < 6; i++) vocab_family(fams[i]);
    return failures ? 1 : 0;
}
