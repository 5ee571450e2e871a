// cli_chat.c: `dynq chat`, a conversation with a model at a terminal or over a pipe.
// The conversation is kept as text (system prompt, user turns) plus the answer token ids;
// the KV cache holds the rendered token sequence. Before each answer the sequence is
// rendered again and only the part that differs from what the cache holds is prefilled
// (the longest common prefix stays), so a new turn costs only its own tokens, and
// dropping old turns or changing the system prompt is the same operation: render, sync.
// CLI code: prints answers to stdout and everything else to stderr.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "ggml_like/ops.h"
#include "model.h"
#include "quant.h"
#include "sample.h"
#include "tokenizer/tokenizer.h"

int cli_chat(int argc, char **argv);
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn_threads(const char *who, int t);  // main.c

// ---------------------------------------------------------------- chat templates

// A turn renders as: close_prev + user_pre + TEXT + user_post, then the answer ids.
// close_prev (the previous answer's end-of-turn text) is left out for the first turn kept.
typedef struct chat_template {
    const char *name;
    const char *sys_pre, *sys_post;  // system block, after BOS
    const char *user_pre;            // user turn
    const char *first_pre;           // first turn with no system block (NULL: user_pre)
    const char *after_sys_pre;       // first turn right after a system block (NULL: user_pre)
    const char *user_post;           // ends the user turn and opens the assistant's
    const char *asst_end;            // closes an answer
    const char *eot;                 // end-of-turn token piece (NULL: EOS only)
} chat_template;

static const chat_template g_templates[] = {
    {"none", "", "", "", NULL, NULL, "", "", NULL},
    {"chatml", "<|im_start|>system\n", "<|im_end|>\n", "<|im_start|>user\n", NULL, NULL,
     "<|im_end|>\n<|im_start|>assistant\n", "<|im_end|>\n", "<|im_end|>"},
    {"llama3", "<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>",
     "<|start_header_id|>user<|end_header_id|>\n\n", NULL, NULL,
     "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", "<|eot_id|>"},
    // Llama 2 puts the system block inside the first [INST]; later turns start with <s>.
    {"llama2", "[INST] <<SYS>>\n", "\n<</SYS>>\n\n", "<s>[INST] ", "[INST] ", "", " [/INST]", " </s>", NULL},
    {"zephyr", "<|system|>\n", "</s>\n", "<|user|>\n", NULL, NULL, "</s>\n<|assistant|>\n", "</s>\n", NULL},
};
enum { TPL_NONE = 0 };

static const chat_template *template_find(const char *name) {
    for (size_t i = 0; i < sizeof g_templates / sizeof *g_templates; i++)
        if (!strcmp(g_templates[i].name, name)) return &g_templates[i];
    return NULL;
}

// 'auto': the family the converter stored (chat_template=NAME, from tokenizer_config.json),
// else the tokenizer's special tokens, else none (base models).
static const chat_template *template_auto(const dq_model *m) {
    char name[64];
    const chat_template *t = dq_model_meta(m, "chat_template", name, sizeof name) ? template_find(name) : NULL;
    if (t) return t;
    if (dq_model_meta(m, "chat_template", name, sizeof name))
        note("the model's chat template (%s) is not one dynq knows; guessing from its special tokens", name);
    if (dq_tok_find(m->tok, "<|im_start|>") >= 0) return template_find("chatml");
    if (dq_tok_find(m->tok, "<|start_header_id|>") >= 0) return template_find("llama3");
    if (dq_tok_find(m->tok, "[INST]") >= 0) return template_find("llama2");
    return &g_templates[TPL_NONE];
}

// ---------------------------------------------------------------- output and signals

static volatile sig_atomic_t g_interrupt = 0;
static void on_sigint(int sig) {
    (void)sig;
    g_interrupt = 1;
}

