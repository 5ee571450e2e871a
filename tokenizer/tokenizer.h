// tokenizer/tokenizer.h: text <-> token ids for every vocabulary family dynq reads
// (SentencePiece-style BPE, byte-level BPE, WordPiece).
#ifndef DYNQ_TOKENIZER_H
#define DYNQ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "../common.h"

typedef struct dq_tokenizer dq_tokenizer;

enum { DQ_TOK_SPM = 1, DQ_TOK_BPE = 2, DQ_TOK_WPM = 3 };

// Loads a tokenizer from a file, kind detected by content: llama2.c tokenizer.bin
// (needs n_vocab_hint > 0, the model's vocabulary size, since the file does not say it),
// Hugging Face tokenizer.json, GGUF (vocabulary-only is fine), or a .dynq model.
int dq_tok_load(dq_tokenizer **tok, const char *path, int n_vocab_hint, dq_err *e);
// The serialized form stored inside .dynq files (layout in docs/FORMAT.md).
int dq_tok_serialize(const dq_tokenizer *tok, uint8_t **buf, size_t *len, dq_err *e);
int dq_tok_deserialize(dq_tokenizer **tok, const uint8_t *buf, size_t len, const char *path, dq_err *e);
void dq_tok_free(dq_tokenizer *tok);

int dq_tok_type(const dq_tokenizer *tok);
int dq_tok_n_vocab(const dq_tokenizer *tok);
int dq_tok_bos(const dq_tokenizer *tok);  // -1 if none
int dq_tok_eos(const dq_tokenizer *tok);  // -1 if none
int dq_tok_is_eog(const dq_tokenizer *tok, int id);  // EOS or an end-of-turn token
int dq_tok_add_bos(const dq_tokenizer *tok);  // 1 if the source asks for BOS by default (and has one)
int dq_tok_add_eos(const dq_tokenizer *tok);  // 1 if the source asks for EOS at the end (GGUF add_eos_token ...)
int dq_tok_find(const dq_tokenizer *tok, const char *piece);  // id of an exact piece, or -1
const char *dq_tok_piece(const dq_tokenizer *tok, int id);    // stored piece text (for tables)

// DQ_TOK_ADD_BOS: BOS first (WordPiece: CLS first and SEP last); DQ_TOK_ADD_EOS: EOS last
// (not WordPiece). Each only if the vocabulary has that token; dq_tok_add_bos / dq_tok_add_eos
// tell whether the source asks for it. DQ_TOK_CONTINUE: the text continues earlier text (a chat
// turn after an answer), so it gets no SentencePiece leading space at its start.
enum { DQ_TOK_ADD_BOS = 1, DQ_TOK_PARSE_SPECIAL = 2, DQ_TOK_ADD_EOS = 4, DQ_TOK_CONTINUE = 8 };
// Encodes len bytes of text (any bytes; invalid UTF-8 goes through byte fallback).
// *ids is malloc'd; caller frees.
int dq_tok_encode(const dq_tokenizer *tok, const char *text, size_t len, int flags,
                  int32_t **ids, size_t *n_ids, dq_err *e);

// Streaming decoder: push ids one by one, get back bytes that end on a UTF-8
// character boundary (a character split across tokens comes out whole).
typedef struct dq_detok {
    const dq_tokenizer *tok;
    int prev;                // previous id (-1 at start)
    unsigned char pend[8];   // bytes of an incomplete UTF-8 character
    int npend;
} dq_detok;
void dq_detok_init(dq_detok *d, const dq_tokenizer *tok);
// Writes at most cap bytes to out, returns the count (cap >= 256 always suffices).
size_t dq_detok_push(dq_detok *d, int id, char *out, size_t cap);
size_t dq_detok_flush(dq_detok *d, char *out, size_t cap);  // leftover bytes at the end

#endif
