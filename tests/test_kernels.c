// tests/test_kernels.c: every kernel table this CPU runs natively against the scalar spec
// (bit-identical int8 outputs), thread-count and m-tiling invariance, the thread pool, and
// DYNQ_ISA forcing (run in child processes: the choice is made once per process).
#include <dirent.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernels_check.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <cpuid.h>
#endif

// ---------------------------------------------------------------- thread pool
typedef struct {
    _Atomic int hits[8];
    _Atomic int bad;
} pool_ctx;
static void pool_task(void *arg, int ith, int nth) {
    pool_ctx *c = arg;
    if (nth < 1 || nth > 8 || ith < 0 || ith >= nth) atomic_store(&c->bad, 1);
    else atomic_fetch_add(&c->hits[ith], 1);
}

// Each slot waits (at most 5 s) until every slot of the job is running: then every worker has
// started and runs with its own signal mask (glibc starts a thread with all signals blocked and
// restores the creator's mask only as it begins).
static void meet_task(void *arg, int ith, int nth) {
    _Atomic int *in = arg;
    atomic_fetch_add(in, 1);
    for (int i = 0; i < 5000 && atomic_load(in) < nth; i++) usleep(1000);
}

static void check_pool(void) {
    for (int nt = 1; nt <= 4; nt++) {
        dq_pool *p;
        dq_err e;
        if (dq_pool_create(&p, nt, &e)) {
            KC_FAIL("pool_create", "%d threads: %s", nt, e.msg);
            return;
        }
        pool_ctx c;
        memset(&c, 0, sizeof c);
        for (int r = 0; r < 2000; r++) {
            dq_pool_run(p, pool_task, &c);
            if (r == 1000) usleep(2000);  // let the workers fall asleep once
        }
        int ok = !c.bad && dq_pool_nthreads(p) == nt;
        for (int i = 0; i < nt; i++) ok &= c.hits[i] == 2000;
        dq_pool_free(p);
        if (!ok) {
            KC_FAIL("pool_run", "%d threads: a slot ran the wrong number of times", nt);
            return;
        }
    }
    printf("ok pool_run (1..4 threads x 2000 jobs, every slot exactly once)\n");
#ifdef __linux__
    // Workers block every signal, so SIGINT (Ctrl-C) always reaches the thread that waits for
    // input: each thread but this one must list SIGINT in its blocked set (SigBlk, hex, in
    // /proc/self/task/TID/status) once it runs, and this one must not have it blocked by the pool.
    {
        dq_pool *p;
        dq_err e;
        if (dq_pool_create(&p, 3, &e)) abort();
        _Atomic int in = 0;
        dq_pool_run(p, meet_task, &in);
        int workers = 0, bad = atomic_load(&in) != 3;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.') continue;
            char path[300], line[256];
            snprintf(path, sizeof path, "/proc/self/task/%s/status", de->d_name);
            FILE *f = fopen(path, "r");
            unsigned long long blk = 0;
            int found = 0;
            while (f && fgets(line, sizeof line, f))
                if (sscanf(line, "SigBlk: %llx", &blk) == 1) found = 1;
            if (f) fclose(f);
            int sigint_blocked = found && (blk >> (SIGINT - 1)) & 1;
            if (atoi(de->d_name) == (int)getpid()) bad |= !found || sigint_blocked;
            else workers++, bad |= !sigint_blocked;
        }
        if (d) closedir(d);
        dq_pool_free(p);
        if (d && workers == 2 && !bad) printf("ok pool_workers_block_signals (2 workers block SIGINT, the caller does not)\n");
        else KC_FAIL("pool_workers_block_signals", "%d worker threads seen, bad=%d", workers, bad);
    }
#endif
}

// Warming hints (dq_pool_warm) are taken when their job is over, not before: a worker's hint
// stays while no job runs, then that worker takes it once the next job is done; the caller takes
// its own while it waits for a worker still busy in that job. Counted by dq_pool_warms.
static pthread_t warm_caller;
static void warm_task(void *arg, int ith, int nth) {
    _Atomic int *in = arg;
    atomic_fetch_add(in, 1);
    for (int i = 0; i < 5000 && atomic_load(in) < nth; i++) usleep(1000);  // both slots running
    if (!pthread_equal(pthread_self(), warm_caller)) usleep(20000);  // the worker's slot ends last
}
static void check_pool_warm(void) {
    dq_pool *p;
    dq_err e;
    if (dq_pool_create(&p, 2, &e)) abort();
    static char buf[16384];
    _Atomic int in = 0;
    warm_caller = pthread_self();
    dq_pool_run(p, pool_task, &(pool_ctx){0});
    dq_pool_warm(p, 1, buf, 4096, 4096, 4);
    usleep(20000);
    const long before = dq_pool_warms(p);
    dq_pool_run(p, pool_task, &(pool_ctx){0});
    long after = 0;
    for (int i = 0; i < 1000 && (after = dq_pool_warms(p)) == before; i++) usleep(1000);
    dq_pool_warm(p, 0, buf, 4096, 4096, 4);
    dq_pool_run(p, warm_task, &in);
    const long caller = dq_pool_warms(p);
    dq_pool_free(p);
    if (before == 0 && after == 1 && caller == 2 && atomic_load(&in) == 2)
        printf("ok pool_warm (a hint waits for its job: none taken while idle, the worker's after the job, the caller's while it waits)\n");
    else
        KC_FAIL("pool_warm", "hints taken: %ld while idle (want 0), %ld after a job (want 1), %ld with the caller waiting (want 2)",
                before, after, caller);
}

