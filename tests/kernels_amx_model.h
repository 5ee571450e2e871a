// tests/kernels_amx_model.h: a software model of the AMX tile instructions ggml_like/amx.c
// uses, so its packing, tile shapes and loop structure run (and are checked) on CPUs without
// AMX. Follows the Intel SDM: LDTILECFG palette 1 (8 tiles, at most 16 rows x 64 bytes),
// TILELOADD/TILESTORED rows x colsb with a byte stride (rows past `rows` read as zero),
// TDPBUSD/TDPBSSD C[m][n] += sum_k sum_i A[m][4k+i] * B[k][4n+i] (u8/s8 x s8, int32 wraps), and
// the shape checks that fault on real hardware (here: abort with a message).
#ifndef DYNQ_KERNELS_AMX_MODEL_H
#define DYNQ_KERNELS_AMX_MODEL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct amxm_state {
    int configured;
    int rows[8], colsb[8];
    uint8_t t[8][16][64];
} amxm_state;
static _Thread_local amxm_state amxm;
static _Thread_local long amxm_ops;  // TDP* instructions executed (tests check the tile path ran)

static void amxm_fault(const char *what, int tile) {
    fprintf(stderr, "AMX model: fault: %s (tile %d)\n", what, tile);
    abort();
}

static void amxm_loadconfig(const void *cfg) {
    const uint8_t *c = cfg;
    if (c[0] != 1) amxm_fault("palette must be 1", -1);
    for (int i = 0; i < 8; i++) {
        uint16_t cb;
        memcpy(&cb, c + 16 + 2 * i, 2);
        int rows = c[48 + i];
        if (rows > 16 || cb > 64) amxm_fault("tile larger than 16 rows x 64 bytes", i);
        amxm.rows[i] = rows;
        amxm.colsb[i] = cb;
    }
    memset(amxm.t, 0, sizeof amxm.t);
    amxm.configured = 1;
}

static void amxm_check(int t) {
    if (!amxm.configured) amxm_fault("tile instruction before LDTILECFG", t);
    if (t < 0 || t > 7 || amxm.rows[t] == 0) amxm_fault("tile not configured", t);
}

static void amxm_loadd(int t, const void *base, long stride) {
    amxm_check(t);
    memset(amxm.t[t], 0, sizeof amxm.t[t]);
    for (int r = 0; r < amxm.rows[t]; r++) memcpy(amxm.t[t][r], (const uint8_t *)base + r * stride, (size_t)amxm.colsb[t]);
}

static void amxm_stored(int t, void *base, long stride) {
    amxm_check(t);
    for (int r = 0; r < amxm.rows[t]; r++) memcpy((uint8_t *)base + r * stride, amxm.t[t][r], (size_t)amxm.colsb[t]);
}

static void amxm_zero(int t) {
    amxm_check(t);
    memset(amxm.t[t], 0, sizeof amxm.t[t]);
}

static void amxm_dp(int c, int a, int b, int a_signed) {
    amxm_check(c), amxm_check(a), amxm_check(b);
    // SDM shape rules: A is M x K bytes, B is K/4 x N*4 bytes, C is M x N dwords.
    if (amxm.rows[c] != amxm.rows[a] || amxm.colsb[a] != 4 * amxm.rows[b] || amxm.colsb[c] != amxm.colsb[b] ||
        amxm.colsb[c] % 4 || amxm.colsb[a] % 4)
        amxm_fault("TDP shape mismatch", c);
    if (c == a || c == b || a == b) amxm_fault("TDP operands must be distinct tiles", c);
    int M = amxm.rows[c], N = amxm.colsb[c] / 4, K = amxm.colsb[a] / 4;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int32_t acc;
            memcpy(&acc, &amxm.t[c][m][4 * n], 4);
            uint32_t sum = (uint32_t)acc;
            for (int k = 0; k < K; k++)
                for (int i = 0; i < 4; i++) {
                    int32_t av = a_signed ? (int32_t)(int8_t)amxm.t[a][m][4 * k + i] : (int32_t)amxm.t[a][m][4 * k + i];
                    int32_t bv = (int8_t)amxm.t[b][k][4 * n + i];
                    sum += (uint32_t)(av * bv);
                }
            acc = (int32_t)sum;
            memcpy(&amxm.t[c][m][4 * n], &acc, 4);
        }
    amxm_ops++;
}

static void amxm_release(void) {
    memset(&amxm, 0, sizeof amxm);
}

// The intrinsic names amx.c uses (GCC defines them as macros when its AMX headers are read).
#undef _tile_loadconfig
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbusd
#undef _tile_dpbssd
#undef _tile_release
#define _tile_loadconfig(cfg) amxm_loadconfig(cfg)
#define _tile_loadd(t, base, stride) amxm_loadd((t), (base), (long)(stride))
#define _tile_stored(t, base, stride) amxm_stored((t), (base), (long)(stride))
#define _tile_zero(t) amxm_zero(t)
#define _tile_dpbusd(c, a, b) amxm_dp((c), (a), (b), 0)
#define _tile_dpbssd(c, a, b) amxm_dp((c), (a), (b), 1)
#define _tile_release() amxm_release()

#endif
