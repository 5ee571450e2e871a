// ggml_like/roofline.h: this machine's two limits, measured, for `dynq bench --roofline`.
// Decode streams every weight once (bound: read bandwidth); prefill multiplies many tokens by
// each weight (bound: int8 dot-product throughput). Each call takes about 0.2-1 s.
#ifndef DYNQ_ROOFLINE_H
#define DYNQ_ROOFLINE_H

#include "ops.h"

// Read bandwidth in GB/s (1e9 bytes/s): every thread of `pool` streams its share of a buffer
// of `bytes` (0 = 512 MiB; `dynq bench` passes the model's weight bytes, at least 64 MiB, so
// the buffer meets the caches as the weights do); best of several passes and loop variants.
// Returns a negative value if the buffer cannot be allocated.
double dq_roofline_read_gbps(dq_pool *pool, size_t bytes);

// Int8 dot-product peak in GOPS (2 ops per multiply-add) of the chosen ISA's dot instruction
// (vpdpbusd zmm, vpmaddubsw+vpmaddwd, sdot, ...), register-resident, on every thread of `pool`.
// *isa receives the ISA measured. Requires dq_kernels_init.
double dq_roofline_int8_gops(dq_pool *pool, dq_isa *isa);

#endif
