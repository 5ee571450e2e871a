// ggml_like/roofline.c: measures read bandwidth and int8 dot-product peak (see roofline.h).
#include "roofline.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

// ---------------------------------------------------------------- read bandwidth
// Independent XOR chains over 16-byte vectors (SSE2 / NEON baseline through GCC vector
// extensions), and on x86 with AVX2 over 32-byte ones: the loops are far faster than memory, so
// memory is what gets measured. Each width runs plain (hardware prefetcher only) and with the
// software prefetch the GEMVs use (dq_gemv_prefetch, dq_gemv_prefetch_bytes ahead); the best pass
// counts. Measured on the Xeon model 207, one core, 512 MiB: 12.7 GB/s plain 16-byte, 15.8 with
// the prefetch, 16.5 with 32-byte loads and the prefetch; against the plain loop alone the
// prefetching GEMVs showed "150 %" of the read bandwidth. A third form reads four streams side by
// side (hardware prefetcher only), as the AVX2 GEMV does on AMD (kernels.h, dq_gemv_streams): on
// the Zen 3, one thread, a weights-sized buffer (105 MiB), the one-stream loops read 14-19 GB/s,
// four streams 20-22 (18-19 against 14-18 over 512 MiB).
typedef long long v2i __attribute__((vector_size(16)));