// dq_pool_times: J jobs whose two slots each spin for d of wall time, the caller spinning d2
// outside the pool between them. Whichever thread runs a slot, every slot's d is counted once,
// as a worker's busy time or as the caller's time neither outside jobs nor waiting; each job
// lasts at least d (the caller waits for both slots); the caller's spins are outside. Then J / 2
// adaptive jobs with the pool fallen back for 5 ms (as after recurring stalls): every slot runs
// in the caller, and at least those 5 ms count as backed off. Lower bounds only: a thread
// descheduled on this shared machine only adds time.
static void spin_s(double s) {
    for (double t0 = dq_now(); dq_now() - t0 < s;) {
    }
}
static void spin_task(void *arg, int ith, int nth) { spin_s(*(const double *)arg); }
static void check_pool_times(void) {
    dq_pool *p;
    dq_err e;
    if (dq_pool_create(&p, 2, &e)) abort();
    const int J = 20;
    const double d = 1e-3, d2 = 0.5e-3;  // seconds
    const uint64_t F = 5000000;          // ns
    dq_pool_times t = {0}, b = {0};
    for (int half = 0; half < 2; half++) {  // two stretches add up
        dq_pool_times_begin(p);
        for (int j = 0; j < J / 2; j++) {
            dq_pool_run(p, spin_task, (void *)&d);
            spin_s(d2);
        }
        dq_pool_times_end(p, &t);
    }
    dq_pool_run(p, spin_task, (void *)&d);  // after the end: not counted
    dq_pool_fall_back(p, F);
    dq_pool_times_begin(p);
    for (int j = 0; j < J / 2; j++) dq_pool_run_adaptive(p, spin_task, (void *)&d);
    dq_pool_times_end(p, &b);
    dq_pool_free(p);
    const double slots = t.worker_busy + (t.wall - t.outside - t.wait);
    const double bslots = b.worker_busy + (b.wall - b.outside - b.wait);
    int ok = t.wall >= J * (d + d2) && t.outside >= J * d2 && t.outside <= t.wall - J * d && t.wait >= 0 &&
             t.outside + t.wait <= t.wall && slots >= 2 * J * d && t.worker_busy <= t.wall && t.alone == 0;
    int bok = b.alone >= 0.8e-9 * F && b.alone <= b.wall && bslots >= J * d && b.off_cpu <= b.wall;
    if (ok && bok)
        printf("ok pool_times (%d jobs of two %.1f ms slots: wall %.1f ms, outside %.1f, waiting %.1f, worker busy %.1f; "
               "fallen back for %.0f ms: %.1f of %.1f ms counted)\n", J, d * 1e3, t.wall * 1e3, t.outside * 1e3, t.wait * 1e3,
               t.worker_busy * 1e3, 1e-6 * F, b.alone * 1e3, b.wall * 1e3);
    else
        KC_FAIL("pool_times", "%d jobs of two %.1f ms slots, %.1f ms outside each: wall %.3f ms, outside %.3f, waiting %.3f, "
                "alone %.3f, worker busy %.3f (slots counted %.3f, want >= %.1f); fallen back %.0f ms: wall %.3f, alone %.3f, "
                "slots counted %.3f (want >= %.1f)", J, d * 1e3, d2 * 1e3, t.wall * 1e3, t.outside * 1e3, t.wait * 1e3,
                t.alone * 1e3, t.worker_busy * 1e3, slots * 1e3, 2 * J * d * 1e3, 1e-6 * F, b.wall * 1e3, b.alone * 1e3,
                bslots * 1e3, J / 2 * 2 * d * 1e3);
}

// The pool's back-off policy, on made-up stall times (ms): isolated stalls (the VM's own kernel
// threads, the host) are sat out; recurring ones (a busy neighbour) make the caller run alone,
// 2 ms first, doubling while stalls return soon (< 100 ms) after each retry, at most 250 ms; a
// stall half a second after a retry is isolated again; after a quiet spell it starts from a
// sat-out stall.
static void check_backoff(void) {
    const uint64_t ms = 1000000;
    dq_backoff b = {0};
    uint64_t got[20], t = 1000 * ms;
    int n = 0, ok = 1;
    got[n++] = dq_backoff_on_stall(&b, t, 1);             // first stall
    got[n++] = dq_backoff_on_stall(&b, t += 400 * ms, 1);  // isolated
    got[n++] = dq_backoff_on_stall(&b, t += 150 * ms, 1);  // isolated
    got[n++] = dq_backoff_on_stall(&b, t += 8 * ms, 1);    // recurs: 2 ms alone
    for (int i = 0; i < 8; i++) {                      // each retry stalls again 6 ms later
        b.retried_at = t + got[n - 1];
        t = b.retried_at + 6 * ms;
        got[n++] = dq_backoff_on_stall(&b, t, 1);
    }
    b.retried_at = t + got[n - 1];
    got[n++] = dq_backoff_on_stall(&b, t = b.retried_at + 500 * ms, 1);  // isolated, after a retry
    got[n++] = dq_backoff_on_stall(&b, t += 2000 * ms, 1);               // quiet spell, then one stall
    got[n++] = dq_backoff_on_stall(&b, t += 30 * ms, 1);                 // recurs: from 2 ms again
    b.retried_at = t + got[n - 1];
    got[n++] = dq_backoff_on_stall(&b, t = b.retried_at + 6 * ms, 1);  // again after the retry: 4 ms
    // stalls with no other thread runnable (the host took a vCPU) are sat out, however soon they
    // come; the next contended one that recurs starts from 2 ms again
    b.retried_at = t + got[n - 1];
    got[n++] = dq_backoff_on_stall(&b, t = b.retried_at + 6 * ms, 0);
    got[n++] = dq_backoff_on_stall(&b, t += 5 * ms, 0);
    got[n++] = dq_backoff_on_stall(&b, t += 5 * ms, 1);
    const uint64_t want[] = {0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 250, 250, 0, 0, 2, 4, 0, 0, 2};
    for (int i = 0; i < n; i++) ok &= got[i] == want[i] * ms;
    if (ok && n == (int)(sizeof want / sizeof want[0])) printf("ok pool_backoff_policy\n");
    else {
        char buf[256];
        int o = 0;
        for (int i = 0; i < n && o < 200; i++) o += snprintf(buf + o, sizeof buf - (size_t)o, " %llu", (unsigned long long)(got[i] / ms));
        KC_FAIL("pool_backoff_policy", "got%s ms", buf);
    }
}

