// tests/test_tok_gguf.c: the GGUF reader on synthetic files: every metadata value type,
// arrays (nested too), general.alignment and the data offset, tensor infos, versions 2 and 3,
// and every truncation / a range of corruptions of such a file (errors, never crashes).
// Then tiny vocabulary GGUFs: malformed ones are refused; add_bos_token / add_eos_token and
// tokenizer.ggml.pre (GPT-2 vs SmolLM digit splitting) change the ids as llama.cpp does.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/gguf.h"
#include "tokenizer/tok_internal.h"

#include "tests/check.h"

typedef struct {
    uint8_t *d;
    size_t n, cap;
} buf;

static void put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void u16(buf *b, uint16_t v) { u8(b, (uint8_t)v), u8(b, (uint8_t)(v >> 8)); }
static void u32(buf *b, uint32_t v) { u16(b, (uint16_t)v), u16(b, (uint16_t)(v >> 16)); }
static void u64(buf *b, uint64_t v) { u32(b, (uint32_t)v), u32(b, (uint32_t)(v >> 32)); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void key(buf *b, const char *k, uint32_t type) {
    str(b, k);
    u32(b, type);
}

// A GGUF with one key of every type, arrays, a nested array, alignment 64 and two tensors.
static buf make_gguf(uint32_t version) {
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, version);
    u64(&b, 2);   // tensors
    u64(&b, 17);  // kv
    key(&b, "t.u8", DQ_GGUF_U8), u8(&b, 200);
    key(&b, "t.i8", DQ_GGUF_I8), u8(&b, (uint8_t)-100);
    key(&b, "t.u16", DQ_GGUF_U16), u16(&b, 60000);
    key(&b, "t.i16", DQ_GGUF_I16), u16(&b, (uint16_t)-30000);
    key(&b, "t.u32", DQ_GGUF_U32), u32(&b, 4000000000u);
    key(&b, "t.i32", DQ_GGUF_I32), u32(&b, (uint32_t)-2000000000);
    float f = 1.5f;
    uint32_t fu;
    memcpy(&fu, &f, 4);
    key(&b, "t.f32", DQ_GGUF_F32), u32(&b, fu);
    key(&b, "t.bool", DQ_GGUF_BOOL), u8(&b, 1);
    key(&b, "t.str", DQ_GGUF_STRING), str(&b, "h\xC3\xA9llo");
    key(&b, "t.u64", DQ_GGUF_U64), u64(&b, 1ULL << 40);
    key(&b, "t.i64", DQ_GGUF_I64), u64(&b, (uint64_t)-5);
    double dv = -2.25;
    uint64_t du;
    memcpy(&du, &dv, 8);
    key(&b, "t.f64", DQ_GGUF_F64), u64(&b, du);
    key(&b, "t.arr_i16", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_I16), u64(&b, 3), u16(&b, 1), u16(&b, (uint16_t)-2), u16(&b, 3);
    key(&b, "t.arr_str", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_STRING), u64(&b, 3), str(&b, "a"), str(&b, ""), str(&b, "ccc");
    key(&b, "t.arr_f64", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_F64), u64(&b, 1), u64(&b, du);
    key(&b, "t.nested", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_ARRAY), u64(&b, 2);
    u32(&b, DQ_GGUF_U8), u64(&b, 2), u8(&b, 1), u8(&b, 2);
    u32(&b, DQ_GGUF_STRING), u64(&b, 1), str(&b, "x");
    key(&b, "general.alignment", DQ_GGUF_U32), u32(&b, 64);
    // tensors: F32 (4, 2) at 0, Q8_0 (64) at 64
    str(&b, "a.weight"), u32(&b, 2), u64(&b, 4), u64(&b, 2), u32(&b, 0), u64(&b, 0);
    str(&b, "b.weight"), u32(&b, 1), u64(&b, 64), u32(&b, 8), u64(&b, 64);
    while (b.n % 64) u8(&b, 0);
    for (int i = 0; i < 64 + 68; i++) u8(&b, (uint8_t)i);
    return b;
}