static void note(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("dynq chat: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// Writes to stdout with write(2), unbuffered: tokens appear as they come, a write cut short by
// Ctrl-C (EINTR, no SA_RESTART) goes on, and a closed pipe ends the program quietly with status 0.
static void out_write(const void *p, size_t n) {
    const char *s = p;
    while (n) {
        ssize_t k = write(1, s, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) exit(0);
            note("write error on stdout: %s", strerror(errno));
            exit(DQ_EFILE);
        }
        s += k;
        n -= (size_t)k;
    }
}
static void out_str(const char *s) { out_write(s, strlen(s)); }

// ---------------------------------------------------------------- line input

// Reads stdin with read(2) so that Ctrl-C (EINTR) is seen while waiting for a line.
typedef struct line_reader {
    char *buf;
    size_t len, cap, start;
    int eof;
} line_reader;

// Returns 1 and a NUL-terminated line (without "\n" or "\r\n") in *line, 0 at end of input,
// -1 if interrupted by SIGINT, -2 on a read error or out of memory.
static int read_line(line_reader *r, char **line) {
    for (;;) {
        char *nl = r->len > r->start ? memchr(r->buf + r->start, '\n', r->len - r->start) : NULL;
        if (nl || (r->eof && r->len > r->start)) {
            char *s = r->buf + r->start;
            size_t n = nl ? (size_t)(nl - s) : r->len - r->start;
            r->start += n + (nl != NULL);
            s[n] = 0;
            if (n && s[n - 1] == '\r') s[n - 1] = 0;
            *line = s;
            return 1;
        }
        if (r->eof) return 0;
        if (r->start > 0) {  // keep the partial line at the front
            memmove(r->buf, r->buf + r->start, r->len - r->start);
            r->len -= r->start;
            r->start = 0;
        }
        if (r->cap - r->len < 4096) {
            size_t nc = r->cap ? r->cap * 2 : 8192;
            char *nb = realloc(r->buf, nc + 1);
            if (!nb) return -2;
            r->buf = nb;
            r->cap = nc;
        }
        // Wait for input with SIGINT blocked except inside ppoll, which unblocks it atomically:
        // a Ctrl-C that lands just before the wait is seen here, not lost while read() blocks.
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, &old);
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int pr = g_interrupt ? -1 : ppoll(&pfd, 1, NULL, &old);
        int perr = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (g_interrupt) return -1;
        if (pr < 0) {
            if (perr == EINTR) continue;
            errno = perr;
            return -2;
        }
        ssize_t k = read(0, r->buf + r->len, r->cap - r->len);
        if (k < 0) {
            if (errno == EINTR) {
                if (g_interrupt) return -1;
                continue;
            }
            return -2;
        }
        if (k == 0) r->eof = 1;  // Ctrl-D at the start of a line on a tty, or the end of a pipe
        r->len += (size_t)k;
    }
}

// ---------------------------------------------------------------- conversation

typedef struct turn {
    char *text;     // what the user typed
    int32_t *ans;   // answer ids (without the end-of-turn token)
    int n_ans, cap_ans;
} turn;

typedef struct chat {
    dq_model m;
    dq_state s;
    dq_sampler smp;
    int ctx, n_gen;
    const chat_template *tpl;
    int eot_id;       // the template's end-of-turn token, or -1
    char *system;     // NULL or text
    turn *turns;
    int n_turns, cap_turns;
    int32_t *hist;    // (ctx) the tokens whose keys/values are in the cache
    int n_hist;
    int32_t *seq;     // rendered sequence (scratch)
    size_t n_seq, cap_seq;
    char *txt;        // its text (scratch; answers decoded)
    size_t n_txt, cap_txt;
    int verbose;      // --verbose-prompt
    // statistics of the last answer and the whole session
    int last_prefill, last_gen;
    double last_prefill_s, last_gen_s;
    long tot_prefill, tot_gen;
    double tot_prefill_s, tot_gen_s;
    int dropped;      // turns dropped so far
} chat;

static int seq_push(chat *c, const int32_t *ids, size_t n, dq_err *e) {
    if (c->n_seq + n > c->cap_seq) {
        size_t nc = c->cap_seq ? c->cap_seq : 1024;
        while (nc < c->n_seq + n) nc *= 2;
        int32_t *ns = realloc(c->seq, nc * sizeof *ns);
        if (!ns) return DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
        c->seq = ns;
        c->cap_seq = nc;
    }
    if (n) memcpy(c->seq + c->n_seq, ids, n * sizeof *ids);
    c->n_seq += n;
    return DQ_OK;
}

static int txt_add(chat *c, const char *s, size_t n, dq_err *e) {
    if (c->n_txt + n + 1 > c->cap_txt) {
        size_t nc = c->cap_txt ? c->cap_txt : 4096;
        while (nc < c->n_txt + n + 1) nc *= 2;
        char *nt = realloc(c->txt, nc);
        if (!nt) return DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
        c->txt = nt;
        c->cap_txt = nc;
    }
    memcpy(c->txt + c->n_txt, s, n);
    c->n_txt += n;
    c->txt[c->n_txt] = 0;
    return DQ_OK;
}
static int txt_str(chat *c, const char *s, dq_err *e) { return txt_add(c, s, strlen(s), e); }

