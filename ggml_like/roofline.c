// ggml_like/roofline.c: measures read bandwidth and int8 dot-product peak (see roofline.h).
#include "roofline.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels.h"

// ---------------------------------------------------------------- read bandwidth
// Independent XOR chains over 16-byte vectors (SSE2 / NEON baseline through GCC vector
// extensions), and on x86 with AVX2 over 32-byte ones: the loops are far faster than memory, so
// memory is what gets measured. Each width runs plain (hardware prefetcher only) and with the
// software prefetch the GEMVs use (dq_gemv_prefetch, dq_gemv_prefetch_bytes ahead); the best pass
// counts. Measured on the Xeon model 207, one core, 512 MiB: 12.7 GB/s plain 16-byte, 15.8 with
// the prefetch, 16.5 with 32-byte loads and the prefetch; against the plain loop alone the
// prefetching GEMVs showed "150 %" of the read bandwidth.
typedef long long v2i __attribute__((vector_size(16)));

typedef struct bw_ctx {
    const uint8_t *buf;
    size_t bytes;
    int variant;  // bit 0: software prefetch; bit 1: 32-byte loads
    v2i sink[64];
} bw_ctx;

static v2i bw_loop16(const uint8_t *b, const uint8_t *e, int prefetch) {
    const v2i *p = (const v2i *)b, *end = (const v2i *)e;
    v2i a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (; p < end; p += 8) {
        if (prefetch) dq_gemv_prefetch(p, 2);
        a0 ^= p[0], a1 ^= p[1], a2 ^= p[2], a3 ^= p[3];
        a4 ^= p[4], a5 ^= p[5], a6 ^= p[6], a7 ^= p[7];
    }
    return a0 ^ a1 ^ a2 ^ a3 ^ a4 ^ a5 ^ a6 ^ a7;
}

#if defined(__x86_64__)
#define BW_WIDE 1
typedef long long v4i __attribute__((vector_size(32)));
__attribute__((target("avx2"))) static v2i bw_loop32(const uint8_t *b, const uint8_t *e, int prefetch) {
    const v4i *p = (const v4i *)b, *end = (const v4i *)e;
    v4i a0 = {0}, a1 = a0, a2 = a0, a3 = a0;
    for (; p < end; p += 4) {  // 128 bytes per step, as bw_loop16
        if (prefetch) dq_gemv_prefetch(p, 2);
        a0 ^= p[0], a1 ^= p[1], a2 ^= p[2], a3 ^= p[3];
    }
    a0 ^= a1 ^ a2 ^ a3;
    return (v2i){a0[0] ^ a0[2], a0[1] ^ a0[3]};
}
#else
#define BW_WIDE 0
#endif

static void bw_task(void *arg, int ith, int nth) {
    bw_ctx *c = arg;
    size_t per = (c->bytes / (size_t)nth) & ~(size_t)127;
    const uint8_t *b = c->buf + per * (size_t)ith, *e = b + per;
#if BW_WIDE
    if (c->variant & 2) {
        c->sink[ith & 63] = bw_loop32(b, e, c->variant & 1);
        return;
    }
#endif
    c->sink[ith & 63] = bw_loop16(b, e, c->variant & 1);
}

double dq_roofline_read_gbps(dq_pool *pool, size_t bytes) {
    if (!bytes) bytes = (size_t)512 << 20;
    bytes &= ~(size_t)4095;
    // Anonymous mapping with huge pages requested: the best case for TLB behaviour (the model's
    // weights are read from the mapped file in 4 KiB pages), so the fraction reached does not
    // flatter; every page is written before timing.
    uint8_t *buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) return -1.0;
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = (uint8_t)i;
    bw_ctx c = {.buf = buf, .bytes = bytes};
    double best = 0;
    // 32-byte loads only where the chosen kernels imply AVX2 (every x86 ISA but scalar)
    const int variants = BW_WIDE && dq_isa_chosen() != DQ_ISA_SCALAR ? 4 : 2;
    for (int rep = 0; rep < 3 * variants; rep++) {
        c.variant = rep % variants;
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
