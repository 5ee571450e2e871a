// main.c: the dynq command line. Parses flags (llama.cpp's names where one exists), calls
// the library, prints results to stdout and diagnostics to stderr, and maps status codes
// to exit codes. The only file that prints errors and exits.
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "convert.h"
#include "ggml_like/ops.h"
#include "ggml_like/roofline.h"
#include "model.h"
#include "perplexity.h"
#include "quant.h"
#include "sample.h"
#include "tokenizer/tokenizer.h"

static const char *g_prog = "dynq";
static int g_quiet = 0;

// ---------------------------------------------------------------- output and errors

static int fail(const dq_err *e) {
    fprintf(stderr, "%s: %s\n", g_prog, e->msg);
    return e->code ? e->code : 1;
}

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "%s %s: ", g_prog, cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see '%s %s --help')\n", g_prog, cmd);
    return DQ_EUSAGE;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    if (g_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

// Writes to stdout; a closed pipe ends the program quietly with status 0.
static void out_write(const void *p, size_t n) {
    if (n == 0) return;
    if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0) {
        if (errno == EPIPE) exit(0);
        fprintf(stderr, "%s: write error on stdout: %s\n", g_prog, strerror(errno));
        exit(DQ_EFILE);
    }
}

// ---------------------------------------------------------------- flag parsing

typedef struct args {
    int argc, i;
    char **argv;
    const char *cmd;
    int bad;
} args;

// Value of flag argv[i] (either "--flag value" or "--flag=value").
static const char *arg_value(args *a, const char *flag) {
    const char *s = a->argv[a->i];
    size_t fl = strlen(flag);
    if (strncmp(s, flag, fl) == 0 && s[fl] == '=') return s + fl + 1;
    if (a->i + 1 >= a->argc) {
        usage_error(a->cmd, "%s needs a value", flag);
        a->bad = 1;
        return NULL;
    }
    return a->argv[++a->i];
}

static int is_flag(const args *a, const char *f1, const char *f2) {
    const char *s = a->argv[a->i];
    for (int k = 0; k < 2; k++) {
        const char *f = k ? f2 : f1;
        if (!f) continue;
        size_t fl = strlen(f);
        if (strcmp(s, f) == 0 || (strncmp(s, f, fl) == 0 && s[fl] == '=' && f[1] == '-')) return 1;
    }
    return 0;
}

static int parse_int(args *a, const char *flag, long lo, long hi, int *out) {
    const char *v = arg_value(a, flag);
    if (!v) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        usage_error(a->cmd, "invalid value for %s", flag);
        a->bad = 1;
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(args *a, const char *flag, float *out) {
    const char *v = arg_value(a, flag);
    if (!v) return -1;
    char *end;
    float x = strtof(v, &end);
    if (*end || end == v || x != x) {
        usage_error(a->cmd, "invalid value for %s", flag);
        a->bad = 1;
        return -1;
    }
    *out = x;
    return 0;
}

// Common model/session options.
typedef struct session_opts {
    const char *model;
    int ctx, threads;
    int act;
    int kty, vty;  // dq_kv_type of the key and value caches
} session_opts;

static int session_flag(args *a, session_opts *so) {
    if (is_flag(a, "-m", "--model")) {
        so->model = arg_value(a, "-m");
        return 1;
    }
    if (is_flag(a, "-c", "--ctx") || is_flag(a, "--ctx-size", NULL)) {
        parse_int(a, "--ctx", 0, 1 << 22, &so->ctx);  // 0: the model's context (llama.cpp's -c 0)
        return 1;
    }
    if (is_flag(a, "-t", "--threads")) {
        parse_int(a, "-t", 1, 1024, &so->threads);
        return 1;
    }
    int key = is_flag(a, "-ctk", "--cache-type-k");
    if (key || is_flag(a, "-ctv", "--cache-type-v")) {  // llama.cpp's KV cache types
        const char *flag = key ? "--cache-type-k" : "--cache-type-v", *v = arg_value(a, flag);
        int t = v ? dq_kv_parse(v) : 0;
        if (t < 0) {
            usage_error(a->cmd, key ? "unknown --cache-type-k '%s' (f32, f16, q8_0)" : "unknown --cache-type-v '%s' (f32, f16, q8_0)", v);
            a->bad = 1;
        } else if (v) {
            *(key ? &so->kty : &so->vty) = t;
        }
        return 1;
    }
    if (is_flag(a, "--act", NULL)) {
        const char *v = arg_value(a, "--act");
        if (v && (so->act = dq_act_parse(v)) < 0) {
            usage_error(a->cmd, "unknown --act '%s' (sym, asym, group, tensor)", v);
            a->bad = 1;
        }
        return 1;
    }
    return 0;
}

static void session_defaults(session_opts *so) {
    memset(so, 0, sizeof *so);
    so->model = getenv("DYNQ_MODEL");
    so->act = DQ_ACT_SYM;
}

// The context of a session: -c/--ctx, where 0 or no flag means the model's own context, as in
// llama.cpp (-c 0). Above the model's context, run and logits go on with a warning, as llama.cpp
// does (positions the model never saw in training; text usually degrades there); perplexity
// refuses with status 3, since its figures would not measure the model.
static int session_ctx(const session_opts *so, const dq_model *m) { return so->ctx ? so->ctx : (int)m->c.ctx_len; }

// Printed once the state is allocated, so that a refused KV cache still gives a one-line error;
// a warning, not a statistic, so --quiet does not hide it.
static void warn_ctx_above_model(const dq_model *m, int ctx) {
    if ((uint32_t)ctx > m->c.ctx_len)
        fprintf(stderr, "%s: warning: -c %d exceeds the context the model was trained for (%u tokens)\n", g_prog, ctx,
                m->c.ctx_len);
}

// More threads than CPUs only wait for each other (one stands idle whenever another holds a CPU
// it needs): honoured, as llama.cpp does, with a warning. dq_physical_cores() never exceeds them.
// who: the message's prefix (the program, or "dynq chat" for cli_chat.c, which calls this too).
void cli_warn_threads(const char *who, int t) {
    int avail = dq_cpus_available();
    if (t > avail)
        fprintf(stderr, "%s: warning: -t %d exceeds the %d CPU%s this process may run on; expect it to be slower than -t %d\n",
                who, t, avail, avail == 1 ? "" : "s", avail);
}

// -t, or the physical cores among the CPUs this process may use.
static int session_threads(const session_opts *so) {
    if (!so->threads) return dq_physical_cores();
    cli_warn_threads(g_prog, so->threads);
    return so->threads;
}

static int open_session(const session_opts *so, const char *cmd, dq_model *m, dq_state *s, int max_batch, dq_err *e) {
    if (!so->model) return DQ_ERR(e, DQ_EUSAGE, "%s: no model given (-m FILE or DYNQ_MODEL)", cmd);
    int rc = dq_kernels_init(e);
    if (rc) return rc;
    if ((rc = dq_model_load(m, so->model, e))) return rc;
    int ctx = so->ctx ? so->ctx : (int)m->c.ctx_len;
    if ((rc = dq_state_alloc(s, m, ctx, max_batch, session_threads(so),
                             (dq_act_scheme)so->act, (dq_kv_type)so->kty, (dq_kv_type)so->vty, e))) {
        dq_model_free(m);
        return rc;
    }
    return DQ_OK;
}

// ---------------------------------------------------------------- convert

static const char *g_tmp_path;  // removed on SIGINT/SIGTERM so no partial file is left
static void on_fatal_signal(int sig) {
    if (g_tmp_path) unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

// Progress of a conversion on a terminal's stderr: one line rewritten in place.
static void convert_progress(void *ud, int done, int total) {
    (void)ud;
    fprintf(stderr, "\rconverting: %d/%d tensors%s", done, total, done == total ? "\n" : "");
}

static int cmd_convert(int argc, char **argv) {
    args a = {argc, 1, argv, "convert", 0};
    dq_convert_opts o = {0};
    o.wtype = DQ_WTYPE_INT8;
    for (; a.i < argc && !a.bad; a.i++) {
        if (is_flag(&a, "-h", "--help")) {
            printf("usage: %s convert INPUT [--tokenizer FILE] [--type int8|f32] -o OUT.dynq\n"
                   "  INPUT is a llama2.c checkpoint (.bin, needs --tokenizer) or a Hugging Face Llama directory.\n"
                   "examples:\n"
                   "  %s convert stories260K.bin --tokenizer tok512.bin -o stories.dynq\n"
                   "  %s convert ./kjv-hf --type f32 -o kjv-f32.dynq\n", g_prog, g_prog, g_prog);
            return 0;
        } else if (is_flag(&a, "-o", "--output")) {
            o.out = arg_value(&a, "-o");
        } else if (is_flag(&a, "--tokenizer", NULL)) {
            o.tokenizer = arg_value(&a, "--tokenizer");
        } else if (is_flag(&a, "--type", NULL)) {
            const char *v = arg_value(&a, "--type");
            if (v && strcmp(v, "int8") == 0) o.wtype = DQ_WTYPE_INT8;
            else if (v && strcmp(v, "f32") == 0) o.wtype = DQ_WTYPE_F32;
            else if (v) return usage_error("convert", "unknown --type '%s' (int8, f32)", v);
        } else if (argv[a.i][0] == '-' && argv[a.i][1]) {
            return usage_error("convert", "unknown option %s", argv[a.i]);
        } else if (!o.input) {
            o.input = argv[a.i];
        } else {
            return usage_error("convert", "unexpected argument %s", argv[a.i]);
        }
    }
    if (a.bad) return DQ_EUSAGE;
    if (!o.input) return usage_error("convert", "%s", "no input given");
    if (!o.out) return usage_error("convert", "%s", "no output given (-o OUT.dynq)");
    size_t tl = strlen(o.out) + 32;
    char *tmp = malloc(tl);
    if (!tmp) return DQ_ENOMEM;
    snprintf(tmp, tl, "%s.tmp.%ld", o.out, (long)getpid());
    o.tmp = tmp;
    if (isatty(2) && !g_quiet) o.progress = convert_progress;
    g_tmp_path = tmp;
    signal(SIGINT, on_fatal_signal);
    signal(SIGTERM, on_fatal_signal);
    dq_err e = {0};
    double t0 = dq_now();
    int rc = dq_convert(&o, &e);
    g_tmp_path = NULL;
    free(tmp);
    if (rc) return fail(&e);
    note("%s: wrote %s (%s) in %.2f s\n", g_prog, o.out, o.wtype == DQ_WTYPE_INT8 ? "int8" : "f32", dq_now() - t0);
    return 0;
}

// ---------------------------------------------------------------- info

static const char *dtype_name(uint32_t d) {
    return d == DQ_DT_F32 ? "f32" : d == DQ_DT_I8 ? "i8" : d == DQ_DT_I8P ? "i8p" : "i32";
}

static int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int cpu = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu")) cpu = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s info [MODEL.dynq] [--cpu]\n  prints hyperparameters, tensors, provenance and the kernel path.\n"
                   "example:\n  %s info kjv.dynq\n  %s info --cpu\n", g_prog, g_prog, g_prog);
            return 0;
        } else if (!strcmp(argv[i], "-m") && i + 1 < argc) path = argv[++i];
        else if (argv[i][0] == '-') return usage_error("info", "unknown option %s", argv[i]);
        else path = argv[i];
    }
    dq_err e = {0};
    int rc = dq_kernels_init(&e);
    if (rc) return fail(&e);
    char buf[4096];
    if (cpu || !path) {
        dq_cpu_describe(buf, sizeof buf);
        printf("%s", buf);
        if (!path) return cpu ? 0 : usage_error("info", "%s", "no model given");
        printf("\n");
    }
    dq_model m;
    if ((rc = dq_model_load(&m, path, &e))) return fail(&e);
    const dq_config *c = &m.c;
    printf("model:        %s\n", path);
    printf("architecture: llama\nweights:      %s\n", c->wtype == DQ_WTYPE_INT8 ? "int8 per output row" : "f32");
    printf("dim %u, layers %u, heads %u, kv-heads %u, head dim %u, ffn %u, vocab %u, context %u\n", c->dim, c->n_layers,
           c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim, c->vocab, c->ctx_len);
    printf("rope: %s, theta %g; norm eps %g; classifier %s\n",
           c->rope_style == DQ_ROPE_INTERLEAVED ? "interleaved pairs" : "rotate-half", (double)c->rope_theta,
           (double)c->norm_eps, c->tied ? "tied to the embedding" : "separate");
    printf("tokenizer: %d tokens, bos %d, eos %d\n", dq_tok_n_vocab(m.tok), dq_tok_bos(m.tok), dq_tok_eos(m.tok));
    printf("kernels: %s\n", dq_isa_name(dq_isa_chosen()));
    printf("load: %.1f ms (preparing the kernels' row sums and scales %.1f ms", m.load_seconds * 1e3, m.repack_seconds * 1e3);
    if (m.file_reread) printf("; %.0f MiB of the file read again into 2 MiB pages", m.file_reread / 1048576.0);
    printf(")\n");
    printf("provenance:\n");
    for (const char *p = m.meta; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        printf("  %.*s\n", (int)n, p);
        p += n + (nl != NULL);
    }
    printf("tensors (%u):\n", m.n_tensors);
    uint64_t total = 0;
    for (uint32_t i = 0; i < m.n_tensors; i++) {
        const dq_tensor_info *t = &m.tensors[i];
        char shape[64];
        if (t->ndim == 2) snprintf(shape, sizeof shape, "[%llu, %llu]", (unsigned long long)t->dims[0], (unsigned long long)t->dims[1]);
        else snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)t->dims[0]);
        printf("  %-28s %-4s %-14s %12llu bytes @ %llu\n", t->name, dtype_name(t->dtype), shape,
               (unsigned long long)t->nbytes, (unsigned long long)t->offset);
        total += t->nbytes;
    }
    printf("total: %llu tensor bytes, file %zu bytes\n", (unsigned long long)total, m.size);
    dq_model_free(&m);
    return 0;
}

