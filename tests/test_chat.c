// tests/test_chat.c: `dynq chat` at a real (pseudo-)terminal. Starts the program under forkpty,
// types into it like a user (prompt lines, Ctrl-C as \x03, Ctrl-D as \x04 through the line
// discipline, so SIGINT comes from the tty exactly as at a keyboard) and reads what the terminal
// shows. Every wait is bounded: a hang fails the test instead of blocking CI.
// Needs the KJV model: $DYNQ_SHARED/models/kjv (converted into $DYNQ_TMP); skips without it.
// Set CHAT_TRANSCRIPT=FILE to save what the terminal showed in the first session.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int g_fail = 0;

static void check(int cond, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(int cond, const char *name, const char *fmt, ...) {
    if (cond) {
        printf("ok %s\n", name);
    } else {
        va_list ap;
        va_start(ap, fmt);
        printf("FAIL %s: ", name);
        vprintf(fmt, ap);
        printf("\n");
        va_end(ap);
        g_fail = 1;
    }
    fflush(stdout);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---------------------------------------------------------------- a program on a pty

typedef struct term {
    pid_t pid;
    int fd;       // pty master
    char *out;    // everything the terminal showed so far
    size_t n, cap;
    int eof;
    int status;   // wait status once reaped
    int reaped;
} term;

static int term_start(term *t, char *const argv[], const char *no_color_env) {
    memset(t, 0, sizeof *t);
    struct winsize ws = {.ws_row = 24, .ws_col = 100};
    t->pid = forkpty(&t->fd, NULL, NULL, &ws);
    if (t->pid < 0) return -1;
    if (t->pid == 0) {
        if (no_color_env) setenv("NO_COLOR", no_color_env, 1);
        else unsetenv("NO_COLOR");
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    t->cap = 1 << 16;
    t->out = malloc(t->cap);
    return t->out ? 0 : -1;
}

// Reads whatever is available within ms milliseconds (returns early when data arrives).
static void term_pump(term *t, int ms) {
    if (t->eof) {
        if (ms > 0) usleep((useconds_t)ms * 1000);
        return;
    }
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0) return;
    char buf[4096];
    ssize_t k = read(t->fd, buf, sizeof buf);
    if (k <= 0) {  // EIO once the child closed the slave
        t->eof = 1;
        return;
    }
    if (t->n + (size_t)k + 1 > t->cap) {
        t->cap = (t->n + (size_t)k + 1) * 2;
        t->out = realloc(t->out, t->cap);
        if (!t->out) abort();
    }
    memcpy(t->out + t->n, buf, (size_t)k);
    t->n += (size_t)k;
    t->out[t->n] = 0;
}

// Waits until `pat` appears in the output after offset `from`; returns its offset or -1 on timeout/EOF.
static long term_wait_for(term *t, size_t from, const char *pat, double timeout_s) {
    double end = now() + timeout_s;
    for (;;) {
        if (t->n > from) {
            char *p = memmem(t->out + from, t->n - from, pat, strlen(pat));
            if (p) return p - t->out;
        }
        if (t->eof || now() > end) return -1;
        term_pump(t, 50);
    }
}

// Waits until at least `bytes` more bytes have arrived after offset `from`.
static int term_wait_bytes(term *t, size_t from, size_t bytes, double timeout_s) {
    double end = now() + timeout_s;
    while (t->n < from + bytes) {
        if (t->eof || now() > end) return -1;
        term_pump(t, 50);
    }
    return 0;
}

static void term_send(term *t, const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(t->fd, s, n);
        if (k <= 0) return;
        s += k;
        n -= (size_t)k;
    }
}

static int term_alive(term *t) {
    if (t->reaped) return 0;
    pid_t r = waitpid(t->pid, &t->status, WNOHANG);
    if (r == t->pid) t->reaped = 1;
    return !t->reaped;
}

// Waits for the child to exit (draining the pty); kills it after timeout. Returns 0 if it exited.
static int term_wait_exit(term *t, double timeout_s) {
    double end = now() + timeout_s;
    while (term_alive(t)) {
        if (now() > end) {
            kill(t->pid, SIGKILL);
            waitpid(t->pid, &t->status, 0);
            t->reaped = 1;
            return -1;
        }
        term_pump(t, 50);
    }
    return 0;
}

static void term_close(term *t) {
    if (!t->reaped) term_wait_exit(t, 0.5);
    close(t->fd);
    free(t->out);
}

static const char *exit_desc(const term *t) {
    static char buf[64];
    if (WIFEXITED(t->status)) snprintf(buf, sizeof buf, "exit status %d", WEXITSTATUS(t->status));
    else if (WIFSIGNALED(t->status)) snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(t->status));
    else snprintf(buf, sizeof buf, "status 0x%x", t->status);
    return buf;
}

