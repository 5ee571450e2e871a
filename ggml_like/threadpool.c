// ggml_like/threadpool.c: a small persistent pthread pool. The caller is worker 0.
//
// A job has nth slots (ith = 0..nth-1). Slots are claimed, not assigned: every thread, the
// caller included, claims the next free slot of the current job with a CAS on one 64-bit word
// (job generation << 32 | next slot) and runs it. So when a worker is descheduled (a busy
// neighbour on these 2-vCPU VMs), the caller runs that worker's slot itself instead of waiting
// for it to wake up. A worker descheduled while it holds work cannot be overtaken that way; the
// caller notices the stall and, when stalls recur while another process's thread is runnable,
// runs the next matmul jobs alone for a while (adaptive jobs of the kernel drivers only: generic
// tasks may be statically imbalanced), and goes back to the workers only once the system has a
// free CPU for each, so -t 2 with a busy neighbour stays near -t 1 speed (stalls with no such
// thread, the host taking a vCPU, are sat out). Waiting (workers for a job, the caller for the
// last slot) spins for a short bounded time, then sleeps on a condition variable. A thread that
// waits may first prefetch weights the next job will want (dq_pool_warm: decode).
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_NS 50000  // how long a waiter spins before sleeping (about one small GEMV)

// A warming hint (dq_pool_warm): streams ranges of bytes, stride apart from base, for one thread
// to prefetch once it has run out of slots in job `gen`. Every field is atomic: the caller may
// write the next hint while a thread reads the last one, and a torn read only prefetches lines
// that are not needed (a prefetch never faults).
typedef struct warm_hint {
    _Alignas(64) _Atomic(uintptr_t) base;  // 0: none
    _Atomic size_t bytes, stride;
    _Atomic int streams;
    _Atomic uint32_t gen;
} warm_hint;

typedef struct worker {
    dq_pool *pool;
    pthread_t tid;
    warm_hint warm;                        // for this worker, slot index + 1
    _Alignas(64) _Atomic uint64_t busy_ns;  // running slots while the pool's timing is on
    uint64_t busy0;                         // busy_ns at dq_pool_times_begin (the caller's)
} worker;

struct dq_pool {
    int nth;
    // Hot words on their own cache lines.
    _Alignas(64) _Atomic uint64_t job;    // generation << 32 | next unclaimed slot
    _Alignas(64) _Atomic int done;        // slots finished in the current job
    _Alignas(64) _Atomic int sleepers;    // workers asleep on `wake`
    _Atomic int caller_asleep;
    _Atomic int quit;
    dq_task_fn fn;  // published before the generation bump (release), read after a claim
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t wake;      // new job (or quit) for workers
    pthread_cond_t finished;  // last slot done, for the caller
    worker *workers;          // nth - 1 of them
    // Caller-only state (degrading under CPU contention, see dq_pool_run).
    uint64_t serial_until;  // degraded until this time
    uint64_t serial_from;   // since this time
    int ncpu;               // online CPUs, 0: no probe of /proc/loadavg (see dq_pool_create)
    dq_backoff bo;
    long stalls, backoffs;
    warm_hint warm;  // the caller's (slot 0)
    // dq_pool_times: on between begin and end; since begin, the caller's time in parallel jobs,
    // waiting at their ends and backed off (degraded), and its thread CPU time then; the
    // workers' busy_ns then
    _Atomic int timing;
    uint64_t tm_begin, tm_cpu0, tm_in_jobs, tm_wait, tm_alone;
    _Atomic long warms;  // hints taken and run (dq_pool_warms)
    void *scratch, *act_scratch;
    size_t scratch_bytes, act_scratch_bytes;
};

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static uint64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

// Claims and runs slots of generation `gen` until none is left.
static void run_slots(dq_pool *p, uint32_t gen) {
    uint64_t v = atomic_load_explicit(&p->job, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(v >> 32) != gen || (uint32_t)v >= (uint32_t)p->nth) return;
        if (!atomic_compare_exchange_weak_explicit(&p->job, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        p->fn(p->ctx, (int)(uint32_t)v, p->nth);
        int d = atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1;
        if (d == p->nth && atomic_load(&p->caller_asleep)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->finished);
            pthread_mutex_unlock(&p->mu);
        }
        v = atomic_load_explicit(&p->job, memory_order_acquire);
    }
}

