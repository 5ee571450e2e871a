// tokenizer/tok_spmodel.c: SentencePiece .model files (a protobuf ModelProto), read with a
// minimal bounds-checked wire-format walker. Only BPE models with the identity normalizer
// are accepted (what Llama-family vocabularies use). Also reads just the normalizer flags,
// for a llama2.c tokenizer.bin that has its .model next to it.
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct {
    const uint8_t *p, *end;
} pbuf;

static int pb_varint(pbuf *b, uint64_t *v) {
    uint64_t r = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end) return 0;
        uint8_t c = *b->p++;
        r |= (uint64_t)(c & 0x7F) << s;
        if (c < 0x80) {
            *v = r;
            return 1;
        }
    }
    return 0;
}

// Next field: number, wire type, and either a varint/fixed value or a byte span.
typedef struct {
    uint32_t field, wire;
    uint64_t v;
    const uint8_t *data;
    size_t len;
} pfield;

static int pb_next(pbuf *b, pfield *f) {
    uint64_t key;
    if (!pb_varint(b, &key)) return 0;
    f->field = (uint32_t)(key >> 3);
    f->wire = (uint32_t)(key & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case 0: return pb_varint(b, &f->v);
    case 1:
        if (b->end - b->p < 8) return 0;
        f->data = b->p;
        b->p += 8;
        return 1;
    case 5:
        if (b->end - b->p < 4) return 0;
        f->data = b->p;
        b->p += 4;
        return 1;
    case 2: {
        uint64_t l;
        if (!pb_varint(b, &l) || l > (uint64_t)(b->end - b->p)) return 0;
        f->data = b->p;
        f->len = (size_t)l;
        b->p += l;
        return 1;
    }
    default: return 0;
    }
}

typedef struct {
    int add_dummy_prefix, remove_ws, escape_ws, identity, model_type, byte_fallback;
    int unk, bos, eos, pad;
} spm_spec;

static int read_specs(const uint8_t *d, size_t size, spm_spec *s, int *n_pieces) {
    *s = (spm_spec){1, 1, 1, 1, 1, 0, 0, 1, 2, -1};
    *n_pieces = 0;
    pbuf b = {d, d + size};
    pfield f;
    while (b.p < b.end) {
        if (!pb_next(&b, &f)) return 0;
        if (f.field == 1 && f.wire == 2) (*n_pieces)++;
        if (f.field == 2 && f.wire == 2) {  // TrainerSpec
            pbuf t = {f.data, f.data + f.len};
            pfield g;
            while (t.p < t.end) {
                if (!pb_next(&t, &g)) return 0;
                if (g.wire != 0) continue;
                if (g.field == 3) s->model_type = (int)g.v;
                if (g.field == 35) s->byte_fallback = (int)g.v;
                if (g.field == 40) s->unk = (int)(int64_t)g.v;
                if (g.field == 41) s->bos = (int)(int64_t)g.v;
                if (g.field == 42) s->eos = (int)(int64_t)g.v;
                if (g.field == 43) s->pad = (int)(int64_t)g.v;
            }
        }
        if (f.field == 3 && f.wire == 2) {  // NormalizerSpec
            pbuf t = {f.data, f.data + f.len};
            pfield g;
            while (t.p < t.end) {
                if (!pb_next(&t, &g)) return 0;
                if (g.field == 1 && g.wire == 2)
                    s->identity = g.len == 8 && memcmp(g.data, "identity", 8) == 0;
                if (g.field == 2 && g.wire == 2 && g.len > 0) s->identity = 0;  // a compiled charsmap
                if (g.field == 3 && g.wire == 0) s->add_dummy_prefix = (int)g.v;
                if (g.field == 4 && g.wire == 0) s->remove_ws = (int)g.v;
                if (g.field == 5 && g.wire == 0) s->escape_ws = (int)g.v;
            }
        }
    }
    return 1;
}

