// ggml_like/dispatch.c: chooses the kernel table once (CPU probe + DYNQ_ISA), packs weights at
// load, and drives the kernels: activation quantization and matmuls split into (rows x tokens)
// tiles that the pool's threads take one at a time (atomic counter), so results never depend
// on the thread count or on who computes which tile.
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels.h"

// ---------------------------------------------------------------- tables and choice
static const char *const isa_names[] = {"scalar", "avx2", "avx512vnni", "amx", "neon"};
const char *dq_isa_name(dq_isa isa) { return (unsigned)isa < 5 ? isa_names[isa] : "?"; }

static inline dq_cpu *probed_cpu(void);

#ifdef DQ_WITH_AVX2
// The avx2 ISA runs AVX-VNNI's vpdpbusd on ymm when the CPU has it (DYNQ_AVX2=plain: not).
static const dq_kernels *avx2_family(void) {
    const char *v = getenv("DYNQ_AVX2");
    return probed_cpu()->avxvnni && !(v && strcmp(v, "plain") == 0) ? dq_kernels_avxvnni() : dq_kernels_avx2();
}
#endif

// The table getter of each ISA this build has (ggml_like.mk defines DQ_WITH_<ISA> for the kernel
// files it builds on this architecture), NULL for the others. Knowing that an ISA is built does
// not call its getter: a table's code may run only once the CPU probe allows it (amx.c is
// compiled for AVX-512, its table set-up included).
static const dq_kernels *(*table_getter(dq_isa isa))(void) {
    switch (isa) {
    case DQ_ISA_SCALAR: return dq_kernels_scalar;
#ifdef DQ_WITH_AVX2
    case DQ_ISA_AVX2: return avx2_family;
#endif
#ifdef DQ_WITH_AVX512VNNI
    case DQ_ISA_AVX512VNNI: return dq_kernels_avx512vnni;
#endif
#ifdef DQ_WITH_AMX
    case DQ_ISA_AMX: return dq_kernels_amx;
#endif
#ifdef DQ_WITH_NEON
    case DQ_ISA_NEON: return dq_kernels_neon;
#endif
    default: return NULL;
    }
}
static int isa_built(dq_isa isa) { return table_getter(isa) != NULL; }
static const dq_kernels *built_table(dq_isa isa) { return isa_built(isa) ? table_getter(isa)() : NULL; }

static struct {
    pthread_once_t once;
    dq_cpu cpu;
    int status;
    char msg[256];
    dq_isa chosen;
    const dq_kernels *K;
} g = {.once = PTHREAD_ONCE_INIT};

static inline dq_cpu *probed_cpu(void) { return &g.cpu; }  // filled first thing in init_once

// The GEMVs' software prefetch distance (Intel's until init_once has probed the CPU) and panel
// streams (kernels.h).
int dq_gemv_prefetch_bytes = 4096;
int dq_gemv_streams = 4;
int dq_gemv4_min_kp = 0;
int dq_avx2_widen = 0;
int dq_gemv4_prefetch_bytes = 0;
int dq_decode_warm = 0;

// An environment override with two allowed values: *pick = the index of the one set, -1 if the
// variable is unset or empty; non-zero (the usage error recorded in g) for any other value.
static int env_pick(const char *name, const char *const values[2], int *pick) {
    const char *v = getenv(name);
    *pick = -1;
    if (!v || !*v) return 0;
    for (int i = 0; i < 2; i++)
        if (strcmp(v, values[i]) == 0) *pick = i;
    if (*pick >= 0) return 0;
    g.status = DQ_EUSAGE;
    snprintf(g.msg, sizeof g.msg, "%s=%s: use %s or %s", name, v, values[0], values[1]);
    return -1;
}