// ---------------------------------------------------------------- run

// Where generated text goes: straight to stdout (streamed), or into a buffer (--json).
typedef struct sink {
    int buffered;
    char *buf;
    size_t n, cap;
} sink;

static int sink_put(sink *k, const char *p, size_t n) {
    if (!k->buffered) {
        out_write(p, n);
        return 0;
    }
    if (k->n + n + 1 > k->cap) {
        size_t nc = (k->n + n + 1) * 2;
        char *nb = realloc(k->buf, nc);
        if (!nb) return -1;
        k->buf = nb;
        k->cap = nc;
    }
    memcpy(k->buf + k->n, p, n);
    k->n += n;
    k->buf[k->n] = 0;
    return 0;
}

// Writes s as a JSON string literal: control characters escaped, invalid UTF-8 bytes as U+FFFD.
static void json_string(const char *s, size_t n) {
    char tmp[16];
    out_write("\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = dq_utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0) {
            out_write("\\ufffd", 6);
            i++;
        } else if (c == '"' || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c;
            out_write(tmp, 2);
            i++;
        } else if (c < 0x20) {
            int w = c == '\n' ? snprintf(tmp, sizeof tmp, "\\n") : c == '\t' ? snprintf(tmp, sizeof tmp, "\\t")
                    : c == '\r' ? snprintf(tmp, sizeof tmp, "\\r") : snprintf(tmp, sizeof tmp, "\\u%04x", c);
            out_write(tmp, (size_t)w);
            i++;
        } else {
            out_write(s + i, len);
            i += len;
        }
    }
    out_write("\"", 1);
}

typedef struct gen_stats {
    int produced;
    double t_prompt, t_gen;
} gen_stats;