// Idle-time warming (dq_pool_warm). warm_take: a copy of h into *out if it is meant for the end of
// job gen (an older one is dropped, a later one left). warm_run: prefetches its streams into L2
// line by line, side by side as the four-stream GEMVs read them, until warm_over (looked at every
// 16 steps).
typedef struct warm_job {
    const char *base;
    size_t bytes, stride;
    int streams;
} warm_job;
static int warm_take(warm_hint *h, uint32_t gen, warm_job *out) {
    uintptr_t b = atomic_load_explicit(&h->base, memory_order_acquire);
    if (!b) return 0;
    uint32_t hg = atomic_load_explicit(&h->gen, memory_order_relaxed);
    if ((int32_t)(gen - hg) < 0) return 0;  // for a later job
    *out = (warm_job){(const char *)b, atomic_load_explicit(&h->bytes, memory_order_relaxed),
                      atomic_load_explicit(&h->stride, memory_order_relaxed),
                      atomic_load_explicit(&h->streams, memory_order_relaxed)};
    return atomic_compare_exchange_strong(&h->base, &b, 0) && hg == gen;
}
// caller: stop once every slot of job gen is done; a worker: once a job after gen has begun.
static int warm_over(dq_pool *p, uint32_t gen, int caller) {
    if (caller) return atomic_load_explicit(&p->done, memory_order_relaxed) >= p->nth;
    return (uint32_t)(atomic_load_explicit(&p->job, memory_order_relaxed) >> 32) != gen;
}
static void warm_run(dq_pool *p, const warm_job *h, uint32_t gen, int caller) {
    for (size_t o = 0; o < h->bytes; o += 64) {
        if (o % 1024 == 0 && warm_over(p, gen, caller)) return;
        for (int q = 0; q < h->streams; q++) __builtin_prefetch(h->base + (size_t)q * h->stride + o, 0, 2);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    dq_pool *p = w->pool;
    uint32_t seen = 0;
    for (;;) {
        // Wait for a new generation: spin briefly, then sleep.
        uint64_t t0 = 0;
        int spins = 0;
        while ((uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32) == seen &&
               !atomic_load_explicit(&p->quit, memory_order_acquire)) {
            warm_job h;
            if (warm_take(&w->warm, seen, &h)) {  // until the generation moves on
                atomic_fetch_add_explicit(&p->warms, 1, memory_order_relaxed);
                warm_run(p, &h, seen, 0);
                continue;
            }
            CPU_RELAX();
            if ((++spins & 63) == 0) {
                uint64_t t = now_ns();
                if (!t0) t0 = t;
                if (t - t0 < SPIN_NS) continue;
                pthread_mutex_lock(&p->mu);
                atomic_fetch_add(&p->sleepers, 1);
                while ((uint32_t)(atomic_load(&p->job) >> 32) == seen && !atomic_load(&p->quit))
                    pthread_cond_wait(&p->wake, &p->mu);
                atomic_fetch_sub(&p->sleepers, 1);
                pthread_mutex_unlock(&p->mu);
            }
        }
        if (atomic_load_explicit(&p->quit, memory_order_acquire)) return NULL;
        seen = (uint32_t)(atomic_load_explicit(&p->job, memory_order_acquire) >> 32);
        if (atomic_load_explicit(&p->timing, memory_order_relaxed)) {
            uint64_t t = now_ns();
            run_slots(p, seen);
            atomic_fetch_add_explicit(&w->busy_ns, now_ns() - t, memory_order_relaxed);
        } else {
            run_slots(p, seen);
        }
    }
}

int dq_pool_create(dq_pool **out, int n_threads, dq_err *e) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return DQ_ERR(e, DQ_EUSAGE, "thread count %d out of range 1..1024", n_threads);
    dq_pool *p = dq_alloc(sizeof *p);
    if (!p) return DQ_ERR(e, DQ_ENOMEM, "thread pool: out of memory");
    p->nth = n_threads;
    // The back-off's probe counts running threads system-wide: it says something about this
    // process's CPUs only when it may run on all of them (no affinity mask, no cgroup quota).
    long onln = sysconf(_SC_NPROCESSORS_ONLN);
    p->ncpu = n_threads > 1 && onln > 0 && onln < 1 << 20 && dq_cpus_available() == onln ? (int)onln : 0;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->finished, NULL);
    if (n_threads > 1) {
        p->workers = calloc((size_t)n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            dq_pool_free(p);
            return DQ_ERR(e, DQ_ENOMEM, "thread pool: out of memory");
        }
        // Workers start with every signal blocked (they inherit the mask), so a signal meant for
        // the process (SIGINT from a terminal's Ctrl-C) is always handled by the calling thread:
        // `dynq chat` waits for input in ppoll() with SIGINT unblocked only there, and a
        // handler run on a worker instead left it waiting (a Ctrl-C at the prompt that did not
        // exit, seen once in the sanitizer suite).
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            int rc = pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]);
            if (rc != 0) {
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                p->nth = i + 1;  // only i workers exist: free joins exactly those
                dq_pool_free(p);
                return DQ_ERR(e, DQ_ENOMEM, "thread pool: cannot start thread %d: %s", i + 1, strerror(rc));
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    *out = p;
    return DQ_OK;
}