static void init_once(void) {
    dq_cpu_probe(&g.cpu);
    const int amd = strcmp(g.cpu.vendor, "AuthenticAMD") == 0;
    dq_gemv_prefetch_bytes = amd ? 1024 : 4096;
    const int zen2 = amd && g.cpu.family == 23;  // Zen to Zen 2: one multiply pipe (avx2.c)
    dq_avx2_widen = zen2;
    dq_gemv4_prefetch_bytes = zen2 ? 256 : amd ? 0 : 2048;
#if defined(__x86_64__)
    dq_decode_warm = !amd;
#endif
    static const char *const widen_forms[2] = {"madd", "mixed"}, *const stream_counts[2] = {"1", "4"},
                             *const off_on[2] = {"off", "on"};
    int pick;
    if (env_pick("DYNQ_AVX2_WIDEN", widen_forms, &pick)) return;
    if (pick >= 0) dq_avx2_widen = pick;
    if (env_pick("DYNQ_GEMV_STREAMS", stream_counts, &pick)) return;
    if (pick >= 0) dq_gemv_streams = pick ? 4 : 1;
    if (env_pick("DYNQ_DECODE_WARM", off_on, &pick)) return;
    if (pick >= 0) dq_decode_warm = pick;
    if (dq_isa_supported(&g.cpu, DQ_ISA_AMX) && built_table(DQ_ISA_AMX)) g.cpu.amx_perm = dq_cpu_request_amx();
    const char *force = getenv("DYNQ_ISA");
    if (force && *force) {
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(force, isa_names[i]) == 0) found = i;
        if (found < 0) {
            g.status = DQ_EUSAGE;
            snprintf(g.msg, sizeof g.msg, "DYNQ_ISA=%s: unknown ISA (use scalar, avx2, avx512vnni, amx or neon)",
                     force);
            return;
        }
        dq_isa isa = (dq_isa)found;
        if (!isa_built(isa) || !dq_isa_supported(&g.cpu, isa) || (isa == DQ_ISA_AMX && !g.cpu.amx_perm)) {
            g.status = DQ_EUSAGE;
            snprintf(g.msg, sizeof g.msg, "DYNQ_ISA=%s: %s", force,
                     !isa_built(isa) ? "not available in this build (other architecture)"
                     : isa == DQ_ISA_AMX && dq_isa_supported(&g.cpu, isa)
                         ? "the kernel refused AMX tile permission (arch_prctl)"
                         : "this CPU (or the OS) does not support it; see dynq info --cpu");
            return;
        }
        g.chosen = isa;
    } else {
        static const dq_isa order[] = {DQ_ISA_AMX, DQ_ISA_AVX512VNNI, DQ_ISA_AVX2, DQ_ISA_NEON, DQ_ISA_SCALAR};
        for (int i = 0; i < 5; i++) {
            dq_isa isa = order[i];
            if (!isa_built(isa) || !dq_isa_supported(&g.cpu, isa)) continue;
            if (isa == DQ_ISA_AMX && !g.cpu.amx_perm) continue;
            g.chosen = isa;
            break;
        }
    }
    g.K = built_table(g.chosen);
    // AMD family 25 with AVX-512 is Zen 4 (Zen 3 has none): short rows as one stream (kernels.h)
    if (amd && g.cpu.family == 25 && g.chosen == DQ_ISA_AVX512VNNI) dq_gemv4_min_kp = 2048;
    g.status = DQ_OK;
}

int dq_kernels_init(dq_err *e) {
    pthread_once(&g.once, init_once);
    if (g.status != DQ_OK) return DQ_ERR(e, g.status, "%s", g.msg);
    return DQ_OK;
}

dq_isa dq_isa_chosen(void) {
    pthread_once(&g.once, init_once);
    return g.chosen;
}

const dq_kernels *dq_kernels_current(void) {
    pthread_once(&g.once, init_once);
    DQ_ASSERT(g.K != NULL);  // dq_kernels_init failed (bad DYNQ_ISA) and the caller went on
    return g.K;
}

const dq_kernels *dq_kernels_table(dq_isa isa) {
    pthread_once(&g.once, init_once);
    if (!isa_built(isa) || !dq_isa_supported(&g.cpu, isa)) return NULL;
    if (isa == DQ_ISA_AMX && !g.cpu.amx_perm) return NULL;
    return built_table(isa);
}

void dq_cpu_describe(char *buf, size_t cap) {
    pthread_once(&g.once, init_once);
    const dq_cpu *c = &g.cpu;
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0, __VA_ARGS__)
    OUT("cpu: %s%s%s", c->vendor, c->brand[0] ? " " : "", c->brand);
#if defined(__x86_64__)
    OUT(" (family %d model %d)", c->family, c->model);
#endif
    OUT("\n");
#if defined(__x86_64__)
    OUT("features: avx2=%d fma=%d f16c=%d avx512f=%d avx512bw=%d avx512vl=%d avx512_vnni=%d avx_vnni=%d amx_tile=%d "
        "amx_int8=%d\n",
        c->avx2, c->fma, c->f16c, c->avx512f, c->avx512bw, c->avx512vl, c->avx512vnni, c->avxvnni, c->amx_tile, c->amx_int8);
    OUT("os state (xgetbv): ymm=%d zmm=%d amx_tiles=%d amx_permission=%d\n", c->os_ymm, c->os_zmm, c->os_amx,
        c->amx_perm);
#elif defined(__aarch64__)
    OUT("features: neon=%d asimddp(dotprod)=%d i8mm=%d\n", c->neon, c->asimddp, c->i8mm);
#endif
    OUT("usable:");
    for (int i = 0; i < 5; i++)
        if (dq_kernels_table((dq_isa)i)) OUT(" %s", isa_names[i]);
    OUT("\n");
    const char *force = getenv("DYNQ_ISA");
    if (g.status != DQ_OK) OUT("chosen: none (%s)\n", g.msg);
    else OUT("chosen: %s%s\nkernels: %s\n", isa_names[g.chosen], force && *force ? " (forced by DYNQ_ISA)" : "",
             g.K->name);
    const char *streams = getenv("DYNQ_GEMV_STREAMS"), *warm = getenv("DYNQ_DECODE_WARM");
    char below[64] = "";
    if (dq_gemv_streams == 4 && dq_gemv4_min_kp > 0) snprintf(below, sizeof below, ", one for rows under %d bytes", dq_gemv4_min_kp);
    OUT("gemv prefetch: %d bytes ahead; gemv panel streams: %d%s%s; four-stream prefetch: %d bytes ahead; decode warming: %s%s\n",
        dq_gemv_prefetch_bytes, dq_gemv_streams, streams && *streams ? " (DYNQ_GEMV_STREAMS)" : "", below, dq_gemv4_prefetch_bytes,
        dq_decode_warm ? "on" : "off", warm && *warm ? " (DYNQ_DECODE_WARM)" : "");