static void check_file(uint32_t version) {
    char name[64];
    snprintf(name, sizeof name, "gguf_v%u_values", version);
    buf b = make_gguf(version);
    dq_gguf g;
    dq_err e = {0};
    if (dq_gguf_parse(&g, b.d, b.n, "synthetic.gguf", &e)) {
        CHECK(name, 0, "%s", e.msg);
        free(b.d);
        return;
    }
    int64_t i;
    double f;
    int bo;
    const char *s;
    uint64_t l;
    int ok = g.version == version && g.n_kv == 17 && g.n_tensors == 2;
    ok &= dq_gguf_get_int(&g, "t.u8", &i) && i == 200;
    ok &= dq_gguf_get_int(&g, "t.i8", &i) && i == -100;
    ok &= dq_gguf_get_int(&g, "t.u16", &i) && i == 60000;
    ok &= dq_gguf_get_int(&g, "t.i16", &i) && i == -30000;
    ok &= dq_gguf_get_int(&g, "t.u32", &i) && i == 4000000000LL;
    ok &= dq_gguf_get_int(&g, "t.i32", &i) && i == -2000000000LL;
    ok &= dq_gguf_get_float(&g, "t.f32", &f) && f == 1.5;
    ok &= dq_gguf_get_bool(&g, "t.bool", &bo) && bo == 1;
    ok &= dq_gguf_get_str(&g, "t.str", &s, &l) && l == 6 && !memcmp(s, "h\xC3\xA9llo", 6);
    ok &= dq_gguf_get_int(&g, "t.u64", &i) && i == (1LL << 40);
    ok &= dq_gguf_get_int(&g, "t.i64", &i) && i == -5;
    ok &= dq_gguf_get_float(&g, "t.f64", &f) && f == -2.25;
    ok &= !dq_gguf_get_int(&g, "t.f64", &i) && !dq_gguf_get_float(&g, "t.u8", &f) && !dq_gguf_get_int(&g, "nope", &i);
    const dq_gguf_kv *a = dq_gguf_find(&g, "t.arr_i16");
    ok &= a && a->arr_n == 3 && dq_gguf_arr_int(a, 1, &i) && i == -2 && !dq_gguf_arr_int(a, 3, &i);
    a = dq_gguf_find(&g, "t.arr_str");
    ok &= a && a->arr_n == 3 && dq_gguf_arr_str(a, 2, &s, &l) && l == 3 && !memcmp(s, "ccc", 3) &&
          dq_gguf_arr_str(a, 1, &s, &l) && l == 0;
    a = dq_gguf_find(&g, "t.arr_f64");
    ok &= a && dq_gguf_arr_float(a, 0, &f) && f == -2.25;
    a = dq_gguf_find(&g, "t.nested");
    ok &= a && a->arr_type == DQ_GGUF_ARRAY && a->arr_n == 2;
    CHECK(name, ok, "a metadata value was read wrongly");
    snprintf(name, sizeof name, "gguf_v%u_tensors", version);
    ok = g.alignment == 64 && g.data_offset % 64 == 0 && g.data_offset + 64 + 68 == b.n &&
         !strcmp(g.tensors[0].name, "a.weight") && g.tensors[0].n_dims == 2 && g.tensors[0].dims[1] == 2 &&
         g.tensors[0].nbytes == 32 && !strcmp(g.tensors[1].name, "b.weight") && g.tensors[1].offset == 64 &&
         g.tensors[1].nbytes == 68 && b.d[g.data_offset + 64] == 64;
    CHECK(name, ok, "alignment %llu data_offset %llu", (unsigned long long)g.alignment,
          (unsigned long long)g.data_offset);
    dq_gguf_free(&g);

    // every truncation fails; corruptions never crash
    snprintf(name, sizeof name, "gguf_v%u_truncations", version);
    int accepted = 0;
    for (size_t cut = 0; cut < b.n; cut++) {
        if (dq_gguf_parse(&g, b.d, cut, "cut.gguf", &e) == DQ_OK) {
            accepted++;
            dq_gguf_free(&g);
        } else if (!strstr(e.msg, "cut.gguf")) accepted += 1000;
    }
    CHECK(name, accepted == 0, "%d truncated files accepted or errors without the file name", accepted);
    uint8_t *c = malloc(b.n);
    uint64_t st = 12345;
    int unnamed = 0, rejected = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(c, b.d, b.n);
        for (int k = 0; k < 3; k++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            c[(st >> 33) % b.n] = (uint8_t)(st >> 20);
        }
        if (dq_gguf_parse(&g, c, b.n, "fuzz.gguf", &e) == DQ_OK) {
            for (uint64_t k = 0; k < g.n_kv; k++) {
                const dq_gguf_kv *kv = &g.kv[k];
                for (uint64_t j = 0; kv->type == DQ_GGUF_ARRAY && j < kv->arr_n && j < 8; j++) {
                    dq_gguf_arr_int(kv, j, &i);
                    dq_gguf_arr_float(kv, j, &f);
                    dq_gguf_arr_str(kv, j, &s, &l);
                }
            }
            dq_gguf_free(&g);
        } else {
            rejected++;
            if (!strstr(e.msg, "fuzz.gguf")) unnamed++;
        }
    }
    free(c);
    // not crashing is the main point (run under ASan); errors must also name the file
    snprintf(name, sizeof name, "gguf_v%u_fuzz", version);
    CHECK(name, unnamed == 0 && rejected > 0, "%d of %d errors do not name the file", unnamed, rejected);
    free(b.d);
}