// A cgroup's cpu.max text (v1's quota and period joined the same way) as whole CPUs, rounded up;
// 0 for no limit ("max", v1's -1) and for anything that is not two numbers.
static void check_cgroup_limit(void) {
    static const struct {
        const char *text;
        int cpus;
    } cases[] = {{"max 100000\n", 0}, {"150000 100000\n", 2}, {"50000 100000", 1}, {"100000 100000\n", 1},
                 {"200000 100000\n", 2}, {"200001 100000\n", 3}, {"-1 100000\n", 0}, {"0 100000", 0},
                 {"100000 0", 0}, {"", 0}, {"abc", 0}, {"100000", 0}, {"1 1x", 0}, {"99999999999999999999 1", 0},
                 {"5000000000 1000", 1024}};
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = dq_cgroup_cpu_limit(cases[i].text);
        if (got != cases[i].cpus) {
            KC_FAIL("cgroup_cpu_limit", "'%s' -> %d, want %d", cases[i].text, got, cases[i].cpus);
            ok = 0;
        }
    }
    if (ok) printf("ok cgroup_cpu_limit\n");
    // (tests/test_threads.sh checks both against an independent count)
    int avail = dq_cpus_available(), cores = dq_physical_cores();
    if (avail >= 1 && avail <= sysconf(_SC_NPROCESSORS_ONLN) && cores >= 1 && cores <= avail)
        printf("ok physical_cores (%d of %d CPUs)\n", cores, avail);
    else KC_FAIL("physical_cores", "%d physical cores of %d CPUs", cores, avail);
}

// dq_alloc_big: zeroed, writable to the last byte, freed by dq_free_big; a buffer of 2 MiB or more
// (dq_big_pages) starts on a 2 MiB boundary (its own mapping; not under AddressSanitizer, where it
// is dq_alloc's, 64-byte aligned), a smaller one is dq_alloc's. (DYNQ_KV_HUGE=off, which keeps
// the KV cache off it, is tests/test_hugepages.sh's.) And dq_median / dq_sort_doubles against
// values worked out by hand.
static void check_alloc_big(void) {
    const size_t sizes[] = {1000, (size_t)2 << 20, ((size_t)3 << 20) + 12345};
    for (int i = 0; i < 3; i++) {
        const size_t n = sizes[i];
        char name[64];
        snprintf(name, sizeof name, "alloc_big_%zu", n);
        int mapped = -1;
        uint8_t *p = dq_alloc_big(n, &mapped);
        if (!p) {
            KC_FAIL(name, "NULL");
            continue;
        }
        size_t nz = 0;
        for (size_t j = 0; j < n; j++) nz += p[j] != 0;
        const uintptr_t align = mapped ? (uintptr_t)2 << 20 : 64;
        p[0] = 1, p[n - 1] = 2;
        if (nz || (uintptr_t)p % align || mapped != dq_big_pages(n) || (mapped && n < ((size_t)2 << 20)))
            KC_FAIL(name, "%zu nonzero bytes, address %p, mapped %d", nz, (void *)p, mapped);
        else
            printf("ok %s%s\n", name, mapped ? " (own mapping)" : "");
        dq_free_big(p, n, mapped);
    }
    double a[] = {3, 1, 2}, b[] = {4, 1, 3, 2}, c[] = {5}, d[] = {2.5, -1, 2.5, 7, 0};
    const double ma = dq_median(a, 3), mb = dq_median(b, 4), mc = dq_median(c, 1), md = dq_median(d, 5);
    const double none = dq_median(NULL, 0);
    if (ma == 2 && mb == 2.5 && mc == 5 && md == 2.5 && none == 0 && a[0] == 1 && a[2] == 3 && b[0] == 1 && b[3] == 4 &&
        d[0] == -1 && d[1] == 0 && d[4] == 7)
        printf("ok median\n");
    else
        KC_FAIL("median", "%g %g %g %g %g", ma, mb, mc, md, none);
}

// dq_map_rehuge: blocks of a mapped file that the page cache holds in 4 KiB pages (here: a file
// just written, then synced so that its pages are clean) are read again into 2 MiB ones; the
// bytes stay the file's. Skips where this kernel or filesystem does not (no PAGEMAP_SCAN, THP
// off, tmpfs, a filesystem without large folios): the first call then reads nothing again.
static void check_map_rehuge(void) {
    const size_t big = (size_t)2 << 20, n = 3 * big + 5000;  // three whole blocks and a tail
    uint8_t x[64] = {0};
    int c1 = 0, c2 = 0, cannot = 1;
    if (dq_map_rehuge(-1, x, sizeof x, 1, &c1) != 0 || dq_map_rehuge(0, x + 1, big, 1, &c2) != 0 || !c1 || !c2) {
        KC_FAIL("map_rehuge_args", "a bad descriptor or an unaligned mapping was not refused");
        return;
    }
    printf("ok map_rehuge_args\n");
    const char *dir = getenv("DYNQ_TMP");
    char path[512];
    snprintf(path, sizeof path, "%s/dynq-rehuge.XXXXXX", dir && *dir ? dir : "/tmp");
    int wfd = mkstemp(path);
    uint8_t *buf = malloc(n);
    if (wfd < 0 || !buf) {
        KC_FAIL("map_rehuge", "cannot make a temporary file");
        if (wfd >= 0) close(wfd), unlink(path);
        free(buf);
        return;
    }
    uint64_t st = 0x9e3779b97f4a7c15u, sum = 0;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((st = st * 6364136223846793005u + 1442695040888963407u) >> 56);
    for (size_t i = 0; i < n; i++) sum = sum * 31 + buf[i];
    size_t w = 0;
    while (w < n) {  // 4 KiB at a time: a filesystem with large folios caches one big write in them
        ssize_t k = write(wfd, buf + w, n - w < 4096 ? n - w : 4096);
        if (k <= 0) break;
        w += (size_t)k;
    }
    const int synced = w == n && fsync(wfd) == 0;
    close(wfd);
    const uint8_t *p = NULL;
    size_t size = 0;
    int fd = -1;
    dq_err e;
    if (!synced || dq_map_file(path, 1, &p, &size, &fd, &e) != DQ_OK) {
        KC_FAIL("map_rehuge", "cannot write and map %s", path);
        unlink(path);
        free(buf);
        return;
    }
    // budget 0: one block read again, then the call stops; then the rest; then nothing is left
    const size_t r0 = dq_map_rehuge(fd, p, size, 0, &cannot);
    if (r0 == 0) {
        printf("skip map_rehuge: nothing read again here (no PAGEMAP_SCAN, huge pages off, or this filesystem)\n");
    } else if (!(dq_map_huge_fraction(p, size) > 0)) {  // smaps: the block read again is not one 2 MiB page
        printf("skip map_rehuge: this kernel read the block again in small pages (a filesystem without large folios)\n");
    } else {
        int cannot1 = 1, cannot2 = 1;
        const size_t r1 = dq_map_rehuge(fd, p, size, 10, &cannot1), r2 = dq_map_rehuge(fd, p, size, 10, &cannot2);
        uint64_t sum2 = 0;
        for (size_t i = 0; i < n; i++) sum2 = sum2 * 31 + p[i];
        const double frac = dq_map_huge_fraction(p, size);
        // r1 is 4 MiB unless a block came back small and the second pass read it once more (seen
        // on this host for blocks the cache had lost, not for written ones: tolerated); once every
        // block is one 2 MiB page, nothing is read again
        if (r0 != big || r1 < 2 * big || r1 % big || (frac > 0.99 && r2 != 0) || sum2 != sum || frac < 0.9 || cannot ||
            cannot1 || cannot2)
            KC_FAIL("map_rehuge", "read again %zu, %zu, %zu bytes (want %zu, %zu, 0); checksum %s; in 2 MiB pages %.3f; "
                    "'cannot' %d %d %d",
                    r0, r1, r2, big, 2 * big, sum2 == sum ? "same" : "DIFFERENT", frac, cannot, cannot1, cannot2);
        else
            printf("ok map_rehuge (%zu + %zu MiB read again, then %zu; %.3f in 2 MiB pages, same bytes)\n", r0 >> 20, r1 >> 20,
                   r2 >> 20, frac);
    }
    dq_unmap_file(p, size);
    close(fd);
    unlink(path);
    free(buf);
}