#if defined(__x86_64__)
    const char *widen = getenv("DYNQ_AVX2_WIDEN");
    OUT("avx2 gemm widening: %s%s\n", dq_avx2_widen ? "mixed" : "madd", widen && *widen ? " (DYNQ_AVX2_WIDEN)" : "");
#endif
    int avail = dq_cpus_available();
    OUT("threads: default -t %d (physical cores among the %d CPU%s this process may run on)\n", dq_physical_cores(), avail,
        avail == 1 ? "" : "s");
#undef OUT
}

// ---------------------------------------------------------------- weights
// The packed copy is an anonymous mapping, zero-filled by the kernel (pads need no memset), in
// 4 KiB pages. A model's int8 matrices come in panels from the .dynq file and are read in place,
// so for them this holds only the padded row sums and scales; a row-major matrix is copied here.
// (Huge pages were tried for the copy: ~2 % faster decode, but their first touch after the
// memory sat free is slow on these VMs, whose balloon hands free 2 MiB blocks back to the host:
// loading the 1.1 GB TinyLlama shape took 0.77-1.76 s instead of 0.37-0.80 s in 4 KiB pages.
// Reading the file's panels in place, it takes ~25 ms.)
static void *map_zeroed(size_t bytes) {
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static int32_t row_sum(const int8_t *r, int k) {
    // SWAR over 8 bytes: u = w + 128 in [0, 255]; byte pairs, then 4 x 16-bit lanes summed by a
    // multiply (each lane <= 510, total <= 2040: no carry out of the top lane).
    const uint64_t lo = 0x00ff00ff00ff00ffull;
    int64_t su = 0;
    int j = 0;
    for (; j + 8 <= k; j += 8) {
        uint64_t v;
        memcpy(&v, r + j, 8);
        v ^= 0x8080808080808080ull;
        v = (v & lo) + ((v >> 8) & lo);
        su += (int64_t)((v * 0x0001000100010001ull) >> 48) - 8 * 128;
    }
    for (; j < k; j++) su += r[j];
    return (int32_t)su;
}

// Bytes of w's packed copy (header, row sums, scales, panels), or an error.
static int pack_size(const dq_kernels *K, const dq_qweight *w, size_t *total, dq_err *e) {
    if (w->n < 1 || w->k < 1 || w->k > DQ_MAX_K)
        return DQ_ERR(e, DQ_EFILE, "weight matrix %d x %d: shape out of range (k must be 1..%d)", w->n, w->k,
                      DQ_MAX_K);
    if (w->n > INT32_MAX - DQ_PANEL) return DQ_ERR(e, DQ_EFILE, "weight matrix: %d rows is too many", w->n);
    if (!w->w == !w->panels)
        return DQ_ERR(e, DQ_EUSAGE, "weight matrix %d x %d: needs exactly one of row-major or panel data", w->n, w->k);
    int np = dq_round_up(w->n, DQ_PANEL), kp = dq_round_up(w->k, DQ_KALIGN);
    size_t hdr = 64, vec = ((size_t)np * 4 + 63) & ~(size_t)63;
    size_t pan = 0;  // a panel copy, unless the panels come with w
    if (K->use_panels && !w->panels && dq_mul_size((size_t)np, (size_t)kp, &pan))
        return DQ_ERR(e, DQ_ENOMEM, "weight matrix %d x %d: size overflow", w->n, w->k);
    if (dq_add_size(hdr + 2 * vec, pan, total) || *total > SIZE_MAX - 64)
        return DQ_ERR(e, DQ_ENOMEM, "weight matrix: size overflow");
    *total = (*total + 63) & ~(size_t)63;
    return DQ_OK;
}

// Packs w into mem (zero-filled, pack_size bytes) and points w->packed at it.
static void pack_into(const dq_kernels *K, dq_qweight *w, uint8_t *mem, size_t total) {
    int np = dq_round_up(w->n, DQ_PANEL), kp = dq_round_up(w->k, DQ_KALIGN);
    size_t hdr = 64, vec = ((size_t)np * 4 + 63) & ~(size_t)63;
    _Static_assert(sizeof(dq_wpack) <= 64, "dq_wpack header must fit its 64-byte slot");
    dq_wpack *p = (dq_wpack *)mem;
    p->isa = K->isa;
    p->n = w->n;
    p->k = w->k;
    p->np = np;
    p->kp = kp;
    p->rowsum = (int32_t *)(mem + hdr);
    p->scale = (float *)(mem + hdr + vec);
    int8_t *panels = K->use_panels && !w->panels ? (int8_t *)(mem + hdr + 2 * vec) : NULL;
    p->panels = w->panels ? w->panels : panels;
    const int k = w->k;
    for (int i = 0; i < w->n; i++) p->scale[i] = w->scale[i];
    if (w->panels) {  // in place (a mapped .dynq file): only the padded row sums and scales
        for (int i = 0; i < w->n; i++) p->rowsum[i] = w->rowsum[i];
    } else {  // a row-major matrix (tests, API users): row sums, and the panel copy if the ISA wants one
        for (int i = 0; i < w->n; i++) p->rowsum[i] = row_sum(w->w + (size_t)i * k, k);
        if (panels) dq_panelize(panels, w->w, w->n, k);
    }
    w->packed = p;
    w->packed_bytes = total;
}

int dq_qweight_prepare_with(const dq_kernels *K, dq_qweight *w, dq_err *e) {
    dq_qweight_release(w);
    size_t total;
    int rc = pack_size(K, w, &total, e);
    if (rc != DQ_OK) return rc;
    uint8_t *mem = map_zeroed(total);
    if (!mem) return DQ_ERR(e, DQ_ENOMEM, "weight matrix %d x %d: out of memory packing %zu bytes", w->n, w->k, total);
    pack_into(K, w, mem, total);
    ((dq_wpack *)mem)->map_bytes = total;
    return DQ_OK;
}

int dq_qweight_prepare(dq_qweight *w, dq_err *e) {
    int rc = dq_kernels_init(e);
    if (rc != DQ_OK) return rc;
    return dq_qweight_prepare_with(dq_kernels_current(), w, e);
}

// dq_qweight_prepare_many packs every matrix into one mapping (one allocation for the model's
// lifetime). The mapping starts with this header; each matrix released drops a reference, the
// last one unmaps it.
typedef struct dq_arena {
    _Atomic long refs;
    size_t bytes;
} dq_arena;

typedef struct prep_ctx {
    const dq_kernels *K;
    dq_qweight *ws;
    int count;
    uint8_t *base;
    size_t *off;  // (count) offset of each matrix in the arena
    _Atomic int next;
} prep_ctx;

static void prep_task(void *arg, int ith, int nth) {
    prep_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->count) return;
        pack_into(c->K, &c->ws[i], c->base + c->off[i], c->ws[i].packed_bytes);
    }
}

