// quant.h: offline weight quantization (INT8, per output row, symmetric) and the
// activation-scheme names used on the command line. The run-time activation
// quantizers themselves are kernels (ggml_like/), since they run on every matmul.
#ifndef DYNQ_QUANT_H
#define DYNQ_QUANT_H

#include <stdint.h>

#include "ggml_like/ops.h"

// w (n, k) FP32 -> q (n, k) int8 with scale[i] = max_j |w[i][j]| / 127 and
// rowsum[i] = sum_j q[i][j]. A row of zeros gets scale 0 and q 0.
// Returns the number of non-finite values met (they make the row's scale non-finite: reject).
long dq_quantize_rows(int8_t *q, float *scale, int32_t *rowsum, const float *w, int n, int k);

// "sym" | "asym" | "group" | "tensor" <-> scheme; -1 if unknown.
int dq_act_parse(const char *name);
const char *dq_act_name(dq_act_scheme s);
const char *dq_act_describe(dq_act_scheme s);

#endif