// The end of a back-off: /proc/loadavg's running count (the reader included) against nth threads
// and ncpu CPUs; 0 for text that is not loadavg's. The real file parses (it counts its reader, so
// at least one thread runs: every CPU "taken" when there are none).
static void check_loadavg(void) {
    static const struct {
        const char *text;
        int nth, ncpu, taken;
    } cases[] = {{"0.90 1.10 1.55 1/78 12345\n", 2, 2, 0}, {"0.90 1.10 1.55 2/78 12345\n", 2, 2, 1},
                 {"0.90 1.10 1.55 2/78 12345\n", 2, 4, 0}, {"3.00 2.00 1.00 5/300 99\n", 4, 8, 0},
                 {"3.00 2.00 1.00 6/300 99\n", 4, 8, 1},  {"0.00 0.00 0.00 1/5 1", 3, 2, 1},
                 {"", 2, 2, 0},  {"abc", 2, 2, 0}, {"0.1 0.2 0.3", 2, 1, 0}, {"0.1 0.2 0.3 x/5 1", 2, 1, 0},
                 {"0.1 0.2 0.3 0/5 1", 2, 1, 0}, {"0.1 0.2 0.3 7 1", 2, 1, 0},
                 // at a stall (nth 1: the pool's own threads all counted as runnable): only a
                 // thread beyond them takes a CPU
                 {"1.00 1.00 1.00 2/80 7\n", 1, 2, 0}, {"1.00 1.00 1.00 3/80 7\n", 1, 2, 1}};
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = dq_loadavg_cpus_taken(cases[i].text, cases[i].nth, cases[i].ncpu);
        if (got != cases[i].taken) {
            KC_FAIL("loadavg_cpus_taken", "'%s' nth %d ncpu %d -> %d, want %d", cases[i].text, cases[i].nth,
                    cases[i].ncpu, got, cases[i].taken);
            ok = 0;
        }
    }
    char buf[256] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        if (!dq_loadavg_cpus_taken(buf, 1, 0)) {
            KC_FAIL("loadavg_cpus_taken", "the real /proc/loadavg did not parse: '%s'", buf);
            ok = 0;
        }
    }
    if (ok) printf("ok loadavg_cpus_taken (%zu texts%s)\n", sizeof cases / sizeof cases[0], f ? " and /proc/loadavg" : "");
}

// A pool that has fallen back to its caller (recurring stalls) says it runs one thread and plans
// its tiles for one; the results stay bit-identical to scalar, GEMV and GEMM. (Whether it runs
// its threads again afterwards depends on the CPUs being free: with the other tests running
// beside this one the pool may have fallen back already, and may stay so.)
static void check_fall_back(const dq_kernels *K, dq_pool *pool) {
    char why[600];
    dq_pool_fall_back(pool, 60000000000ull);
    int ok = dq_pool_nthreads_now(pool) == 1;
    for (int m = 1; m <= 33 && ok; m += 32)
        if (kc_one(K, pool, m, 1000, 300, 0, 1, DQ_ACT_ASYM, 1, why, sizeof why)) {
            KC_FAIL("pool_fall_back", "m=%d: %s", m, why);
            return;
        }
    dq_pool_fall_back(pool, 0);
    if (ok) printf("ok pool_fall_back (one thread while fallen back, results bit-identical to scalar)\n");
    else KC_FAIL("pool_fall_back", "dq_pool_nthreads_now: %d of %d", dq_pool_nthreads_now(pool), dq_pool_nthreads(pool));
}