void dq_pool_free(dq_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    if (p->workers)
        for (int i = 0; i < p->nth - 1; i++) pthread_join(p->workers[i].tid, NULL);
    free(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->finished);
    dq_free(p->scratch);
    dq_free(p->act_scratch);
    dq_free(p);
}

int dq_pool_nthreads(const dq_pool *p) { return p ? p->nth : 1; }

void dq_pool_warm(dq_pool *p, int slot, const void *base, size_t bytes, size_t stride, int streams) {
    if (!p || slot < 0 || slot >= p->nth || !base || streams < 1) return;
    warm_hint *h = slot ? &p->workers[slot - 1].warm : &p->warm;
    atomic_store_explicit(&h->bytes, bytes, memory_order_relaxed);
    atomic_store_explicit(&h->stride, stride, memory_order_relaxed);
    atomic_store_explicit(&h->streams, streams, memory_order_relaxed);
    atomic_store_explicit(&h->gen, (uint32_t)(atomic_load_explicit(&p->job, memory_order_relaxed) >> 32) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->base, (uintptr_t)base, memory_order_release);
}

// Back-off after stalls (see pool_run): a stall alone is sat out; one within STRIKE_NS of the
// previous stall, or of the end of a back-off, means the contention stays, and the caller runs
// the jobs alone for a while: 2 ms first, doubling while stalls come back that soon after each
// retry, at most 250 ms. A time bound, not a job count: contention from the host (another VM
// taking the vCPU) passes, and parallel work resumes within a quarter second; a neighbour that
// stays costs about one stall (one scheduler slice, ~4 ms here) per 250 ms.
// Why not back off at every stall: this VM's own kernel threads (kdamond, seen with perf sched)
// and the host take a worker's core for 0.2-3 ms every 100-700 ms; backing off at each of them,
// doubling while they came within a second of the last retry, left two-thread decode running
// alone for much of a run (359 against 427 tok/s in the same minute). A busy neighbour stalls
// the pool every 4-10 ms, and again within 10 ms of a retry.
#define STALL_NS 200000
#define STRIKE_NS 100000000  // 100 ms
#define SERIAL_MIN_NS 2000000
#define SERIAL_MAX_NS 250000000