// Encodes the text rendered since *run onto seq in one piece (special tokens parsed unless the
// template is 'none'), so its tokens are those of the template text as a whole. Template text
// that continues the sequence (after an answer) is encoded with DQ_TOK_CONTINUE: a SentencePiece
// vocabulary puts its leading space only where a text (or a segment after a special token)
// starts, never in front of text that continues an answer.
static int encode_run(chat *c, size_t *run, dq_err *e) {
    size_t n = c->n_txt - *run, n_ids;
    if (n == 0) return DQ_OK;
    const char *s = c->txt + *run;
    *run = c->n_txt;
    int none = c->tpl == &g_templates[TPL_NONE];
    int flags = none ? 0 : DQ_TOK_PARSE_SPECIAL | (c->n_seq > 1 ? DQ_TOK_CONTINUE : 0);
    int32_t *ids = NULL;
    int rc = dq_tok_encode(c->m.tok, s, n, flags, &ids, &n_ids, e);
    if (!rc && n_ids) rc = seq_push(c, ids, n_ids, e);
    free(ids);
    return rc;
}

// Renders the system block and every kept turn into c->txt (the prompt text, answers decoded)
// and c->seq (its tokens: the template text encoded run by run, the answers' own ids).
// With 'none' the system prompt and each turn are encoded on their own, each as a text start.
static int render(chat *c, dq_err *e) {
    const chat_template *t = c->tpl;
    int none = t == &g_templates[TPL_NONE];
    c->n_seq = c->n_txt = 0;
    size_t run = 0;
    int bos = dq_tok_bos(c->m.tok), rc = DQ_OK;
    if (bos >= 0) {
        int32_t b = bos;
        if ((rc = seq_push(c, &b, 1, e))) return rc;
    }
    int has_sys = c->system && *c->system;
    if (has_sys && ((rc = txt_str(c, t->sys_pre, e)) || (rc = txt_str(c, c->system, e)) ||
                    (rc = txt_str(c, t->sys_post, e)) || (none && (rc = encode_run(c, &run, e)))))
        return rc;
    for (int k = 0; k < c->n_turns; k++) {
        const turn *u = &c->turns[k];
        const char *pre = t->user_pre;
        if (k == 0 && has_sys && t->after_sys_pre) pre = t->after_sys_pre;
        if (k == 0 && !has_sys && t->first_pre) pre = t->first_pre;
        if ((k && (rc = txt_str(c, t->asst_end, e))) || (rc = txt_str(c, pre, e)) || (rc = txt_str(c, u->text, e)) ||
            (rc = txt_str(c, t->user_post, e)) || (rc = encode_run(c, &run, e)))
            return rc;
        // The answer: its ids as generated; its text (leading space kept) only for --verbose-prompt.
        dq_detok dt;
        dq_detok_init(&dt, c->m.tok);
        dt.prev = c->n_seq ? c->seq[c->n_seq - 1] : -1;
        char piece[512];
        for (int i = 0; i < u->n_ans && !rc; i++)
            rc = txt_add(c, piece, dq_detok_push(&dt, u->ans[i], piece, sizeof piece), e);
        if (rc || (rc = txt_add(c, piece, dq_detok_flush(&dt, piece, sizeof piece), e)) ||
            (rc = seq_push(c, u->ans, (size_t)u->n_ans, e)))
            return rc;
        run = c->n_txt;
    }
    return encode_run(c, &run, e);
}

// --verbose-prompt: the rendered prompt, escaped on one line, and its ids.
static void print_prompt(const chat *c, int cached) {
    fprintf(stderr, "dynq chat: prompt: %zu tokens, %d in the cache, %zu to prefill\ndynq chat: prompt text: \"",
            c->n_seq, cached, c->n_seq - (size_t)cached);
    for (size_t i = 0; i < c->n_txt; i++) {
        unsigned char ch = (unsigned char)c->txt[i];
        if (ch == '\n') fputs("\\n", stderr);
        else if (ch == '\\' || ch == '"') fprintf(stderr, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7F) fprintf(stderr, "\\x%02x", ch);
        else fputc(ch, stderr);
    }
    fputs("\"\ndynq chat: prompt ids:", stderr);
    for (size_t i = 0; i < c->n_seq; i++) fprintf(stderr, " %d", (int)c->seq[i]);
    fputc('\n', stderr);
}

