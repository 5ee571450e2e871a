// tokenizer/tok_gguf.c: GGUF vocabulary (tokenizer.ggml.*) -> dq_tokenizer.
// tokenizer.ggml.model: "llama" (SentencePiece, score merges), "gpt2" (byte-level BPE with
// merges and tokenizer.ggml.pre), "bert" (WordPiece).
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok_internal.h"

static int streq(const char *s, uint64_t l, const char *lit) { return l == strlen(lit) && memcmp(s, lit, l) == 0; }

int tok_pre_from_name(const char *name) {
    static const struct {
        const char *name;
        int pre;
    } tab[] = {
        {"default", PRE_GPT2},      {"gpt-2", PRE_GPT2},       {"gpt2", PRE_GPT2},         {"llama3", PRE_LLAMA3},
        {"llama-bpe", PRE_LLAMA3},  {"qwen2", PRE_QWEN2},      {"falcon", PRE_FALCON},
        {"deepseek-llm", PRE_DEEPSEEK_LLM}, {"bert-bge", PRE_BERT}, {"jina-v2-en", PRE_BERT},
        // llama.cpp gives all of these the same two regexes: \p{N}, then GPT-2's
        {"smollm", PRE_SMOLLM},     {"starcoder", PRE_SMOLLM}, {"refact", PRE_SMOLLM},   {"command-r", PRE_SMOLLM},
        {"codeshell", PRE_SMOLLM},  {"exaone", PRE_SMOLLM},    {"minerva-7b", PRE_SMOLLM},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(name, tab[i].name) == 0) return tab[i].pre;
    return -1;
}

// Special token id: absent, -1 or 0xFFFFFFFF mean none. Out of range is an error when
// `required` (BOS/EOS: generation depends on them), else ignored (PAD/SEP/CLS/UNK).
static int get_id(const dq_gguf *g, const char *key, int n, int *out, int required) {
    int64_t v;
    if (!dq_gguf_get_int(g, key, &v) || v == -1 || v == 0xFFFFFFFFLL) return 1;
    if (v < 0 || v >= n) return !required;
    *out = (int)v;
    return 1;
}