// ---------------------------------------------------------------- invariances
// The same token gives the same output row in a batch of 1 and of 97, for 1, 2 and 3 threads.
static void check_invariance(const dq_kernels *K, const char *label) {
    int m = 97, n = 203, k = 576;
    kc_w t;
    kc_w_make(&t, n, k, 0);
    float *x = kc_x_make(m, k, 2);
    float *y1 = malloc((size_t)m * n * 4), *y = malloc((size_t)m * n * 4);
    dq_err e;
    char name[64];
    snprintf(name, sizeof name, "%s_invariance", label);
    if (dq_qweight_prepare_with(K, &t.w, &e)) {
        KC_FAIL(name, "%s", e.msg);
        return;
    }
    int bad = 0;
    for (int nt = 1; nt <= 3 && !bad; nt++) {
        dq_pool *p;
        if (dq_pool_create(&p, nt, &e)) abort();
        for (int sch = 0; sch < 4 && !bad; sch++) {
            dq_qact qa;
            dq_quantize_act_with(K, p, &qa, x, m, k, (dq_act_scheme)sch, NULL);
            dq_matmul_q8_pre_with(K, p, y, &qa, &t.w);
            if (sch == DQ_ACT_TENSOR) continue;  // the scale depends on the whole batch by design
            for (int tok = 0; tok < m && !bad; tok += 8) {
                dq_quantize_act_with(K, p, &qa, x + (size_t)tok * k, 1, k, (dq_act_scheme)sch, NULL);
                dq_matmul_q8_pre_with(K, p, y1, &qa, &t.w);
                if (memcmp(y1, y + (size_t)tok * n, (size_t)n * 4) != 0) {
                    KC_FAIL(name, "%s, %d threads: token %d alone differs from the batch of %d",
                            kc_scheme_name[sch], nt, tok, m);
                    bad = 1;
                }
            }
        }
        dq_pool_free(p);
    }
    // thread-count invariance of the full batch (sym); at 2 threads with each token's max |x|
    // given (as rmsnorm and swiglu return it) instead of found by the quantizer
    float *yref = malloc((size_t)m * n * 4), *amax = malloc((size_t)m * 4);
    for (int tok = 0; tok < m; tok++) amax[tok] = K->absmax(x + (size_t)tok * k, k);
    for (int nt = 1; nt <= 3 && !bad; nt++) {
        dq_pool *p;
        if (dq_pool_create(&p, nt, &e)) abort();
        dq_qact qa;
        dq_quantize_act_with(K, p, &qa, x, m, k, DQ_ACT_SYM, nt == 2 ? amax : NULL);
        dq_matmul_q8_pre_with(K, p, nt == 1 ? yref : y, &qa, &t.w);
        if (nt > 1 && memcmp(y, yref, (size_t)m * n * 4) != 0) {
            KC_FAIL(name, "%d threads%s differ from 1 thread", nt, nt == 2 ? " (max |x| given)" : "");
            bad = 1;
        }
        dq_pool_free(p);
    }
    if (!bad) printf("ok %s (batch 1 vs 97, 1/2/3 threads, max |x| given or found: identical)\n", name);
    free(yref), free(amax);
    kc_w_free(&t);
    free(x);
    free(y1);
    free(y);
}

// ---------------------------------------------------------------- decode warming
// dq_matmul_q8_warm_ranges against the tiles a one-token matmul really runs, recorded by a kernel
// table whose gemm_q8 notes each tile before computing it. Each slot's range must start at the
// first weights of one of those tiles, read as the GEMV reads it (its four runs side by side,
// dq_gemv_runs, or one stream), stay inside that matrix's panels, and the slots' tiles must
// follow one another in plan order; slot 0's is the first matrix's first tile.
#define WARM_TILES 4096
static struct {
    const dq_qweight *w;
    int i0, i1;
} warm_tile[WARM_TILES];
static _Atomic int warm_ntile;
static dq_kernels warm_table;
static const dq_kernels *warm_real;
static void warm_gemm(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0, int i1) {
    int i = atomic_fetch_add(&warm_ntile, 1);
    if (i < WARM_TILES) warm_tile[i].w = w, warm_tile[i].i0 = i0, warm_tile[i].i1 = i1;
    warm_real->gemm_q8(y, ldy, qa, t0, t1, w, i0, i1);
}
static int warm_check_one(int nth, int count, const int *n, int k, char *why, size_t cap) {
    dq_pool *p;
    dq_err e;
    if (dq_pool_create(&p, nth, &e)) abort();
    kc_w w[3];
    const dq_qweight *ws[3];
    float *y[3];
    int bad = 0;
    for (int j = 0; j < count; j++) {
        kc_w_make(&w[j], n[j], k, 0);
        kc_w_panels(&w[j]);
        if (dq_qweight_prepare(&w[j].w, &e)) abort();
        ws[j] = &w[j].w, y[j] = malloc((size_t)n[j] * sizeof(float));
    }
    float *x = kc_x_make(1, k, 0);
    dq_qact qa;
    dq_quantize_act(p, &qa, x, 1, k, DQ_ACT_SYM, NULL);
    dq_warm_range r[DQ_CLAIM_REGIONS];
    int nreg = 0, tries = 0;
    do {  // the plan is made for the threads the pool runs now: not while it has fallen back
        atomic_store(&warm_ntile, 0);
        dq_matmul_q8_multi_with(&warm_table, p, count, y, &qa, ws);
        nreg = dq_matmul_q8_warm_ranges(nth, count, ws, r);
    } while (dq_pool_nthreads_now(p) != nth && ++tries < 100);
    const int nt = atomic_load(&warm_ntile);
    long last = -1;
    for (int s = 0; s < nreg && !bad; s++) {
        if (!r[s].bytes) continue;
        int hit = -1;
        for (int t = 0; t < nt && t < WARM_TILES; t++) {
            const dq_wpack *pk = warm_tile[t].w->packed;
            if (pk->panels + (size_t)warm_tile[t].i0 * pk->kp == r[s].base) hit = t;
        }
        if (hit < 0) {
            snprintf(why, cap, "slot %d: its range starts at no tile the matmul ran", s);
            bad = 1;
            break;
        }
        const dq_wpack *pk = warm_tile[hit].w->packed;
        const int i0 = warm_tile[hit].i0, i1 = warm_tile[hit].i1, run = dq_gemv_runs(i0, i1, pk->kp);
        const size_t stream = (size_t)(run ? 16 * run : (i1 - i0 + 15) / 16 * 16) * pk->kp;
        const int8_t *end = pk->panels + (size_t)pk->np * pk->kp;
        if (r[s].streams != (run ? 4 : 1) || r[s].stride != stream || r[s].bytes > stream ||
            r[s].base + (size_t)(r[s].streams - 1) * r[s].stride + r[s].bytes > end) {
            snprintf(why, cap, "slot %d (rows %d-%d): %d streams of %zu bytes %zu apart, want %d of at most %zu", s, i0,
                     i1, r[s].streams, r[s].bytes, r[s].stride, run ? 4 : 1, stream);
            bad = 1;
        } else if (s == 0 && (warm_tile[hit].w != ws[0] || i0 != 0)) {
            snprintf(why, cap, "slot 0 does not start at the first matrix's first row");
            bad = 1;
        } else {
            int j = 0;
            while (ws[j] != warm_tile[hit].w) j++;
            const long key = (long)j << 32 | i0;
            if (key <= last) {
                snprintf(why, cap, "slot %d's tile (matrix %d, row %d) is not after slot %d's", s, j, i0, s - 1);
                bad = 1;
            }
            last = key;
        }
    }
    free(x);
    for (int j = 0; j < count; j++) kc_w_free(&w[j]), free(y[j]);
    dq_pool_free(p);
    return bad;
}
static void check_warm_ranges(void) {
    warm_real = dq_kernels_current();
    warm_table = *warm_real;
    warm_table.gemm_q8 = warm_gemm;
    if (!warm_real->use_panels) {
        printf("skip warm_ranges: the %s kernels read row-major weights\n", warm_real->name);
        return;
    }
    char why[256];
    int runs = 0;
    const int saved_kp = dq_gemv4_min_kp;
    for (int it = 0; it < 24; it++) {
        const int nth = 2 + it % 3, count = 1 + it % 3, k = 64 + (int)(kc_u32() % 900);
        dq_gemv4_min_kp = it % 2 ? 1 << 30 : 0;  // four runs, or every matrix's rows as one stream
        int n[3];
        for (int j = 0; j < count; j++) n[j] = 1 + (int)(kc_u32() % 2200);
        if (warm_check_one(nth, count, n, k, why, sizeof why)) {
            KC_FAIL("warm_ranges", "%d threads, %d matrices (n %d..., k %d, min kp %d): %s", nth, count, n[0], k,
                    dq_gemv4_min_kp, why);
            dq_gemv4_min_kp = saved_kp;
            return;
        }
        runs++;
    }
    dq_gemv4_min_kp = saved_kp;
    printf("ok warm_ranges (%d one-token plans on 2-4 threads: each slot's range is the start of a tile the matmul runs)\n", runs);
}