// Makes the cache hold c->seq: keeps the common prefix and prefills the rest, leaving the
// logits of the last token. Counts the prefilled tokens into the statistics.
static int sync_cache(chat *c, dq_err *e) {
    int n = (int)c->n_seq;
    DQ_ASSERT(n <= c->ctx);
    int lcp = 0;
    while (lcp < n && lcp < c->n_hist && c->hist[lcp] == c->seq[lcp]) lcp++;
    if (lcp == n && n > 0) lcp = n - 1;  // nothing new: recompute the last token for its logits
    c->n_hist = lcp;
    if (c->verbose) print_prompt(c, lcp);
    if (n == 0) return DQ_OK;
    double t0 = dq_now();
    int rc = dq_forward(&c->m, &c->s, c->seq + lcp, n - lcp, lcp, DQ_LOGITS_LAST, e);
    if (rc) return rc;
    memcpy(c->hist + lcp, c->seq + lcp, (size_t)(n - lcp) * sizeof *c->hist);
    c->n_hist = n;
    double dt = dq_now() - t0;
    c->last_prefill += n - lcp;
    c->last_prefill_s += dt;
    c->tot_prefill += n - lcp;
    c->tot_prefill_s += dt;
    return DQ_OK;
}

static void turn_free(turn *u) {
    free(u->text);
    free(u->ans);
}

static void drop_turns(chat *c, int k) {
    for (int i = 0; i < k; i++) turn_free(&c->turns[i]);
    if (k < c->n_turns) memmove(c->turns, c->turns + k, (size_t)(c->n_turns - k) * sizeof *c->turns);
    c->n_turns -= k;
    c->dropped += k;
}

// Renders the conversation, dropping the oldest turns (never the last one, never the system
// prompt) until it leaves `room` free positions. Returns DQ_OK, DQ_ECTX if the last turn alone
// does not fit, or another error.
static int fit(chat *c, int room, dq_err *e) {
    int rc, k = 0;
    if ((rc = render(c, e))) return rc;
    while (c->n_seq + (size_t)room > (size_t)c->ctx && k + 1 < c->n_turns) {
        // Drop one more turn and measure again (rendering is cheap next to a prefill).
        turn *saved = c->turns;
        int n = c->n_turns;
        c->turns += k + 1;
        c->n_turns = n - k - 1;
        rc = render(c, e);
        c->turns = saved;
        c->n_turns = n;
        if (rc) return rc;
        k++;
    }
    if (k) {
        drop_turns(c, k);
        note("context full (%d tokens): dropped the %d oldest turn%s, %d kept%s", c->ctx, k, k > 1 ? "s" : "",
             c->n_turns, c->system && *c->system ? " and the system prompt" : "");
    }
    if (c->n_seq + (size_t)(room ? 1 : 0) > (size_t)c->ctx)
        return DQ_ERR(e, DQ_ECTX, "chat: %zu tokens do not fit the context of %d", c->n_seq, c->ctx);
    return DQ_OK;
}

static int ans_push(turn *u, int32_t id) {
    if (u->n_ans == u->cap_ans) {
        int nc = u->cap_ans ? u->cap_ans * 2 : 64;
        int32_t *na = realloc(u->ans, (size_t)nc * sizeof *na);
        if (!na) return DQ_ENOMEM;
        u->ans = na;
        u->cap_ans = nc;
    }
    u->ans[u->n_ans++] = id;
    return DQ_OK;
}