uint64_t dq_backoff_on_stall(dq_backoff *b, uint64_t t, int contended) {
    int after_retry = b->retried_at && t - b->retried_at < STRIKE_NS;
    int again = b->last_stall && t - b->last_stall < STRIKE_NS;
    b->last_stall = t;
    if (!contended) b->serial_ns = 0;  // the next back-off, if any, starts from the shortest
    if (!contended || (!after_retry && !again)) return 0;
    b->serial_ns = after_retry && b->serial_ns ? b->serial_ns * 2 : SERIAL_MIN_NS;
    if (b->serial_ns > SERIAL_MAX_NS) b->serial_ns = SERIAL_MAX_NS;
    return b->serial_ns;
}

// Whether the system's other running threads leave fewer than nth of its ncpu CPUs free:
// /proc/loadavg's fourth field is "running/total" scheduling entities, counted at the read,
// system-wide (so ncpu is the online CPU count, not this process's share), the reader included.
// Read only at the end of a back-off (~8 us). 0 when unreadable: retry as without it.
#define PROBE_NS 20000000  // 20 ms: the next look while the CPUs stay taken
int dq_loadavg_cpus_taken(const char *text, int nth, int ncpu) {
    const char *f = text;
    for (int i = 0; i < 3 && f; i++) {
        f = strchr(f, ' ');
        if (f) f++;
    }
    char *end;
    long running = f ? strtol(f, &end, 10) : 0;
    if (!f || end == f || *end != '/' || running < 1) return 0;
    return running - 1 + nth > ncpu;
}
static int read_text(const char *path, char *buf, size_t cap);
static int cpus_taken(int nth, int ncpu) {
    char buf[128];
    return read_text("/proc/loadavg", buf, sizeof buf) == 0 && dq_loadavg_cpus_taken(buf, nth, ncpu);
}

// A back-off until time `until` (one already on keeps its start); and, for dq_pool_times, the
// time it has lasted at t within the timed stretch.
static void back_off(dq_pool *p, uint64_t t, uint64_t until) {
    if (!p->serial_until) p->serial_from = t;
    p->serial_until = until;
}
static uint64_t backed_off_ns(const dq_pool *p, uint64_t t) {
    return t - (p->serial_from > p->tm_begin ? p->serial_from : p->tm_begin);
}

// Whether the next adaptive job runs in the caller alone (a back-off, see pool_run). At the end
// of a back-off, the workers are retried only if the system has a CPU for each of them: while
// other threads keep the CPUs busy, a retry just meets the next stall.
static int alone(dq_pool *p) {
    if (!p->serial_until) return 0;
    uint64_t t = now_ns();
    if (t >= p->serial_until && p->ncpu > 0 && cpus_taken(p->nth, p->ncpu)) p->serial_until = t + PROBE_NS;
    if (t < p->serial_until) return 1;
    if (atomic_load_explicit(&p->timing, memory_order_relaxed)) p->tm_alone += backed_off_ns(p, t);
    p->serial_until = 0;
    p->bo.retried_at = t;
    return 0;
}

void dq_pool_fall_back(dq_pool *p, uint64_t ns) {
    if (!p || p->nth == 1) return;
    uint64_t t = now_ns();
    back_off(p, t, t + ns);
}

int dq_pool_nthreads_now(dq_pool *p) { return !p ? 1 : p->nth > 1 && alone(p) ? 1 : p->nth; }