// Prefills ids from an empty cache and generates up to n_gen tokens into out; stops at an
// end-of-generation token, or (stop_nl) at the first newline, which is not emitted.
static int generate(const dq_model *m, dq_state *s, dq_sampler *smp, const int32_t *ids, size_t n_ids, int n_gen,
                    int stop_nl, sink *out, gen_stats *g, dq_err *e) {
    memset(g, 0, sizeof *g);
    int32_t *hist = malloc(sizeof *hist * (n_ids + (size_t)n_gen + 1));
    if (!hist) return DQ_ERR(e, DQ_ENOMEM, "out of memory");
    memcpy(hist, ids, n_ids * sizeof *ids);
    int n_hist = (int)n_ids, rc;
    double t0 = dq_now();
    if ((rc = dq_forward(m, s, ids, (int)n_ids, 0, DQ_LOGITS_LAST, e))) goto done;
    double t1 = dq_now();
    g->t_prompt = t1 - t0;
    dq_detok dt;
    dq_detok_init(&dt, m->tok);
    dt.prev = ids[n_ids - 1];  // a continuation keeps its leading space unless the prompt is just BOS
    char piece[512];
    for (int i = 0; i < n_gen; i++) {
        int next = dq_sample(smp, s->logits, hist, n_hist);
        if (dq_tok_is_eog(m->tok, next)) break;
        hist[n_hist++] = next;
        g->produced++;
        size_t np = dq_detok_push(&dt, next, piece, sizeof piece);
        char *nl = stop_nl ? memchr(piece, '\n', np) : NULL;
        if (nl) np = (size_t)(nl - piece);
        if (sink_put(out, piece, np)) {
            rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
            goto done;
        }
        if (nl || i + 1 == n_gen) break;
        if ((rc = dq_forward(m, s, &hist[n_hist - 1], 1, n_hist - 1, DQ_LOGITS_LAST, e))) goto done;
    }
    size_t np = dq_detok_flush(&dt, piece, sizeof piece);
    if (!stop_nl || !memchr(piece, '\n', np)) sink_put(out, piece, np);
    g->t_gen = dq_now() - t1;
done:
    free(hist);
    return rc;
}

static int cmd_run(int argc, char **argv) {
    args a = {argc, 1, argv, "run", 0};
    session_opts so;
    session_defaults(&so);
    const char *prompt = NULL;
    int n_gen = 256, echo = 0, seed_set = 0, seed = 0, lines = 0, json = 0;
    dq_sampler_params sp = {.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repeat_penalty = 1.0f,
                            .repeat_last_n = 64};
    for (; a.i < argc && !a.bad; a.i++) {
        if (session_flag(&a, &so)) continue;
        if (is_flag(&a, "-h", "--help")) {
            printf("usage: %s run -m MODEL [-p PROMPT] [-n N] [options]\n"
                   "  Without -p the prompt is all of stdin. stdout carries only the generated text.\n"
                   "  -n N               tokens to generate (default 256)\n"
                   "  -c, --ctx N        context size (default and 0: the model's; above it: a warning)\n"
                   "  -t N               threads (default: physical cores)\n"
                   "  --temp T           temperature, 0 = greedy (default 0.8)\n"
                   "  --top-k K (40) --top-p P (0.95) --min-p P (0.05) --repeat-penalty R (1.0)\n"
                   "  --repeat-last-n N (64; 0 off, -1 whole context) --seed S (default: random)\n"
                   "  --act sym|asym|group|tensor  activation quantization of INT8 models (default sym)\n"
                   "  -ctk, -ctv f32|f16|q8_0 key / value cache type (default f32; f16 halves the cache's memory and reads, q8_0 quarters them)\n"
                   "  --lines            each stdin line is an independent prompt; one output line per input\n"
                   "                     line (generation stops at the first newline)\n"
                   "  --json             with --lines: JSON Lines {\"prompt\",\"text\",\"tokens\",\"tok_per_s\"}\n"
                   "  --echo             print the prompt first;  --quiet  no statistics on stderr\n"
                   "  DYNQ_MODEL         default for -m\n"
                   "exit status: 0 ok, 1 usage, 2 bad model/input file, 3 context overflow, 4 out of memory\n"
                   "examples:\n  %s run -m kjv.dynq -p \"In the beginning\" -n 64\n"
                   "  echo \"And the LORD said\" | %s run -m kjv.dynq -n 64 --temp 0\n"
                   "  printf 'In the beginning\\nAnd God said\\n' | %s run -m kjv.dynq --lines --json -n 16\n",
                   g_prog, g_prog, g_prog, g_prog);
            return 0;
        } else if (is_flag(&a, "-p", "--prompt")) {
            prompt = arg_value(&a, "-p");
        } else if (is_flag(&a, "-n", "--n-predict")) {
            parse_int(&a, "-n", 0, 1 << 22, &n_gen);
        } else if (is_flag(&a, "--temp", NULL)) {
            parse_float(&a, "--temp", &sp.temp);
        } else if (is_flag(&a, "--top-k", NULL)) {
            parse_int(&a, "--top-k", 0, 1 << 24, &sp.top_k);
        } else if (is_flag(&a, "--top-p", NULL)) {
            parse_float(&a, "--top-p", &sp.top_p);
        } else if (is_flag(&a, "--min-p", NULL)) {
            parse_float(&a, "--min-p", &sp.min_p);
        } else if (is_flag(&a, "--repeat-penalty", NULL)) {
            parse_float(&a, "--repeat-penalty", &sp.repeat_penalty);
        } else if (is_flag(&a, "--repeat-last-n", NULL)) {
            parse_int(&a, "--repeat-last-n", -1, 1 << 22, &sp.repeat_last_n);
        } else if (is_flag(&a, "-s", "--seed")) {
            parse_int(&a, "--seed", 0, 0x7fffffff, &seed);
            seed_set = 1;
        } else if (is_flag(&a, "--echo", NULL)) {
            echo = 1;
        } else if (is_flag(&a, "--lines", NULL)) {
            lines = 1;
        } else if (is_flag(&a, "--json", NULL)) {
            json = 1;
        } else if (is_flag(&a, "--quiet", "-q")) {
            g_quiet = 1;
        } else {
            return usage_error("run", "unknown argument %s", argv[a.i]);
        }
    }
    if (a.bad) return DQ_EUSAGE;
    if (sp.temp < 0 || sp.repeat_penalty <= 0) return usage_error("run", "%s", "--temp must be >= 0 and --repeat-penalty > 0");
    if (json && !lines) return usage_error("run", "%s", "--json goes with --lines");
    if (lines && prompt) return usage_error("run", "%s", "--lines reads prompts from stdin, not -p");
    if (!so.model) return usage_error("run", "%s", "no model given (-m FILE or DYNQ_MODEL)");
    sp.seed = seed_set ? (uint64_t)seed + 1 : (uint64_t)(dq_now() * 1e6) ^ (uint64_t)getpid() << 32;
    char *text = NULL;
    size_t tlen = 0;
    if (!prompt) {
        if (isatty(0)) return usage_error("run", "%s", "no prompt: give -p TEXT or pipe text on stdin");
        dq_err re = {0};
        if (dq_read_stream(stdin, "stdin", (uint8_t **)&text, &tlen, &re)) return fail(&re);
        if (tlen == 0) {
            free(text);
            return usage_error("run", "%s", "empty prompt on stdin");
        }
        // A single trailing newline from `echo` is not part of the prompt.
        if (!lines && text[tlen - 1] == '\n') text[--tlen] = 0;
    } else {
        tlen = strlen(prompt);
    }
    const char *ptext = prompt ? prompt : text;
    dq_err e = {0};
    dq_model m;
    dq_state s;
    dq_sampler smp;
    int rc = dq_kernels_init(&e), have_state = 0, have_smp = 0;
    if (rc) goto out_text;
    if ((rc = dq_model_load(&m, so.model, &e))) goto out_text;
    int ctx = session_ctx(&so, &m);
    if ((rc = dq_state_alloc(&s, &m, ctx, ctx < 512 ? ctx : 512, session_threads(&so),
                             (dq_act_scheme)so.act, (dq_kv_type)so.kty, (dq_kv_type)so.vty, &e)))
        goto out_model;
    have_state = 1;
    warn_ctx_above_model(&m, ctx);
    if (dq_sampler_init(&smp, (int)m.c.vocab, &sp)) {
        rc = DQ_ERR(&e, DQ_ENOMEM, "out of memory");
        goto out_model;
    }
    have_smp = 1;
    signal(SIGPIPE, SIG_IGN);
    gen_stats tot = {0};
    size_t n_prompt_tok = 0;
    for (const char *p = ptext, *end = ptext + tlen; p < end || (!lines && p == end);) {
        const char *nl = lines ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        size_t len = lines ? (nl ? (size_t)(nl - p) : (size_t)(end - p)) : tlen;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if ((rc = dq_tok_encode(m.tok, p, len, dq_tok_add_bos(m.tok) ? DQ_TOK_ADD_BOS : 0, &ids, &n_ids, &e))) goto out_model;
        if (n_ids == 0 || (size_t)n_gen + n_ids > (size_t)ctx) {
            free(ids);
            rc = DQ_ERR(&e, DQ_ECTX, "prompt of %zu tokens plus -n %d exceeds the context of %d (use -c or a smaller -n)",
                        n_ids, n_gen, ctx);
            goto out_model;
        }
        sink out = {.buffered = json};
        gen_stats g;
        if (echo && !json) out_write(p, len);
        rc = generate(&m, &s, &smp, ids, n_ids, n_gen, lines, &out, &g, &e);
        free(ids);
        if (rc) {
            free(out.buf);
            goto out_model;
        }
        if (json) {
            out_write("{\"prompt\": ", 11);
            json_string(p, len);
            out_write(", \"text\": ", 10);
            json_string(out.buf ? out.buf : "", out.n);
            char tail[128];
            int w = snprintf(tail, sizeof tail, ", \"tokens\": %d, \"tok_per_s\": %.2f}\n", g.produced,
                             g.produced > 1 && g.t_gen > 0 ? (g.produced - 1) / g.t_gen : 0.0);
            out_write(tail, (size_t)w);
        } else {
            out_write("\n", 1);
        }
        free(out.buf);
        tot.produced += g.produced, tot.t_prompt += g.t_prompt, tot.t_gen += g.t_gen;
        n_prompt_tok += n_ids;
        if (!lines) break;
        p += len + 1;
    }
    note("%s: load %.1f ms | prompt %zu tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | %s, %d threads, act %s\n",
         g_prog, m.load_seconds * 1e3, n_prompt_tok, n_prompt_tok / (tot.t_prompt > 0 ? tot.t_prompt : 1e-9), tot.produced,
         tot.t_gen > 0 ? tot.produced / tot.t_gen : 0.0, dq_isa_name(dq_isa_chosen()), s.n_threads, dq_act_name(s.act));
out_model:
    if (have_smp) dq_sampler_free(&smp);
    if (have_state) dq_state_free(&s);
    dq_model_free(&m);
out_text:
    free(text);
    return rc ? fail(&e) : 0;
}