// One user turn: prefill it, stream the answer. Returns DQ_OK, or an error that ends the session.
static int answer(chat *c, const char *text, dq_err *e) {
    if (c->n_turns == c->cap_turns) {
        int nc = c->cap_turns ? c->cap_turns * 2 : 16;
        turn *nt = realloc(c->turns, (size_t)nc * sizeof *nt);
        if (!nt) return DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
        c->turns = nt;
        c->cap_turns = nc;
    }
    turn *u = &c->turns[c->n_turns];
    memset(u, 0, sizeof *u);
    if (!(u->text = strdup(text))) return DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
    c->n_turns++;
    c->last_prefill = c->last_gen = 0;
    c->last_prefill_s = c->last_gen_s = 0;
    // While the user was typing, the kernel may have reclaimed part of the idle model (these VMs'
    // DAMON does after about a minute): read it back now, in 2 MiB pages, rather than in small
    // ones in the middle of the answer (dq_model_refresh_pages; ~0.1 ms when nothing is missing).
    size_t reread = dq_model_refresh_pages(&c->m);
    if (c->verbose && reread) fprintf(stderr, "dynq chat: %.0f MiB of the model read again into 2 MiB pages\n", reread / 1048576.0);
    // Leave room for the answer: all of -n if possible, at least a quarter of the context.
    int room = c->n_gen < c->ctx / 4 ? c->n_gen : c->ctx / 4;
    if (room < 1) room = 1;
    int rc = fit(c, room, e);
    if (rc == DQ_ECTX) {
        note("this turn (%zu tokens with the system prompt) does not fit the context of %d tokens; not sent "
             "(use a larger -c)", c->n_seq, c->ctx);
        turn_free(&c->turns[--c->n_turns]);
        return DQ_OK;
    }
    if (rc || (rc = sync_cache(c, e))) return rc;
    if (g_interrupt) {  // Ctrl-C during the prefill: forget the turn
        turn_free(&c->turns[--c->n_turns]);
        return DQ_OK;
    }
    u = &c->turns[c->n_turns - 1];
    dq_detok dt;
    dq_detok_init(&dt, c->m.tok);
    // A continuation keeps its leading space; an assistant answer starts clean.
    if (c->tpl == &g_templates[TPL_NONE] && c->n_hist > 0) dt.prev = c->hist[c->n_hist - 1];
    char piece[512];
    double t0 = dq_now();
    int produced = 0;
    while (produced < c->n_gen && !g_interrupt) {
        int next = dq_sample(&c->smp, c->s.logits, c->hist, c->n_hist);
        if (dq_tok_is_eog(c->m.tok, next) || next == c->eot_id) break;
        if (ans_push(u, next)) return DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
        produced++;
        out_write(piece, dq_detok_push(&dt, next, piece, sizeof piece));
        if (produced == c->n_gen || g_interrupt) break;  // the last id enters the cache with the next turn
        if (c->n_hist == c->ctx) {
            // Full: drop old turns and rebuild the cache with what is kept (the answer so far included).
            if (c->n_turns < 2) {
                note("context full (%d tokens): answer stopped; /reset or a larger -c to go on", c->ctx);
                break;
            }
            u->n_ans--;  // fit() must leave room for this id too
            rc = fit(c, room, e);
            ans_push(u = &c->turns[c->n_turns - 1], next);
            if (rc == DQ_ECTX) {
                note("context full (%d tokens): answer stopped; /reset or a larger -c to go on", c->ctx);
                break;
            }
            if (rc || (rc = render(c, e)) || (rc = sync_cache(c, e))) return rc;
            continue;
        }
        if ((rc = dq_forward(&c->m, &c->s, &next, 1, c->n_hist, DQ_LOGITS_LAST, e))) return rc;
        c->hist[c->n_hist++] = next;
    }
    out_write(piece, dq_detok_flush(&dt, piece, sizeof piece));
    out_str("\n");
    double dt_s = dq_now() - t0;
    c->last_gen = produced;
    c->last_gen_s = dt_s;
    c->tot_gen += produced;
    c->tot_gen_s += dt_s;
    return DQ_OK;
}

static double rate(double n, double s) { return s > 0 ? n / s : 0.0; }

static void print_stats(const chat *c) {
    fprintf(stderr,
            "context: %d/%d tokens, %d turn%s kept, %d dropped, template %s\n"
            "last prompt: %d tokens prefilled, %.1f tok/s; last answer: %d tokens, %.1f tok/s\n"
            "session: %ld tokens prefilled, %.1f tok/s; %ld generated, %.1f tok/s (%s, %d threads)\n",
            c->n_hist, c->ctx, c->n_turns, c->n_turns == 1 ? "" : "s", c->dropped, c->tpl->name, c->last_prefill,
            rate(c->last_prefill, c->last_prefill_s), c->last_gen, rate(c->last_gen, c->last_gen_s), c->tot_prefill,
            rate((double)c->tot_prefill, c->tot_prefill_s), c->tot_gen, rate((double)c->tot_gen, c->tot_gen_s),
            dq_isa_name(dq_isa_chosen()), c->s.n_threads);
}

static const char *g_commands_help =
    "  /help          this list\n"
    "  /reset         forget the conversation (the system prompt stays)\n"
    "  /system TEXT   set the system prompt (empty: none); the conversation is kept\n"
    "  /stats         tokens in context, prompt and generation speed\n"
    "  /exit          leave (also Ctrl-D, or Ctrl-C at the prompt)\n"
    "  //TEXT         send a line that starts with '/'\n"
    "  Ctrl-C during an answer stops it and returns to the prompt.\n";