int dq_qweight_prepare_many(dq_pool *pool, dq_qweight *ws, int count, dq_err *e) {
    int rc = dq_kernels_init(e);
    if (rc != DQ_OK || count <= 0) return rc;
    const dq_kernels *K = dq_kernels_current();
    size_t *off = malloc((size_t)count * sizeof *off);
    if (!off) return DQ_ERR(e, DQ_ENOMEM, "packing weights: out of memory");
    size_t total = 64;  // arena header
    for (int i = 0; i < count; i++) {
        dq_qweight_release(&ws[i]);
        size_t b;
        if ((rc = pack_size(K, &ws[i], &b, e)) != DQ_OK) {
            free(off);
            return rc;
        }
        off[i] = total;
        ws[i].packed_bytes = b;
        if (dq_add_size(total, b, &total)) {
            free(off);
            return DQ_ERR(e, DQ_ENOMEM, "packing weights: size overflow");
        }
    }
    uint8_t *base = map_zeroed(total);
    if (!base) {
        free(off);
        return DQ_ERR(e, DQ_ENOMEM, "packing weights: out of memory for %zu bytes", total);
    }
    dq_arena *a = (dq_arena *)base;
    atomic_init(&a->refs, count);
    a->bytes = total;
    prep_ctx c = {.K = K, .ws = ws, .count = count, .base = base, .off = off};
    dq_pool_run(pool, prep_task, &c);
    for (int i = 0; i < count; i++) ((dq_wpack *)ws[i].packed)->arena = a;
    free(off);
    return DQ_OK;
}

size_t dq_panel_bytes(int n, int k) {
    size_t b;
    if (n < 1 || k < 1 || k > DQ_MAX_K || n > INT32_MAX - DQ_PANEL) return 0;
    if (dq_mul_size((size_t)dq_round_up(n, DQ_PANEL), (size_t)dq_round_up(k, DQ_KALIGN), &b)) return 0;
    return b;
}

// Element (i, j) of the panel layout (kernels.h): panel i / 16, 4-byte group j / 4, row i % 16.
static size_t panel_index(int i, int j, int kp) {
    return (size_t)(i / DQ_PANEL) * DQ_PANEL * kp + (size_t)(j / 4) * (DQ_PANEL * 4) + (size_t)(i % DQ_PANEL) * 4 + j % 4;
}

void dq_panelize(int8_t *dst, const int8_t *q, int n, int k) {
    int kp = dq_round_up(k, DQ_KALIGN);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j += 4) {
            int len = k - j < 4 ? k - j : 4;
            memcpy(dst + panel_index(i, j, kp), q + (size_t)i * k + j, (size_t)len);
        }
}

void dq_qweight_row(const dq_qweight *w, int i, int8_t *out) {
    if (w->w) {
        memcpy(out, w->w + (size_t)i * w->k, (size_t)w->k);
        return;
    }
    int kp = dq_round_up(w->k, DQ_KALIGN);
    for (int j = 0; j < w->k; j += 4) {
        int len = w->k - j < 4 ? w->k - j : 4;
        memcpy(out + j, w->panels + panel_index(i, j, kp), (size_t)len);
    }
}

void dq_qweight_rows_f32(const dq_qweight *w, const int32_t *rows, int n, float *out, size_t ldo) {
    if (w->w) {
        for (int t = 0; t < n; t++) {
            const int8_t *q = w->w + (size_t)rows[t] * w->k;
            const float sc = w->scale[rows[t]];
            for (int j = 0; j < w->k; j++) out[(size_t)t * ldo + j] = sc * (float)q[j];
        }
        return;
    }
    const int kp = dq_round_up(w->k, DQ_KALIGN);
    for (int j = 0; j < w->k; j += 4) {
        const int len = w->k - j < 4 ? w->k - j : 4;
        for (int t = 0; t < n; t++) {
            const int8_t *q = w->panels + panel_index(rows[t], j, kp);
            const float sc = w->scale[rows[t]];
            for (int d = 0; d < len; d++) out[(size_t)t * ldo + j + d] = sc * (float)q[d];
        }
    }
}