// ---------------------------------------------------------------- logits (for tests)

// Writes n floats to path; on failure removes the file.
static int write_f32(const char *path, const float *v, size_t n, dq_err *e) {
    int rc = DQ_OK;
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(v, sizeof(float), n, f) != n) rc = DQ_ERR(e, DQ_EFILE, "%s: cannot write", path);
    if (f && fclose(f) != 0 && !rc) rc = DQ_ERR(e, DQ_EFILE, "%s: cannot write", path);
    if (rc) unlink(path);
    return rc;
}

static int cmd_logits(int argc, char **argv) {
    args a = {argc, 1, argv, "logits", 0};
    session_opts so;
    session_defaults(&so);
    const char *ids_arg = NULL, *prompt = NULL, *out = NULL, *hidden_out = NULL;
    int one_by_one = 0;
    for (; a.i < argc && !a.bad; a.i++) {
        if (session_flag(&a, &so)) continue;
        if (is_flag(&a, "-h", "--help")) {
            printf("usage: %s logits -m MODEL (--ids \"1 2 3\" | -p TEXT) [--one-by-one] [--act S] [-c N] [-t N]\n"
                   "                   -o OUT.f32 [--hidden HIDDEN.f32]\n"
                   "  writes float32 logits (T, vocab) for every position: for tests and comparisons.\n"
                   "  -p TEXT is tokenized with BOS; --ids are used as given, one batch from an empty cache.\n"
                   "  --one-by-one       feed one token at a time through the KV cache instead of one batch\n"
                   "  -ctk, -ctv f32|f16|q8_0 key / value cache type (default f32; f16 halves the cache's memory and reads, q8_0 quarters them)\n"
                   "  --hidden FILE      also write float32 (layers, T, dim): the residual stream after each\n"
                   "                     block, the hidden states whose error `perplexity --ref` tabulates\n"
                   "exit status: 0 ok, 1 usage, 2 bad model/output file, 3 more tokens than the context\n"
                   "examples:\n  %s logits -m kjv.dynq -p \"In the beginning\" -o logits.f32\n"
                   "  %s logits -m kjv.dynq --ids \"1 450 29871\" --act asym -o int8.f32 --hidden int8-hidden.f32\n"
                   "  python3 -c 'import numpy; print(numpy.fromfile(\"logits.f32\", \"<f4\").reshape(-1, 1024).argmax(1))'\n",
                   g_prog, g_prog, g_prog);
            return 0;
        } else if (is_flag(&a, "--ids", NULL)) ids_arg = arg_value(&a, "--ids");
        else if (is_flag(&a, "-p", "--prompt")) prompt = arg_value(&a, "-p");
        else if (is_flag(&a, "-o", "--output")) out = arg_value(&a, "-o");
        else if (is_flag(&a, "--hidden", NULL)) hidden_out = arg_value(&a, "--hidden");
        else if (is_flag(&a, "--one-by-one", NULL)) one_by_one = 1;
        else return usage_error("logits", "unknown argument %s", argv[a.i]);
    }
    if (a.bad) return DQ_EUSAGE;
    if (!out || (!ids_arg == !prompt)) return usage_error("logits", "%s", "need -o OUT and exactly one of --ids / -p");
    dq_err e = {0};
    dq_model m;
    dq_state s;
    int rc = dq_kernels_init(&e);
    if (rc) return fail(&e);
    if (!so.model) return usage_error("logits", "%s", "no model given");
    if ((rc = dq_model_load(&m, so.model, &e))) return fail(&e);
    int32_t *ids = NULL;
    size_t n = 0;
    if (prompt) {
        rc = dq_tok_encode(m.tok, prompt, strlen(prompt), dq_tok_add_bos(m.tok) ? DQ_TOK_ADD_BOS : 0, &ids, &n, &e);
    } else {
        size_t cap = strlen(ids_arg) / 2 + 2;
        ids = malloc(cap * sizeof *ids);
        const char *p = ids_arg;
        char *end;
        while (ids && *p) {
            while (*p == ' ' || *p == ',' || *p == '\n') p++;
            if (!*p) break;
            long v = strtol(p, &end, 10);
            if (end == p || n >= cap) {
                rc = DQ_ERR(&e, DQ_EUSAGE, "logits: invalid --ids list");
                break;
            }
            ids[n++] = (int32_t)v;
            p = end;
        }
        if (!ids) rc = DQ_ERR(&e, DQ_ENOMEM, "out of memory");
    }
    int ctx = session_ctx(&so, &m);
    if (!rc && (n == 0 || n > (size_t)ctx)) rc = DQ_ERR(&e, DQ_ECTX, "logits: %zu tokens do not fit a context of %d", n, ctx);
    if (!rc) rc = dq_state_alloc(&s, &m, ctx, one_by_one ? 1 : (int)n, session_threads(&so),
                                 (dq_act_scheme)so.act, (dq_kv_type)so.kty, (dq_kv_type)so.vty, &e);
    if (rc) {
        free(ids);
        dq_model_free(&m);
        return fail(&e);
    }
    warn_ctx_above_model(&m, ctx);
    size_t V = m.c.vocab, C = m.c.dim, L = m.c.n_layers;
    float *all = malloc(n * V * sizeof(float));
    // the residual stream after each block: (L, n, C); one-by-one captures (L, 1, C) per step
    float *hid = hidden_out ? malloc(L * n * C * sizeof(float)) : NULL;
    float *step = hidden_out && one_by_one ? malloc(L * C * sizeof(float)) : NULL;
    if (!all || (hidden_out && (!hid || (one_by_one && !step)))) rc = DQ_ERR(&e, DQ_ENOMEM, "out of memory");
    if (!rc && one_by_one) {
        s.capture = step;
        for (size_t t = 0; t < n && !rc; t++) {
            rc = dq_forward(&m, &s, &ids[t], 1, (int)t, DQ_LOGITS_LAST, &e);
            memcpy(all + t * V, s.logits, V * sizeof(float));
            for (size_t l = 0; step && l < L; l++) memcpy(hid + (l * n + t) * C, step + l * C, C * sizeof(float));
        }
    } else if (!rc) {
        s.capture = hid;
        rc = dq_forward(&m, &s, ids, (int)n, 0, DQ_LOGITS_ALL, &e);
        if (!rc) memcpy(all, s.logits, n * V * sizeof(float));
    }
    s.capture = NULL;
    if (!rc) rc = write_f32(out, all, n * V, &e);
    if (!rc && hidden_out) {
        rc = write_f32(hidden_out, hid, L * n * C, &e);
        if (rc) unlink(out);
    }
    free(all), free(hid), free(step);
    free(ids);
    dq_state_free(&s);
    dq_model_free(&m);
    return rc ? fail(&e) : 0;
}