static int exited_0(const term *t) { return t->reaped && WIFEXITED(t->status) && WEXITSTATUS(t->status) == 0; }

// "context: N/C tokens, K turns kept" from /stats output after `from`: returns N, K via pointers.
static int parse_stats(const term *t, size_t from, int *n_ctx, int *turns) {
    const char *p = memmem(t->out + from, t->n - from, "context: ", 9);
    int c;
    return p && sscanf(p, "context: %d/%d tokens, %d turn", n_ctx, &c, turns) == 3 ? 0 : -1;
}

// Tail of the output for failure messages (control characters escaped).
static const char *tail(const term *t) {
    static char buf[700];
    size_t from = t->n > 300 ? t->n - 300 : 0, k = 0;
    for (size_t i = from; i < t->n && k + 5 < sizeof buf; i++) {
        unsigned char ch = (unsigned char)t->out[i];
        if (ch == '\n') k += (size_t)snprintf(buf + k, sizeof buf - k, "\\n");
        else if (ch < 32 || ch == 127) k += (size_t)snprintf(buf + k, sizeof buf - k, "\\x%02x", ch);
        else buf[k++] = (char)ch;
    }
    buf[k] = 0;
    return buf;
}

// ---------------------------------------------------------------- the sessions

#define MARK_COLOR "\033[1;32m> "
#define MARK_PLAIN "\n> "

