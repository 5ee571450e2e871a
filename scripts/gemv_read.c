// scripts/gemv_read.c: the decode GEMV alone against the read probe of `dynq bench --roofline`,
// alternating in one process, to tell the kernel's share of a gap from the rest of a decode step.
//
// `dynq bench --roofline` sets a model's generation against the best pass of the read probe; the
// generation also pays attention, the per-token steps and one pool hand-off per matmul. This
// times only dq_matmul_q8_pre of one token over MB megabytes of int8 weights in the panel layout
// (in 2 MiB pages where the kernel allows, dq_alloc_big, as a mapped model), either one matrix or a chain of
// matrices of CHUNK_MB each (one hand-off each, as decode's, each announcing the next to the
// decode warming, dq_matmul_q8_warm, where DYNQ_DECODE_WARM has it on), then one pass of the read probe over
// a buffer of the same size (dq_read_probe_gbps, one round: the best of its loop variants, as
// the bench's paired figure), R times. Prints the medians of both rates and of their ratios.
//     make build/libdynq.a
//     cc -O2 -I. scripts/gemv_read.c build/libdynq.a -lm -pthread -o /tmp/gemv_read
//     /tmp/gemv_read THREADS [K=768] [MB=110] [CHUNK_MB=0: one matrix] [R=15]
// Nothing here is built by the Makefile.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "ggml_like/ops.h"
#include "ggml_like/roofline.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s THREADS [K=768] [MB=110] [CHUNK_MB=0] [R=15]\n", argv[0]);
        return 2;
    }
    const int nth = atoi(argv[1]), k = argc > 2 ? atoi(argv[2]) : 768, R = argc > 5 ? atoi(argv[5]) : 15;
    const double mb = argc > 3 ? atof(argv[3]) : 110, chunk = argc > 4 ? atof(argv[4]) : 0;
    if (nth < 1 || nth > 256 || k < 64 || k > DQ_MAX_K || k % 64 || !(mb >= 1 && mb <= 8192) || !(chunk >= 0) ||
        R < 3 || R > 1000) {
        fprintf(stderr, "%s: THREADS 1..256, K a multiple of 64 up to %d, 1 <= MB <= 8192, CHUNK_MB >= 0, 3 <= R <= 1000\n",
                argv[0], DQ_MAX_K);
        return 2;
    }
    // Matrices of n rows (a multiple of 64, so every ISA's GEMV takes whole tiles), as many as fit
    const double per = chunk > 0 && chunk < mb ? chunk : mb;
    const int n = (int)(per * 1e6 / k) / 64 * 64, count = (int)(mb / per + 0.5);
    if (n < 64 || count < 1) {
        fprintf(stderr, "%s: CHUNK_MB too small for K = %d\n", argv[0], k);
        return 2;
    }
    const size_t mbytes = (size_t)n * (size_t)k, total = mbytes * (size_t)count;
    dq_err e;
    dq_pool *pool;
    if (dq_pool_create(&pool, nth, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    int mapped;
    int8_t *panels = dq_alloc_big(total, &mapped);
    float *scale = malloc(sizeof(float) * (size_t)n), *x = malloc(sizeof(float) * (size_t)k),
          *y = malloc(sizeof(float) * (size_t)n);
    int32_t *rowsum = calloc((size_t)n, sizeof(int32_t));
    dq_qweight *w = calloc((size_t)count, sizeof *w);
    if (!panels || !scale || !x || !y || !rowsum || !w) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    uint32_t r = 12345;
    for (size_t i = 0; i < total; i++) r = r * 1664525u + 1013904223u, panels[i] = (int8_t)(r >> 24);
    for (int i = 0; i < n; i++) scale[i] = 1.0f / 127;
    for (int j = 0; j < k; j++) x[j] = (float)((j * 37) % 255 - 127);
    for (int c = 0; c < count; c++) {
        w[c] = (dq_qweight){.n = n, .k = k, .panels = panels + (size_t)c * mbytes, .scale = scale, .rowsum = rowsum};
        if (dq_qweight_prepare(&w[c], &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            return 1;
        }
    }
    dq_read_probe *probe;
    if (dq_read_probe_new(&probe, total)) {
        fprintf(stderr, "%s: out of memory for the read probe\n", argv[0]);
        return 1;
    }
    dq_qact qa;  // one token's codes, shared by every matrix and pass (nothing else quantizes on this pool)
    dq_quantize_act(pool, &qa, x, 1, k, DQ_ACT_SYM, NULL);
    double gemv[1000], rd[1000], ratio[1000];
    for (int rep = -1; rep < R; rep++) {  // rep -1: warm-up
        double t0 = dq_now();
        for (int c = 0; c < count; c++) {
            if (c + 1 < count) dq_matmul_q8_warm(pool, 1, (const dq_qweight *const[]){&w[c + 1]});
            dq_matmul_q8_pre(pool, y, &qa, &w[c]);
        }
        const double g = (double)total / (dq_now() - t0) / 1e9, p = dq_read_probe_gbps(probe, pool, 1);
        if (rep < 0) continue;
        gemv[rep] = g, rd[rep] = p, ratio[rep] = g / p;
    }
    printf("%d threads, %d matri%s of %d x %d (%.1f MB in all): GEMV %.1f GB/s, read probe %.1f GB/s "
           "(medians of %d), GEMV / read median %.3f\n",
           nth, count, count == 1 ? "x" : "ces", n, k, total / 1e6, dq_median(gemv, (size_t)R), dq_median(rd, (size_t)R), R, dq_median(ratio, (size_t)R));
    for (int c = 0; c < count; c++) dq_qweight_release(&w[c]);
    dq_read_probe_free(probe);
    dq_pool_free(pool);
    dq_free_big(panels, total, mapped);
    free(scale), free(x), free(y), free(rowsum), free(w);
    return 0;
}