// Returns 1 if the job ran on the workers too, 0 if in the caller alone.
static int pool_run_plain(dq_pool *p, dq_task_fn fn, void *ctx, int adaptive) {
    if (!p || p->nth == 1) {
        fn(ctx, 0, 1);
        return 0;
    }
    if (adaptive && alone(p)) {  // degraded: every slot in the caller, workers stay asleep
        for (int i = 0; i < p->nth; i++) fn(ctx, i, p->nth);
        return 0;
    }
    uint64_t start = now_ns();
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    uint32_t gen = (uint32_t)(atomic_load_explicit(&p->job, memory_order_relaxed) >> 32) + 1;
    atomic_store(&p->job, (uint64_t)gen << 32);  // seq_cst: pairs with the sleepers check
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_slots(p, gen);
    uint64_t own_end = now_ns();
    // Wait for slots other threads claimed.
    uint64_t t0 = 0;
    int spins = 0;
    warm_job h;
    if (atomic_load_explicit(&p->done, memory_order_acquire) < p->nth && warm_take(&p->warm, gen, &h)) {
        atomic_fetch_add_explicit(&p->warms, 1, memory_order_relaxed);
        warm_run(p, &h, gen, 1);
    }
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->nth) {
        CPU_RELAX();
        if ((++spins & 63) != 0) continue;
        uint64_t t = now_ns();
        if (!t0) t0 = t;
        if (t - t0 < SPIN_NS) continue;
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_asleep, 1);
        while (atomic_load(&p->done) < p->nth) pthread_cond_wait(&p->finished, &p->mu);
        atomic_store(&p->caller_asleep, 0);
        pthread_mutex_unlock(&p->mu);
    }
    const int timing = atomic_load_explicit(&p->timing, memory_order_relaxed);
    if (!adaptive && !timing) return 1;
    const uint64_t end = now_ns();  // every slot done
    if (timing) p->tm_wait += end - own_end;
    // Stall detection. Balanced work leaves the caller waiting at most about one tile after its
    // own share; a wait of hundreds of microseconds, longer than half the caller's own work,
    // means a worker was descheduled while holding work. If stalls recur (STRIKE_NS above:
    // another process wants this core), the next jobs run in the caller alone, so -t N never
    // falls far below -t 1; the back-off doubles while stalls keep coming soon after each retry.
    if (!adaptive) return 1;
    uint64_t wait = end - own_end, own = own_end - start;
    if (wait > STALL_NS && wait > own / 2) {
        // A back-off only while a thread not ours is runnable, so that these CPUs are short
        // (/proc/loadavg counts this process's runnable threads, the descheduled worker among
        // them, and the others: more than ncpu in all). Without it, the host taking a vCPU now and
        // then (steal; this VM's own threads are all ours) looks the same as a busy neighbour, and
        // the doubling back-off kept two-thread TinyLlama decode alone 31-88 % of the time:
        // `dynq bench -p 16 -n 64 -t 2 -r 3`, six alternating rounds, 24.7-34.7 tok/s against
        // 31.2-41.2 with this check (1.10-1.43x per round), back-offs 39-71 against 0-5. Beside a
        // CPU-burning neighbour recurring stalls still back off, as before. Where the probe
        // cannot tell (ncpu 0: an affinity mask or a CPU quota), as before. (The read, ~8 us, is
        // made at every stall, which has cost at least STALL_NS.)
        const int contended = p->ncpu <= 0 || cpus_taken(1, p->ncpu);
        uint64_t alone = dq_backoff_on_stall(&p->bo, end, contended);
        p->stalls++;
        if (alone) {
            back_off(p, end, end + alone);
            p->backoffs++;
        }
    }
    return 1;
}

// While dq_pool_times is on, the whole of a parallel job counts as time in jobs (a job during
// a back-off falls in the back-off's time).
static void pool_run(dq_pool *p, dq_task_fn fn, void *ctx, int adaptive) {
    if (!p || !atomic_load_explicit(&p->timing, memory_order_relaxed)) {
        pool_run_plain(p, fn, ctx, adaptive);
        return;
    }
    uint64_t t = now_ns();
    // (a generic job runs on every thread during a back-off too; an adaptive job that does ends it)
    const int backed_off = !adaptive && p->serial_until != 0;
    if (pool_run_plain(p, fn, ctx, adaptive) && !backed_off) p->tm_in_jobs += now_ns() - t;
}

void dq_pool_times_begin(dq_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->nth - 1; i++) p->workers[i].busy0 = atomic_load(&p->workers[i].busy_ns);
    p->tm_in_jobs = p->tm_wait = p->tm_alone = 0;
    p->tm_cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    p->tm_begin = now_ns();
    atomic_store(&p->timing, 1);
}