// The 256 byte-level single-byte pieces, ids 0..255 = the byte values (GPT-2's byte map written out).
static void byte_tokens(buf *b) {
    for (int c = 0; c < 256; c++) {
        int pr = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE, cp = c;
        if (!pr) {
            cp = 256;
            for (int x = 0; x < c; x++) cp += !((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
        }
        char t[3] = {0};
        if (cp < 0x80) t[0] = (char)cp;
        else t[0] = (char)(0xC0 | (cp >> 6)), t[1] = (char)(0x80 | (cp & 0x3F));
        str(b, t);
    }
}

// A tiny vocabulary GGUF. model "gpt2": the 256 byte-level singles plus "ab", merge "a b";
// model "llama": "<unk>", "<s>", "</s>", "▁a", "b" with scores. `bad` picks a defect.
enum { V_OK, V_UNKNOWN_MERGE, V_TYPE_COUNT, V_BAD_UTF8, V_HUGE_STRING, V_HUGE_ARRAY, V_NO_TOKENS, V_BAD_ID };
static buf make_vocab(const char *model, int bad) {
    buf b = {0};
    int gpt2 = !strcmp(model, "gpt2");
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, bad == V_NO_TOKENS ? 1 : 5);
    key(&b, "tokenizer.ggml.model", DQ_GGUF_STRING), str(&b, model);
    if (bad == V_NO_TOKENS) return b;
    int n = gpt2 ? 257 : 5;
    key(&b, "tokenizer.ggml.tokens", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_STRING);
    u64(&b, bad == V_HUGE_ARRAY ? (1ULL << 40) : (uint64_t)n);
    if (gpt2) {
        byte_tokens(&b);
        str(&b, "ab");
    } else {
        str(&b, "<unk>"), str(&b, "<s>"), str(&b, "</s>");
        if (bad == V_HUGE_STRING) u64(&b, 1ULL << 50);
        else str(&b, bad == V_BAD_UTF8 ? "\xE2\x96" : "\xE2\x96\x81" "a");
        str(&b, "b");
    }
    key(&b, "tokenizer.ggml.token_type", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_I32);
    int nt = bad == V_TYPE_COUNT ? n - 1 : n;
    u64(&b, (uint64_t)nt);
    for (int i = 0; i < nt; i++) u32(&b, gpt2 ? 1 : (i == 0 ? 2 : i < 3 ? 3 : 1));
    if (gpt2) {
        key(&b, "tokenizer.ggml.merges", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_STRING), u64(&b, 1);
        str(&b, bad == V_UNKNOWN_MERGE ? "a zz" : "a b");
    } else {
        key(&b, "tokenizer.ggml.scores", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_F32), u64(&b, 5);
        for (int i = 0; i < 5; i++) u32(&b, 0);
    }
    key(&b, "tokenizer.ggml.eos_token_id", DQ_GGUF_U32), u32(&b, bad == V_BAD_ID ? 999999 : 2);
    return b;
}

static void vocab_checks(void) {
    static const struct {
        const char *model, *name, *expect;
        int bad;
    } cases[] = {
        {"gpt2", "gguf_vocab_unknown_merge", "not in the vocabulary", V_UNKNOWN_MERGE},
        {"gpt2", "gguf_vocab_type_count", "token_type has", V_TYPE_COUNT},
        {"llama", "gguf_vocab_bad_utf8", "UTF-8", V_BAD_UTF8},
        {"llama", "gguf_vocab_huge_string", "past end of file", V_HUGE_STRING},
        {"llama", "gguf_vocab_huge_array", "larger than the file", V_HUGE_ARRAY},
        {"llama", "gguf_vocab_no_tokens", "tokenizer.ggml.tokens", V_NO_TOKENS},
        {"llama", "gguf_vocab_bad_special_id", "outside the vocabulary", V_BAD_ID},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        buf b = make_vocab(cases[k].model, cases[k].bad);
        dq_tokenizer *t = NULL;
        dq_err e = {0};
        int rc = tok_load_gguf(&t, b.d, b.n, "vocab.gguf", &e);
        CHECK(cases[k].name, rc != DQ_OK && strstr(e.msg, "vocab.gguf") && strstr(e.msg, cases[k].expect),
              "rc %d: %s", rc, rc ? e.msg : "loaded");
        dq_tok_free(t);
        free(b.d);
    }
    // the valid ones encode as expected
    const char *models[] = {"gpt2", "llama"};
    for (int m = 0; m < 2; m++) {
        buf b = make_vocab(models[m], V_OK);
        dq_tokenizer *t = NULL;
        dq_err e = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = tok_load_gguf(&t, b.d, b.n, "vocab.gguf", &e);
        if (!rc) rc = dq_tok_encode(t, "ab", 2, 0, &ids, &n, &e);
        char name[64];
        snprintf(name, sizeof name, "gguf_vocab_valid_%s", models[m]);
        // gpt2: "ab" is one merged token (256); llama: "▁a" (3) then "b" (4)
        int ok = !rc && (m == 0 ? (n == 1 && ids[0] == 256) : (n == 2 && ids[0] == 3 && ids[1] == 4)) &&
                 dq_tok_eos(t) == 2;
        CHECK(name, ok, "rc %d (%s), %zu ids", rc, rc ? e.msg : "", n);
        free(ids);
        dq_tok_free(t);
        free(b.d);
    }
}

// A vocabulary GGUF for the BOS/EOS and pre-tokenizer checks. model "gpt2": ids 0..255 the
// bytes, 256 "ab", 257 "12", 258 "<|bos|>", 259 "<|eos|>" (control), merges "a b", "1 2";
// model "llama": "<unk>", "<s>", "</s>", "▁a", "b". pre, add_bos, add_eos: NULL / -1 = no key.
static buf make_flags_vocab(const char *model, const char *pre, int add_bos, int add_eos) {
    buf b = {0};
    int gpt2 = !strcmp(model, "gpt2"), n = gpt2 ? 260 : 5;
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 6 + (pre != NULL) + (add_bos >= 0) + (add_eos >= 0));
    key(&b, "tokenizer.ggml.model", DQ_GGUF_STRING), str(&b, model);
    key(&b, "tokenizer.ggml.tokens", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_STRING), u64(&b, (uint64_t)n);
    if (gpt2) {
        byte_tokens(&b);
        str(&b, "ab"), str(&b, "12"), str(&b, "<|bos|>"), str(&b, "<|eos|>");
    } else {
        str(&b, "<unk>"), str(&b, "<s>"), str(&b, "</s>"), str(&b, "\xE2\x96\x81" "a"), str(&b, "b");
    }
    key(&b, "tokenizer.ggml.token_type", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_I32), u64(&b, (uint64_t)n);
    for (int i = 0; i < n; i++) u32(&b, gpt2 ? (i >= 258 ? 3 : 1) : (i == 0 ? 2 : i < 3 ? 3 : 1));
    if (gpt2) {
        key(&b, "tokenizer.ggml.merges", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_STRING), u64(&b, 2);
        str(&b, "a b"), str(&b, "1 2");
    } else {
        key(&b, "tokenizer.ggml.scores", DQ_GGUF_ARRAY), u32(&b, DQ_GGUF_F32), u64(&b, 5);
        for (int i = 0; i < 5; i++) u32(&b, 0);
    }
    key(&b, "tokenizer.ggml.bos_token_id", DQ_GGUF_U32), u32(&b, gpt2 ? 258 : 1);
    key(&b, "tokenizer.ggml.eos_token_id", DQ_GGUF_U32), u32(&b, gpt2 ? 259 : 2);
    if (pre) key(&b, "tokenizer.ggml.pre", DQ_GGUF_STRING), str(&b, pre);
    if (add_bos >= 0) key(&b, "tokenizer.ggml.add_bos_token", DQ_GGUF_BOOL), u8(&b, (uint8_t)add_bos);
    if (add_eos >= 0) key(&b, "tokenizer.ggml.add_eos_token", DQ_GGUF_BOOL), u8(&b, (uint8_t)add_eos);
    return b;
}

