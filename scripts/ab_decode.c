// scripts/ab_decode.c: a paired A/B of two variants of the decode path (or, with `prefill`, of a
// prompt of L tokens in one batch), within one process.
//
// These shared VMs move by 10-20 % from one run to the next, so alternating `dynq bench` runs
// cannot see a 1-2 % change. This decodes one token at a time through dq_forward and flips a
// global, dq_ab_mode (0 or 1), at every token; each of R sequences of L tokens gives the ratio of
// the two variants' summed times, and the median and quartiles over the sequences are printed.
// Quartiles within about 1 % of the median on the Zen 3 (docs/PERFORMANCE.md, seventh session).
//
// Use: add to the library, where the two variants differ,
//     int dq_ab_mode;            // 0: variant A, 1: variant B (throw-away, do not commit)
//     ... if (dq_ab_mode) { B } else { A } ...
// (both variants must leave the state a later token needs as the other would), then
//     make build/libdynq.a
//     cc -O2 -I. scripts/ab_decode.c build/libdynq.a -lm -pthread -o /tmp/ab_decode
//     /tmp/ab_decode MODEL.dynq THREADS [L=64] [R=25] [prefill]
// (prefill: each sequence runs the L-token prompt twice, once per variant, in alternating order)
// and take the switch out again. Nothing here is built by the Makefile.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"

extern int dq_ab_mode;

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.dynq THREADS [L=64] [R=25] [prefill]\n", argv[0]);
        return 2;
    }
    const int nth = atoi(argv[2]), L = argc > 3 ? atoi(argv[3]) : 64, R = argc > 4 ? atoi(argv[4]) : 25;
    const int prefill = argc > 5 && strcmp(argv[5], "prefill") == 0;
    if (nth < 1 || L < 2 || L > 100000 || R < 3 || R > 1000 || (argc > 5 && !prefill)) {
        fprintf(stderr, "%s: THREADS >= 1, 2 <= L <= 100000, 3 <= R <= 1000, last argument `prefill` or none\n", argv[0]);
        return 2;
    }
    dq_model m;
    dq_state s;
    dq_err e;
    if (dq_model_load(&m, argv[1], &e) ||
        dq_state_alloc(&s, &m, L, prefill ? L : 1, nth, DQ_ACT_SYM, DQ_KV_F32, DQ_KV_F32, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    int *toks = malloc(sizeof(int) * (size_t)L);
    if (!toks) return 1;
    double ratio[1000], total[2] = {0, 0};
    for (int r = 0; r < R; r++) {
        double t[2] = {0, 0};
        if (prefill)  // one prompt per sequence, run once per variant
            for (int j = 0; j < L; j++) toks[j] = (int)((j * 7919u + (unsigned)r) % m.c.vocab);
        for (int p = 0; p < (prefill ? 2 : L); p++) {
            if (!prefill) toks[0] = (int)((p * 7919u + (unsigned)r) % m.c.vocab);
            dq_ab_mode = (p + r) & 1;  // each position (or prompt) gets A in half the sequences, B in the other
            double t0 = dq_now();
            if (dq_forward(&m, &s, toks, prefill ? L : 1, prefill ? 0 : p, DQ_LOGITS_LAST, &e)) {
                fprintf(stderr, "%s: %s\n", argv[0], e.msg);
                return 1;
            }
            t[dq_ab_mode] += dq_now() - t0;
        }
        ratio[r] = t[0] / t[1];
        total[0] += t[0], total[1] += t[1];
    }
    dq_sort_doubles(ratio, (size_t)R);
    printf("%d threads, %d sequences of %d tokens: time A / time B median %.3f (quartiles %.3f-%.3f); "
           "A %.1f tok/s, B %.1f tok/s\n",
           nth, R, L, ratio[R / 2], ratio[R / 4], ratio[3 * R / 4], R * L / (prefill ? 1 : 2) / total[0],
           R * L / (prefill ? 1 : 2) / total[1]);
    free(toks);
    dq_state_free(&s);
    dq_model_free(&m);
    return 0;
}