// ---------------------------------------------------------------- packing many at once
// dq_qweight_prepare_many (one shared mapping, packed by the pool) gives the same outputs as
// packing each matrix alone; releasing in any order frees the mapping once (ASan checks).
static void check_prepare_many(void) {
    enum { N = 5 };
    static const int shapes[N][2] = {{17, 65}, {300, 768}, {1, 1}, {64, 200}, {33, 3}};
    kc_w a[N], b[N];
    dq_qweight many[N];
    dq_pool *p;
    dq_err e;
    int bad = 0;
    if (dq_pool_create(&p, 2, &e)) abort();
    for (int i = 0; i < N; i++) {
        uint64_t seed = kc_rng;
        kc_w_make(&a[i], shapes[i][0], shapes[i][1], i % 3);
        kc_rng = seed;
        kc_w_make(&b[i], shapes[i][0], shapes[i][1], i % 3);
        many[i] = b[i].w;
        if (dq_qweight_prepare(&a[i].w, &e)) abort();
    }
    if (dq_qweight_prepare_many(p, many, N, &e)) {
        KC_FAIL("prepare_many", "%s", e.msg);
        bad = 1;
    }
    for (int i = 0; i < N && !bad; i++) {
        int m = 3, n = shapes[i][0], k = shapes[i][1];
        float *x = kc_x_make(m, k, 0), *y1 = malloc((size_t)m * n * 4), *y2 = malloc((size_t)m * n * 4);
        dq_matmul_q8(p, y1, x, m, &a[i].w, DQ_ACT_ASYM);
        dq_matmul_q8(p, y2, x, m, &many[i], DQ_ACT_ASYM);
        if (memcmp(y1, y2, (size_t)m * n * 4) != 0) {
            KC_FAIL("prepare_many", "matrix %d (%d x %d): outputs differ from dq_qweight_prepare", i, n, k);
            bad = 1;
        }
        free(x), free(y1), free(y2);
    }
    static const int order[N] = {3, 0, 4, 1, 2};
    for (int i = 0; i < N; i++) {
        dq_qweight_release(&many[order[i]]);
        if (many[order[i]].packed) bad = 1;
    }
    for (int i = 0; i < N; i++) {
        kc_w_free(&a[i]);
        b[i].w.packed = NULL;
        kc_w_free(&b[i]);
    }
    dq_pool_free(p);
    if (!bad) printf("ok prepare_many (%d matrices in one mapping, same outputs, released in any order)\n", N);
}

// ---------------------------------------------------------------- DYNQ_ISA forcing
static const char *self_path;

// Runs this program as a child with DYNQ_ISA=isa; it prints the chosen ISA or the error.
// Under user-mode emulation the child must be started through the emulator too:
// DYNQ_TEST_EXEC="qemu-aarch64 -L /usr/aarch64-linux-gnu" (words separated by spaces).
static int child_choice(const char *isa, char *out, size_t cap) {
    int fd[2];
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        setenv("DYNQ_ISA", isa, 1);
        char *argv[16], buf[256];
        int argc = 0;
        const char *wrap = getenv("DYNQ_TEST_EXEC");
        if (wrap && *wrap) {
            snprintf(buf, sizeof buf, "%s", wrap);
            for (char *tok = strtok(buf, " "); tok && argc < 13; tok = strtok(NULL, " ")) argv[argc++] = tok;
        }
        argv[argc++] = (char *)self_path;
        argv[argc++] = "--report-isa";
        argv[argc] = NULL;
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    ssize_t r = read(fd[0], out, cap - 1);
    out[r > 0 ? r : 0] = 0;
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int report_isa(void) {
    dq_err e;
    int rc = dq_kernels_init(&e);
    if (rc) {
        printf("error %d: %s\n", rc, e.msg);
        return rc;
    }
    printf("%s\n", dq_isa_name(dq_isa_chosen()));
    return 0;
}

static void check_forcing(void) {
    char out[512];
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        const char *nm = dq_isa_name((dq_isa)i);
        int avail = dq_kernels_table((dq_isa)i) != NULL;
        int rc = child_choice(nm, out, sizeof out);
        if (avail && (rc != 0 || strncmp(out, nm, strlen(nm)) != 0 || out[strlen(nm)] != '\n')) {
            KC_FAIL("isa_force", "DYNQ_ISA=%s: usable here but child said (%d) %s", nm, rc, out);
            bad = 1;
        }
        if (!avail && (rc != DQ_EUSAGE || !strstr(out, nm))) {
            KC_FAIL("isa_force", "DYNQ_ISA=%s: not usable here, expected a usage error, got (%d) %s", nm, rc, out);
            bad = 1;
        }
    }
    int rc = child_choice("avx9000", out, sizeof out);
    if (rc != DQ_EUSAGE || !strstr(out, "unknown")) {
        KC_FAIL("isa_force", "DYNQ_ISA=avx9000: expected unknown-ISA error, got (%d) %s", rc, out);
        bad = 1;
    }
    if (!bad) printf("ok isa_force (each ISA selected when usable, usage error otherwise and for unknown names)\n");
}

