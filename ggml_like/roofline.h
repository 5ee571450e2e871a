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

// The same measurement kept ready for repeated use, so that each repetition of a benchmark can
// be paired with a read pass taken right after it (on a shared, noisy host the bandwidth
// available moves by tens of percent from second to second; a ratio of two figures taken
// together moves far less than either). new: maps and touches the buffer (0 or DQ_ENOMEM);
// gbps: best of `rounds` passes of every loop variant.
typedef struct dq_read_probe dq_read_probe;
int dq_read_probe_new(dq_read_probe **out, size_t bytes);
double dq_read_probe_gbps(dq_read_probe *rp, dq_pool *pool, int rounds);
// One pass of each loop variant (the same ones in the same order on every call), GB/s into
// gbps[0 .. n); returns n <= DQ_READ_VARIANTS.
#define DQ_READ_VARIANTS 8
int dq_read_probe_passes(dq_read_probe *rp, dq_pool *pool, double *gbps);
void dq_read_probe_free(dq_read_probe *rp);

// Int8 dot-product peak in GOPS (2 ops per multiply-add) of the chosen ISA's dot instruction
// (vpdpbusd zmm, vpmaddubsw+vpmaddwd, sdot, ...), register-resident, on every thread of `pool`.
// *isa receives the ISA measured. Requires dq_kernels_init.
double dq_roofline_int8_gops(dq_pool *pool, dq_isa *isa);
// The same, best of `passes` runs; *iters is the loop length: 0 on the first call (found there,
// >= 50 ms a run), then passed back so later calls time the same work.
double dq_roofline_int8_gops_passes(dq_pool *pool, dq_isa *isa, int64_t *iters, int passes);

#endif