void dq_qweight_release(dq_qweight *w) {
    dq_wpack *p = w->packed;
    if (p && p->arena) {
        dq_arena *a = p->arena;
        if (atomic_fetch_sub(&a->refs, 1) == 1) munmap(a, a->bytes);
    } else if (p) {
        munmap(p, p->map_bytes);
    }
    w->packed = NULL;
    w->packed_bytes = 0;
}

// ---------------------------------------------------------------- activation quantization
typedef struct qctx {
    const dq_kernels *K;
    dq_qact *qa;
    const float *x;
    const float *amax;  // per token, or NULL
    float tensor_amax;
    dq_claim reg[DQ_CLAIM_REGIONS];  // groups of QUANT_UNIT tokens
} qctx;

// Token t: scale(s), offset and codes. Scales are computed here, once for every ISA.
static void quant_token(const dq_kernels *K, dq_qact *qa, const float *xr, int t, const float *amax_t, float tensor_amax) {
    int8_t *q = qa->q + (size_t)t * qa->kp;
    int k = qa->k;
    switch (qa->scheme) {
    case DQ_ACT_SYM:
    case DQ_ACT_TENSOR: {
        float amax = qa->scheme == DQ_ACT_TENSOR ? tensor_amax : amax_t ? *amax_t : K->absmax(xr, k);
        qa->scale[t] = amax / 127.0f;
        qa->off[t] = 0;
        K->quant(q, xr, k, amax > 0.0f ? 127.0f / amax : 0.0f, 0);
        break;
    }
    case DQ_ACT_ASYM: {
        // 255 levels u = 0..254 with zero point zp; code c = u - 127 in [-127, 127], off = zp - 127.
        float mn = 0.0f, mx = 0.0f;  // the range always contains 0, so zp is an exact code
        for (int j = 0; j < k; j++) {
            mn = xr[j] < mn ? xr[j] : mn;
            mx = xr[j] > mx ? xr[j] : mx;
        }
        float range = mx - mn, inv = range > 0.0f ? 254.0f / range : 0.0f;
        long zp = lrintf(-mn * inv);
        zp = zp < 0 ? 0 : zp > 254 ? 254 : zp;
        qa->scale[t] = range / 254.0f;
        qa->off[t] = (int32_t)zp - 127;
        K->quant(q, xr, k, inv, qa->off[t]);
        break;
    }
    case DQ_ACT_GROUP:
        qa->off[t] = 0;
        for (int g0 = 0; g0 < qa->ngroup; g0++) {
            int j0 = g0 * 64, len = k - j0 < 64 ? k - j0 : 64;
            float amax = K->absmax(xr + j0, len);
            qa->scale[(size_t)t * qa->ngroup + g0] = amax / 127.0f;
            K->quant(q + j0, xr + j0, len, amax > 0.0f ? 127.0f / amax : 0.0f, 0);
        }
        break;
    }
    if (qa->kp > k) memset(q + k, 0, (size_t)(qa->kp - k));
}

// Tokens are claimed in groups (any slot may quantize all of them), so the pool's adaptive run
// can leave a descheduled worker out.
#define QUANT_UNIT 4
static void quant_task(void *arg, int ith, int nth) {
    qctx *c = arg;
    int m = c->qa->m, k = 0, u;
    while ((u = dq_claim_next(c->reg, (m + QUANT_UNIT - 1) / QUANT_UNIT, ith, nth, &k)) >= 0)
        for (int t = u * QUANT_UNIT; t < m && t < (u + 1) * QUANT_UNIT; t++)
            quant_token(c->K, c->qa, c->x + (size_t)t * c->qa->k, t, c->amax ? c->amax + t : NULL, c->tensor_amax);
}

// qa's buffers and fields for m tokens of k inputs (codes of the pad tokens zeroed when m >= 16).
static void quant_setup(const dq_kernels *K, dq_pool *pool, dq_qact *qa, int m, int k, dq_act_scheme scheme) {
    DQ_ASSERT(m >= 1 && k >= 1 && k <= DQ_MAX_K);
    int mp = dq_round_up(m, 16), kp = dq_round_up(k, DQ_KALIGN);
    int ngroup = scheme == DQ_ACT_GROUP ? kp / 64 : 1;
    size_t qb = (size_t)mp * kp, sb = (size_t)dq_round_up(m * ngroup * 4, 64), ob = (size_t)dq_round_up(m * 4, 64);
    uint8_t *mem = dq_pool_act_scratch(pool, qb + sb + ob);
    qa->m = m;
    qa->k = k;
    qa->kp = kp;
    qa->scheme = scheme;
    qa->ngroup = ngroup;
    qa->q = (int8_t *)mem;
    qa->scale = (float *)(mem + qb);
    qa->off = (int32_t *)(mem + qb + sb);
    qa->bias = K->act_bias;
    // Only the AMX kernel reads past the last token (its tiles take 16 tokens), and only in batches
    // of DQ_AMX_MIN_M or more (smaller ones go to the VNNI kernel): decode skips zeroing 15 rows.
    if (mp > m && m >= DQ_AMX_MIN_M) memset(qa->q + (size_t)m * kp, 0, (size_t)(mp - m) * kp);
}

