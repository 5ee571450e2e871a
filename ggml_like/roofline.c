// ggml_like/roofline.c: measures read bandwidth and int8 dot-product peak (see roofline.h).
#include "roofline.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels.h"

// ---------------------------------------------------------------- read bandwidth
// 16-byte vector loads (SSE2 / NEON baseline through GCC vector extensions), 8 independent
// XOR chains: the loop is far faster than DRAM, so DRAM is what gets measured.
typedef long long v2i __attribute__((vector_size(16)));

typedef struct bw_ctx {
    const uint8_t *buf;
    size_t bytes;
    v2i sink[64];
} bw_ctx;

static void bw_task(void *arg, int ith, int nth) {
    bw_ctx *c = arg;
    size_t per = (c->bytes / (size_t)nth) & ~(size_t)127;
    const v2i *p = (const v2i *)(c->buf + per * (size_t)ith), *end = (const v2i *)(c->buf + per * (size_t)(ith + 1));
    v2i a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (; p < end; p += 8) {
        a0 ^= p[0], a1 ^= p[1], a2 ^= p[2], a3 ^= p[3];
        a4 ^= p[4], a5 ^= p[5], a6 ^= p[6], a7 ^= p[7];
    }
    c->sink[ith & 63] = a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

double dq_roofline_read_gbps(dq_pool *pool, size_t bytes) {
    if (!bytes) bytes = (size_t)512 << 20;
    bytes &= ~(size_t)4095;
    // Anonymous mapping with huge pages requested, like the packed weights the kernels stream
    // (so both see the same TLB behaviour); every page is written before timing.
    uint8_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return -1.0;
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = (uint8_t)i;
    bw_ctx c = {.buf = buf, .bytes = bytes};
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = dq_now();
        dq_pool_run(pool, bw_task, &c);
        double dt = dq_now() - t0;
        double gbps = (double)(bytes / (size_t)dq_pool_nthreads(pool) & ~(size_t)127) * dq_pool_nthreads(pool) / dt / 1e9;
        if (gbps > best) best = gbps;
    }
    munmap(buf, bytes);
    return best;
}

// ---------------------------------------------------------------- int8 peak
typedef struct peak_ctx {
    const dq_kernels *K;
    int64_t iters;
    _Atomic int64_t ops;
    int32_t sink[64];
} peak_ctx;

static void peak_task(void *arg, int ith, int nth) {
    peak_ctx *c = arg;
    atomic_fetch_add(&c->ops, c->K->int8_peak(c->iters, &c->sink[ith & 63]));
}

double dq_roofline_int8_gops(dq_pool *pool, dq_isa *isa) {
    const dq_kernels *K = dq_kernels_current();
    if (isa) *isa = K->isa;
    peak_ctx c = {.K = K, .iters = 1000};
    // Grow the loop until one run takes >= 50 ms, then keep the best of 5.
    for (;;) {
        double t0 = dq_now();
        atomic_store(&c.ops, 0);
        dq_pool_run(pool, peak_task, &c);
        if (dq_now() - t0 >= 0.05 || c.iters > ((int64_t)1 << 40)) break;
        c.iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        atomic_store(&c.ops, 0);
        double t0 = dq_now();
        dq_pool_run(pool, peak_task, &c);
        double g = (double)atomic_load(&c.ops) / (dq_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}