// dq_quantize_act_begin + _rows (token by token, in uneven ranges, max |x| given or not) give
// the codes, scales and offsets of dq_quantize_act, for each scheme they accept.
// dq_qweight_rows_f32 (the embedding lookup): scale[r] * q[r][j] for a list of rows (repeats, the
// last row, a zero scale, all-zero rows), k not a multiple of 4, from a row-major matrix and from
// panels written by kc_w_panels; the expectation is formed here from the row-major codes.
static void check_qweight_rows(void) {
    const int shapes[][2] = {{37, 300}, {16, 64}, {53, 771}, {1, 5}};
    int bad = 0, cases = 0;
    for (int sh = 0; sh < 4 && !bad; sh++)
        for (int pan = 0; pan < 2 && !bad; pan++) {
            const int n = shapes[sh][0], k = shapes[sh][1], ldo = k + 3;
            kc_w t;
            kc_w_make(&t, n, k, 2);
            if (pan) kc_w_panels(&t);
            int32_t rows[9];
            for (int i = 0; i < 9; i++) rows[i] = i == 0 ? n - 1 : i == 3 ? rows[1] : (int32_t)(kc_u32() % (uint32_t)n);
            for (int cnt = 1; cnt <= 9 && !bad; cnt += 4) {
                float *out = malloc((size_t)cnt * ldo * sizeof(float));
                for (int i = 0; i < cnt * ldo; i++) out[i] = -7.0f;
                dq_qweight_rows_f32(&t.w, rows, cnt, out, (size_t)ldo);
                for (int r = 0; r < cnt && !bad; r++)
                    for (int j = 0; j < ldo && !bad; j++) {
                        const float want = j < k ? t.s[rows[r]] * (float)t.q[(size_t)rows[r] * k + j] : -7.0f;
                        if (memcmp(&out[(size_t)r * ldo + j], &want, sizeof want) != 0) {
                            KC_FAIL("qweight_rows", "n=%d k=%d %s, %d rows: row %d (matrix row %d) value %d: %g, want %g",
                                    n, k, pan ? "panels" : "row-major", cnt, r, rows[r], j, out[(size_t)r * ldo + j], want);
                            bad = 1;
                        }
                    }
                free(out);
                cases++;
            }
            kc_w_free(&t);
        }
    if (!bad) printf("ok qweight_rows (%d cases: row-major and panels, ragged k, repeated rows, zero scales)\n", cases);
}

static void check_quant_rows(dq_pool *pool) {
    int m = 37, k = 300, bad = 0;
    float *x = malloc((size_t)m * k * 4), amax[37];
    for (int i = 0; i < m * k; i++) x[i] = kc_unif() * (i % 11 == 0 ? 20.0f : 1.0f);
    for (int t = 0; t < k; t++) x[5 * k + t] = 0.0f;  // an all-zero token
    const dq_kernels *K = dq_kernels_current();
    for (int t = 0; t < m; t++) amax[t] = K->absmax(x + (size_t)t * k, k);
    for (int sch = 0; sch < 3 && !bad; sch++) {  // SYM, ASYM, GROUP (TENSOR needs the whole batch)
        for (int given = 0; given < 2 && !bad; given++) {
            dq_qact a, b;
            dq_quantize_act(pool, &a, x, m, k, (dq_act_scheme)sch, NULL);
            size_t qbytes = (size_t)dq_round_up(m, 16) * a.kp, sbytes = (size_t)m * a.ngroup * 4;
            uint8_t *qa = malloc(qbytes), *sa = malloc(sbytes), *oa = malloc((size_t)m * 4);
            memcpy(qa, a.q, qbytes), memcpy(sa, a.scale, sbytes), memcpy(oa, a.off, (size_t)m * 4);
            dq_quantize_act_begin(pool, &b, m, k, (dq_act_scheme)sch);
            // b shares the pool's buffer with a: overwrite what a left there
            memset(b.q, 0x55, (size_t)m * b.kp), memset(b.scale, 0xff, sbytes), memset(b.off, 0x55, (size_t)m * 4);
            for (int t0 = 0, step = 1; t0 < m; t0 += step, step = step % 5 + 1)
                dq_quantize_act_rows(&b, x, t0, t0 + step < m ? t0 + step : m, given ? amax : NULL);
            if (b.kp != a.kp || b.ngroup != a.ngroup || b.bias != a.bias || memcmp(qa, b.q, qbytes) != 0 ||
                memcmp(sa, b.scale, sbytes) != 0 || memcmp(oa, b.off, (size_t)m * 4) != 0) {
                KC_FAIL("quant_rows", "%s, max |x| %s: differs from dq_quantize_act", kc_scheme_name[sch],
                        given ? "given" : "found");
                bad = 1;
            }
            free(qa), free(sa), free(oa);
        }
    }
    if (!bad) printf("ok quant_rows (sym/asym/group, token ranges of 1..5, max |x| given or found: identical)\n");
    free(x);
}

