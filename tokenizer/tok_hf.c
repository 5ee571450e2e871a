// tokenizer/tok_hf.c: Hugging Face tokenizer.json -> dq_tokenizer. Three shapes:
//  - BPE with byte_fallback and a U+2581 normalizer/pre-tokenizer (Llama 1/2, Mistral,
//    TinyLlama): SentencePiece-style, rank merges over characters;
//  - BPE with a ByteLevel pre-tokenizer (GPT-2, Llama 3, Qwen2, SmolLM ...): byte-level,
//    the split rules told by the other pre-tokenizers in the sequence (pre_from_json);
//  - WordPiece (BERT).
// added_tokens become CONTROL (special: true) or USER (special: false) tokens.
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "tok_internal.h"

static int jstr_eq(const dq_json *j, const char *s) {
    return j && j->type == DQ_JSON_STRING && j->str_len == strlen(s) && memcmp(j->str, s, j->str_len) == 0;
}

// Does any object in the tree have "type": type (depth-first)?
static const dq_json *find_type(const dq_json *j, const char *type, int depth) {
    if (!j || depth > 8) return NULL;
    if (j->type == DQ_JSON_OBJECT && jstr_eq(dq_json_get(j, "type"), type)) return j;
    if (j->type == DQ_JSON_OBJECT || j->type == DQ_JSON_ARRAY)
        for (size_t i = 0; i < j->n; i++) {
            const dq_json *r = find_type(&j->items[i], type, depth + 1);
            if (r) return r;
        }
    return NULL;
}

// The pre-tokenizer tells which byte-level family this is: Falcon's and SmolLM's by their
// Punctuation/Digits steps, DeepSeek's and the Llama 3 / Qwen2 ones by their Split regex.
static int pre_from_json(const dq_json *pre) {
    if (find_type(pre, "Punctuation", 0) && find_type(pre, "Digits", 0)) return PRE_FALCON;
    const dq_json *list = dq_json_get(pre, "pretokenizers");
    for (size_t i = 0; list && list->type == DQ_JSON_ARRAY && i < list->n; i++) {
        const dq_json *pat = dq_json_get(dq_json_get(&list->items[i], "pattern"), "Regex");
        if (pat && pat->type == DQ_JSON_STRING && strstr(pat->str, "\xE4\xB8\x80-\xE9\xBE\xA5")) return PRE_DEEPSEEK_LLM;
    }
    const dq_json *split = find_type(pre, "Split", 0);
    const dq_json *digits = find_type(pre, "Digits", 0), *bl = find_type(pre, "ByteLevel", 0);
    const dq_json *indiv = dq_json_get(digits, "individual_digits"), *ur = dq_json_get(bl, "use_regex");
    if (!split && indiv && indiv->type == DQ_JSON_TRUE && bl && !(ur && ur->type == DQ_JSON_FALSE))
        return PRE_SMOLLM;  // Sequence[Digits(individual_digits), ByteLevel(use_regex)]
    if (split) {
        const dq_json *pat = dq_json_get(dq_json_get(split, "pattern"), "Regex");
        if (pat && pat->type == DQ_JSON_STRING) {
            if (strstr(pat->str, "\\p{N}{1,3}")) return PRE_LLAMA3;
            if (strstr(pat->str, "\\p{N}")) return PRE_QWEN2;
        }
    }
    return PRE_GPT2;
}

// A JSON file next to path (same directory), parsed, or NULL if absent or not valid JSON.
static dq_json *sibling_json(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0;
    char *p = malloc(dl + strlen(name) + 1);
    if (!p) return NULL;
    memcpy(p, path, dl);
    strcpy(p + dl, name);
    uint8_t *d;
    size_t n;
    dq_json *j = NULL;
    if (dq_read_file(p, &d, &n, NULL) == DQ_OK) {
        if (dq_json_parse(&j, (const char *)d, n, p, NULL) != DQ_OK) j = NULL;
        free(d);
    }
    free(p);
    return j;
}

