// tests/test_tok.c: tokenizer tests. With no arguments runs the self-contained checks
// (GGUF vocabulary test vectors, round trips, serialization, malformed inputs, JSON).
// As a helper for tests/test_tok_spm.sh and scripts/bench_tokenizer.sh:
//   test_tok --dump FILE HINT ITEMS        prints the ids of each line of ITEMS (no BOS)
//   test_tok --dump-special FILE HINT ITEMS  the same with special tokens parsed
//   test_tok --roundtrip FILE HINT ITEMS   decode(encode(line)) of each line of ITEMS (no BOS)
//   test_tok --split FAMILY ITEMS          pre-tokenizer piece lengths of NUL-separated items
//   test_tok --nfc ITEMS                   NFC of NUL-separated items, one per line
//   test_tok --write-json GGUF FAMILY OUT  byte-level vocabulary as tokenizer.json with FAMILY's
//                                          pre-tokenizer (gpt2, llama3, qwen2, smollm)
//   test_tok --dump0 FILE ITEMS            ids of NUL-separated items, one line each
//   test_tok --bench FILE HINT TEXT REPS   encoding speed in MB/s
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tokenizer/json.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/unicode.h"
#include "tokenizer/tokenizer.h"

static const char *shared;
#include "tests/check.h"

static int dump(const char *file, int hint, const char *items, int flags) {
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
        if (dq_tok_encode(t, (const char *)d + s, i - s, flags, &ids, &k, &e)) {
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

// decode(encode(line)) of each line of ITEMS (no BOS), one per line, with the streaming decoder.
static int roundtrip_dump(const char *file, int hint, const char *items) {
    dq_err e = {0};
    dq_tokenizer *t;
    uint8_t *d;
    size_t n;
    if (dq_tok_load(&t, file, hint, &e) || dq_read_file(items, &d, &n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    char out[512];
    for (size_t i = 0, s = 0; i < n; i++) {
        if (d[i] != '\n') continue;
        int32_t *ids;
        size_t k;
        if (dq_tok_encode(t, (const char *)d + s, i - s, 0, &ids, &k, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 2;
        }
        dq_detok dt;
        dq_detok_init(&dt, t);
        for (size_t j = 0; j < k; j++) fwrite(out, 1, dq_detok_push(&dt, ids[j], out, sizeof out), stdout);
        fwrite(out, 1, dq_detok_flush(&dt, out, sizeof out), stdout);
        putchar('\n');
        free(ids);
        s = i + 1;
    }
    free(d);
    dq_tok_free(t);
    return 0;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Encoding speed: the whole file as one text and line by line, best of `reps` runs, in
// MB/s of wall time and of this thread's CPU time (the machine may be shared).
static int bench(const char *file, int hint, const char *textfile, int reps) {
    dq_err e = {0};
    dq_tokenizer *t;
    uint8_t *d;
    size_t n;
    if (dq_tok_load(&t, file, hint, &e) || dq_read_file(textfile, &d, &n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    double best[2] = {1e30, 1e30}, best_cpu[2] = {1e30, 1e30};
    size_t ntok = 0;
    for (int r = 0; r < reps; r++) {
        for (int mode = 0; mode < 2; mode++) {
            double t0 = dq_now(), c0 = cpu_now();
            int32_t *ids;
            if (mode == 0) {
                if (dq_tok_encode(t, (const char *)d, n, 0, &ids, &ntok, &e)) return 2;
                free(ids);
            } else {
                for (size_t i = 0, s = 0; i < n; i++) {
                    if (d[i] != '\n') continue;
                    size_t k;
                    if (dq_tok_encode(t, (const char *)d + s, i - s, 0, &ids, &k, &e)) return 2;
                    free(ids);
                    s = i + 1;
                }
            }
            double w = dq_now() - t0, c = cpu_now() - c0;
            if (w < best[mode]) best[mode] = w;
            if (c < best_cpu[mode]) best_cpu[mode] = c;
        }
    }
    printf("%s: %zu bytes -> %zu tokens\n  whole text:   %6.2f MB/s (wall), %6.2f MB/s (CPU time)\n"
           "  line by line: %6.2f MB/s (wall), %6.2f MB/s (CPU time)\n",
           file, n, ntok, n / best[0] / 1e6, n / best_cpu[0] / 1e6, n / best[1] / 1e6, n / best_cpu[1] / 1e6);
    free(d);
    dq_tok_free(t);
    return 0;
}

static int write_hf_json(const dq_tokenizer *t, const char *out, const char *split_regex, int ignore_merges,
                         int digits);

// Writes the GGUF vocabulary at gguf as a byte-level tokenizer.json with the given family's
// pre-tokenizer, for tests/tok_bpe_ref.py: gpt2 ByteLevel alone; llama3 / qwen2 their Split
// regex (llama3 also with ignore_merges); smollm Sequence[Digits(individual_digits), ByteLevel].
static int write_json_mode(const char *gguf, const char *fam, const char *out) {
    static const char *llama3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static const char *qwen2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    dq_err e = {0};
    dq_tokenizer *t;
    if (dq_tok_load(&t, gguf, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    int ok = !strcmp(fam, "llama3") ? write_hf_json(t, out, llama3, 1, 0)
           : !strcmp(fam, "qwen2")  ? write_hf_json(t, out, qwen2, 0, 0)
           : !strcmp(fam, "smollm") ? write_hf_json(t, out, NULL, 0, 1)
                                    : write_hf_json(t, out, NULL, 0, 0);
    dq_tok_free(t);
    return ok ? 0 : 2;
}

// Ids of each NUL-separated item, one line each (no BOS).
static int dump0(const char *file, const char *items) {
    dq_err e = {0};
    dq_tokenizer *t;
    uint8_t *d;
    size_t n;
    if (dq_tok_load(&t, file, 0, &e) || dq_read_file(items, &d, &n, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 2;
    }
    for (size_t i = 0, s = 0; i < n; i++) {
        if (d[i] != 0) continue;
        int32_t *ids;
        size_t k;
        if (dq_tok_encode(t, (const char *)d + s, i - s, 0, &ids, &k, &e)) return 2;
        for (size_t j = 0; j < k; j++) printf(j ? " %d" : "%d", ids[j]);
        printf("\n");
        free(ids);
        s = i + 1;
    }
    free(d);
    dq_tok_free(t);
    return 0;
}

// NFC of each NUL-separated item, one per line (items hold no newline).
static int nfc_dump(const char *items) {
    dq_err e = {0};
    uint8_t *d;
    size_t n;
    if (dq_read_file(items, &d, &n, &e)) return 2;
    for (size_t i = 0, s = 0; i < n; i++) {
        if (d[i] != 0) continue;
        char *o;
        size_t ol;
        if (uc_nfc((const char *)d + s, i - s, &o, &ol)) return 2;
        fwrite(o, 1, ol, stdout);
        putchar('\n');
        free(o);
        s = i + 1;
    }
    free(d);
    return 0;
}

// Pre-tokenizer splits of NUL-separated items: UTF-8 byte lengths of the fragments, one line each.
static int split_dump(const char *fam, const char *items) {
    int pre = !strcmp(fam, "gpt2") ? PRE_GPT2 : !strcmp(fam, "llama3") ? PRE_LLAMA3 : !strcmp(fam, "qwen2") ? PRE_QWEN2
            : !strcmp(fam, "falcon") ? PRE_FALCON : !strcmp(fam, "deepseek-llm") ? PRE_DEEPSEEK_LLM
            : !strcmp(fam, "smollm") ? PRE_SMOLLM : -1;
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
// Runs family fam's test vectors on the tokenizer loaded from `file` (the GGUF by default).
static void vocab_family(const char *fam, const char *file, const char *label) {
    char path[1024], name[160];
    snprintf(name, sizeof name, "tok_vocab_%s%s", fam, label);
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-%s.gguf", shared, fam);
    dq_err e = {0};
    dq_tokenizer *t;
    if (dq_tok_load(&t, file ? file : path, 0, &e)) {
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

// ---------------------------------------------------------------- helpers
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static size_t put_cp(uint32_t c, char *o) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | (c >> 6)); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12)); o[1] = (char)(0x80 | ((c >> 6) & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18)); o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Random valid UTF-8: ASCII, control characters, Latin, Cyrillic, CJK, emoji (with ZWJ and
// variation selectors), astral code points and long runs of spaces. Returns the length.
static size_t random_text(char *o, size_t cap, int kind) {
    static const uint32_t pools[][2] = {{0x20, 0x7E}, {0x20, 0x7E}, {0x20, 0x7E}, {0x01, 0x1F}, {0xA0, 0x24F},
                                        {0x400, 0x4FF}, {0x4E00, 0x9FFF}, {0x3040, 0x30FF}, {0x1F300, 0x1FAFF},
                                        {0x200D, 0x200D}, {0xFE0F, 0xFE0F}, {0x10000, 0x10FFFF}, {0xAC00, 0xD7A3}};
    size_t n = 0, k = rnd() % 60;
    for (size_t j = 0; j < k && n + 32 < cap; j++) {
        if (kind == 1) {  // lower-case ASCII words, single spaces (WordPiece round trip)
            if (n) o[n++] = ' ';
            for (uint32_t w = 1 + rnd() % 10; w > 0; w--) o[n++] = (char)('a' + rnd() % 26);
            continue;
        }
        if (rnd() % 12 == 0) {
            for (uint32_t r = 1 + rnd() % 24; r > 0 && n + 32 < cap; r--) o[n++] = ' ';
            continue;
        }
        const uint32_t *p = pools[rnd() % (sizeof pools / sizeof pools[0])];
        uint32_t c = p[0] + rnd() % (p[1] - p[0] + 1);
        if (c >= 0xD800 && c <= 0xDFFF) c = 'x';
        n += put_cp(c, o + n);
    }
    return n;
}

static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = dq_utf8_len(s + i, n - i);
        if (!l) return 0;
        i += l;
    }
    return 1;
}

// Decodes ids with the streaming decoder; every chunk must be whole UTF-8 characters
// when the input was valid UTF-8 (*split_ok cleared otherwise).
static size_t detok_all(const dq_tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap, int *split_ok) {
    dq_detok d;
    dq_detok_init(&d, t);
    size_t o = 0;
    for (size_t i = 0; i < n && o + 256 < cap; i++) {
        size_t k = dq_detok_push(&d, ids[i], out + o, 256);
        if (!valid_utf8((unsigned char *)out + o, k)) *split_ok = 0;
        o += k;
    }
    o += dq_detok_flush(&d, out + o, 256);
    return o;
}

typedef struct {
    const char *name, *rel;
    int hint;
    int collapse;  // SentencePiece remove_extra_whitespaces: compare with spaces collapsed
    int kind;      // 0 random UTF-8, 1 lower-case words (WordPiece)
} vocab_case;

static const vocab_case vocabs[] = {
    {"tok512", "models/stories260K/tok512.bin", 512, 1, 0},
    {"llama2-32k", "models/llama2-tokenizer/tokenizer.bin", 32000, 0, 0},
    {"kjv1k-bin", "models/kjv/kjv1k-tok.bin", 1024, 0, 0},
    {"kjv-hf-json", "models/kjv/kjv-hf/tokenizer.json", 0, 0, 0},
    {"llama-spm", "tokenizer-tests/ggml-vocab-llama-spm.gguf", 0, 0, 0},
    {"phi-3", "tokenizer-tests/ggml-vocab-phi-3.gguf", 0, 0, 0},
    {"gpt-2", "tokenizer-tests/ggml-vocab-gpt-2.gguf", 0, 0, 0},
    {"falcon", "tokenizer-tests/ggml-vocab-falcon.gguf", 0, 0, 0},
    {"deepseek-llm", "tokenizer-tests/ggml-vocab-deepseek-llm.gguf", 0, 0, 0},
    {"bert-bge", "tokenizer-tests/ggml-vocab-bert-bge.gguf", 0, 0, 1},
};

static size_t collapse_spaces(const char *s, size_t n, char *o) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && (m == 0 || o[m - 1] == ' ')) continue;
        o[m++] = s[i];
    }
    while (m && o[m - 1] == ' ') m--;
    return m;
}

// decode(encode(x)) == x on random text (plus fixed hard cases), with and without BOS;
// serialization round trip gives the same ids and the same bytes.
static void roundtrip(const vocab_case *vc) {
    char path[1024], name[160];
    snprintf(path, sizeof path, "%s/%s", shared, vc->rel);
    dq_err e = {0};
    dq_tokenizer *t;
    snprintf(name, sizeof name, "tok_roundtrip_%s", vc->name);
    if (dq_tok_load(&t, path, vc->hint, &e)) {
        CHECK(name, 0, "%s", e.msg);
        return;
    }
    static const char *fixed[] = {"", " ", "  Hello  world  ", "\t\n\r\x01\x1f", "🦙🚀😶‍🌫️ ✅", "我想在apple工作1314151天～",
                                  "нещо на Български", "                                        x", "a\n\nb\n", "'s 'LL 're"};
    char text[2048], back[16384], want[2048];
    int bad = 0, split_ok = 1, bos_ok = 1;
    char why[600] = "";
    for (int it = 0; it < 2000 + 10 && !bad; it++) {
        size_t n;
        if (it < 10 && vc->kind == 0) {
            n = strlen(fixed[it]);
            memcpy(text, fixed[it], n);
        } else n = random_text(text, sizeof text, vc->kind);
        if (dq_tok_type(t) == DQ_TOK_BPE) {  // drop bytes the vocabulary cannot spell (Falcon lacks some controls)
            size_t m = 0;
            for (size_t i = 0; i < n;) {
                size_t l = dq_utf8_len((unsigned char *)text + i, n - i), have = 1;
                for (size_t k = 0; k < l; k++) {
                    char one[2] = {text[i + k], 0};
                    have &= dq_tok_find(t, one) >= 0;
                }
                if (have) memmove(text + m, text + i, l), m += l;
                i += l;
            }
            n = m;
        }
        size_t wn = vc->collapse ? collapse_spaces(text, n, want) : (memcpy(want, text, n), n);
        for (int withbos = 0; withbos < 2; withbos++) {
            int32_t *ids;
            size_t k;
            if (dq_tok_encode(t, text, n, withbos ? DQ_TOK_ADD_BOS : 0, &ids, &k, &e)) {
                snprintf(why, sizeof why, "encode failed: %.300s", e.msg);
                bad = 1;
                break;
            }
            if (withbos && dq_tok_bos(t) >= 0 && (k == 0 || ids[0] != dq_tok_bos(t))) bos_ok = 0;
            size_t bn = detok_all(t, ids, k, back, sizeof back, &split_ok);
            free(ids);
            if (bn != wn || memcmp(back, want, wn) != 0) {
                snprintf(why, sizeof why, "%s: \"%.80s\" came back as \"%.80s\"", withbos ? "with BOS" : "no BOS", want,
                         back);
                back[bn < sizeof back ? bn : sizeof back - 1] = 0;
                if (getenv("TOK_DEBUG")) {
                    FILE *df = fopen(getenv("TOK_DEBUG"), "wb");
                    if (df) fwrite(text, 1, n, df), fclose(df);
                }
                bad = 1;
                break;
            }
        }
    }
    CHECK(name, !bad && bos_ok, "%s%s", why, bos_ok ? "" : " (BOS not first)");
    snprintf(name, sizeof name, "tok_detok_whole_chars_%s", vc->name);
    CHECK(name, split_ok, "a streaming decoder chunk ended inside a UTF-8 character");

    // serialization: ids and bytes survive
    snprintf(name, sizeof name, "tok_serialize_%s", vc->name);
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    dq_tokenizer *t2 = NULL;
    int ok = !dq_tok_serialize(t, &b1, &l1, &e) && !dq_tok_deserialize(&t2, b1, l1, "blob", &e) &&
             !dq_tok_serialize(t2, &b2, &l2, &e) && l1 == l2 && memcmp(b1, b2, l1) == 0;
    for (int it = 0; ok && it < 200; it++) {
        size_t n = random_text(text, sizeof text, vc->kind);
        int32_t *a, *c;
        size_t na, nc;
        if (dq_tok_encode(t, text, n, DQ_TOK_ADD_BOS, &a, &na, &e)) ok = 0;
        else {
            if (dq_tok_encode(t2, text, n, DQ_TOK_ADD_BOS, &c, &nc, &e)) ok = 0;
            else {
                ok = na == nc && memcmp(a, c, na * sizeof *a) == 0;
                free(c);
            }
            free(a);
        }
    }
    ok = ok && dq_tok_n_vocab(t) == dq_tok_n_vocab(t2) && dq_tok_bos(t) == dq_tok_bos(t2) &&
         dq_tok_eos(t) == dq_tok_eos(t2) && dq_tok_type(t) == dq_tok_type(t2);
    CHECK(name, ok, "blob round trip changed the tokenizer (%s)", e.msg);
    // every truncation of the blob is an error, never a crash
    int trunc_ok = 1;
    for (size_t cut = 0; b1 && cut < l1; cut += 1 + cut / 3) {
        dq_tokenizer *t3;
        if (dq_tok_deserialize(&t3, b1, cut, "blob", &e) == DQ_OK) {
            trunc_ok = 0;
            dq_tok_free(t3);
        }
    }
    snprintf(name, sizeof name, "tok_blob_truncated_%s", vc->name);
    CHECK(name, trunc_ok, "a truncated blob was accepted");
    free(b1);
    free(b2);
    dq_tok_free(t2);
    dq_tok_free(t);
}

// ---------------------------------------------------------------- tokenizer.json loader
// Writes the GGUF vocabulary of a family as a Hugging Face tokenizer.json (byte-level BPE:
// pieces through GPT-2's byte map, merges as "a b"; WordPiece: "##" pieces, BertNormalizer),
// so the JSON loader can be run on the same test vectors.
static void json_str(FILE *f, const unsigned char *p, size_t n, int bytelevel) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (bytelevel) {
            int pr = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE);
            unsigned cp = c;
            if (!pr) {
                cp = 256;
                for (unsigned x = 0; x < c; x++)
                    if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) cp++;
            }
            if (cp == '"' || cp == '\\') fprintf(f, "\\%c", cp);
            else if (cp < 0x80) fputc((int)cp, f);
            else fprintf(f, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
            continue;
        }
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04X", c);
        else fputc((int)c, f);
    }
    fputc('"', f);
}

static int write_hf_json(const dq_tokenizer *t, const char *out, const char *split_regex, int ignore_merges,
                         int digits) {
    FILE *f = fopen(out, "wb");
    if (!f) return 0;
    int bl = t->type == DQ_TOK_BPE;
    fprintf(f, "{\"version\": \"1.0\", \"added_tokens\": [");
    int first = 1;
    for (int i = 0; i < t->n_vocab; i++) {
        if (t->attr[i] != TOKA_CONTROL && t->attr[i] != TOKA_USER) continue;
        fprintf(f, "%s{\"id\": %d, \"content\": ", first ? "" : ", ", i);
        json_str(f, (const unsigned char *)dq_tok_piece(t, i), t->len[i], 0);
        fprintf(f, ", \"special\": %s}", t->attr[i] == TOKA_CONTROL ? "true" : "false");
        first = 0;
    }
    if (bl && split_regex) {
        fprintf(f, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                   "{\"type\": \"Split\", \"pattern\": {\"Regex\": ");
        json_str(f, (const unsigned char *)split_regex, strlen(split_regex), 0);
        fprintf(f, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": "
                   "false, \"use_regex\": false}]}, \"decoder\": {\"type\": \"ByteLevel\"},\n\"model\": {\"type\": \"BPE\", "
                   "\"ignore_merges\": %s, \"vocab\": {", ignore_merges ? "true" : "false");
    } else if (bl && digits) {  // SmolLM's
        fprintf(f, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                   "{\"type\": \"Digits\", \"individual_digits\": true}, {\"type\": \"ByteLevel\", \"add_prefix_space\": "
                   "false, \"trim_offsets\": true, \"use_regex\": true}]}, \"decoder\": {\"type\": \"ByteLevel\"},\n"
                   "\"model\": {\"type\": \"BPE\", \"vocab\": {");
    } else if (bl)
        fprintf(f, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false,"
                   " \"use_regex\": true}, \"decoder\": {\"type\": \"ByteLevel\"},\n\"model\": {\"type\": \"BPE\", \"vocab\": {");
    else
        fprintf(f, "], \"normalizer\": {\"type\": \"BertNormalizer\", \"lowercase\": true}, \"pre_tokenizer\": "
                   "{\"type\": \"BertPreTokenizer\"},\n\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", "
                   "\"max_input_chars_per_word\": 100, \"vocab\": {");
    for (int i = 0; i < t->n_vocab; i++) {
        fprintf(f, "%s\n", i ? "," : "");
        json_str(f, (const unsigned char *)dq_tok_piece(t, i), t->len[i], bl && t->attr[i] == TOKA_NORMAL);
        fprintf(f, ": %d", i);
    }
    fprintf(f, "}");
    if (bl) {
        fprintf(f, ", \"merges\": [");
        for (int r = 0; r < t->n_merges; r++) {
            fprintf(f, "%s\n\"", r ? "," : "");
            // "a b" inside one JSON string: write both sides without their quotes
            for (int side = 0; side < 2; side++) {
                int id = side ? t->m_right[r] : t->m_left[r];
                char tmp[2048];
                FILE *m = fmemopen(tmp, sizeof tmp, "wb");
                json_str(m, (const unsigned char *)dq_tok_piece(t, id), t->len[id], 1);
                long ml = ftell(m);
                fclose(m);
                fwrite(tmp + 1, 1, (size_t)ml - 2, f);
                if (!side) fputc(' ', f);
            }
            fputc('"', f);
        }
        fprintf(f, "]");
    }
    fprintf(f, "}}\n");
    return fclose(f) == 0;
}

static void hf_json_family(const char *fam, const char *tmp) {
    char path[1024], out[1024], name[160];
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-%s.gguf", shared, fam);
    snprintf(out, sizeof out, "%s/%s-tokenizer.json", tmp, fam);
    snprintf(name, sizeof name, "tok_vocab_%s_as_tokenizer_json", fam);
    dq_err e = {0};
    dq_tokenizer *t;
    if (dq_tok_load(&t, path, 0, &e)) {
        CHECK(name, 0, "%s", e.msg);
        return;
    }
    int ok = write_hf_json(t, out, NULL, 0, 0);
    dq_tok_free(t);
    if (!ok) {
        CHECK(name, 0, "cannot write %s", out);
        return;
    }
    vocab_family(fam, out, "_as_tokenizer_json");
}

// ---------------------------------------------------------------- special tokens, EOG
static void specials(void) {
    char path[1024];
    dq_err e = {0};
    dq_tokenizer *t;
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-gpt-2.gguf", shared);
    if (dq_tok_load(&t, path, 0, &e)) {
        CHECK("tok_special_gpt2", 0, "%s", e.msg);
        return;
    }
    const char *txt = "a<|endoftext|>b";
    int32_t *ids;
    size_t n;
    int eot = dq_tok_find(t, "<|endoftext|>");
    int ok = eot == 50256 && !dq_tok_encode(t, txt, strlen(txt), DQ_TOK_PARSE_SPECIAL, &ids, &n, &e);
    ok = ok && n == 3 && ids[1] == eot;
    if (ok) free(ids);
    ok = ok && !dq_tok_encode(t, txt, strlen(txt), 0, &ids, &n, &e);
    int plain = 1;
    for (size_t i = 0; ok && i < n; i++) plain &= ids[i] != eot;
    if (ok) free(ids);
    CHECK("tok_special_gpt2", ok && plain, "<|endoftext|> not matched only with DQ_TOK_PARSE_SPECIAL");
    CHECK("tok_eog_gpt2", dq_tok_is_eog(t, eot) && !dq_tok_is_eog(t, 0), "<|endoftext|> is not end-of-generation");
    dq_tok_free(t);
    snprintf(path, sizeof path, "%s/models/kjv/kjv1k-tok.bin", shared);
    if (dq_tok_load(&t, path, 1024, &e)) {
        CHECK("tok_kjv_bos_eos", 0, "%s", e.msg);
        return;
    }
    CHECK("tok_kjv_bos_eos", dq_tok_bos(t) == 1 && dq_tok_eos(t) == 2 && dq_tok_is_eog(t, 2) && !dq_tok_is_eog(t, 1) &&
                                 !strcmp(dq_tok_piece(t, 1), "<s>") && dq_tok_find(t, "</s>") == 2,
          "bos %d eos %d", dq_tok_bos(t), dq_tok_eos(t));
    // a Hugging Face directory loads its tokenizer.json (with tokenizer_config.json's BOS/EOS)
    dq_tokenizer *h;
    snprintf(path, sizeof path, "%s/models/kjv/kjv-hf", shared);
    if (dq_tok_load(&h, path, 0, &e)) {
        CHECK("tok_hf_directory", 0, "%s", e.msg);
    } else {
        int32_t *a, *b;
        size_t na, nb;
        const char *txt = "And God said, Let there be light: and there was light.";
        int same = !dq_tok_encode(h, txt, strlen(txt), DQ_TOK_ADD_BOS, &a, &na, &e);
        if (same) {
            same = !dq_tok_encode(t, txt, strlen(txt), DQ_TOK_ADD_BOS, &b, &nb, &e) && na == nb &&
                   !memcmp(a, b, na * sizeof *a);
            free(a);
            free(b);
        }
        CHECK("tok_hf_directory", same && dq_tok_bos(h) == 1 && dq_tok_eos(h) == 2 && dq_tok_add_bos(h) &&
                                      dq_tok_is_eog(h, 2) && dq_tok_type(h) == DQ_TOK_SPM,
              "kjv-hf/ differs from kjv1k-tok.bin (bos %d eos %d)", dq_tok_bos(h), dq_tok_eos(h));
        dq_tok_free(h);
    }
    // "<s>" typed in text is text unless special parsing is on
    ok = !dq_tok_encode(t, "<s>", 3, 0, &ids, &n, &e);
    int has = 0;
    for (size_t i = 0; ok && i < n; i++) has |= ids[i] == 1;
    if (ok) free(ids);
    ok = ok && !has && !dq_tok_encode(t, "<s>x", 4, DQ_TOK_PARSE_SPECIAL, &ids, &n, &e);
    CHECK("tok_special_spm", ok && n >= 2 && ids[0] == 1, "<s> handling with/without DQ_TOK_PARSE_SPECIAL");
    if (ok) free(ids);
    // decoding: the first piece after BOS loses its leading space; bytes come out raw
    int32_t seq[] = {1, 390, 282, 562, 285, 13};  // <s> ▁God ▁c reat ed <0x0A>
    char out[1024];
    int sp = 1;
    size_t m = detok_all(t, seq, 6, out, sizeof out, &sp);
    CHECK("tok_decode_bos_space", m == 12 && memcmp(out, "God created\n", 12) == 0, "got \"%.*s\"", (int)m, out);
    // a character split across byte tokens comes out whole, and invalid bytes do not crash
    int32_t euro[] = {0xE2 + 3, 0x82 + 3, 0xAC + 3};  // € as <0xE2><0x82><0xAC>
    dq_detok d;
    dq_detok_init(&d, t);
    size_t k1 = dq_detok_push(&d, euro[0], out, 256), k2 = dq_detok_push(&d, euro[1], out, 256);
    size_t k3 = dq_detok_push(&d, euro[2], out, 256);
    CHECK("tok_decode_split_char", k1 == 0 && k2 == 0 && k3 == 3 && !memcmp(out, "\xE2\x82\xAC", 3),
          "pieces of a character were not held back (%zu %zu %zu)", k1, k2, k3);
    dq_detok_init(&d, t);
    size_t tot = 0;
    int32_t junk[] = {0xFF + 3, 0xC3 + 3, 'A' + 3, 0xE2 + 3, -5, 99999, 0x80 + 3};
    for (int i = 0; i < 7; i++) tot += dq_detok_push(&d, junk[i], out, 256);
    tot += dq_detok_flush(&d, out, 256);
    CHECK("tok_decode_invalid_bytes", tot > 0, "no output for invalid bytes");
    dq_tok_free(t);
}

// ---------------------------------------------------------------- malformed vocabularies
static const char *tmpdir;

static int write_file(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(d, 1, n, f);
    return fclose(f) == 0 && w == n;
}

// Loading must fail with a message naming the file that contains `expect` (when given).
static void expect_error(const char *name, const void *d, size_t n, int hint, const char *expect) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (!write_file(path, d, n)) {
        CHECK(name, 0, "cannot write %s", path);
        return;
    }
    dq_err e = {0};
    dq_tokenizer *t = NULL;
    int rc = dq_tok_load(&t, path, hint, &e);
    char nm[160];
    snprintf(nm, sizeof nm, "tok_malformed_%s", name);
    CHECK(nm, rc != DQ_OK && strstr(e.msg, path) && (!expect || strstr(e.msg, expect)), "rc %d, message \"%s\"", rc,
          rc ? e.msg : "(loaded)");
    dq_tok_free(t);
}

// Every cut of the file is refused; random corruptions load or fail but never crash (ASan runs).
static void fuzz_file(const char *label, const uint8_t *d, size_t n, int hint, int step) {
    char path[1024], nm[160];
    snprintf(path, sizeof path, "%s/fuzz_%s", tmpdir, label);
    uint8_t *c = malloc(n);
    int accepted_cuts = 0;
    for (size_t cut = 0; cut < n; cut += (size_t)step + cut / 8) {
        write_file(path, d, cut);
        dq_err e;
        dq_tokenizer *t;
        if (dq_tok_load(&t, path, hint, &e) == DQ_OK) {
            accepted_cuts++;
            dq_tok_free(t);
        }
    }
    for (int it = 0; it < 300; it++) {
        memcpy(c, d, n);
        for (int k = 0; k < 4; k++) c[rnd() % n] = (uint8_t)rnd();
        write_file(path, c, n);
        dq_err e;
        dq_tokenizer *t;
        if (dq_tok_load(&t, path, hint, &e) == DQ_OK) {
            int32_t *ids;
            size_t k;
            if (!dq_tok_encode(t, "Hello world, 123 🦙", 21, DQ_TOK_ADD_BOS | DQ_TOK_PARSE_SPECIAL, &ids, &k, &e)) free(ids);
            dq_tok_free(t);
        }
    }
    free(c);
    snprintf(nm, sizeof nm, "tok_fuzz_%s", label);
    CHECK(nm, accepted_cuts == 0, "%d truncated files were accepted", accepted_cuts);
}

static void malformed(void) {
    char path[1024];
    dq_err e = {0};
    uint8_t *d;
    size_t n;
    snprintf(path, sizeof path, "%s/models/stories260K/tok512.bin", shared);
    if (dq_read_file(path, &d, &n, &e)) {
        CHECK("tok_malformed", 0, "%s", e.msg);
        return;
    }
    expect_error("bin_truncated", d, n - 3, 512, "truncated");
    expect_error("bin_wrong_count_more", d, n, 600, "truncated");
    expect_error("bin_wrong_count_less", d, n, 500, "mismatch");
    uint8_t *c = malloc(n);
    memcpy(c, d, n);
    c[4 + 4 + 4] = 0xFF, c[4 + 4 + 5] = 0xFF, c[4 + 4 + 6] = 0xFF, c[4 + 4 + 7] = 0x7F;  // token 0 length 2^31-1
    expect_error("bin_huge_length", c, n, 512, "length");
    memcpy(c, d, n);
    c[0] = 0xFF, c[3] = 0x7F;  // max_token_length huge
    expect_error("bin_huge_maxlen", c, n, 512, "max_token_length");
    memcpy(c, d, n);
    c[4 + 8] = 0xFF;  // first byte of "<unk>"
    expect_error("bin_invalid_utf8", c, n, 512, "UTF-8");
    fuzz_file("tok512_bin", d, n, 512, 7);
    free(c);
    free(d);

    // tokenizer.json
    const char *js_unknown_merge =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\",\"a c\"]},"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
    expect_error("json_merge_unknown.json", js_unknown_merge, strlen(js_unknown_merge), 0, "merges[1]");
    const char *js_merge_result =
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}";
    expect_error("json_merge_result.json", js_merge_result, strlen(js_merge_result), 0, "not in the vocabulary");
    const char *js_dup = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}";
    expect_error("json_dup_id.json", js_dup, strlen(js_dup), 0, "twice");
    const char *js_gap = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":5},\"merges\":[],\"byte_fallback\":true}}";
    expect_error("json_gap.json", js_gap, strlen(js_gap), 0, "missing");
    const char *js_trunc = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\"";
    expect_error("json_truncated.json", js_trunc, strlen(js_trunc), 0, "byte ");
    const char *js_badid = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}";
    expect_error("json_bad_id.json", js_badid, strlen(js_badid), 0, "id");
    snprintf(path, sizeof path, "%s/models/kjv/kjv-hf/tokenizer.json", shared);
    if (!dq_read_file(path, &d, &n, &e)) {
        fuzz_file("kjv_json", d, n, 0, 97);
        free(d);
    }

    // GGUF
    snprintf(path, sizeof path, "%s/tokenizer-tests/ggml-vocab-bert-bge.gguf", shared);
    if (!dq_read_file(path, &d, &n, &e)) {
        expect_error("gguf_truncated.gguf", d, n / 2, 0, "GGUF");
        c = malloc(n);
        memcpy(c, d, n);
        c[4] = 7;  // version
        expect_error("gguf_version.gguf", c, n, 0, "version");
        memcpy(c, d, n);
        memset(c + 16, 0xFF, 7);  // n_kv huge
        expect_error("gguf_huge_count.gguf", c, n, 0, "cannot fit");
        free(c);
        fuzz_file("bert_gguf", d, n, 0, 4099);
        free(d);
    }
}

