// cli_tokenize.c: the `dynq tokenize` subcommand. Encodes text (from -p or stdin) with the
// tokenizer of a .dynq model, a GGUF file, a tokenizer.json, a SentencePiece .model or a
// llama2.c tokenizer.bin, and prints ids (--ids) or an id/piece table; --decode goes the
// other way. CLI code: it prints, and returns an exit status (common.h codes).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "tokenizer/tokenizer.h"

int cli_tokenize(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: dynq tokenize -m FILE [-p TEXT] [--ids] [--no-bos] [--no-eos] [--parse-special] [--vocab N]\n"
            "       dynq tokenize -m FILE --decode [-p IDS]\n"
            "  FILE: a .dynq model, a GGUF file (vocabulary-only is fine), a tokenizer.json (or its\n"
            "        directory), a SentencePiece .model or a llama2.c tokenizer.bin (--vocab N: its size;\n"
            "        default: all records)\n"
            "  Text comes from -p or standard input. --ids prints the ids on one line, otherwise a\n"
            "  table of id and piece. BOS first and EOS last are added when the vocabulary asks for\n"
            "  them (GGUF add_bos_token / add_eos_token, tokenizer_config.json); --no-bos, --no-eos:\n"
            "  do not. --parse-special: text like <|im_start|> becomes its special token.\n"
            "  --decode reads ids (space, comma or newline separated) and prints the text.\n"
            "exit status: 0 ok, 1 usage or bad --decode id, 2 unreadable or invalid FILE, 4 out of memory\n"
            "examples:\n"
            "  dynq tokenize -m kjv.dynq -p \"In the beginning\"\n"
            "  dynq tokenize -m tokenizer.json --ids --no-bos -p \"Hello world\"\n"
            "  echo \"1 299 968 261 804 268 968 293\" | dynq tokenize -m kjv.dynq --decode\n"
            "  dynq tokenize -m model.gguf --ids --parse-special -p \"<|im_start|>user\"\n");
}

static char *read_stdin(size_t *len) {
    uint8_t *b;
    return dq_read_stream(stdin, "stdin", &b, len, NULL) == DQ_OK ? (char *)b : NULL;
}

// A piece for the table: printable text as is; control bytes and bytes that are not part of
// a well-formed UTF-8 character (byte-level BPE pieces can split one) as \xNN.
static void print_piece(const char *p) {
    const unsigned char *end = (const unsigned char *)p + strlen(p);
    for (const unsigned char *u = (const unsigned char *)p; *u;) {
        size_t n = dq_utf8_len(u, (size_t)(end - u));
        if (*u == '\\') fputs("\\\\", stdout);
        else if (n == 0 || *u < 0x20 || *u == 0x7F) printf("\\x%02X", *u);
        else {
            fwrite(u, 1, n, stdout);
            u += n;
            continue;
        }
        u++;
    }
}

int cli_tokenize(int argc, char **argv) {
    const char *file = NULL, *text = NULL;
    int ids_only = 0, bos = 1, eos = 1, special = 0, decode = 0, vocab = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) file = argv[++i];
        else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && i + 1 < argc) text = argv[++i];
        else if (!strcmp(a, "--vocab") && i + 1 < argc) vocab = atoi(argv[++i]);
        else if (!strcmp(a, "--ids")) ids_only = 1;
        else if (!strcmp(a, "--no-bos")) bos = 0;
        else if (!strcmp(a, "--no-eos")) eos = 0;
        else if (!strcmp(a, "--parse-special")) special = 1;
        else if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return DQ_OK;
        } else {
            fprintf(stderr, "dynq tokenize: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return DQ_EUSAGE;
        }
    }
    if (!file) {
        fprintf(stderr, "dynq tokenize: -m FILE is required\n");
        usage(stderr);
        return DQ_EUSAGE;
    }
    dq_err e = {0};
    dq_tokenizer *tok;
    int rc = dq_tok_load(&tok, file, vocab, &e);
    if (rc) {
        fprintf(stderr, "dynq tokenize: %s\n", e.msg);
        return rc;
    }
    size_t len;
    char *buf = NULL;
    if (text) len = strlen(text);
    else {
        buf = read_stdin(&len);
        if (!buf) {
            fprintf(stderr, "dynq tokenize: out of memory reading standard input\n");
            dq_tok_free(tok);
            return DQ_ENOMEM;
        }
        text = buf;
    }
    if (decode) {
        dq_detok d;
        dq_detok_init(&d, tok);
        char out[512];
        const char *p = text, *end = text + len;
        while (p < end && !rc) {
            while (p < end && (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
            if (p >= end) break;
            char *q;
            long id = strtol(p, &q, 10);
            if (q == p || id < 0 || id >= dq_tok_n_vocab(tok)) {
                fprintf(stderr, "dynq tokenize: --decode: bad token id near \"%.20s\"\n", p);
                rc = DQ_EUSAGE;
                break;
            }
            p = q;
            fwrite(out, 1, dq_detok_push(&d, (int)id, out, sizeof out), stdout);
        }
        fwrite(out, 1, dq_detok_flush(&d, out, sizeof out), stdout);
    } else {
        int32_t *ids;
        size_t n;
        int flags = (bos && dq_tok_add_bos(tok) ? DQ_TOK_ADD_BOS : 0) | (eos && dq_tok_add_eos(tok) ? DQ_TOK_ADD_EOS : 0) |
                    (special ? DQ_TOK_PARSE_SPECIAL : 0);
        rc = dq_tok_encode(tok, text, len, flags, &ids, &n, &e);
        if (rc) fprintf(stderr, "dynq tokenize: %s\n", e.msg);
        else if (ids_only) {
            for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        } else {
            for (size_t i = 0; i < n; i++) {
                printf("%6d  ", ids[i]);
                print_piece(dq_tok_piece(tok, ids[i]));
                printf("\n");
            }
        }
        if (!rc) free(ids);
    }
    if (fflush(stdout) != 0 && !rc) {
        fprintf(stderr, "dynq tokenize: error writing output\n");
        rc = DQ_EFILE;
    }
    free(buf);
    dq_tok_free(tok);
    return rc;
}