// "<s>" or {"content": "<s>", ...} -> id, or -1.
static int token_ref(const dq_tokenizer *t, const dq_json *v) {
    if (v && v->type == DQ_JSON_OBJECT) v = dq_json_get(v, "content");
    if (!v || v->type != DQ_JSON_STRING) return -1;
    return tok_lookup(t, v->str, v->str_len);
}

// tokenizer_config.json beside tokenizer.json names BOS/EOS and whether BOS/EOS are added;
// it overrides the guesses from the token names.
static void apply_hf_configs(dq_tokenizer *t, const char *path) {
    dq_json *c = sibling_json(path, "tokenizer_config.json");
    if (!c) return;
    int b = token_ref(t, dq_json_get(c, "bos_token")), s = token_ref(t, dq_json_get(c, "eos_token"));
    if (b >= 0) t->bos = b;
    if (s >= 0) t->eos = s;
    const dq_json *ab = dq_json_get(c, "add_bos_token"), *ae = dq_json_get(c, "add_eos_token");
    if (ab && ab->type == DQ_JSON_TRUE && t->bos >= 0) t->flags |= TOKF_ADD_BOS;
    if (ab && ab->type == DQ_JSON_FALSE) t->flags &= ~TOKF_ADD_BOS;
    if (ae && ae->type == DQ_JSON_TRUE && t->eos >= 0) t->flags |= TOKF_ADD_EOS;
    if (ae && ae->type == DQ_JSON_FALSE) t->flags &= ~TOKF_ADD_EOS;
    dq_json_free(c);
}

// generation_config.json's eos_token_id (a number or a list, e.g. Llama 3 Instruct's
// [128001, 128009]) are end-of-generation tokens too.
static void add_generation_eog(dq_tokenizer *t, const char *path) {
    dq_json *g = sibling_json(path, "generation_config.json");
    const dq_json *v = dq_json_get(g, "eos_token_id");
    size_t n = v && v->type == DQ_JSON_ARRAY ? v->n : (v ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        const dq_json *x = v->type == DQ_JSON_ARRAY ? &v->items[i] : v;
        if (x->type != DQ_JSON_NUMBER || !x->is_int || x->inum < 0 || x->inum >= t->n_vocab) continue;
        if (!dq_tok_is_eog(t, (int)x->inum) && t->n_eog < TOK_MAX_EOG) t->eog[t->n_eog++] = (int32_t)x->inum;
    }
    dq_json_free(g);
}