// The acceptance session: colour on, answer interrupted twice, Ctrl-D to leave.
static void session_interrupt(const char *dynq, const char *model) {
    char *argv[] = {(char *)dynq, "chat", "-m", (char *)model, "--template", "none", "-n", "100000", "-c", "4096",
                    "--temp", "1.0", "--seed", "7", NULL};
    term t;
    if (term_start(&t, argv, NULL)) {
        check(0, "chat_pty_start", "forkpty: %s", strerror(errno));
        return;
    }
    long at = term_wait_for(&t, 0, MARK_COLOR, 20);
    check(at >= 0, "chat_pty_prompt_colour", "no coloured prompt marker within 20 s: '%s'", tail(&t));
    if (at < 0) goto out;
    size_t from = t.n;
    term_send(&t, "In the beginning God created\r");
    long echo = term_wait_for(&t, from, "created\r\n", 5);
    check(echo >= 0, "chat_pty_echo", "typed line not echoed: '%s'", tail(&t));
    if (echo < 0) goto out;
    // Let the answer start (60 bytes), then Ctrl-C. The whole answer would be ~4000 tokens (~20 s).
    size_t ans0 = (size_t)echo + strlen("created\r\n");
    int started = term_wait_bytes(&t, ans0, 60, 20) == 0;
    check(started, "chat_pty_answer_streams", "fewer than 60 bytes of answer within 20 s: '%s'", tail(&t));
    if (!started) goto out;
    double t0 = now();
    size_t before_int = t.n;
    term_send(&t, "\x03");
    long back = term_wait_for(&t, before_int, MARK_COLOR, 10);
    double dt = now() - t0;
    int alive = term_alive(&t);
    check(back >= 0 && alive, "chat_pty_ctrl_c_returns_to_prompt", "after Ctrl-C: prompt %s, process %s: '%s'",
          back >= 0 ? "back" : "not back", alive ? "running" : exit_desc(&t), tail(&t));
    if (back < 0 || !alive) goto out;
    check(dt < 3.0, "chat_pty_ctrl_c_prompt", "prompt took %.2f s to come back after Ctrl-C", dt);
    // /stats: the interrupted answer is short and the turn is kept in the conversation.
    from = t.n;
    term_send(&t, "/stats\r");
    long st = term_wait_for(&t, from, "session:", 5);
    term_wait_for(&t, from, MARK_COLOR, 5);
    int n_ctx = -1, turns = -1;
    int ok = st >= 0 && parse_stats(&t, from, &n_ctx, &turns) == 0;
    check(ok && n_ctx > 10 && n_ctx < 3000 && turns == 1, "chat_pty_ctrl_c_stops_answer",
          "/stats after Ctrl-C: context %d tokens, %d turns (want 10 < n < 3000, 1 turn): '%s'", n_ctx, turns, tail(&t));
    int first_ctx = n_ctx;
    // Second turn: an answer streams; interrupt it too.
    from = t.n;
    term_send(&t, "And the LORD said\r");
    echo = term_wait_for(&t, from, "said\r\n", 5);
    started = echo >= 0 && term_wait_bytes(&t, (size_t)echo + 6, 40, 20) == 0;
    check(started, "chat_pty_second_turn_answers", "no answer to the second turn: '%s'", tail(&t));
    if (!started) goto out;
    before_int = t.n;
    term_send(&t, "\x03");
    back = term_wait_for(&t, before_int, MARK_COLOR, 10);
    check(back >= 0, "chat_pty_second_ctrl_c", "prompt not back after the second Ctrl-C: '%s'", tail(&t));
    from = t.n;
    term_send(&t, "/stats\r");
    st = term_wait_for(&t, from, "session:", 5);
    term_wait_for(&t, from, MARK_COLOR, 5);
    ok = st >= 0 && parse_stats(&t, from, &n_ctx, &turns) == 0;
    check(ok && turns == 2 && n_ctx > first_ctx, "chat_pty_multi_turn_kept",
          "after two turns: context %d tokens (first %d), %d turns: '%s'", n_ctx, first_ctx, turns, tail(&t));
    // Ctrl-D at the empty prompt: exit status 0.
    term_send(&t, "\x04");
    int exited = term_wait_exit(&t, 10) == 0;
    check(exited && exited_0(&t), "chat_pty_ctrl_d_exit_0", "after Ctrl-D: %s", exited ? exit_desc(&t) : "still running after 10 s");
    const char *tr = getenv("CHAT_TRANSCRIPT");
    if (tr) {
        FILE *f = fopen(tr, "wb");
        if (f) {
            fwrite(t.out, 1, t.n, f);
            fclose(f);
        }
    }
out:
    term_close(&t);
}

// Ctrl-C at an empty prompt exits with status 0; --no-color / NO_COLOR leave no escape codes.
static void session_ctrl_c_at_prompt(const char *dynq, const char *model, int use_flag) {
    char *argv[] = {(char *)dynq, "chat", "-m", (char *)model, "--template", "none", "-n", "8", "--temp", "0",
                    use_flag ? "--no-color" : NULL, NULL};
    const char *name = use_flag ? "chat_pty_no_color_flag" : "chat_pty_NO_COLOR_env";
    term t;
    if (term_start(&t, argv, use_flag ? NULL : "1")) {
        check(0, name, "forkpty: %s", strerror(errno));
        return;
    }
    long at = term_wait_for(&t, 0, "> ", 20);
    size_t from = t.n;
    if (at >= 0) {
        term_send(&t, "In the beginning\r");
        at = term_wait_for(&t, from + 10, MARK_PLAIN, 20);
    }
    check(at >= 0 && !memchr(t.out, '\033', t.n), name, "want a plain prompt and answer without escape codes: '%s'",
          tail(&t));
    if (use_flag) {
        term_send(&t, "\x03");
        int exited = term_wait_exit(&t, 10) == 0;
        check(exited && exited_0(&t), "chat_pty_ctrl_c_at_prompt_exit_0", "after Ctrl-C at the prompt: %s",
              exited ? exit_desc(&t) : "still running after 10 s");
    } else {
        term_send(&t, "/exit\r");
        int exited = term_wait_exit(&t, 10) == 0;
        check(exited && exited_0(&t), "chat_pty_slash_exit", "after /exit: %s", exited ? exit_desc(&t) : "still running");
    }
    term_close(&t);
}