int tok_load_gguf(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e) {
    *tok = NULL;
    dq_gguf g;
    int rc = dq_gguf_parse(&g, data, size, path, e);
    if (rc) return rc;
    dq_tokenizer *t = NULL;
    const char *model;
    uint64_t ml;
    const dq_gguf_kv *tokens = dq_gguf_find(&g, "tokenizer.ggml.tokens");
    const dq_gguf_kv *scores = dq_gguf_find(&g, "tokenizer.ggml.scores");
    const dq_gguf_kv *types = dq_gguf_find(&g, "tokenizer.ggml.token_type");
    const dq_gguf_kv *merges = dq_gguf_find(&g, "tokenizer.ggml.merges");
    if (!dq_gguf_get_str(&g, "tokenizer.ggml.model", &model, &ml)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: GGUF has no tokenizer.ggml.model", path);
        goto done;
    }
    int type;
    if (streq(model, ml, "llama")) type = DQ_TOK_SPM;
    else if (streq(model, ml, "gpt2")) type = DQ_TOK_BPE;
    else if (streq(model, ml, "bert")) type = DQ_TOK_WPM;
    else {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2, bert are)", path,
                    (int)(ml > 32 ? 32 : ml), model);
        goto done;
    }
    if (!tokens || tokens->type != DQ_GGUF_ARRAY || tokens->arr_type != DQ_GGUF_STRING || tokens->arr_n == 0 ||
        tokens->arr_n > (1u << 24)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.tokens missing, empty or not a string array", path);
        goto done;
    }
    int n = (int)tokens->arr_n;
    if (scores && (scores->type != DQ_GGUF_ARRAY || scores->arr_n != (uint64_t)n)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.scores has %llu entries for %d tokens", path,
                    (unsigned long long)scores->arr_n, n);
        goto done;
    }
    if (types && (types->type != DQ_GGUF_ARRAY || types->arr_n != (uint64_t)n)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.token_type has %llu entries for %d tokens", path,
                    (unsigned long long)types->arr_n, n);
        goto done;
    }
    size_t text = 0;
    for (int i = 0; i < n; i++) {
        const char *s;
        uint64_t l;
        dq_gguf_arr_str(tokens, (uint64_t)i, &s, &l);
        if (l > TOK_MAX_PIECE * 4) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: token %d: piece of %llu bytes is too long", path, i, (unsigned long long)l);
            goto done;
        }
        text += (size_t)l + 3;
    }
    if ((rc = tok_alloc(&t, n, text, path, e))) goto done;
    t->type = type;
    size_t used = 0;
    char buf[TOK_MAX_PIECE * 4];
    static const uint8_t type_map[7] = {TOKA_NORMAL, TOKA_NORMAL, TOKA_UNKNOWN, TOKA_CONTROL, TOKA_USER, TOKA_UNUSED,
                                        TOKA_BYTE};
    for (int i = 0; i < n; i++) {
        const char *s;
        uint64_t l;
        dq_gguf_arr_str(tokens, (uint64_t)i, &s, &l);
        int64_t ty = 1;
        if (types && (!dq_gguf_arr_int(types, (uint64_t)i, &ty) || ty < 0 || ty > 6)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: token %d: bad token_type", path, i);
            goto done;
        }
        t->attr[i] = type_map[ty];
        double sc = 0;
        if (scores && !dq_gguf_arr_float(scores, (uint64_t)i, &sc)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.scores is not a float array", path);
            goto done;
        }
        t->scores[i] = (float)sc;
        size_t bl = (size_t)l;
        if (type == DQ_TOK_BPE && t->attr[i] != TOKA_CONTROL && t->attr[i] != TOKA_USER) {
            if (!tok_bytelevel_unmap(s, (size_t)l, buf, &bl)) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: token %d: piece is not byte-level encoded", path, i);
                goto done;
            }
            s = buf;
        }
        if (type == DQ_TOK_BPE && t->attr[i] == TOKA_UNUSED) t->attr[i] = TOKA_NORMAL;
        if (type == DQ_TOK_WPM && t->attr[i] == TOKA_NORMAL && l + 2 <= sizeof buf) {
            // llama.cpp's GGUF spelling: word starts carry U+2581, continuations are bare;
            // back to BERT's: word starts bare, continuations "##"
            if (l >= 3 && memcmp(s, "\xE2\x96\x81", 3) == 0) {
                s += 3;
                bl -= 3;
            } else {
                buf[0] = buf[1] = '#';
                memcpy(buf + 2, s, bl);
                s = buf;
                bl += 2;
            }
        }
        tok_set_piece(t, i, s, bl, &used);
    }
    if (!get_id(&g, "tokenizer.ggml.bos_token_id", n, &t->bos, 1) ||
        !get_id(&g, "tokenizer.ggml.eos_token_id", n, &t->eos, 1) ||
        !get_id(&g, "tokenizer.ggml.unknown_token_id", n, &t->unk, 0) ||
        !get_id(&g, "tokenizer.ggml.padding_token_id", n, &t->pad, 0) ||
        !get_id(&g, "tokenizer.ggml.seperator_token_id", n, &t->sep, 0) ||
        !get_id(&g, "tokenizer.ggml.cls_token_id", n, &t->cls, 0)) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.bos/eos_token_id is outside the vocabulary of %d", path, n);
        goto done;
    }
    int flag;
    if (type == DQ_TOK_SPM) {
        t->flags |= TOKF_SPACE_PREFIX | TOKF_BYTE_FALLBACK;
        if (dq_gguf_get_bool(&g, "tokenizer.ggml.add_space_prefix", &flag) && !flag) t->flags &= ~TOKF_SPACE_PREFIX;
        if (dq_gguf_get_bool(&g, "tokenizer.ggml.remove_extra_whitespaces", &flag) && flag) t->flags |= TOKF_REMOVE_WS;
        if (t->unk < 0 && n > 0 && t->attr[0] == TOKA_UNKNOWN) t->unk = 0;
    }
    if (type == DQ_TOK_WPM) {
        t->flags |= TOKF_LOWERCASE;
        t->pre = PRE_BERT;
        if (t->unk < 0) t->unk = tok_lookup(t, "[UNK]", 5);
    }
    if ((rc = tok_finalize(t, path, e))) goto done;  // builds the piece hash for the merges
    if (type == DQ_TOK_WPM && t->unk < 0) t->unk = tok_lookup(t, "[UNK]", 5);
    // BOS/EOS by default, as llama.cpp decides: SentencePiece and WordPiece add BOS (CLS), so
    // does Llama 3's byte-level BPE; tokenizer.ggml.add_bos_token / add_eos_token override.
    int add_bos = type == DQ_TOK_SPM || type == DQ_TOK_WPM, add_eos = 0;
    if (type == DQ_TOK_BPE) {
        const char *pre;
        uint64_t pl;
        t->pre = PRE_GPT2;
        if (dq_gguf_get_str(&g, "tokenizer.ggml.pre", &pre, &pl)) {
            char name[64];
            if (pl >= sizeof name) pl = sizeof name - 1;
            memcpy(name, pre, pl);
            name[pl] = 0;
            int p = tok_pre_from_name(name);
            if (p < 0 || p == PRE_BERT) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: tokenizer.ggml.pre \"%s\" is not supported", path, name);
                goto done;
            }
            t->pre = p;
            if (p == PRE_LLAMA3) t->flags |= TOKF_IGNORE_MERGES;  // as Llama 3's tokenizer.json says
        }
        if (t->pre == PRE_LLAMA3) add_bos = 1;
        if (!merges || merges->type != DQ_GGUF_ARRAY || merges->arr_type != DQ_GGUF_STRING || merges->arr_n == 0 ||
            merges->arr_n > (1u << 24)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: gpt2 tokenizer without tokenizer.ggml.merges", path);
            goto done;
        }
        int nm = (int)merges->arr_n;
        t->m_left = malloc((size_t)nm * sizeof *t->m_left);
        t->m_right = malloc((size_t)nm * sizeof *t->m_right);
        if (!t->m_left || !t->m_right) {
            rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
            goto done;
        }
        for (int r = 0; r < nm; r++) {
            const char *s;
            uint64_t l;
            dq_gguf_arr_str(merges, (uint64_t)r, &s, &l);
            const char *sp = l ? memchr(s + 1, ' ', (size_t)l - 1) : NULL;  // a side may itself be " "? no: Ġ
            if (!sp || sp + 1 == s + l) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: merge %d is not \"left right\"", path, r);
                goto done;
            }
            const char *side[2] = {s, sp + 1};
            size_t sl[2] = {(size_t)(sp - s), (size_t)(s + l - sp - 1)};
            int ids[2];
            for (int k = 0; k < 2; k++) {
                size_t bl;
                ids[k] = (sl[k] <= sizeof buf && tok_bytelevel_unmap(side[k], sl[k], buf, &bl)) ? tok_lookup(t, buf, bl)
                                                                                                : -1;
                if (ids[k] < 0) {
                    rc = DQ_ERR(e, DQ_EFILE, "%s: merge %d: \"%.*s\" is not in the vocabulary", path, r,
                                (int)(sl[k] > 64 ? 64 : sl[k]), side[k]);
                    goto done;
                }
            }
            t->m_left[r] = ids[0];
            t->m_right[r] = ids[1];
        }
        t->n_merges = nm;
    }
    dq_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &add_bos);
    dq_gguf_get_bool(&g, "tokenizer.ggml.add_eos_token", &add_eos);
    if (add_bos) t->flags |= TOKF_ADD_BOS;
    if (add_eos) t->flags |= TOKF_ADD_EOS;
    t->n_eog = 0;
    rc = tok_finalize(t, path, e);
done:
    dq_gguf_free(&g);
    if (rc) {
        dq_tok_free(t);
        return rc;
    }
    *tok = t;
    return DQ_OK;
}