// ---------------------------------------------------------------- perplexity

static void ppl_progress(void *ud, int done, int total) {
    double *t0 = ud, el = dq_now() - *t0;
    fprintf(stderr, "\rperplexity: %d/%d windows, ETA %.0f s   ", done, total, el / done * (total - done));
    if (done == total) fprintf(stderr, "\n");
}

static int cmd_perplexity(int argc, char **argv) {
    args a = {argc, 1, argv, "perplexity", 0};
    session_opts so;
    session_defaults(&so);
    const char *file = NULL, *refpath = NULL;
    int json = 0, chunks = 0, stride = -1;
    float max_dppl = NAN, max_kld = NAN, min_top1 = NAN;  // NAN: no gate (any number is a bound, even < 0)
    dq_ppl_opts po = {0};
    for (; a.i < argc && !a.bad; a.i++) {
        if (session_flag(&a, &so)) continue;
        if (is_flag(&a, "-h", "--help")) {
            printf("usage: %s perplexity -m MODEL -f TEXT [--ctx N] [--chunks N] [--method chunks|sliding --stride S]\n"
                   "                       [-t N] [--act S] [--json] [--ref REF.dynq] [gates]\n"
                   "  chunks (default): llama.cpp's method; sliding: Hugging Face's strided windows.\n"
                   "  -c, --ctx N        window length (default and 0: the model's context; above it: exit 3)\n"
                   "  --ref REF          run REF (e.g. the FP32 model) on the same tokens in the same pass:\n"
                   "                     delta PPL, PPL ratio, KL divergence, top-1 agreement, per-layer error\n"
                   "  gates (need --ref): --max-delta-ppl PCT  --max-kld X  --min-top1 F (fraction 0..1)\n"
                   "  -ctk, -ctv f32|f16|q8_0 key / value cache type (default f32; f16 halves the cache's memory and reads, q8_0 quarters them)\n"
                   "exit status: 0 ok, 1 usage, 2 bad file, 3 --ctx above the model's context,\n"
                   "             5 a quality gate was not met (figures still printed)\n"
                   "examples:\n  %s perplexity -m kjv.dynq -f kjv-eval.txt --ctx 256\n"
                   "  %s perplexity -m kjv.dynq --ref kjv-f32.dynq -f kjv-eval.txt --max-delta-ppl 1 --min-top1 0.97\n",
                   g_prog, g_prog, g_prog);
            return 0;
        } else if (is_flag(&a, "-f", "--file")) file = arg_value(&a, "-f");
        else if (is_flag(&a, "--ref", NULL)) refpath = arg_value(&a, "--ref");
        else if (is_flag(&a, "--json", NULL)) json = 1;
        else if (is_flag(&a, "--chunks", NULL)) parse_int(&a, "--chunks", 1, 1 << 30, &chunks);
        else if (is_flag(&a, "--stride", NULL)) parse_int(&a, "--stride", 1, 1 << 22, &stride);
        else if (is_flag(&a, "--method", NULL)) {
            const char *v = arg_value(&a, "--method");
            if (v && !strcmp(v, "chunks")) po.method = DQ_PPL_CHUNKS;
            else if (v && !strcmp(v, "sliding")) po.method = DQ_PPL_SLIDING;
            else if (v) return usage_error("perplexity", "unknown --method '%s' (chunks, sliding)", v);
        } else if (is_flag(&a, "--max-delta-ppl", NULL)) parse_float(&a, "--max-delta-ppl", &max_dppl);
        else if (is_flag(&a, "--max-kld", NULL)) parse_float(&a, "--max-kld", &max_kld);
        else if (is_flag(&a, "--min-top1", NULL)) parse_float(&a, "--min-top1", &min_top1);
        else if (is_flag(&a, "--quiet", "-q")) g_quiet = 1;
        else return usage_error("perplexity", "unknown argument %s", argv[a.i]);
    }
    if (a.bad) return DQ_EUSAGE;
    if (!file) return usage_error("perplexity", "%s", "no text given (-f FILE)");
    int gated = !isnan(max_dppl) || !isnan(max_kld) || !isnan(min_top1);
    if (!refpath && gated)
        return usage_error("perplexity", "%s", "quality gates need --ref");
    dq_err e = {0};
    uint8_t *text;
    size_t tlen;
    int rc = dq_read_file(file, &text, &tlen, &e);
    if (rc) return fail(&e);
    if (tlen == 0) {
        free(text);
        DQ_ERR(&e, DQ_EFILE, "%s: empty text", file);
        return fail(&e);
    }
    dq_model m, rm;
    dq_state s, rs;
    int have_ref = 0;
    if ((rc = dq_kernels_init(&e))) goto out_text;
    if (!so.model) {
        free(text);
        return usage_error("perplexity", "%s", "no model given (-m FILE or DYNQ_MODEL)");
    }
    if ((rc = dq_model_load(&m, so.model, &e))) goto out_text;
    po.ctx = session_ctx(&so, &m);
    if ((uint32_t)po.ctx > m.c.ctx_len) {
        rc = DQ_ERR(&e, DQ_ECTX, "--ctx %d exceeds the context of %s (%u tokens)", po.ctx, so.model, m.c.ctx_len);
        goto out_model;
    }
    po.stride = stride > 0 ? stride : po.ctx / 2;
    po.max_chunks = chunks;
    int threads = session_threads(&so);
    if ((rc = dq_state_alloc(&s, &m, po.ctx, po.ctx, threads, (dq_act_scheme)so.act, (dq_kv_type)so.kty, (dq_kv_type)so.vty, &e))) goto out_model;
    if (refpath) {
        if ((rc = dq_model_load(&rm, refpath, &e))) goto out_state;
        have_ref = 1;
        if (rm.c.vocab != m.c.vocab) {
            rc = DQ_ERR(&e, DQ_EUSAGE, "%s has a vocabulary of %u but %s has %u: cannot compare", refpath, rm.c.vocab,
                        so.model, m.c.vocab);
            goto out_ref;
        }
        if (po.ctx > (int)rm.c.ctx_len) {
            rc = DQ_ERR(&e, DQ_ECTX, "--ctx %d exceeds the context of %s (%u)", po.ctx, refpath, rm.c.ctx_len);
            goto out_ref;
        }
        if ((rc = dq_state_alloc(&rs, &rm, po.ctx, po.ctx, threads, (dq_act_scheme)so.act, (dq_kv_type)so.kty, (dq_kv_type)so.vty, &e))) goto out_ref;
        have_ref = 2;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if ((rc = dq_tok_encode(m.tok, (const char *)text, tlen, DQ_TOK_ADD_BOS, &ids, &n, &e))) goto out_ref;
    double t0 = dq_now();
    if (isatty(2) && !g_quiet) {
        po.progress = ppl_progress;
        po.progress_ud = &t0;
    }
    dq_ppl_result r;
    rc = dq_perplexity(&m, &s, have_ref ? &rm : NULL, have_ref ? &rs : NULL, ids, n, &po, &r, &e);
    free(ids);
    if (rc) goto out_ref;
    double secs = dq_now() - t0;
    const char *meth = po.method == DQ_PPL_CHUNKS ? "chunks" : "sliding";
    int gate_fail = 0;
    double dpct = have_ref ? 100.0 * (r.ppl / r.ref_ppl - 1.0) : 0.0;
    if (have_ref) {
        if (!isnan(max_dppl) && !(dpct <= max_dppl)) gate_fail = 1;
        if (!isnan(max_kld) && !(r.kld_mean <= max_kld)) gate_fail = 1;
        if (!isnan(min_top1) && !(r.top1_agree >= min_top1)) gate_fail = 1;
    }
    if (json) {
        // paths are JSON strings (quotes, backslashes and control characters escaped); every
        // figure carries 10 significant digits, enough for the tests' 1e-6 comparisons
        printf("{\"model\": ");
        json_string(so.model, strlen(so.model));
        printf(", \"method\": \"%s\", \"ctx\": %d, \"n_windows\": %d, \"n_tokens\": %ld, "
               "\"nll_sum\": %.17g, \"ppl\": %.10g, \"ppl_stderr\": %.10g, \"act\": \"%s\", \"threads\": %d, \"seconds\": %.3f",
               meth, po.ctx, r.n_windows, r.n_tokens, r.nll_sum, r.ppl, r.ppl_stderr, dq_act_name(s.act), s.n_threads, secs);
        printf(", \"cache_type_k\": \"%s\", \"cache_type_v\": \"%s\"", dq_kv_name(s.kty), dq_kv_name(s.vty));
        if (po.method == DQ_PPL_SLIDING) printf(", \"stride\": %d", po.stride);
        if (r.has_ref) {
            printf(", \"ref\": ");
            json_string(refpath, strlen(refpath));
            printf(", \"ref_ppl\": %.10g, \"ref_ppl_stderr\": %.10g, \"ref_nll_sum\": %.17g, "
                   "\"delta_ppl\": %.10g, \"delta_ppl_pct\": %.10g, \"delta_ppl_ci95\": %.10g, \"ppl_ratio\": %.10g, "
                   "\"ppl_ratio_ci95\": [%.10g, %.10g], \"kld_mean\": %.10g, \"kld_median\": %.10g, \"kld_p99\": %.10g, "
                   "\"kld_max\": %.10g, \"top1_agree\": %.10g, \"layers\": [",
                   r.ref_ppl, r.ref_ppl_stderr, r.ref_nll_sum, r.delta_ppl, dpct, r.delta_ppl_ci95, r.ppl_ratio,
                   r.ppl_ratio_lo, r.ppl_ratio_hi, r.kld_mean, r.kld_median, r.kld_p99, r.kld_max, r.top1_agree);
            for (int l = 0; l < r.n_layers; l++) printf("%s%.10g", l ? ", " : "", r.layer_rel_rms[l]);
            printf("], \"gate_passed\": %s", gate_fail ? "false" : "true");
        }
        printf("}\n");
    } else {
        printf("perplexity of %s (%s, act %s)\n", so.model, m.c.wtype == DQ_WTYPE_INT8 ? "int8" : "f32", dq_act_name(s.act));
        printf("  method %s, ctx %d, %d windows, %ld tokens scored, %.1f s\n", meth, po.ctx, r.n_windows, r.n_tokens, secs);
        printf("  PPL = %.4f +/- %.4f\n", r.ppl, r.ppl_stderr);
        if (r.has_ref) {
            printf("reference %s\n  PPL = %.4f +/- %.4f\n", refpath, r.ref_ppl, r.ref_ppl_stderr);
            printf("  delta PPL = %+.4f +/- %.4f (95%%), %+.3f %%\n", r.delta_ppl, r.delta_ppl_ci95, dpct);
            printf("  PPL ratio = %.5f  [%.5f, %.5f] (95%%)\n", r.ppl_ratio, r.ppl_ratio_lo, r.ppl_ratio_hi);
            printf("  KL divergence: mean %.6f  median %.6f  p99 %.6f  max %.6f\n", r.kld_mean, r.kld_median, r.kld_p99,
                   r.kld_max);
            printf("  top-1 agreement: %.3f %%\n", 100.0 * r.top1_agree);
            printf("  layer  RMS relative error of the block output\n");
            for (int l = 0; l < r.n_layers; l++) printf("  %5d  %.6f\n", l, r.layer_rel_rms[l]);
            if (gated) printf("quality gate: %s\n", gate_fail ? "FAILED" : "passed");
        }
    }
    fflush(stdout);
    dq_ppl_result_free(&r);
    if (gate_fail) {
        rc = DQ_ERR(&e, DQ_EGATE, "quality gate not met (see the figures above)");
    }
out_ref:
    if (have_ref == 2) dq_state_free(&rs);
    if (have_ref) dq_model_free(&rm);
out_state:
    dq_state_free(&s);
out_model:
    dq_model_free(&m);
out_text:
    free(text);
    return rc ? fail(&e) : 0;
}


// ---------------------------------------------------------------- bench

// dq_pool_times as shares of the wall time: the workers' mean time running slots, the caller's
// outside parallel jobs, waiting at their ends, backed off, off its CPU; all -1 with one thread.
static void times_shares(const dq_pool_times *t, int threads, double f[5]) {
    const int mt = threads > 1 && t->wall > 0;
    f[0] = mt ? t->worker_busy / (t->wall * (threads - 1)) : -1;
    f[1] = mt ? t->outside / t->wall : -1;
    f[2] = mt ? t->wait / t->wall : -1;
    f[3] = mt ? t->alone / t->wall : -1;
    f[4] = mt ? t->off_cpu / t->wall : -1;
}

static int cmd_bench(int argc, char **argv) {
    args a = {argc, 1, argv, "bench", 0};
    session_opts so;
    session_defaults(&so);
    int n_pp = 128, n_tg = 64, depth = 0, reps = 5, json = 0, roofline = 0;
    const char *tlist = NULL;
    for (; a.i < argc && !a.bad; a.i++) {
        if (is_flag(&a, "-t", "--threads")) {
            tlist = arg_value(&a, "-t");
            continue;
        }
        if (session_flag(&a, &so)) continue;
        if (is_flag(&a, "-h", "--help")) {
            printf("usage: %s bench -m MODEL [-p 128] [-n 64] [-d 0] [-t 1,2] [-r REPS] [--json] [--roofline] [--act S]\n"
                   "  prompt processing (one batched prefill of -p tokens) and generation (-n tokens one at a\n"
                   "  time) in tokens/s, median of -r repetitions. As in llama-bench, both start from a cache\n"
                   "  holding -d tokens (default 0: generation from an empty cache, not after the prompt),\n"
                   "  filled untimed before each repetition. tg GB/s = weight bytes streamed per second,\n"
                   "  pp GOPS = 2 x multiply-adds per second. --roofline also measures this machine's read\n"
                   "  bandwidth and int8 dot-product peak and prints the fraction reached, and the prefill's\n"
                   "  roofline: the most -p tokens allow, min(peak, every weight read once at that bandwidth).\n"
                   "  -ctk, -ctv f32|f16|q8_0 key / value cache type (default f32; f16 halves the cache's memory and reads, q8_0 quarters them)\n"
                   "example:\n  %s bench -m stories110M.dynq -p 128 -n 64 -t 1,2 --roofline\n", g_prog, g_prog);
            return 0;
        } else if (is_flag(&a, "-p", "--n-prompt")) parse_int(&a, "-p", 1, 1 << 16, &n_pp);
        else if (is_flag(&a, "-n", "--n-gen")) parse_int(&a, "-n", 1, 1 << 16, &n_tg);
        else if (is_flag(&a, "-d", "--n-depth")) parse_int(&a, "-d", 0, 1 << 16, &depth);
        else if (is_flag(&a, "-r", "--repetitions")) parse_int(&a, "-r", 1, 1000, &reps);
        else if (is_flag(&a, "--json", NULL)) json = 1;
        else if (is_flag(&a, "--roofline", NULL)) roofline = 1;
        else return usage_error("bench", "unknown argument %s", argv[a.i]);
    }
    if (a.bad) return DQ_EUSAGE;
    int threads[16], nthr = 0;
    if (tlist) {
        for (const char *p = tlist; *p && nthr < 16;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > 1024) return usage_error("bench", "invalid -t list '%s'", tlist);
            threads[nthr++] = (int)v;
            cli_warn_threads(g_prog, (int)v);
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') return usage_error("bench", "invalid -t list '%s'", tlist);
        }
    } else {
        threads[nthr++] = dq_physical_cores();
    }
    dq_err e = {0};
    if (!so.model) return usage_error("bench", "%s", "no model given (-m FILE or DYNQ_MODEL)");
    // prompt at positions depth .. depth + n_pp - 1, generation at depth .. depth + n_tg - 1
    const int span = depth + (n_pp > n_tg ? n_pp : n_tg);
    so.ctx = span;
    int rc = 0;
    for (int ti = 0; ti < nthr; ti++) {
        dq_model m;
        dq_state s;
        so.threads = threads[ti];
        if ((rc = open_session(&so, "bench", &m, &s, n_pp, &e))) return fail(&e);
        if (span > (int)m.c.ctx_len) note("%s: note: -d + -p or -d + -n exceeds the model's trained context; timing only\n", g_prog);
        const int n_toks = depth + n_pp + n_tg;
        int32_t *toks = malloc(sizeof *toks * (size_t)n_toks);
        double *pp = malloc(sizeof(double) * (size_t)reps), *tg = malloc(sizeof(double) * (size_t)reps);
        if (!toks || !pp || !tg) {
            free(toks), free(pp), free(tg);
            dq_state_free(&s), dq_model_free(&m);
            DQ_ERR(&e, DQ_ENOMEM, "out of memory");
            return fail(&e);
        }
        uint64_t st = 88172645463325252ULL;
        for (int i = 0; i < n_toks; i++) {
            st ^= st << 13, st ^= st >> 7, st ^= st << 17;
            toks[i] = (int32_t)(st % m.c.vocab);
        }
        const dq_config *c = &m.c;
        double layer_params = (double)c->n_layers * ((double)c->dim * c->n_heads * c->head_dim * 2 +
                                                     (double)c->dim * c->n_kv_heads * c->head_dim * 2 +
                                                     3.0 * c->dim * c->ffn_dim);
        double cls_params = (double)c->vocab * c->dim;
        // giga-operations of one prompt pass: 2 per multiply-add, n_pp per layer weight, one per
        // classifier weight (the last token's logits only)
        const double pp_ops = 2.0 * (layer_params * n_pp + cls_params) / 1e9;
        double wbytes = (double)dq_model_weight_bytes(&m);
        // --roofline: a read pass and an int8 peak pass after each repetition, each repetition's
        // fractions from the pair (the host's speed drifts; two figures taken together drift alike)
        dq_read_probe *probe = NULL;
        int64_t peak_iters = 0;
        // pair: [0, reps) tg / read, [reps, 2 reps) pp / peak, [2 reps, 3 reps) tg / the read of
        // one loop form (below), then each repetition's DQ_READ_VARIANTS read passes
        double *pair = roofline ? malloc(sizeof(double) * (3 + DQ_READ_VARIANTS) * (size_t)reps) : NULL;
        double *vread = pair ? pair + 3 * (size_t)reps : NULL;
        int nvar = 0;
        if (roofline && (!pair || dq_read_probe_new(&probe, wbytes > (double)(64 << 20) ? (size_t)wbytes : (size_t)64 << 20))) {
            free(toks), free(pp), free(tg), free(pair);
            dq_state_free(&s), dq_model_free(&m);
            DQ_ERR(&e, DQ_ENOMEM, "out of memory for the read-bandwidth buffer");
            return fail(&e);
        }
        if (roofline) dq_roofline_int8_gops_passes(s.pool, NULL, &peak_iters, 0);  // finds the loop length
        // One warm-up round (page cache, the mapping's page tables, thread start-up), then the timed ones.
        // The depth tokens fill positions 0 .. depth - 1, untimed; the prompt and then the generated
        // tokens each start at position depth (a position's keys and values are rewritten when it is
        // run again, and attention at position p reads positions 0 .. p only), so generation runs
        // over a cache of depth tokens, as llama-bench's tg does, not over depth + the prompt.
        const int32_t *pp_toks = toks + depth, *tg_toks = toks + depth + n_pp;
        dq_pool_times ppt = {0}, tgt = {0}, skip = {0};  // where the threads' time goes (timed repetitions)
        for (int r = -1; r < reps && !rc; r++) {
            if ((rc = dq_forward(&m, &s, toks, depth, 0, DQ_LOGITS_NONE, &e))) break;  // in batches of -p
            dq_pool_times_begin(s.pool);
            double t0 = dq_now();
            rc = dq_forward(&m, &s, pp_toks, n_pp, depth, DQ_LOGITS_LAST, &e);
            double t1 = dq_now();
            dq_pool_times_end(s.pool, r < 0 ? &skip : &ppt);
            dq_pool_times_begin(s.pool);
            for (int i = 0; i < n_tg && !rc; i++) rc = dq_forward(&m, &s, &tg_toks[i], 1, depth + i, DQ_LOGITS_LAST, &e);
            double t2 = dq_now();
            dq_pool_times_end(s.pool, r < 0 ? &skip : &tgt);
            if (r < 0) continue;
            pp[r] = n_pp / (t1 - t0), tg[r] = n_tg / (t2 - t1);
            if (roofline) {
                double *g = vread + (size_t)r * DQ_READ_VARIANTS, best = 0;
                nvar = dq_read_probe_passes(probe, s.pool, g);
                for (int v = 0; v < nvar; v++) best = g[v] > best ? g[v] : best;
                pair[r] = wbytes * tg[r] / 1e9 / best;
                pair[reps + r] = pp_ops * (pp[r] / n_pp) /
                                 dq_roofline_int8_gops_passes(s.pool, NULL, &peak_iters, 1);
            }
        }
        if (!rc) {
            // The paired read is the best of its loop forms in each pass, the generation one run: on
            // a host whose bandwidth jumps from pass to pass that maximum sits above a typical pass.
            // tg_form pairs each repetition with one loop form instead, the one whose passes read the
            // most by median over the repetitions (like against like; docs/PERFORMANCE.md). Before the
            // medians below, which sort tg.
            double tg_form = 0;
            if (roofline) {
                double *col = pair + 2 * reps, best_med = -1;  // scratch until the ratios go there
                int form = 0;
                for (int v = 0; v < nvar; v++) {
                    for (int r = 0; r < reps; r++) col[r] = vread[(size_t)r * DQ_READ_VARIANTS + v];
                    const double med = dq_median(col, (size_t)reps);
                    if (med > best_med) best_med = med, form = v;
                }
                for (int r = 0; r < reps; r++)
                    pair[2 * reps + r] = wbytes * tg[r] / 1e9 / vread[(size_t)r * DQ_READ_VARIANTS + form];
                tg_form = dq_median(pair + 2 * reps, (size_t)reps);
            }
            double pps = dq_median(pp, (size_t)reps), tgs = dq_median(tg, (size_t)reps);
            double pp_gops = pp_ops * (pps / n_pp);
            double tg_gbps = wbytes * tgs / 1e9;
            double tg_pair = roofline ? dq_median(pair, (size_t)reps) : 0, pp_pair = roofline ? dq_median(pair + reps, (size_t)reps) : 0;
            // what a generated token also reads: the key and value caches of every layer up to its
            // position (positions depth .. depth + n_tg - 1, so on average depth + (n_tg + 1) / 2)
            double kv_bytes = (double)(dq_kv_row_bytes(s.kty, (int)c->head_dim) + dq_kv_row_bytes(s.vty, (int)c->head_dim)) *
                              c->n_layers * c->n_kv_heads * (depth + (n_tg + 1) / 2.0);
            double tg_all_gbps = (wbytes + kv_bytes) * tgs / 1e9;
            double read_gbps = 0, read_big_gbps = 0, peak = 0, roof = 0;
            if (roofline) {
                dq_isa measured;
                // a buffer the size of the weights: on a CPU whose last-level cache holds part of them,
                // decode reads that part from the cache too; and, for weights under 512 MiB, 512 MiB
                // (memory alone, as far as the caches go)
                read_gbps = dq_read_probe_gbps(probe, s.pool, 3);
                read_big_gbps = wbytes < (double)(512 << 20) ? dq_roofline_read_gbps(s.pool, 0) : read_gbps;
                peak = dq_roofline_int8_gops(s.pool, &measured);
                // The prompt pass reads every weight at least once: it takes at least the longer of
                // its operations at the peak and its weight bytes at the read bandwidth. That bound,
                // as GOPS, is the most this prompt length allows; with fewer than about peak / read
                // operations per weight byte it is the bandwidth, not the peak (docs/PERFORMANCE.md).
                const double sec_peak = pp_ops / peak, sec_read = wbytes / 1e9 / read_gbps;
                roof = pp_ops / (sec_peak > sec_read ? sec_peak : sec_read);
            }
            const char *isa = dq_isa_name(dq_isa_chosen());
            const double huge = dq_map_huge_fraction(m.map, m.size);  // after the runs touched every weight
            const double kv_huge = dq_state_kv_huge_fraction(&s);
            if (json) {
                printf("{\"model\": ");
                json_string(so.model, strlen(so.model));
                printf(", \"wtype\": \"%s\", \"isa\": \"%s\", \"threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, \"n_depth\": %d, "
                       "\"reps\": %d, \"pp_tok_s\": %.2f, \"tg_tok_s\": %.2f, \"tg_gbps\": %.3f, \"tg_kv_gbps\": %.3f, "
                       "\"pp_gops\": %.2f, \"weight_bytes\": %.0f, \"tg_kv_bytes\": %.0f, \"load_ms\": %.1f, \"pool_stalls\": %ld, "
                       "\"pool_backoffs\": %ld, \"cache_type_k\": \"%s\", \"cache_type_v\": \"%s\", \"file_2m_fraction\": %.3f, "
                       "\"kv_2m_fraction\": %.3f, \"file_reread_bytes\": %zu",
                       c->wtype == DQ_WTYPE_INT8 ? "int8" : "f32", isa, s.n_threads, n_pp, n_tg, depth, reps, pps, tgs,
                       tg_gbps, tg_all_gbps, pp_gops, wbytes, kv_bytes, m.load_seconds * 1e3, dq_pool_stalls(s.pool),
                       dq_pool_backoffs(s.pool), dq_kv_name(s.kty), dq_kv_name(s.vty), huge, kv_huge, m.file_reread);
                for (int i = 0; i < 2; i++) {  // the threads' time (dq_pool_times), -1 with one thread
                    double f[5];
                    times_shares(i ? &tgt : &ppt, s.n_threads, f);
                    const char *ph = i ? "tg" : "pp";
                    printf(", \"%s_workers_busy\": %.4f, \"%s_caller_outside\": %.4f, \"%s_caller_wait\": %.4f, "
                           "\"%s_caller_alone\": %.4f, \"%s_caller_off_cpu\": %.4f",
                           ph, f[0], ph, f[1], ph, f[2], ph, f[3], ph, f[4]);
                }
                if (roofline)
                    printf(", \"read_gbps\": %.3f, \"read_512mib_gbps\": %.3f, \"int8_peak_gops\": %.2f, "
                           "\"tg_bw_fraction\": %.4f, \"pp_peak_fraction\": %.4f, \"tg_bw_fraction_paired\": %.4f, "
                           "\"pp_peak_fraction_paired\": %.4f, \"pp_roofline_gops\": %.2f, \"pp_roofline_fraction\": %.4f, "
                           "\"tg_bw_fraction_paired_form\": %.4f",
                           read_gbps, read_big_gbps, peak, tg_gbps / read_gbps, pp_gops / peak, tg_pair, pp_pair, roof,
                           pp_gops / roof, tg_form);
                printf("}\n");
            } else {
                char hbuf[64], kbuf[48];
                if (huge < 0) snprintf(hbuf, sizeof hbuf, "unknown");
                else if (m.file_reread) snprintf(hbuf, sizeof hbuf, "%.0f %% (%.0f MiB read again)", 100 * huge, m.file_reread / 1048576.0);
                else snprintf(hbuf, sizeof hbuf, "%.0f %%", 100 * huge);
                if (kv_huge < 0) snprintf(kbuf, sizeof kbuf, "unknown or under 2 MiB");
                else snprintf(kbuf, sizeof kbuf, "%.0f %%", 100 * kv_huge);
                char dbuf[24] = "";
                if (depth) snprintf(dbuf, sizeof dbuf, " @ d%d", depth);
                printf("%s (%s, %s, %d threads, KV %s/%s): pp%d%s %.1f tok/s (%.1f GOPS) | tg%d%s %.1f tok/s (%.2f GB/s weights, "
                       "%.2f with the KV cache) | load %.1f ms | pool stalls %ld (%ld backed off) | file in 2 MiB pages: %s, KV cache: %s\n",
                       so.model, c->wtype == DQ_WTYPE_INT8 ? "int8" : "f32", isa, s.n_threads, dq_kv_name(s.kty),
                       dq_kv_name(s.vty), n_pp, dbuf, pps, pp_gops, n_tg, dbuf, tgs,
                       tg_gbps, tg_all_gbps, m.load_seconds * 1e3, dq_pool_stalls(s.pool), dq_pool_backoffs(s.pool), hbuf, kbuf);
                for (int i = 1; i >= 0 && s.n_threads > 1; i--) {
                    double f[5];
                    times_shares(i ? &tgt : &ppt, s.n_threads, f);
                    printf("  threads, %s: workers running slots %.0f %%; the caller outside parallel jobs %.1f %%, waiting at "
                           "their ends %.1f %%, backed off after stalls %.1f %%, off its CPU %.1f %%\n",
                           i ? "generation" : "prompt", 100 * f[0], 100 * f[1], 100 * f[2], 100 * f[3], 100 * f[4]);
                }
                if (roofline)
                    printf("  roofline: read %.2f GB/s (a buffer the weights' size; %.2f over 512 MiB) -> tg at %.0f %% (%.0f %% "
                           "with the KV cache); int8 peak %.1f GOPS -> pp at %.0f %% (of the roofline at pp%d, %.1f GOPS: %.0f %%)\n"
                           "  paired (a read and a peak pass after each repetition, median of the ratios): tg at %.0f %%, pp at %.0f %%; "
                           "tg against one loop form, the fastest by median: %.0f %%\n",
                           read_gbps, read_big_gbps, 100 * tg_gbps / read_gbps, 100 * tg_all_gbps / read_gbps, peak,
                           100 * pp_gops / peak, n_pp, roof, 100 * pp_gops / roof, 100 * tg_pair, 100 * pp_pair, 100 * tg_form);
            }
            fflush(stdout);
        }
        free(toks), free(pp), free(tg), free(pair);
        dq_read_probe_free(probe);
        dq_state_free(&s);
        dq_model_free(&m);
        if (rc) return fail(&e);
    }
    return 0;
}