// ---------------------------------------------------------------- JSON parser
static void json_tests(void) {
    dq_err e = {0};
    dq_json *j;
    const char *good = " {\"a\": [1, -2.5e3, 0, 9007199254740993, true, false, null],"
                       " \"s\": \"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83e\\udd99\\u0000z\", \"o\": {}, \"e\": []} ";
    int ok = !dq_json_parse(&j, good, strlen(good), "good", &e);
    if (ok) {
        const dq_json *a = dq_json_get(j, "a"), *s = dq_json_get(j, "s");
        ok = a && a->type == DQ_JSON_ARRAY && a->n == 7 && a->items[0].is_int && a->items[0].inum == 1 &&
             !a->items[1].is_int && a->items[1].num == -2500.0 && a->items[3].is_int &&
             a->items[3].inum == 9007199254740993LL && a->items[4].type == DQ_JSON_TRUE &&
             a->items[6].type == DQ_JSON_NULL && s && s->type == DQ_JSON_STRING && s->str_len == 17 &&
             memcmp(s->str, "q\"\\/\b\f\n\r\t\xC3\xA9\xF0\x9F\xA6\x99\0z", 17) == 0 && dq_json_get(j, "o")->n == 0 &&
             dq_json_get(j, "missing") == NULL;
        dq_json_free(j);
    }
    CHECK("json_valid", ok, "%s", e.msg);
    static const struct {
        const char *text, *where;
    } bad[] = {
        {"{\"a\":1,}", "byte 7"},      {"[1,]", "byte 3"},        {"01", "byte 1"},       {"\"\\ud800\"", "byte 7"},
        {"\"\\udc00x\"", "byte 1"},    {"\"\\x\"", "byte 1"},     {"\"a\tb\"", "byte 2"}, {"[1] x", "byte 4"},
        {"\"\xC3\x28\"", "byte 1"},    {"", "byte 0"},            {"-", "byte 1"},        {"1.", "byte 2"},
        {"1e+", "byte 3"},             {"tru", "byte 0"},         {"{\"a\" 1}", "byte 5"}, {"\"abc", "byte 4"},
        {"\"\xED\xA0\x80\"", "byte 1"}, {"\"\\u12G4\"", "byte 3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "json_reject_%zu", i);
        int rc = dq_json_parse(&j, bad[i].text, strlen(bad[i].text), "t.json", &e);
        CHECK(nm, rc != DQ_OK && strstr(e.msg, "t.json: ") && strstr(e.msg, bad[i].where), "%s -> rc %d \"%s\"",
              bad[i].text, rc, rc ? e.msg : "accepted");
        if (!rc) dq_json_free(j);
    }
    // nesting limit: 600 levels are refused, 500 accepted
    char deep[1300];
    for (int depth = 500; depth <= 600; depth += 100) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) deep[n++] = '[';
        for (int i = 0; i < depth; i++) deep[n++] = ']';
        int rc = dq_json_parse(&j, deep, n, "deep", &e);
        if (!rc) dq_json_free(j);
        CHECK(depth == 500 ? "json_nesting_500" : "json_nesting_600", depth == 500 ? rc == DQ_OK : rc != DQ_OK,
              "rc %d", rc);
    }
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], atoi(argv[3]), argv[4], 0);
    if (argc == 5 && strcmp(argv[1], "--dump-special") == 0)
        return dump(argv[2], atoi(argv[3]), argv[4], DQ_TOK_PARSE_SPECIAL);
    if (argc == 5 && strcmp(argv[1], "--roundtrip") == 0) return roundtrip_dump(argv[2], atoi(argv[3]), argv[4]);
    if (argc == 4 && strcmp(argv[1], "--split") == 0) return split_dump(argv[2], argv[3]);
    if (argc == 3 && strcmp(argv[1], "--nfc") == 0) return nfc_dump(argv[2]);
    if (argc == 5 && strcmp(argv[1], "--write-json") == 0) return write_json_mode(argv[2], argv[3], argv[4]);
    if (argc == 4 && strcmp(argv[1], "--dump0") == 0) return dump0(argv[2], argv[3]);
    if (argc == 6 && strcmp(argv[1], "--bench") == 0) return bench(argv[2], atoi(argv[3]), argv[4], atoi(argv[5]));
    shared = getenv("DYNQ_SHARED");
    if (!shared) shared = "../shared";
    json_tests();
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/tokenizer-tests/README.md", shared);
    FILE *f = fopen(probe, "rb");
    if (!f) {
        printf("skip tok_vocabs: %s not found (set DYNQ_SHARED)\n", probe);
        return failures ? 1 : 0;
    }
    fclose(f);
    const char *fams[] = {"llama-spm", "phi-3", "gpt-2", "falcon", "deepseek-llm", "bert-bge"};
    for (int i = 0; i < 6; i++) vocab_family(fams[i], NULL, "");
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) roundtrip(&vocabs[i]);
    specials();
    char tmpl[] = "/tmp/dynq_test_tok.XXXXXX";
    const char *base = getenv("DYNQ_TMP");
    char dir[1024];
    if (base) {
        snprintf(dir, sizeof dir, "%s/test_tok", base);
        mkdir(dir, 0755);
        tmpdir = dir;
    } else tmpdir = mkdtemp(tmpl);
    if (tmpdir) {
        hf_json_family("gpt-2", tmpdir);
        hf_json_family("bert-bge", tmpdir);
        malformed();
    }
    return failures ? 1 : 0;
}