// Handles a /command. Returns 1 to exit, 0 to go on, or a negative error status.
static int command(chat *c, const char *line, dq_err *e) {
    const char *arg = line + strcspn(line, " \t");
    size_t n = (size_t)(arg - line);
    while (*arg == ' ' || *arg == '\t') arg++;
#define IS(s) (n == strlen(s) && !strncmp(line, s, n))
    if (IS("/exit") || IS("/quit")) return 1;
    if (IS("/help")) {
        fputs(g_commands_help, stderr);
    } else if (IS("/stats")) {
        print_stats(c);
    } else if (IS("/reset") || IS("/system")) {
        if (IS("/reset")) {
            drop_turns(c, c->n_turns);
            c->dropped = 0;
        } else {
            char *s = strdup(arg);
            if (!s) return -DQ_ERR(e, DQ_ENOMEM, "chat: out of memory");
            free(c->system);
            c->system = s;
        }
        int rc = fit(c, 1, e);
        if (rc == DQ_ECTX) {
            note("the system prompt does not fit the context of %d tokens; removed", c->ctx);
            free(c->system);
            c->system = NULL;
            rc = fit(c, 1, e);
        }
        if (rc || (rc = sync_cache(c, e))) return -rc;
        note("%s (%d tokens in context)", IS("/reset") ? "conversation reset" : *arg ? "system prompt set" : "system prompt removed",
             c->n_hist);
    } else {
        note("unknown command %.*s (see /help)", (int)n, line);
    }
#undef IS
    return 0;
}

// ---------------------------------------------------------------- flags and main loop

static int usage(const char *fmt, const char *arg) {
    fputs("dynq chat: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see 'dynq chat --help')\n", stderr);
    return DQ_EUSAGE;
}

// Value of a flag given as "--flag value" or "--flag=value"; NULL if argv[*i] is not that flag.
static const char *flag_value(int argc, char **argv, int *i, const char *f1, const char *f2, int *bad) {
    const char *s = argv[*i];
    for (int k = 0; k < 2; k++) {
        const char *f = k ? f2 : f1;
        if (!f) continue;
        size_t fl = strlen(f);
        if (!strncmp(s, f, fl) && s[fl] == '=') return s + fl + 1;
        if (!strcmp(s, f)) {
            if (*i + 1 >= argc) {
                usage("%s needs a value", f);
                *bad = 1;
                return NULL;
            }
            return argv[++*i];
        }
    }
    return NULL;
}

static int to_int(const char *v, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = (int)x;
    return 0;
}

static int to_float(const char *v, float *out) {
    char *end;
    float x = strtof(v, &end);
    if (end == v || *end || x != x) return -1;
    *out = x;
    return 0;
}

static void print_help(void) {
    printf("usage: dynq chat -m MODEL [--system TEXT] [--template NAME] [-n N] [-c N] [options]\n"
           "  A conversation: type a line, the answer streams back. Earlier turns stay in the KV cache;\n"
           "  only the new turn is prefilled. When the context fills, the oldest turns are dropped\n"
           "  (never the system prompt) with a notice on stderr.\n"
           "  With stdin not a terminal, every line is a user turn; the program exits at end of input.\n"
           "  --system TEXT      system prompt\n"
           "  --template T       auto (default), none, chatml, llama3, llama2, zephyr; 'none' is plain\n"
           "                     continuation (base models); auto uses the model's metadata or special tokens\n"
           "  -n N               at most N tokens per answer (default 256, at most half the context)\n"
           "  -c, --ctx N        context size (default and 0: the model's; above it: a warning)\n"
           "  -t N               threads (default: physical cores)\n"
           "  --temp T --top-k K --top-p P --min-p P --repeat-penalty R --repeat-last-n N --seed S\n"
           "  --act sym|asym|group|tensor   activation quantization (INT8 models)\n"
           "  -ctk, -ctv f32|f16|q8_0 key / value cache type (default f32; f16 halves the cache's memory, q8_0 quarters it)\n"
           "  --no-color         no colour (also when NO_COLOR is set)\n"
           "  --verbose-prompt   before each prefill, print the rendered prompt (text and ids) to stderr\n"
           "commands at the prompt:\n%s"
           "exit status: 0 ok (also Ctrl-D / Ctrl-C at the prompt), 1 usage, 2 bad model file, 4 out of memory\n"
           "examples:\n"
           "  dynq chat -m kjv.dynq --template none -n 64\n"
           "  printf 'In the beginning\\nAnd Jesus said\\n' | dynq chat -m kjv.dynq --template none -n 32 --temp 0\n",
           g_commands_help);
}