void dq_quantize_act_with(const dq_kernels *K, dq_pool *pool, dq_qact *qa, const float *x, int m, int k,
                          dq_act_scheme scheme, const float *amax) {
    // The GROUP scheme runs the scalar kernels on every ISA (quality study, not a hot path).
    if (scheme == DQ_ACT_GROUP) K = dq_kernels_scalar();
    quant_setup(K, pool, qa, m, k, scheme);
    qctx c = {.K = K, .qa = qa, .x = x, .amax = scheme == DQ_ACT_SYM ? amax : NULL};
    if (scheme == DQ_ACT_TENSOR) c.tensor_amax = K->absmax(x, m * k);  // m*k < 2^31: callers' buffers
    if ((size_t)m * k >= 65536) dq_pool_run_adaptive(pool, quant_task, &c);
    else quant_task(&c, 0, 1);
}

void dq_quantize_act_begin(dq_pool *pool, dq_qact *qa, int m, int k, dq_act_scheme scheme) {
    DQ_ASSERT(scheme != DQ_ACT_TENSOR);  // its one scale needs every token first
    quant_setup(scheme == DQ_ACT_GROUP ? dq_kernels_scalar() : dq_kernels_current(), pool, qa, m, k, scheme);
}

void dq_quantize_act_rows(dq_qact *qa, const float *x, int t0, int t1, const float *amax) {
    DQ_ASSERT(0 <= t0 && t0 <= t1 && t1 <= qa->m);
    const dq_kernels *K = qa->scheme == DQ_ACT_GROUP ? dq_kernels_scalar() : dq_kernels_current();
    const float *am = qa->scheme == DQ_ACT_SYM ? amax : NULL;
    for (int t = t0; t < t1; t++) quant_token(K, qa, x + (size_t)t * qa->k, t, am ? am + t : NULL, 0.0f);
}

void dq_quantize_act(dq_pool *pool, dq_qact *qa, const float *x, int m, int k, dq_act_scheme scheme,
                     const float *amax) {
    dq_quantize_act_with(dq_kernels_current(), pool, qa, x, m, k, scheme, amax);
}

// ---------------------------------------------------------------- matmul drivers
#define MAX_PARTS 3  // matrices sharing one input in one pool run (q/k/v; gate/up)

typedef struct mmctx {
    const dq_kernels *K;
    const dq_qact *qa;
    const float *x, *wf;
    int m, k, tb, ntb;     // tokens in blocks of tb
    int nparts;            // matrices, each with its own rows and tiles
    float *y[MAX_PARTS];
    const dq_qweight *w[MAX_PARTS];
    int n[MAX_PARTS], rb[MAX_PARTS], first[MAX_PARTS + 1];  // rows, row block, first tile
    dq_claim reg[DQ_CLAIM_REGIONS];  // tiles, one contiguous region per slot (dq_claim_next)
} mmctx;

// Tiles: rows in blocks of rb (a multiple of 64, the AVX-512 micro-kernel's 4 panels; a 32-row
// remainder would take its slower 8 x 32 path; ~8 blocks per thread so a slow thread can be
// overtaken), tokens in blocks of up to 128. Every output is computed the same way whatever tile
// it lands in. Tiles are numbered matrix by matrix, row block major, and slot ith first takes the
// tiles of its own contiguous region in order (one sequential weight stream per thread, which the
// hardware prefetcher follows), then claims tiles left in the other regions (a late or
// descheduled thread's work is taken over, tile by tile). Several matrices that share the input
// go in one plan, so the pool hands off once for all of them. One thread has no one to balance
// with: one row block per matrix. The four-stream GEMVs (dq_gemv_runs) then run four streams
// through the whole matrix instead of restarting them every 128-512 rows, and each restart costs
// the hardware prefetchers a few misses: on the Zen 3, one thread, the stories110M shape's decode
// matmuls (throw-away harness through dq_matmul_q8_multi, weights in 2 MiB pages, against a
// four-stream read of the same bytes) 0.90-0.91 -> 0.94-0.95 of the read. Several threads and one
// token (decode): ~2 blocks per thread rather than ~8, for the same reason: at two threads a
// 768-row matrix was cut into 64-row tiles, four one-panel streams each. Zen 3, two threads,
// stories110M shape: that harness 42.3 -> 44.7 and 33.0 -> 35.2 GB/s (two phases of the host),
// `dynq bench -p 128 -n 64 -t 2 -r 3` tg64 median 393 -> 415 tok/s (six alternating rounds, all
// faster; one block per thread measured the same as two); beside a CPU-burning neighbour, five
// rounds, `-t 2` / `-t 1` generation 1.01x (0.95-1.13) against 1.03x (0.90-1.05) with ~8.
static void plan(mmctx *c, int m, int nparts, const int *n, int nth) {
    c->m = m;
    c->tb = m <= 128 ? m : 128;
    c->ntb = (m + c->tb - 1) / c->tb;
    c->nparts = nparts;
    c->first[0] = 0;
    for (int j = 0; j < nparts; j++) {
        const int blocks = m == 1 ? 2 * nth : 8 * nth;
        int rb = dq_round_up((n[j] + blocks - 1) / blocks, 64);
        c->n[j] = n[j];
        c->rb[j] = nth == 1 ? dq_round_up(n[j], 64) : rb > 512 ? 512 : rb;
        c->first[j + 1] = c->first[j] + (n[j] + c->rb[j] - 1) / c->rb[j] * c->ntb;
    }
}