int tok_is_spmodel(const uint8_t *d, size_t size) {
    // field 1 (pieces), length-delimited, holding a message that starts with field 1 (piece)
    return size > 4 && d[0] == 0x0A && d[1] != 0 && (d[1] & 0x80 ? d[3] == 0x0A || d[2] == 0x0A : d[2] == 0x0A);
}

int tok_spmodel_flags(const uint8_t *d, size_t size, int n_vocab, int *flags) {
    spm_spec s;
    int np;
    if (!read_specs(d, size, &s, &np) || np != n_vocab) return 0;
    *flags &= ~(TOKF_SPACE_PREFIX | TOKF_REMOVE_WS);
    if (s.add_dummy_prefix) *flags |= TOKF_SPACE_PREFIX;
    if (s.remove_ws) *flags |= TOKF_REMOVE_WS;
    return 1;
}

int tok_load_spmodel(dq_tokenizer **tok, const uint8_t *d, size_t size, const char *path, dq_err *e) {
    *tok = NULL;
    spm_spec s;
    int n;
    if (!read_specs(d, size, &s, &n) || n == 0)
        return DQ_ERR(e, DQ_EFILE, "%s: malformed SentencePiece model (protobuf)", path);
    if (s.model_type != 2)
        return DQ_ERR(e, DQ_EFILE, "%s: SentencePiece model type %d is not supported (BPE only)", path, s.model_type);
    if (!s.identity || !s.escape_ws)
        return DQ_ERR(e, DQ_EFILE, "%s: SentencePiece normalizer is not 'identity': not supported", path);
    dq_tokenizer *t;
    int rc = tok_alloc(&t, n, size, path, e);
    if (rc) return rc;
    t->type = DQ_TOK_SPM;
    t->flags = TOKF_ADD_BOS | (s.add_dummy_prefix ? TOKF_SPACE_PREFIX : 0) | (s.remove_ws ? TOKF_REMOVE_WS : 0) |
               (s.byte_fallback ? TOKF_BYTE_FALLBACK : 0);
    pbuf b = {d, d + size};
    pfield f;
    size_t used = 0;
    int id = 0;
    while (b.p < b.end && pb_next(&b, &f)) {
        if (f.field != 1 || f.wire != 2) continue;
        pbuf p = {f.data, f.data + f.len};
        pfield g;
        const uint8_t *piece = NULL;
        size_t plen = 0;
        float score = 0;
        int type = 1;
        while (p.p < p.end) {
            if (!pb_next(&p, &g)) {
                dq_tok_free(t);
                return DQ_ERR(e, DQ_EFILE, "%s: piece %d: malformed", path, id);
            }
            if (g.field == 1 && g.wire == 2) piece = g.data, plen = g.len;
            if (g.field == 2 && g.wire == 5) {
                uint32_t u = (uint32_t)g.data[0] | (uint32_t)g.data[1] << 8 | (uint32_t)g.data[2] << 16 |
                             (uint32_t)g.data[3] << 24;
                memcpy(&score, &u, 4);
            }
            if (g.field == 3 && g.wire == 0) type = (int)g.v;
        }
        static const uint8_t type_map[7] = {0, TOKA_NORMAL, TOKA_UNKNOWN, TOKA_CONTROL, TOKA_USER, TOKA_UNUSED,
                                            TOKA_BYTE};
        if (!piece || type < 1 || type > 6) {
            dq_tok_free(t);
            return DQ_ERR(e, DQ_EFILE, "%s: piece %d: missing text or bad type %d", path, id, type);
        }
        tok_set_piece(t, id, (const char *)piece, plen, &used);
        t->scores[id] = score;
        t->attr[id] = type_map[type];
        id++;
    }
    t->unk = s.unk >= 0 && s.unk < n ? s.unk : -1;
    t->bos = s.bos >= 0 && s.bos < n ? s.bos : -1;
    t->eos = s.eos >= 0 && s.eos < n ? s.eos : -1;
    t->pad = s.pad >= 0 && s.pad < n ? s.pad : -1;
    rc = tok_finalize(t, path, e);
    if (rc) {
        dq_tok_free(t);
        return rc;
    }
    *tok = t;
    return DQ_OK;
}
