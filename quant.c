// quant.c: offline INT8 weight quantization, per output row, symmetric absmax/127
// (the form every integer kernel consumes), and activation-scheme names.
#include "quant.h"

#include <math.h>
#include <string.h>

long dq_quantize_rows(int8_t *q, float *scale, int32_t *rowsum, const float *w, int n, int k) {
    long bad = 0;
    for (int i = 0; i < n; i++) {
        const float *r = w + (size_t)i * k;
        float amax = 0.0f;
        for (int j = 0; j < k; j++) {
            if (!isfinite(r[j])) bad++;
            float a = fabsf(r[j]);
            if (a > amax) amax = a;
        }
        float s = amax / 127.0f;
        float inv = s > 0.0f ? 1.0f / s : 0.0f;
        int32_t sum = 0;
        int8_t *qr = q + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            float v = r[j] * inv;
            long iv = lrintf(v);  // round half to even; |v| <= 127 by construction
            if (iv > 127) iv = 127;
            if (iv < -127) iv = -127;
            qr[j] = (int8_t)iv;
            sum += (int32_t)iv;
        }
        scale[i] = s;
        rowsum[i] = sum;
    }
    return bad;
}

static const char *const act_names[] = {"sym", "asym", "group", "tensor"};
static const char *const act_desc[] = {
    "per-token symmetric int8 (scale = max|x|/127)",
    "per-token asymmetric u8 with zero point (scale = (max-min)/255)",
    "per-token, per-group-of-64 symmetric int8",
    "per-tensor symmetric int8 (one scale per matmul call)",
};

int dq_act_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, act_names[i]) == 0) return i;
    return -1;
}

const char *dq_act_name(dq_act_scheme s) { return (unsigned)s < 4 ? act_names[s] : "?"; }
const char *dq_act_describe(dq_act_scheme s) { return (unsigned)s < 4 ? act_desc[s] : "?"; }