// Matrix *j of a tile, and its rows [i0, i1) and tokens [t0, t1).
static void tile_bounds(const mmctx *c, int tile, int *j, int *i0, int *i1, int *t0, int *t1) {
    int p = 0;
    while (tile >= c->first[p + 1]) p++;
    tile -= c->first[p];
    int rbi = tile / c->ntb, tbi = tile % c->ntb;
    *j = p;
    *i0 = rbi * c->rb[p];
    *i1 = *i0 + c->rb[p] < c->n[p] ? *i0 + c->rb[p] : c->n[p];
    *t0 = tbi * c->tb;
    *t1 = *t0 + c->tb < c->m ? *t0 + c->tb : c->m;
}

static void q8_task(void *arg, int ith, int nth) {
    mmctx *c = arg;
    void (*gemm)(float *, int, const dq_qact *, int, int, const dq_qweight *, int, int) =
        c->qa->scheme == DQ_ACT_GROUP ? dq_gemm_q8_group_scalar : c->K->gemm_q8;
    int k = 0, tile, j, i0, i1, t0, t1;
    while ((tile = dq_claim_next(c->reg, c->first[c->nparts], ith, nth, &k)) >= 0) {
        tile_bounds(c, tile, &j, &i0, &i1, &t0, &t1);
        gemm(c->y[j], c->n[j], c->qa, t0, t1, c->w[j], i0, i1);
    }
}

void dq_matmul_q8_multi_with(const dq_kernels *K, dq_pool *pool, int count, float *const *ys, const dq_qact *qa,
                             const dq_qweight *const *ws) {
    DQ_ASSERT(count >= 1 && count <= MAX_PARTS);
    if (qa->scheme == DQ_ACT_GROUP) K = dq_kernels_scalar();
    mmctx c = {.K = K, .qa = qa};
    int n[MAX_PARTS];
    for (int j = 0; j < count; j++) {
        const dq_wpack *p = ws[j]->packed;
        DQ_ASSERT(p != NULL);  // dq_qweight_prepare was not called
        DQ_ASSERT(qa->k == ws[j]->k && p->n == ws[j]->n && p->k == ws[j]->k);
        if (qa->scheme != DQ_ACT_GROUP)
            DQ_ASSERT(p->isa == K->isa && qa->bias == K->act_bias);  // packed/quantized for another ISA
        c.y[j] = ys[j], c.w[j] = ws[j], n[j] = ws[j]->n;
    }
    plan(&c, qa->m, count, n, dq_pool_nthreads_now(pool));
    if (c.first[count] > 1) dq_pool_run_adaptive(pool, q8_task, &c);
    else q8_task(&c, 0, 1);
}

// Decode's idle-time warming (ops.h): the first tile of each slot's region of a one-token plan,
// as the x86 GEMVs read it (four runs side by side, dq_gemv_runs, or one stream), at most
// WARM_MAX bytes of it.
#define WARM_MAX ((size_t)256 << 10)
int dq_matmul_q8_warm_ranges(int nth, int count, const dq_qweight *const *ws, dq_warm_range *out) {
    DQ_ASSERT(count >= 1 && count <= MAX_PARTS && nth >= 1);
    mmctx c = {.nparts = 0};
    int n[MAX_PARTS];
    for (int j = 0; j < count; j++) n[j] = ws[j]->n;
    plan(&c, 1, count, n, nth);
    const int items = c.first[count], nreg = nth < DQ_CLAIM_REGIONS ? nth : DQ_CLAIM_REGIONS;
    for (int r = 0; r < nreg; r++) {
        const int first = (int)((int64_t)items * r / nreg);
        out[r] = (dq_warm_range){NULL, 0, 0, 0};
        if (first >= (int)((int64_t)items * (r + 1) / nreg)) continue;  // an empty region
        int j, i0, i1, t0, t1;
        tile_bounds(&c, first, &j, &i0, &i1, &t0, &t1);
        const dq_wpack *p = ws[j]->packed;
        if (!p->panels) continue;  // scalar over a row-major matrix: not worth it
        const int run = dq_gemv_runs(i0, i1, p->kp), streams = run ? 4 : 1;
        int rows[4];
        dq_gemv_run_rows(i0, run, 0, rows);  // the runs' first rows: run 0 of the four streams
        const size_t len = (size_t)(run ? rows[1] - rows[0] : dq_round_up(i1 - i0, 16)) * (size_t)p->kp;
        const size_t cap = WARM_MAX / (size_t)streams;
        out[r] = (dq_warm_range){p->panels + (size_t)i0 * p->kp, len < cap ? len : cap, len, streams};
    }
    return nreg;
}

// The slot's range goes to the thread that normally runs that slot (slot 0 the caller, slot i the
// pool's worker i): slots are claimed, not assigned, so another thread may end up with it, and
// that warming was for nothing.
void dq_matmul_q8_warm(dq_pool *pool, int count, const dq_qweight *const *ws) {
    const int nth = dq_pool_nthreads_now(pool);
    if (!dq_decode_warm || nth < 2) return;
    dq_warm_range r[DQ_CLAIM_REGIONS];
    const int nreg = dq_matmul_q8_warm_ranges(nth, count, ws, r);
    for (int i = 0; i < nreg; i++)
        if (r[i].bytes) dq_pool_warm(pool, i, r[i].base, r[i].bytes, r[i].stride, r[i].streams);
}

