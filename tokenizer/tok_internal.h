// tokenizer/tok_internal.h: the tokenizer struct shared by the loaders (llama2.c .bin,
// tokenizer.json, GGUF, serialized blob) and the encoders (SPM, byte-level BPE, WordPiece).
// Not part of the public interface.
#ifndef DYNQ_TOK_INTERNAL_H
#define DYNQ_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

// Per-token attribute (what SentencePiece calls the piece type).
enum {
    TOKA_NORMAL = 0,   // ordinary piece, can be produced by merges
    TOKA_UNKNOWN = 1,  // <unk>
    TOKA_CONTROL = 2,  // <s>, </s>, <|eot_id|>: special, never produced from ordinary text
    TOKA_USER = 3,     // user-defined / non-special added token: matched whole before BPE
    TOKA_BYTE = 4,     // SPM <0xNN> byte-fallback piece
    TOKA_UNUSED = 5,
};

// Pre-tokenizer split rules of byte-level BPE families.
enum {
    PRE_NONE = 0,      // SPM / WordPiece: not used
    PRE_GPT2 = 1,      // GPT-2, also the default for unknown byte-level vocabularies
    PRE_LLAMA3 = 2,    // Llama 3
    PRE_QWEN2 = 3,
    PRE_FALCON = 4,
    PRE_DEEPSEEK_LLM = 5,
    PRE_BERT = 6,      // WordPiece basic tokenizer
    PRE_SMOLLM = 7,    // every digit (\p{N}) on its own, then GPT-2 (SmolLM, StarCoder, Command-R ...)
    PRE_COUNT
};

// Flags stored in the serialized blob.
enum {
    TOKF_ADD_BOS = 1,        // the source asks for BOS by default (dq_tok_add_bos)
    TOKF_SPACE_PREFIX = 2,   // SPM: prepend a space (add_dummy_prefix)
    TOKF_LOWERCASE = 4,      // WordPiece: lower-case + strip accents
    TOKF_BYTE_FALLBACK = 8,  // unknown characters become <0xNN> pieces
    TOKF_ADD_EOS = 16,       // the source asks for EOS at the end by default (dq_tok_add_eos)
    TOKF_REMOVE_WS = 32,     // SPM remove_extra_whitespaces: drop leading/trailing spaces, collapse runs
    TOKF_IGNORE_MERGES = 64, // byte-level BPE: a pre-token that is itself a piece is emitted whole (Llama 3)
    TOKF_NFC = 128,          // text is put in Unicode NFC first (tokenizer.json "NFC" normalizer, e.g. Qwen2)
    TOKF_PREFIX_UNLESS_SPACE = 256,  // SPM: no leading space is added to text that starts with one
                                     // (tokenizer.json Metaspace pre-tokenizer, as Hugging Face does)
    TOKF_PREFIX_FIRST_ONLY = 512,    // SPM: the leading space only at the start of the text, not after
                                     // a special token (tokenizer.json Metaspace prepend_scheme "first")
};

#define TOK_MAX_PIECE 248  // longest piece in bytes: dq_detok_push promises cap 256 suffices
#define TOK_MAX_EOG 16