// ---------------------------------------------------------------- binary16 conversions
// The software conversions of ops.h (FP16 KV cache) against the CPU's own conversion
// instructions, an independent implementation: F16C's vcvtps2ph / vcvtph2ps on x86, the
// compiler's __fp16 casts (fcvt) on aarch64. Every binary16 value widened; narrowed: each
// binary16 value, the midpoints to its neighbours and the floats just beside them (where
// round-to-nearest-even decides), and a stride through all 2^32 float bit patterns.
#if defined(__x86_64__)
#define HW_F16 __attribute__((target("f16c")))
HW_F16 static uint16_t hw_to_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
HW_F16 static float hw_from_f16(uint16_t h) { return _cvtsh_ss(h); }
// CPUID leaf 1 ECX: F16C (29), AVX (28), OSXSAVE (27) (clang 14's __builtin_cpu_supports has no "f16c")
static int hw_f16(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c >> 27 & 7) == 7;
}
#elif defined(__aarch64__)
#define HW_F16
static uint16_t hw_to_f16(float f) {
    __fp16 h = (__fp16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
static float hw_from_f16(uint16_t u) {
    __fp16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}
static int hw_f16(void) { return 1; }
#endif

#ifdef HW_F16
HW_F16 static void check_f16_conversions(void) {
    if (!hw_f16()) {
        printf("skip f16_conversions: no F16C on this CPU\n");
        return;
    }
    long checked = 0;
    int ok = 1;
    for (uint32_t h = 0; h < 65536 && ok; h++) {
        float a = dq_f16_to_f32((uint16_t)h), b = hw_from_f16((uint16_t)h);
        uint32_t ua, ub;
        memcpy(&ua, &a, 4), memcpy(&ub, &b, 4);
        checked++;
        if (ua != ub) {
            KC_FAIL("f16_conversions", "widening 0x%04x: 0x%08x, the CPU gives 0x%08x", h, ua, ub);
            ok = 0;
        }
    }
    for (uint64_t i = 0; i < (1ull << 32) + 65536 * 8 && ok; i += i < (1ull << 32) ? 4093 : 1) {
        uint32_t u;
        if (i < (1ull << 32)) {
            u = (uint32_t)i;
        } else {  // around each binary16 value: itself, the midpoint above, and one float-ulp either side
            uint32_t j = (uint32_t)(i - (1ull << 32)), h = j / 8;
            float f = dq_f16_to_f32((uint16_t)h);
            memcpy(&u, &f, 4);
            if ((h & 0x7c00) == 0x7c00) continue;  // inf / NaN: no midpoint
            uint32_t mid = u + ((h & 0x7c00) ? 0x1000u : 0);  // normal: half a binary16 ulp above
            if (!(h & 0x7c00)) {  // subnormal (and zero): an ulp is 2^-24; the midpoint is (m + 0.5) 2^-24
                float fm = ((float)(h & 0x3ff) + 0.5f) * 0x1p-24f * ((h & 0x8000) ? -1.0f : 1.0f);
                memcpy(&mid, &fm, 4);
            }
            const uint32_t cand[8] = {u, u + 1, u - 1, mid, mid + 1, mid - 1, mid + 2, mid - 2};
            u = cand[j % 8];
        }
        float f;
        memcpy(&f, &u, 4);
        checked++;
        uint16_t a = dq_f32_to_f16(f), b = hw_to_f16(f);
        if (a != b) {
            KC_FAIL("f16_conversions", "narrowing 0x%08x: 0x%04x, the CPU gives 0x%04x", u, a, b);
            ok = 0;
        }
    }
    if (ok) printf("ok f16_conversions (%ld values, bit-identical to the CPU's conversion instructions)\n", checked);
}
#endif

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc > 1 && strcmp(argv[1], "--report-isa") == 0) return report_isa();
    dq_err e;
    if (dq_kernels_init(&e)) {
        printf("FAIL kernels_init: %s\n", e.msg);
        return 1;
    }
    char desc[2048];
    dq_cpu_describe(desc, sizeof desc);
    printf("# %s", desc);
    if (strstr(desc, "chosen: ") && strstr(desc, dq_isa_name(dq_isa_chosen()))) printf("ok cpu_describe\n");
    else KC_FAIL("cpu_describe", "no chosen ISA in: %s", desc);
    // DYNQ_TEST_ONLY=ISA: that table's checks and the forcing check alone (tests/test_neon_qemu.sh
    // runs the whole test once under emulation, then each further NEON variant with this).
    const char *only = getenv("DYNQ_TEST_ONLY");
    if (only && !*only) only = NULL;
    if (!only) {
        check_pool();
        check_pool_warm();
        check_pool_times();
        check_backoff();
        check_cgroup_limit();
        check_loadavg();
        check_alloc_big();
        check_map_rehuge();
#ifdef HW_F16
        check_f16_conversions();
#endif
    }
    dq_pool *pool;
    if (dq_pool_create(&pool, 2, &e)) abort();
    for (int i = 0; i < 5; i++) {
        const dq_kernels *K = dq_kernels_table((dq_isa)i);
        if (only && strcmp(only, dq_isa_name((dq_isa)i)) != 0) continue;
        if (!K) {
            printf("skip %s: not usable on this CPU/build (emulated tests cover it)\n", dq_isa_name((dq_isa)i));
            continue;
        }
        kc_check_table(K, dq_isa_name((dq_isa)i), pool, 0);
        kc_check_f32(K, dq_isa_name((dq_isa)i), pool);
        kc_check_vec(K, dq_isa_name((dq_isa)i));
        check_invariance(K, dq_isa_name((dq_isa)i));
    }
#if defined(__x86_64__)
    // On AVX-VNNI CPUs the avx2 ISA runs avxvnni.c; check the vpmaddubsw kernels as well.
    const dq_kernels *a2 = dq_kernels_table(DQ_ISA_AVX2);
    if (!only && a2 && a2 != dq_kernels_avx2()) {
        kc_check_table(dq_kernels_avx2(), "avx2_plain", pool, 0);
        check_invariance(dq_kernels_avx2(), "avx2_plain");
    }
    // The AVX2 prefill GEMM widens the third token of a block by shifts on AMD family 23 and by
    // vpmaddwd elsewhere (dq_avx2_widen), and its four-stream GEMV prefetches there
    // (dq_gemv4_prefetch_bytes): the other forms too, whatever this CPU is.
    if (!only && a2) {
        const int saved = dq_avx2_widen, saved_pf = dq_gemv4_prefetch_bytes;
        dq_avx2_widen = !saved;
        dq_gemv4_prefetch_bytes = saved_pf ? 0 : 256;  // and the four-stream GEMV's other form
        kc_check_table(dq_kernels_avx2(), saved ? "avx2_widen_madd" : "avx2_widen_mixed", pool, 0);
        dq_avx2_widen = saved;
        dq_gemv4_prefetch_bytes = saved_pf;
    }
    // The VNNI four-stream GEMVs' other prefetch form too (kc_check_table_other_pf).
    const dq_kernels *vt[2] = {a2 && a2 != dq_kernels_avx2() ? a2 : NULL, dq_kernels_table(DQ_ISA_AVX512VNNI)};
    const char *vn[2] = {"avxvnni", "avx512vnni"};
    for (int i = 0; i < 2; i++)
        if (!only && vt[i]) kc_check_table_other_pf(vt[i], vn[i], pool);
#endif
    if (!only) check_quant_rows(pool);
    if (!only) check_qweight_rows();
    if (!only) check_warm_ranges();
    if (!only) check_fall_back(dq_kernels_current(), pool);
    dq_pool_free(pool);
    if (!only) check_prepare_many();
    check_forcing();
    return kc_failures ? 1 : 0;
}