void dq_matmul_q8_pre_with(const dq_kernels *K, dq_pool *pool, float *y, const dq_qact *qa, const dq_qweight *w) {
    dq_matmul_q8_multi_with(K, pool, 1, &y, qa, &w);
}

void dq_matmul_q8_pre(dq_pool *pool, float *y, const dq_qact *qa, const dq_qweight *w) {
    dq_matmul_q8_pre_with(dq_kernels_current(), pool, y, qa, w);
}

void dq_matmul_q8_multi(dq_pool *pool, int count, float *const *ys, const dq_qact *qa, const dq_qweight *const *ws) {
    dq_matmul_q8_multi_with(dq_kernels_current(), pool, count, ys, qa, ws);
}

void dq_matmul_q8(dq_pool *pool, float *y, const float *x, int m, const dq_qweight *w, dq_act_scheme scheme) {
    const dq_kernels *K = dq_kernels_current();
    dq_qact qa;
    dq_quantize_act_with(K, pool, &qa, x, m, w->k, scheme, NULL);
    dq_matmul_q8_pre_with(K, pool, y, &qa, w);
}

static void f32_task(void *arg, int ith, int nth) {
    mmctx *c = arg;
    int k = 0, tile, j, i0, i1, t0, t1;
    while ((tile = dq_claim_next(c->reg, c->first[c->nparts], ith, nth, &k)) >= 0) {
        tile_bounds(c, tile, &j, &i0, &i1, &t0, &t1);
        c->K->gemm_f32(c->y[0], c->x, t0, t1, c->wf, c->n[0], c->k, i0, i1);
    }
}

void dq_matmul_f32_with(const dq_kernels *K, dq_pool *pool, float *y, const float *x, int m, const float *w, int n,
                        int k) {
    DQ_ASSERT(m >= 1 && n >= 1 && k >= 1);
    mmctx c = {.K = K, .x = x, .wf = w, .k = k, .y = {y}};
    plan(&c, m, 1, &n, dq_pool_nthreads_now(pool));
    if (c.first[1] > 1) dq_pool_run_adaptive(pool, f32_task, &c);
    else f32_task(&c, 0, 1);
}

void dq_matmul_f32(dq_pool *pool, float *y, const float *x, int m, const float *w, int n, int k) {
    dq_matmul_f32_with(dq_kernels_current(), pool, y, x, m, w, n, k);
}

void dq_attn(float *out, int ldo, const float *q, int ldq, int nq, int np0, int dnp, const void *kt, dq_kv_type kty,
             const void *v, dq_kv_type vty, int ldv, int hd, float scale, float *att) {
    DQ_ASSERT(nq >= 1 && nq <= DQ_ATTN_NQ && np0 >= 1 && dnp >= 0 && ldv >= hd);
    dq_kernels_current()->attn(out, ldo, q, ldq, nq, np0, dnp, kt, kty, v, vty, ldv, hd, scale, att);
}

void dq_f32_to_f16_row(uint16_t *dst, const float *src, size_t n) { dq_kernels_current()->to_f16(dst, src, n); }
void dq_f16_to_f32_row(float *dst, const uint16_t *src, size_t n) { dq_kernels_current()->to_f32(dst, src, n); }
void dq_q8_row(int8_t *q, size_t qstride, float *sc, size_t sstride, const float *x, int n) {
    dq_kernels_current()->to_q8(q, qstride, sc, sstride, x, n);
}
void dq_q8_to_f32(float *dst, const int8_t *src, int n, int hd, int keys) {
    dq_kernels_current()->q8_to_f32(dst, src, n, hd, keys);
}

int dq_kv_parse(const char *s) {
    if (strcmp(s, "f32") == 0) return DQ_KV_F32;
    if (strcmp(s, "f16") == 0) return DQ_KV_F16;
    if (strcmp(s, "q8_0") == 0) return DQ_KV_Q8;
    return -1;
}

const char *dq_kv_name(dq_kv_type t) { return t == DQ_KV_Q8 ? "q8_0" : t == DQ_KV_F16 ? "f16" : "f32"; }

float dq_swiglu_f32(float *h, const float *g, const float *u, size_t n) {
    return dq_kernels_current()->swiglu(h, g, u, n);
}

void dq_rope_f32(float *x, int n_h, int hd, int halves, const float *c, const float *s) {
    dq_kernels_current()->rope(x, n_h, hd, halves, c, s);
}

void dq_kblock_f32(float *kb, const float *src, size_t lds, int hd) { dq_kernels_current()->kblock(kb, src, lds, hd); }

void dq_rope_tables(float *c, float *s, int pos, int hd, int halves, float theta) {
    const int half = hd / 2;
    for (int i = 0; i < half; i++) {
        const double a = pos * pow((double)theta, -2.0 * i / (double)hd);
        const float cs = (float)cos(a), sn = (float)sin(a);
        const int j0 = halves ? i : 2 * i, j1 = halves ? i + half : 2 * i + 1;  // the pair
        c[j0] = c[j1] = cs;
        s[j0] = -sn, s[j1] = sn;
    }
}

float dq_rmsnorm_f32(float *o, float *x, const float *r, const float *w, int n, float eps) {
    return dq_kernels_current()->rmsnorm(o, x, r, w, n, eps);
}