int cli_chat(int argc, char **argv) {
    const char *model = getenv("DYNQ_MODEL"), *system = NULL, *tname = "auto";
    int kty = DQ_KV_F32, vty = DQ_KV_F32;
    int n_gen = -1, ctx = 0, threads = 0, act = DQ_ACT_SYM, seed = 0, seed_set = 0, no_color = 0, verbose = 0, bad = 0;
    dq_sampler_params sp = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                            .repeat_last_n = 64};
    for (int i = 1; i < argc && !bad; i++) {
        const char *v, *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            print_help();
            return 0;
        } else if (!strcmp(s, "--no-color")) {
            no_color = 1;
        } else if (!strcmp(s, "--verbose-prompt")) {
            verbose = 1;
        } else if ((v = flag_value(argc, argv, &i, "-m", "--model", &bad))) {
            model = v;
        } else if ((v = flag_value(argc, argv, &i, "--system", NULL, &bad))) {
            system = v;
        } else if ((v = flag_value(argc, argv, &i, "--template", NULL, &bad))) {
            tname = v;
        } else if ((v = flag_value(argc, argv, &i, "-n", "--n-predict", &bad))) {
            if (to_int(v, 1, 1 << 22, &n_gen)) return usage("invalid value for -n: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "-c", "--ctx", &bad)) ||
                   (v = flag_value(argc, argv, &i, "--ctx-size", NULL, &bad))) {
            if (to_int(v, 0, 1 << 22, &ctx)) return usage("invalid value for -c: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "-t", "--threads", &bad))) {
            if (to_int(v, 1, 1024, &threads)) return usage("invalid value for -t: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--temp", NULL, &bad))) {
            if (to_float(v, &sp.temp) || sp.temp < 0) return usage("invalid value for --temp: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--top-k", NULL, &bad))) {
            if (to_int(v, 0, 1 << 24, &sp.top_k)) return usage("invalid value for --top-k: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--top-p", NULL, &bad))) {
            if (to_float(v, &sp.top_p)) return usage("invalid value for --top-p: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--min-p", NULL, &bad))) {
            if (to_float(v, &sp.min_p)) return usage("invalid value for --min-p: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--repeat-penalty", NULL, &bad))) {
            if (to_float(v, &sp.repeat_penalty) || sp.repeat_penalty <= 0)
                return usage("invalid value for --repeat-penalty: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "--repeat-last-n", NULL, &bad))) {
            if (to_int(v, -1, 1 << 22, &sp.repeat_last_n)) return usage("invalid value for --repeat-last-n: '%s'", v);
        } else if ((v = flag_value(argc, argv, &i, "-s", "--seed", &bad))) {
            if (to_int(v, 0, 0x7fffffff, &seed)) return usage("invalid value for --seed: '%s'", v);
            seed_set = 1;
        } else if ((v = flag_value(argc, argv, &i, "--act", NULL, &bad))) {
            if ((act = dq_act_parse(v)) < 0) return usage("unknown --act '%s' (sym, asym, group, tensor)", v);
        } else if ((v = flag_value(argc, argv, &i, "-ctk", "--cache-type-k", &bad))) {
            if ((kty = dq_kv_parse(v)) < 0) return usage("unknown --cache-type-k '%s' (f32, f16, q8_0)", v);
        } else if ((v = flag_value(argc, argv, &i, "-ctv", "--cache-type-v", &bad))) {
            if ((vty = dq_kv_parse(v)) < 0) return usage("unknown --cache-type-v '%s' (f32, f16, q8_0)", v);
        } else if (!bad) {
            return usage("unknown argument %s", s);
        }
    }
    if (bad) return DQ_EUSAGE;
    if (model && !*model) model = NULL;  // DYNQ_MODEL= (empty) means unset
    if (!model) return usage("%s", "no model given (-m FILE or DYNQ_MODEL)");
    if (strcmp(tname, "auto") && !template_find(tname))
        return usage("unknown --template '%s' (auto, none, chatml, llama3, llama2, zephyr)", tname);
    sp.seed = seed_set ? (uint64_t)seed + 1 : ((uint64_t)(dq_now() * 1e6) ^ ((uint64_t)getpid() << 32));

    int interactive = isatty(0);
    int show_prompt = interactive && isatty(1);
    const char *nc = getenv("NO_COLOR");
    int color = show_prompt && !no_color && !(nc && *nc);

    chat c;
    memset(&c, 0, sizeof c);
    c.verbose = verbose;
    dq_err e = {0};
    int rc = dq_kernels_init(&e);
    if (rc || (rc = dq_model_load(&c.m, model, &e))) {
        fprintf(stderr, "dynq: %s\n", e.msg);
        return rc;
    }
    c.ctx = ctx ? ctx : (int)c.m.c.ctx_len;
    c.n_gen = n_gen > 0 ? n_gen : (256 < c.ctx / 2 ? 256 : (c.ctx / 2 > 0 ? c.ctx / 2 : 1));
    c.tpl = strcmp(tname, "auto") ? template_find(tname) : template_auto(&c.m);
    c.eot_id = c.tpl->eot ? dq_tok_find(c.m.tok, c.tpl->eot) : -1;
    if (c.tpl->eot && c.eot_id < 0)
        note("warning: the tokenizer has no %s token; answers end at EOS or -n", c.tpl->eot);
    int batch = c.ctx < 256 ? c.ctx : 256;
    if (threads) cli_warn_threads("dynq chat", threads);
    if ((rc = dq_state_alloc(&c.s, &c.m, c.ctx, batch, threads ? threads : dq_physical_cores(), (dq_act_scheme)act,
                             (dq_kv_type)kty, (dq_kv_type)vty, &e)))
        goto out_model;
    if ((uint32_t)c.ctx > c.m.c.ctx_len)  // as run and logits: goes on, llama.cpp's habit
        note("warning: -c %d exceeds the context the model was trained for (%u tokens)", c.ctx, c.m.c.ctx_len);
    if (dq_sampler_init(&c.smp, (int)c.m.c.vocab, &sp)) {
        rc = DQ_ERR(&e, DQ_ENOMEM, "chat: out of memory");
        goto out_state;
    }
    if (!(c.hist = malloc((size_t)c.ctx * sizeof *c.hist))) {
        rc = DQ_ERR(&e, DQ_ENOMEM, "chat: out of memory");
        goto out_sampler;
    }
    if (system && !(c.system = strdup(system))) {
        rc = DQ_ERR(&e, DQ_ENOMEM, "chat: out of memory");
        goto out_sampler;
    }
    rc = fit(&c, 1, &e);
    if (rc == DQ_ECTX) rc = DQ_ERR(&e, DQ_ECTX, "chat: the system prompt (%zu tokens) does not fit the context of %d", c.n_seq, c.ctx);
    if (rc || (rc = sync_cache(&c, &e))) goto out_sampler;

    signal(SIGPIPE, SIG_IGN);
    if (interactive) {
        // No SA_RESTART: a read() waiting at the prompt returns EINTR.
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        fprintf(stderr, "dynq chat: %s, template %s, context %d tokens, up to %d tokens per answer\n"
                        "  /help for commands; Ctrl-C stops an answer; Ctrl-D or Ctrl-C at the prompt exits\n",
                model, c.tpl->name, c.ctx, c.n_gen);
    }
    line_reader lr = {0};
    for (;;) {
        g_interrupt = 0;  // a Ctrl-C from here on, once the prompt shows, means exit
        if (show_prompt) out_str(color ? "\033[1;32m> \033[0m\033[1m" : "> ");
        char *line;
        int r = read_line(&lr, &line);
        if (color) out_str("\033[0m");
        if (r <= 0) {
            if (show_prompt) out_str("\n");
            if (r == -2) rc = DQ_ERR(&e, DQ_EFILE, "chat: reading stdin: %s", errno ? strerror(errno) : "out of memory");
            break;
        }
        if (!*line) continue;
        if (line[0] == '/' && line[1] != '/') {
            int cr = command(&c, line, &e);
            if (cr < 0) rc = -cr;
            if (cr) break;
            continue;
        }
        if ((rc = answer(&c, line[0] == '/' ? line + 1 : line, &e))) break;
    }
    free(lr.buf);
out_sampler:
    for (int k = 0; k < c.n_turns; k++) turn_free(&c.turns[k]);
    free(c.turns);
    free(c.system);
    free(c.hist);
    free(c.seq);
    free(c.txt);
    dq_sampler_free(&c.smp);
out_state:
    dq_state_free(&c.s);
out_model:
    dq_model_free(&c.m);
    if (rc) fprintf(stderr, "dynq: %s\n", e.msg);
    return rc;
}