void dq_pool_times_end(dq_pool *p, dq_pool_times *acc) {
    if (!p) return;
    const uint64_t t = now_ns(), cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - p->tm_cpu0, wall = t - p->tm_begin;
    if (p->serial_until) p->tm_alone += backed_off_ns(p, t);
    atomic_store(&p->timing, 0);
    uint64_t busy = 0, in = p->tm_in_jobs + p->tm_alone;
    for (int i = 0; i < p->nth - 1; i++) busy += atomic_load(&p->workers[i].busy_ns) - p->workers[i].busy0;
    acc->wall += (double)wall * 1e-9;
    acc->outside += (double)(wall > in ? wall - in : 0) * 1e-9;
    acc->alone += (double)p->tm_alone * 1e-9;
    acc->wait += (double)p->tm_wait * 1e-9;
    acc->worker_busy += (double)busy * 1e-9;
    acc->off_cpu += (double)(wall > cpu ? wall - cpu : 0) * 1e-9;
}

long dq_pool_stalls(const dq_pool *p) { return p ? p->stalls : 0; }
long dq_pool_warms(const dq_pool *p) { return p ? atomic_load(&p->warms) : 0; }
long dq_pool_backoffs(const dq_pool *p) { return p ? p->backoffs : 0; }

int dq_claim_next(dq_claim *reg, int items, int ith, int nth, int *k) {
    int nreg = nth < DQ_CLAIM_REGIONS ? nth : DQ_CLAIM_REGIONS;
    for (; *k < nreg; ++*k) {
        int r = (ith + *k) % nreg, lo = (int)((int64_t)items * r / nreg), hi = (int)((int64_t)items * (r + 1) / nreg);
        if (atomic_load_explicit(&reg[r].next, memory_order_relaxed) >= hi - lo) continue;
        int it = lo + atomic_fetch_add_explicit(&reg[r].next, 1, memory_order_relaxed);
        if (it < hi) return it;
    }
    return -1;
}

// Generic tasks may split work statically (ith of nth), so a long wait can be plain imbalance:
// they always run on every thread. The kernels' drivers hand out small tiles dynamically, so for
// them a long wait really means a descheduled worker: they use the adaptive entry.
void dq_pool_run(dq_pool *p, dq_task_fn fn, void *ctx) { pool_run(p, fn, ctx, 0); }
void dq_pool_run_adaptive(dq_pool *p, dq_task_fn fn, void *ctx) { pool_run(p, fn, ctx, 1); }

static void *grow(void **buf, size_t *have, size_t bytes) {
    if (bytes <= *have) return *buf;
    size_t want = bytes + bytes / 4 + 4096;
    void *nb = dq_alloc(want);
    if (!nb) return NULL;
    dq_free(*buf);
    *buf = nb;
    *have = want;
    return nb;
}

void *dq_pool_scratch(dq_pool *p, size_t bytes) {
    DQ_ASSERT(p != NULL);
    void *r = grow(&p->scratch, &p->scratch_bytes, bytes);
    DQ_ASSERT(r != NULL);  // out of memory for scratch: nothing sensible to return
    return r;
}

void *dq_pool_act_scratch(dq_pool *p, size_t bytes) {
    DQ_ASSERT(p != NULL);
    void *r = grow(&p->act_scratch, &p->act_scratch_bytes, bytes);
    DQ_ASSERT(r != NULL);
    return r;
}

// ---------------------------------------------------------------- how many threads
// A cgroup's CPU limit from its cpu.max text ("QUOTA PERIOD" or "max PERIOD", in microseconds;
// cgroup v1's cfs_quota_us and cfs_period_us joined the same way, -1 for no quota): whole CPUs,
// rounded up, or 0 for no limit or text that is not a limit.
int dq_cgroup_cpu_limit(const char *text) {
    if (!text) return 0;
    char *end;
    errno = 0;
    long long quota = strtoll(text, &end, 10);
    if (end == text || errno || (*end != ' ' && *end != '\t')) return 0;  // "max", junk
    const char *p = end;
    long long period = strtoll(p, &end, 10);
    if (end == p || errno || (*end && *end != '\n' && *end != ' ')) return 0;
    if (quota <= 0 || period <= 0) return 0;
    long long cpus = quota / period + (quota % period != 0);
    return cpus > 1024 ? 1024 : (int)cpus;
}