// Encodes text as a caller that follows the vocabulary does (BOS/EOS when it asks for them);
// writes the ids as " 1 3 4" into got.
static int encode_as_asked(const dq_tokenizer *t, const char *text, char *got, size_t cap) {
    int32_t *ids;
    size_t n;
    dq_err e = {0};
    int flags = (dq_tok_add_bos(t) ? DQ_TOK_ADD_BOS : 0) | (dq_tok_add_eos(t) ? DQ_TOK_ADD_EOS : 0);
    if (dq_tok_encode(t, text, strlen(text), flags, &ids, &n, &e)) return 0;
    size_t o = 0;
    got[0] = 0;
    for (size_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(got + o, cap - o, " %d", ids[i]);
    free(ids);
    return 1;
}

// tokenizer.ggml.add_bos_token / add_eos_token, and llama.cpp's defaults without them:
// SentencePiece and Llama 3 add BOS, other byte-level BPE does not, nothing adds EOS.
static void bos_eos_checks(void) {
    static const struct {
        const char *name, *model, *pre;
        int add_bos, add_eos;
        const char *text, *want;
    } cases[] = {
        {"gguf_add_bos_default_llama", "llama", NULL, -1, -1, "ab", " 1 3 4"},
        {"gguf_add_bos_false_llama", "llama", NULL, 0, -1, "ab", " 3 4"},
        {"gguf_add_bos_true_llama", "llama", NULL, 1, -1, "ab", " 1 3 4"},
        {"gguf_add_eos_true_llama", "llama", NULL, 1, 1, "ab", " 1 3 4 2"},
        {"gguf_add_eos_only_llama", "llama", NULL, 0, 1, "ab", " 3 4 2"},
        {"gguf_add_eos_false_llama", "llama", NULL, -1, 0, "ab", " 1 3 4"},
        {"gguf_add_bos_default_gpt2", "gpt2", "gpt-2", -1, -1, "ab", " 256"},
        {"gguf_add_bos_true_gpt2", "gpt2", "gpt-2", 1, -1, "ab", " 258 256"},
        {"gguf_add_bos_false_gpt2", "gpt2", "gpt-2", 0, -1, "ab", " 256"},
        {"gguf_add_eos_true_gpt2", "gpt2", "gpt-2", -1, 1, "ab", " 256 259"},
        {"gguf_add_bos_default_llama_bpe", "gpt2", "llama-bpe", -1, -1, "ab", " 258 256"},
        {"gguf_add_bos_false_llama_bpe", "gpt2", "llama-bpe", 0, -1, "ab", " 256"},
        // pre-tokenizers: GPT-2 keeps a digit run (and the space before it) together, so "1 2"
        // merges; SmolLM and the families llama.cpp treats alike cut every digit off on its own
        {"gguf_pre_gpt2_digits", "gpt2", "gpt-2", -1, -1, "ab12 12", " 256 257 32 257"},
        {"gguf_pre_smollm_digits", "gpt2", "smollm", -1, -1, "ab12 12", " 256 49 50 32 49 50"},
        {"gguf_pre_gpt2_space_digits", "gpt2", "gpt-2", -1, -1, "x 12a", " 120 32 257 97"},
        {"gguf_pre_starcoder_digits", "gpt2", "starcoder", -1, -1, "x 12a", " 120 32 49 50 97"},
        {"gguf_pre_smollm_no_digits", "gpt2", "smollm", -1, -1, "ab ab", " 256 32 256"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        buf b = make_flags_vocab(cases[k].model, cases[k].pre, cases[k].add_bos, cases[k].add_eos);
        dq_tokenizer *t = NULL, *t2 = NULL;
        dq_err e = {0};
        char got[256] = "", got2[256] = "";
        int rc = tok_load_gguf(&t, b.d, b.n, "flags.gguf", &e);
        int ok = !rc && encode_as_asked(t, cases[k].text, got, sizeof got) && !strcmp(got, cases[k].want);
        // the .dynq tokenizer blob keeps the same behaviour
        uint8_t *blob = NULL;
        size_t bl = 0;
        if (ok) {
            ok = !dq_tok_serialize(t, &blob, &bl, &e) && !dq_tok_deserialize(&t2, blob, bl, "blob", &e) &&
                 encode_as_asked(t2, cases[k].text, got2, sizeof got2) && !strcmp(got2, cases[k].want);
        }
        CHECK(cases[k].name, ok, "\"%s\": got [%s] (after the blob round trip [%s]) want [%s] %s", cases[k].text, got,
              got2, cases[k].want, rc ? e.msg : "");
        free(blob);
        dq_tok_free(t2);
        dq_tok_free(t);
        free(b.d);
    }
}

int main(void) {
    vocab_checks();
    bos_eos_checks();
    check_file(2);
    check_file(3);
    buf b = make_gguf(1);
    dq_gguf g;
    dq_err e = {0};
    int rc = dq_gguf_parse(&g, b.d, b.n, "v1.gguf", &e);
    CHECK("gguf_v1_rejected", rc != DQ_OK && strstr(e.msg, "version"), "rc %d: %s", rc, e.msg);
    free(b.d);
    return failures ? 1 : 0;
}