typedef struct bw_ctx {
    const uint8_t *buf;
    size_t bytes;
    int variant;  // bit 0: software prefetch; bit 1: 32-byte loads; bit 2: four streams; bit 3: with
                  // the four-stream GEMV's prefetch (dq_gemv4_prefetch_bytes), else none
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

// Four streams side by side, as the x86 GEMVs read four weight panels: the range in groups of
// four BW_PANEL-byte blocks, each group walked as four streams, 64 bytes of each per step.
#define BW_PANEL 16384
// The four streams' lines pfd bytes ahead, as the four-stream GEMVs prefetch (dq_gemv4_prefetch_bytes:
// AMD family 23 and Intel).
static inline void bw_prefetch4(const uint8_t *p, long pfd) {
    for (int q = 0; q < 4; q++) __builtin_prefetch(p + (size_t)q * BW_PANEL + pfd, 0, 3);
}
static v2i bw_loop16x4(const uint8_t *b, const uint8_t *e, long pfd) {
    v2i a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (; b + 4 * BW_PANEL <= e; b += 4 * BW_PANEL)
        for (size_t i = 0; i < BW_PANEL; i += 64) {
            const v2i *p0 = (const v2i *)(b + i), *p1 = (const v2i *)(b + BW_PANEL + i);
            const v2i *p2 = (const v2i *)(b + 2 * BW_PANEL + i), *p3 = (const v2i *)(b + 3 * BW_PANEL + i);
            if (pfd) bw_prefetch4(b + i, pfd);
            a0 ^= p0[0] ^ p0[1], a1 ^= p0[2] ^ p0[3], a2 ^= p1[0] ^ p1[1], a3 ^= p1[2] ^ p1[3];
            a4 ^= p2[0] ^ p2[1], a5 ^= p2[2] ^ p2[3], a6 ^= p3[0] ^ p3[1], a7 ^= p3[2] ^ p3[3];
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
__attribute__((target("avx2"))) static v2i bw_loop32x4(const uint8_t *b, const uint8_t *e, long pfd) {
    v4i a0 = {0}, a1 = a0, a2 = a0, a3 = a0;
    for (; b + 4 * BW_PANEL <= e; b += 4 * BW_PANEL)
        for (size_t i = 0; i < BW_PANEL; i += 64) {
            const v4i *p0 = (const v4i *)(b + i), *p1 = (const v4i *)(b + BW_PANEL + i);
            const v4i *p2 = (const v4i *)(b + 2 * BW_PANEL + i), *p3 = (const v4i *)(b + 3 * BW_PANEL + i);
            if (pfd) bw_prefetch4(b + i, pfd);
            a0 ^= p0[0] ^ p0[1], a1 ^= p1[0] ^ p1[1], a2 ^= p2[0] ^ p2[1], a3 ^= p3[0] ^ p3[1];
        }
    a0 ^= a1 ^ a2 ^ a3;
    return (v2i){a0[0] ^ a0[2], a0[1] ^ a0[3]};
}
#else
#define BW_WIDE 0
#endif

// Each thread's share: a multiple of 64 KiB (whole groups of four blocks).
static size_t bw_share(size_t bytes, int nth) { return (bytes / (size_t)nth) & ~(size_t)(4 * BW_PANEL - 1); }

static void bw_task(void *arg, int ith, int nth) {
    bw_ctx *c = arg;
    size_t per = bw_share(c->bytes, nth);
    const uint8_t *b = c->buf + per * (size_t)ith, *e = b + per;
    const int four = c->variant & 4, pf = c->variant & 1;
    const long pfd = c->variant & 8 ? dq_gemv4_prefetch_bytes : 0;
#if BW_WIDE
    if (c->variant & 2) {
        c->sink[ith & 63] = four ? bw_loop32x4(b, e, pfd) : bw_loop32(b, e, pf);
        return;
    }
#endif
    c->sink[ith & 63] = four ? bw_loop16x4(b, e, pfd) : bw_loop16(b, e, pf);
}

struct dq_read_probe {
    uint8_t *buf;
    size_t bytes;
    int mapped;  // dq_alloc_big's
};

int dq_read_probe_new(dq_read_probe **out, size_t bytes) {
    *out = NULL;
    if (!bytes) bytes = (size_t)512 << 20;
    bytes &= ~(size_t)4095;
    dq_read_probe *rp = calloc(1, sizeof *rp);
    if (!rp) return DQ_ENOMEM;
    // In 2 MiB pages where the kernel allows (dq_alloc_big): the best case for TLB behaviour, so
    // the fraction reached does not flatter; every page is written before timing.
    rp->buf = dq_alloc_big(bytes, &rp->mapped);
    if (!rp->buf) {
        free(rp);
        return DQ_ENOMEM;
    }
    for (size_t i = 0; i < bytes; i += 4096) rp->buf[i] = (uint8_t)(i >> 12);
    rp->bytes = bytes;
    *out = rp;
    return 0;
}

int dq_read_probe_passes(dq_read_probe *rp, dq_pool *pool, double *gbps) {
    bw_ctx c = {.buf = rp->buf, .bytes = rp->bytes};
    // 32-byte loads only where the chosen kernels imply AVX2 (every x86 ISA but scalar)
    // and the four streams also with the four-stream GEMVs' prefetch where they have one (bit 3)
    static const int narrow[] = {0, 1, 4, 12}, wide[] = {0, 1, 2, 3, 4, 6, 12, 14};
    const int use_wide = BW_WIDE && dq_isa_chosen() != DQ_ISA_SCALAR, pf4 = dq_gemv4_prefetch_bytes > 0;
    const int *vs = use_wide ? wide : narrow, variants = (use_wide ? 6 : 3) + (pf4 ? 1 + use_wide : 0);
    _Static_assert(sizeof wide / sizeof wide[0] <= DQ_READ_VARIANTS, "DQ_READ_VARIANTS");
    const int nth = dq_pool_nthreads(pool);
    for (int v = 0; v < variants; v++) {
        c.variant = vs[v];
        double t0 = dq_now();
        dq_pool_run(pool, bw_task, &c);
        gbps[v] = (double)bw_share(rp->bytes, nth) * nth / (dq_now() - t0) / 1e9;
    }
    return variants;
}

double dq_read_probe_gbps(dq_read_probe *rp, dq_pool *pool, int rounds) {
    double best = 0, g[DQ_READ_VARIANTS];
    for (int r = 0; r < rounds; r++)
        for (int v = 0, n = dq_read_probe_passes(rp, pool, g); v < n; v++)
            if (g[v] > best) best = g[v];
    return best;
}

void dq_read_probe_free(dq_read_probe *rp) {
    if (!rp) return;
    dq_free_big(rp->buf, rp->bytes, rp->mapped);
    free(rp);
}

double dq_roofline_read_gbps(dq_pool *pool, size_t bytes) {
    dq_read_probe *rp;
    if (dq_read_probe_new(&rp, bytes)) return -1.0;
    double best = dq_read_probe_gbps(rp, pool, 3);
    dq_read_probe_free(rp);
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

double dq_roofline_int8_gops_passes(dq_pool *pool, dq_isa *isa, int64_t *iters, int passes) {
    const dq_kernels *K = dq_kernels_current();
    if (isa) *isa = K->isa;
    peak_ctx c = {.K = K, .iters = *iters > 0 ? *iters : 1000};
    // Grow the loop until one run takes >= 50 ms (first call), then keep the best of `passes`.
    while (*iters <= 0) {
        double t0 = dq_now();
        atomic_store(&c.ops, 0);
        dq_pool_run(pool, peak_task, &c);
        if (dq_now() - t0 >= 0.05 || c.iters > ((int64_t)1 << 40)) *iters = c.iters;
        else c.iters *= 4;
    }
    double best = 0;
    for (int rep = 0; rep < passes; rep++) {
        atomic_store(&c.ops, 0);
        double t0 = dq_now();
        dq_pool_run(pool, peak_task, &c);
        double g = (double)atomic_load(&c.ops) / (dq_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    return best;
}

double dq_roofline_int8_gops(dq_pool *pool, dq_isa *isa) {
    int64_t iters = 0;
    return dq_roofline_int8_gops_passes(pool, isa, &iters, 5);
}