static int read_text(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return 0;
}

// The tightest CPU limit of the cgroup directory dir and its ancestors up to root (the limit can
// sit on any of them; in a container the mount's root is the container's own cgroup), 0 if none.
// v1: the cfs files of the cpu controller; v2: cpu.max.
static int cgroup_limit_up(char *dir, size_t root_len, int v1) {
    int best = 0;
    for (;;) {
        char path[4352], text[128], period[64];
        int lim = 0;
        if (v1) {
            snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
            if (!read_text(path, text, 64)) {
                snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
                if (!read_text(path, period, sizeof period)) {
                    text[strcspn(text, "\n")] = ' ';
                    strncat(text, period, sizeof text - strlen(text) - 1);
                    lim = dq_cgroup_cpu_limit(text);
                }
            }
        } else {
            snprintf(path, sizeof path, "%s/cpu.max", dir);
            if (!read_text(path, text, sizeof text)) lim = dq_cgroup_cpu_limit(text);
        }
        if (lim && (!best || lim < best)) best = lim;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < root_len) return best;
        *slash = 0;
    }
}

// This process's cgroup CPU limit (/proc/self/cgroup: v2's "0::PATH" under /sys/fs/cgroup, or
// v1's cpu controller under /sys/fs/cgroup/cpu), 0 if none can be read.
static int cgroup_cpu_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    char line[4096];
    int best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/') continue;
        *c2 = 0;
        const char *ctrl = c1 + 1;
        int v2 = !strcmp(line, "0") && !*ctrl, v1 = 0;
        for (const char *t = ctrl; *t && !v2;) {  // "cpu" in a comma-separated controller list
            size_t n = strcspn(t, ",");
            if (n == 3 && !strncmp(t, "cpu", 3)) v1 = 1;
            t += n + (t[n] == ',');
        }
        if (!v1 && !v2) continue;
        const char *root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/cpu";
        char dir[4200];
        snprintf(dir, sizeof dir, "%s%s", root, strcmp(c2 + 1, "/") ? c2 + 1 : "");
        int lim = cgroup_limit_up(dir, strlen(root), v1);
        if (lim && (!best || lim < best)) best = lim;
    }
    fclose(f);
    return best;
}

static int affinity_cpus(cpu_set_t *set) {
    CPU_ZERO(set);
    if (sched_getaffinity(0, sizeof *set, set) != 0) return 0;
    return CPU_COUNT(set);
}

int dq_cpus_available(void) {
    cpu_set_t set;
    long n = affinity_cpus(&set);
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    int lim = cgroup_cpu_limit();
    return lim && lim < n ? lim : (int)n;
}

// Physical cores among the CPUs this process may use: distinct (physical id, core id) pairs of
// the /proc/cpuinfo processors in its affinity mask, at most dq_cpus_available(); that, when
// /proc/cpuinfo says nothing usable.
int dq_physical_cores(void) {
    int avail = dq_cpus_available();
    cpu_set_t set;
    int masked = affinity_cpus(&set) > 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return avail;
    char line[256];
    int proc = -1, phys = -1, ids[1024][2], nid = 0;
    while (fgets(line, sizeof line, f)) {
        int v;
        if (sscanf(line, "processor : %d", &v) == 1) proc = v, phys = -1;
        else if (sscanf(line, "physical id : %d", &v) == 1) phys = v;
        else if (sscanf(line, "core id : %d", &v) == 1) {
            if (masked && (proc < 0 || proc >= CPU_SETSIZE || !CPU_ISSET(proc, &set))) continue;
            int seen = 0;
            for (int i = 0; i < nid; i++)
                if (ids[i][0] == phys && ids[i][1] == v) seen = 1;
            if (!seen && nid < 1024) {
                ids[nid][0] = phys;
                ids[nid][1] = v;
                nid++;
            }
        }
    }
    fclose(f);
    if (nid < 1 || nid > avail) return avail;
    return nid;
}