int tok_load_hf_json(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e) {
    *tok = NULL;
    dq_json *root;
    int rc = dq_json_parse(&root, (const char *)data, size, path, e);
    if (rc) return rc;
    dq_tokenizer *t = NULL;
    const dq_json *model = dq_json_get(root, "model");
    const dq_json *vocab = dq_json_get(model, "vocab");
    const dq_json *mtype = dq_json_get(model, "type");
    const dq_json *added = dq_json_get(root, "added_tokens");
    const dq_json *norm = dq_json_get(root, "normalizer");
    const dq_json *pret = dq_json_get(root, "pre_tokenizer");
    const dq_json *dec = dq_json_get(root, "decoder");
    if (!model || model->type != DQ_JSON_OBJECT) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: no \"model\" object: not a tokenizer.json", path);
        goto done;
    }
    int type;
    if (jstr_eq(mtype, "WordPiece")) type = DQ_TOK_WPM;
    else if (jstr_eq(mtype, "BPE") || !mtype) {
        const dq_json *bf = dq_json_get(model, "byte_fallback");
        int bytelevel = find_type(pret, "ByteLevel", 0) || find_type(dec, "ByteLevel", 0);
        int spm = (bf && bf->type == DQ_JSON_TRUE) || find_type(norm, "Prepend", 0) || find_type(pret, "Metaspace", 0);
        type = (spm && !bytelevel) ? DQ_TOK_SPM : DQ_TOK_BPE;
    } else {
        rc = DQ_ERR(e, DQ_EFILE, "%s: model type %s is not supported (BPE and WordPiece are)", path,
                    mtype->type == DQ_JSON_STRING ? mtype->str : "?");
        goto done;
    }
    if (!vocab || vocab->type != DQ_JSON_OBJECT || vocab->n == 0) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: model.vocab missing or empty", path);
        goto done;
    }
    if (added && added->type != DQ_JSON_ARRAY) {
        rc = DQ_ERR(e, DQ_EFILE, "%s: added_tokens is not an array", path);
        goto done;
    }
    // vocabulary size = highest id + 1; every id must be used exactly once
    int64_t maxid = -1;
    size_t text = 0;
    for (size_t i = 0; i < vocab->n; i++) {
        const dq_json *v = &vocab->items[i];
        if (v->type != DQ_JSON_NUMBER || !v->is_int || v->inum < 0 || v->inum >= (1 << 24)) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: model.vocab[\"%.64s\"]: id is not an integer in range", path,
                        vocab->keys[i]);
            goto done;
        }
        if (v->inum > maxid) maxid = v->inum;
        text += vocab->key_lens[i] + 1;
    }
    for (size_t i = 0; added && i < added->n; i++) {
        const dq_json *id = dq_json_get(&added->items[i], "id"), *c = dq_json_get(&added->items[i], "content");
        if (!id || id->type != DQ_JSON_NUMBER || !id->is_int || id->inum < 0 || id->inum >= (1 << 24) || !c ||
            c->type != DQ_JSON_STRING) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: added_tokens[%zu]: needs an integer id and a string content", path, i);
            goto done;
        }
        if (id->inum > maxid) maxid = id->inum;
        text += c->str_len + 1;
    }
    int n = (int)maxid + 1;
    if ((rc = tok_alloc(&t, n, text, path, e))) goto done;
    t->type = type;
    t->pre = type == DQ_TOK_BPE ? pre_from_json(pret) : type == DQ_TOK_WPM ? PRE_BERT : PRE_NONE;
    uint8_t *seen = calloc((size_t)n, 1);
    if (!seen) {
        rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
        goto done;
    }
    size_t used = 0;
    char buf[4 * TOK_MAX_PIECE];
    for (size_t i = 0; i < vocab->n; i++) {
        int id = (int)vocab->items[i].inum;
        const char *s = vocab->keys[i];
        size_t l = vocab->key_lens[i];
        if (seen[id]) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: model.vocab: id %d used twice", path, id);
            break;
        }
        seen[id] = 1;
        if (l > TOK_MAX_PIECE * 2) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: model.vocab: token %d: piece of %zu bytes is too long", path, id, l);
            break;
        }
        if (type == DQ_TOK_BPE) {
            size_t bl;
            if (!tok_bytelevel_unmap(s, l, buf, &bl)) {
                // not byte-level text: keep as is if it is an added token, else it is an error
                int is_added = 0;
                for (size_t k = 0; added && k < added->n && !is_added; k++)
                    is_added = dq_json_get(&added->items[k], "id")->inum == id;
                if (!is_added) {
                    rc = DQ_ERR(e, DQ_EFILE, "%s: model.vocab: token %d (\"%.64s\") is not byte-level encoded", path,
                                id, s);
                    break;
                }
                memcpy(buf, s, l);
                bl = l;
            }
            tok_set_piece(t, id, buf, bl, &used);
        } else {
            tok_set_piece(t, id, s, l, &used);
        }
    }
    for (size_t i = 0; !rc && added && i < added->n; i++) {
        const dq_json *a = &added->items[i];
        int id = (int)dq_json_get(a, "id")->inum;
        const dq_json *c = dq_json_get(a, "content");
        if (c->str_len > TOK_MAX_PIECE) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: added token %d is too long", path, id);
            break;
        }
        if (!seen[id] || t->len[id] != c->str_len || memcmp(t->blob + t->off[id], c->str, c->str_len) != 0)
            tok_set_piece(t, id, c->str, c->str_len, &used);
        seen[id] = 1;
        const dq_json *sp = dq_json_get(a, "special");
        t->attr[id] = (sp && sp->type == DQ_JSON_TRUE) ? TOKA_CONTROL : TOKA_USER;
    }
    for (int id = 0; !rc && id < n; id++)
        if (!seen[id]) rc = DQ_ERR(e, DQ_EFILE, "%s: token id %d is missing (ids must be 0..%d)", path, id, n - 1);
    free(seen);
    if (rc) goto done;
    // first pass builds the piece hash so names can be resolved
    if ((rc = tok_finalize(t, path, e))) goto done;
    const dq_json *unk = dq_json_get(model, "unk_token");
    if (unk && unk->type == DQ_JSON_STRING) {
        t->unk = tok_lookup(t, unk->str, unk->str_len);
        if (t->unk >= 0) t->attr[t->unk] = TOKA_UNKNOWN;
    }
    if (type == DQ_TOK_WPM) {
        t->cls = tok_lookup(t, "[CLS]", 5);
        t->sep = tok_lookup(t, "[SEP]", 5);
        t->pad = tok_lookup(t, "[PAD]", 5);
        const dq_json *bn = find_type(norm, "BertNormalizer", 0);
        const dq_json *lc = dq_json_get(bn, "lowercase");
        if (!bn || !lc || lc->type != DQ_JSON_FALSE) t->flags |= TOKF_LOWERCASE;
        const dq_json *mx = dq_json_get(model, "max_input_chars_per_word");
        if (mx && mx->type == DQ_JSON_NUMBER && mx->is_int && mx->inum > 0 && mx->inum < 1000000)
            t->wpm_max_chars = (int)mx->inum;
    } else {
        if (type == DQ_TOK_SPM) {
            const dq_json *ms = find_type(pret, "Metaspace", 0);
            const dq_json *ps = dq_json_get(ms, "prepend_scheme"), *ap = dq_json_get(ms, "add_prefix_space");
            int prefix = find_type(norm, "Prepend", 0) != NULL;
            if (!prefix && ms && !jstr_eq(ps, "never") && !(ap && ap->type == DQ_JSON_FALSE))
                prefix = 2;  // Metaspace adds "▁" only when the text does not start with one
            if (prefix) t->flags |= TOKF_SPACE_PREFIX;
            if (prefix == 2) t->flags |= TOKF_PREFIX_UNLESS_SPACE;
            if (prefix == 2 && jstr_eq(ps, "first")) t->flags |= TOKF_PREFIX_FIRST_ONLY;
            const dq_json *bf = dq_json_get(model, "byte_fallback");
            if (bf && bf->type == DQ_JSON_TRUE) t->flags |= TOKF_BYTE_FALLBACK;
        }
        if (find_type(norm, "NFC", 0)) t->flags |= TOKF_NFC;
        const dq_json *bl = find_type(pret, "ByteLevel", 0);
        const dq_json *aps = dq_json_get(bl, "add_prefix_space");
        if (type == DQ_TOK_BPE && aps && aps->type == DQ_JSON_TRUE) t->flags |= TOKF_SPACE_PREFIX;
        const dq_json *im = dq_json_get(model, "ignore_merges");
        if (type == DQ_TOK_BPE && im && im->type == DQ_JSON_TRUE) t->flags |= TOKF_IGNORE_MERGES;
        // BOS: the first special token of the post-processor's single template, else by name
        const dq_json *tp = find_type(dq_json_get(root, "post_processor"), "TemplateProcessing", 0);
        const dq_json *single = dq_json_get(tp, "single");
        if (single && single->type == DQ_JSON_ARRAY && single->n > 0) {
            const dq_json *st = dq_json_get(dq_json_get(&single->items[0], "SpecialToken"), "id");
            if (st && st->type == DQ_JSON_STRING) {
                t->bos = tok_lookup(t, st->str, st->str_len);
                if (t->bos >= 0) t->flags |= TOKF_ADD_BOS;
            }
        }
        static const char *const bos_names[] = {"<s>", "<|begin_of_text|>", "<|startoftext|>", NULL};
        static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>", "<|im_end|>", NULL};
        for (int k = 0; bos_names[k] && t->bos < 0; k++) t->bos = tok_lookup(t, bos_names[k], strlen(bos_names[k]));
        for (int k = 0; eos_names[k] && t->eos < 0; k++) t->eos = tok_lookup(t, eos_names[k], strlen(eos_names[k]));
        // merges: "a b" strings or ["a", "b"] pairs
        const dq_json *merges = dq_json_get(model, "merges");
        if (merges && merges->type == DQ_JSON_ARRAY && merges->n > 0) {
            if (merges->n > (1u << 24)) {
                rc = DQ_ERR(e, DQ_EFILE, "%s: too many merges", path);
                goto done;
            }
            t->m_left = malloc(merges->n * sizeof *t->m_left);
            t->m_right = malloc(merges->n * sizeof *t->m_right);
            if (!t->m_left || !t->m_right) {
                rc = DQ_ERR(e, DQ_ENOMEM, "%s: out of memory", path);
                goto done;
            }
            for (size_t r = 0; r < merges->n; r++) {
                const dq_json *m = &merges->items[r];
                const char *a, *b;
                size_t al, bl;
                if (m->type == DQ_JSON_STRING) {
                    const char *sp = memchr(m->str, ' ', m->str_len);
                    if (!sp || sp == m->str || sp + 1 == m->str + m->str_len) {
                        rc = DQ_ERR(e, DQ_EFILE, "%s: merges[%zu] is not \"left right\"", path, r);
                        goto done;
                    }
                    a = m->str, al = (size_t)(sp - m->str), b = sp + 1, bl = m->str_len - al - 1;
                } else if (m->type == DQ_JSON_ARRAY && m->n == 2 && m->items[0].type == DQ_JSON_STRING &&
                           m->items[1].type == DQ_JSON_STRING) {
                    a = m->items[0].str, al = m->items[0].str_len, b = m->items[1].str, bl = m->items[1].str_len;
                } else {
                    rc = DQ_ERR(e, DQ_EFILE, "%s: merges[%zu] is neither a string nor a pair of strings", path, r);
                    goto done;
                }
                int ids[2];
                const char *side[2] = {a, b};
                size_t sl[2] = {al, bl};
                for (int k = 0; k < 2; k++) {
                    const char *q = side[k];
                    size_t ql = sl[k];
                    size_t ml = ql;
                    if (ql > sizeof buf ||
                        (type == DQ_TOK_BPE && !tok_bytelevel_unmap(side[k], sl[k], buf, &ml))) {
                        ids[k] = -1;
                    } else {
                        if (type == DQ_TOK_BPE) q = buf;
                        ids[k] = tok_lookup(t, q, ml);
                    }
                    if (ids[k] < 0) {
                        rc = DQ_ERR(e, DQ_EFILE, "%s: merges[%zu]: \"%.*s\" is not in the vocabulary", path, r,
                                    (int)(sl[k] > 64 ? 64 : sl[k]), side[k]);
                        goto done;
                    }
                }
                t->m_left[r] = ids[0];
                t->m_right[r] = ids[1];
            }
            t->n_merges = (int)merges->n;
        } else if (type == DQ_TOK_BPE) {
            rc = DQ_ERR(e, DQ_EFILE, "%s: byte-level BPE without merges", path);
            goto done;
        }
    }
    if (type != DQ_TOK_WPM) apply_hf_configs(t, path);
    t->n_eog = 0;
    rc = tok_finalize(t, path, e);
    if (!rc && type != DQ_TOK_WPM) add_generation_eog(t, path);
done:
    dq_json_free(root);
    if (rc) {
        dq_tok_free(t);
        return rc;
    }
    *tok = t;
    return DQ_OK;
}