// ---------------------------------------------------------------- dispatch

typedef struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

int cli_tokenize(int argc, char **argv);  // cli_tokenize.c
int cli_chat(int argc, char **argv);      // cli_chat.c

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt (-p or stdin)"},
    {"chat", cli_chat, "interactive chat (or one turn per stdin line when piped)"},
    {"tokenize", cli_tokenize, "text to token ids and back (--ids, --decode)"},
    {"convert", cmd_convert, "convert a llama2.c checkpoint or Hugging Face directory to .dynq"},
    {"info", cmd_info, "show a model's hyperparameters, tensors and provenance; --cpu: kernels"},
    {"perplexity", cmd_perplexity, "perplexity of a model on a text; with --ref, INT8 vs FP32 in one pass"},
    {"bench", cmd_bench, "prompt-processing and generation speed, GB/s and GOPS; --roofline"},
    {"logits", cmd_logits, "dump the logits of every position (for tests)"},
};

static void print_usage(FILE *f) {
    fprintf(f, "dynq %s: INT8 transformer inference with dynamic per-token activation quantization\n"
               "usage: dynq COMMAND [options]   (dynq help COMMAND, dynq COMMAND --help)\n\ncommands:\n", DYNQ_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nexit status: 0 success, 1 usage, 2 unreadable or invalid model/input file, 3 context overflow,\n"
               "             4 out of memory, 5 perplexity quality gate not met\n"
               "examples:\n"
               "  dynq convert stories260K.bin --tokenizer tok512.bin -o stories.dynq\n"
               "  dynq run -m stories.dynq -p \"Once upon a time\" -n 64\n"
               "  dynq help perplexity\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return DQ_EUSAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-v")) {
        printf("dynq %s\n", DYNQ_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        if (argc < 3) {
            print_usage(stdout);
            return 0;
        }
        char *hargv[3] = {argv[2], "--help", NULL};
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
            if (!strcmp(commands[i].name, argv[2])) return commands[i].fn(2, hargv);
        fprintf(stderr, "%s: unknown command '%s'\n", g_prog, argv[2]);
        return DQ_EUSAGE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(commands[i].name, cmd)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s' (see 'dynq --help')\n", g_prog, cmd);
    return DQ_EUSAGE;
}