// A turn that outgrows the context mid-answer drops the oldest turn, says so, and goes on.
static void session_context_full(const char *dynq, const char *model) {
    char *argv[] = {(char *)dynq, "chat", "-m", (char *)model, "--template", "none", "-n", "60", "-c", "128",
                    "--temp", "0", "--no-color", NULL};
    term t;
    if (term_start(&t, argv, NULL)) {
        check(0, "chat_pty_context_full", "forkpty: %s", strerror(errno));
        return;
    }
    long at = term_wait_for(&t, 0, "> ", 20);
    const char *lines[] = {"In the beginning\r", "And the LORD said\r", "Blessed are the poor\r"};
    for (int i = 0; i < 3 && at >= 0; i++) {
        size_t from = t.n;
        term_send(&t, lines[i]);
        at = term_wait_for(&t, from + strlen(lines[i]), MARK_PLAIN, 20);
    }
    long notice = term_wait_for(&t, 0, "dropped the 1 oldest turn", 0.1);
    check(at >= 0 && notice >= 0 && term_alive(&t), "chat_pty_context_full_drops_turns",
          "want three answers and a 'dropped' notice with -c 128 -n 60: '%s'", tail(&t));
    term_send(&t, "\x04");
    int exited = term_wait_exit(&t, 10) == 0;
    check(exited && exited_0(&t), "chat_pty_context_full_exit_0", "%s", exited ? exit_desc(&t) : "still running");
    term_close(&t);
}

// ---------------------------------------------------------------- setup

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && st.st_size > 0;
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const char *dynq = getenv("DYNQ") ? getenv("DYNQ") : "./dynq";
    const char *shared = getenv("DYNQ_SHARED") ? getenv("DYNQ_SHARED") : "../shared";
    const char *tmp = getenv("DYNQ_TMP") ? getenv("DYNQ_TMP") : "/tmp";
    char bin[1024], tok[1024], model[1024], cmd[8192];
    snprintf(bin, sizeof bin, "%s/models/kjv/kjv.bin", shared);
    snprintf(tok, sizeof tok, "%s/models/kjv/kjv1k-tok.bin", shared);
    snprintf(model, sizeof model, "%s/kjv-chat.dynq", tmp);
    if (!file_exists(bin) || !file_exists(tok)) {
        printf("skip chat_pty: no KJV model at %s\n", bin);
        return 0;
    }
    char dynq_abs[1024];
    if (!realpath(dynq, dynq_abs)) {
        printf("FAIL chat_pty: no dynq binary at %s\n", dynq);
        return 1;
    }
    snprintf(cmd, sizeof cmd, "'%s' chat --help >/dev/null 2>&1", dynq_abs);
    if (system(cmd) != 0) {
        printf("FAIL chat_pty: '%s chat --help' fails (chat command not in the dispatcher?)\n", dynq_abs);
        return 1;
    }
    if (!file_exists(model)) {
        snprintf(cmd, sizeof cmd, "'%s' convert '%s' --tokenizer '%s' -o '%s' >/dev/null 2>&1", dynq_abs, bin, tok, model);
        if (system(cmd) != 0 || !file_exists(model)) {
            printf("FAIL chat_pty: converting %s failed\n", bin);
            return 1;
        }
    }
    session_interrupt(dynq_abs, model);
    session_ctrl_c_at_prompt(dynq_abs, model, 1);
    session_ctrl_c_at_prompt(dynq_abs, model, 0);
    session_context_full(dynq_abs, model);
    return g_fail;
}