struct dq_tokenizer {
    int type;      // DQ_TOK_SPM / BPE / WPM
    int pre;       // PRE_*
    int flags;     // TOKF_*
    int n_vocab;
    int bos, eos, unk, pad, sep, cls;  // -1 when absent
    char *blob;        // piece bytes, each NUL-terminated (BPE: raw bytes, not the GPT-2 unicode map)
    uint32_t *off;     // (n_vocab) offset of piece i in blob
    uint32_t *len;     // (n_vocab) byte length of piece i
    float *scores;     // (n_vocab)
    uint8_t *attr;     // (n_vocab) TOKA_*
    // piece -> id: open addressing, slots hold id+1 (0 = empty)
    int32_t *hash;
    uint32_t hmask;
    // merges (rank order): pair (left, right) -> result; n_merges == 0 means SPM score merging
    int n_merges;
    int32_t *m_left, *m_right, *m_result;
    uint64_t *mhash_key;   // pair hash: key (left<<32|right)+1, 0 = empty
    int32_t *mhash_rank;
    uint32_t mmask;
    // SPM score mode: pair (left id, right id) -> merged id, for every split of every
    // mergeable piece into two pieces; same key layout as the merge hash
    uint64_t *phash_key;
    int32_t *phash_val;
    uint32_t pmask;
    int32_t ascii_id[128];   // id of each one-byte piece (-1 if none): initial symbols
    uint8_t barrier[128];    // ASCII characters that never merge: encode splits the text there
    int split_ws;            // SPM: no piece has U+2581 after another character: split before each word
    int byte_id[256];      // SPM byte fallback / BPE single-byte token, -1 if none
    int n_eog;
    int32_t eog[TOK_MAX_EOG];
    // CONTROL and USER tokens sorted by length (longest first) for special matching
    int n_special;
    int32_t *special;
    uint8_t special_first[256];  // bit 1: a USER token starts with this byte, bit 2: a CONTROL token does
    int wpm_max_chars;     // WordPiece: longer words become [UNK]
};

// Allocates a tokenizer for n pieces (attr NORMAL, scores 0, ids unset) and a blob of blob_cap bytes.
int tok_alloc(dq_tokenizer **tok, int n, size_t blob_cap, const char *path, dq_err *e);
// Appends piece id's bytes to the blob (ids must be set in order 0..n-1).
void tok_set_piece(dq_tokenizer *t, int id, const char *s, size_t len, size_t *blob_used);
// Builds hashes, byte table, EOG and special lists; validates pieces; resolves merges given
// as (left,right) id pairs in t->m_left/m_right. Call once all pieces/attrs/merges are set.
int tok_finalize(dq_tokenizer *t, const char *path, dq_err *e);
int tok_lookup(const dq_tokenizer *t, const char *s, size_t len);  // id or -1

// Loaders (tok_hf.c, tok_gguf.c) and encoders (tok_bpe.c, tok_wpm.c).
int tok_load_hf_json(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e);
int tok_load_spmodel(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e);
int tok_is_spmodel(const uint8_t *data, size_t size);
// Reads add_dummy_prefix / remove_extra_whitespaces of a .model into *flags if it has n_vocab pieces.
int tok_spmodel_flags(const uint8_t *data, size_t size, int n_vocab, int *flags);
int tok_load_gguf(dq_tokenizer **tok, const uint8_t *data, size_t size, const char *path, dq_err *e);

// Growable id vector used by the encoders.
typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ids;
int tok_ids_push(tok_ids *a, int32_t id);

// Merge engine workspace (symbol list + candidate heap), reused across the words of one call.
typedef struct {
    void *sy;
    size_t sy_cap;
    void *heap;
    size_t heap_n, heap_cap;
    int32_t *ids;
    size_t ids_cap;
} tok_ws;
void tok_ws_free(tok_ws *w);
// Rank mode (merges list): symbols are token ids. Appends the resulting ids to out.
int tok_bpe_ranks(const dq_tokenizer *t, tok_ws *w, const int32_t *ids, size_t n, tok_ids *out);
// Byte-level BPE on one chunk of ordinary text (pre-tokenized inside).
int tok_encode_bytelevel(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out);
// Pre-tokenizer alone (for tests): byte offsets where each fragment of s[0..n) ends.
int tok_pre_split(int pre, const char *s, size_t n, size_t **ends, size_t *n_frag);
int tok_encode_wordpiece(const dq_tokenizer *t, const char *s, size_t n, tok_ids *out);

// GPT-2 byte-level mapping: piece text in the printable-unicode alphabet -> raw bytes.
// Returns 0 if some character is not in the alphabet. out needs n bytes.
int tok_bytelevel_unmap(const char *s, size_t n, char *out, size_t *out_len);
int tok_pre_from_name(const char *name);  // GGUF tokenizer.ggml.pre -> PRE_*, -1 if unknown

int tok_utf8_valid(const char *s, size_t n);

#endif
