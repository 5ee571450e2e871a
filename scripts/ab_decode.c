// scripts/ab_decode.c: a paired A/B of two variants of the decode path (or, with `prefill`, of a
// prompt of L tokens in one batch), within one process.
//
// These shared VMs move by 10-20 % from one run to the next, so alternating `dynq bench` runs
// cannot see a 1-2 % change. This decodes one token at a time through dq_forward and alternates
// the two variants token by token; each of R sequences of L tokens gives the ratio of the two
// variants' summed times, and the median and quartiles over the sequences are printed.
// Quartiles within about 1 % of the median on the Zen 3 (docs/PERFORMANCE.md, seventh session).
//
// Two kinds of variant:
// - two builds of the code: add to the library, where the two variants differ,
//     int dq_ab_mode;            // 0: variant A, 1: variant B (throw-away, do not commit)
//     ... if (dq_ab_mode) { B } else { A } ...
//   (both variants must leave the state a later token needs as the other would); one MODEL.
// - two model files (MODEL_A,MODEL_B: e.g. the same bytes cached in 4 KiB and in 2 MiB pages,
//   docs/PERFORMANCE.md, "The model file read again into 2 MiB pages"), each with its own state;
//   the library needs no switch. DYNQ_FILE_HUGE=off keeps the load from re-reading either file.
// Then
//     make build/libdynq.a
//     cc -O2 -I. scripts/ab_decode.c build/libdynq.a -lm -pthread -o /tmp/ab_decode
//     /tmp/ab_decode MODEL.dynq|MODEL_A.dynq,MODEL_B.dynq THREADS [L=64] [R=25] [prefill]
// (prefill: each sequence runs the L-token prompt twice, once per variant, in alternating order)
// and take the switch out again. Nothing here is built by the Makefile.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"

extern int dq_ab_mode __attribute__((weak));  // defined only in a throw-away build with two variants

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.dynq|MODEL_A.dynq,MODEL_B.dynq THREADS [L=64] [R=25] [prefill]\n", argv[0]);
        return 2;
    }
    const int nth = atoi(argv[2]), L = argc > 3 ? atoi(argv[3]) : 64, R = argc > 4 ? atoi(argv[4]) : 25;
    const int prefill = argc > 5 && strcmp(argv[5], "prefill") == 0;
    if (nth < 1 || L < 2 || L > 100000 || R < 3 || R > 1000 || (argc > 5 && !prefill)) {
        fprintf(stderr, "%s: THREADS >= 1, 2 <= L <= 100000, 3 <= R <= 1000, last argument `prefill` or none\n", argv[0]);
        return 2;
    }
    char *paths[2] = {argv[1], NULL}, *comma = strchr(argv[1], ',');
    if (comma) *comma = '\0', paths[1] = comma + 1;
    const int two = paths[1] != NULL;
    if (!two && !&dq_ab_mode) {
        fprintf(stderr, "%s: one model: the library needs the throw-away `int dq_ab_mode;` switch (see the top of this file)\n",
                argv[0]);
        return 2;
    }
    dq_model m[2];
    dq_state s[2];
    dq_err e;
    for (int i = 0; i < 1 + two; i++)
        if (dq_model_load(&m[i], paths[i], &e) ||
            dq_state_alloc(&s[i], &m[i], L, prefill ? L : 1, nth, DQ_ACT_SYM, DQ_KV_F32, DQ_KV_F32, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            return 1;
        }
    if (two && m[0].c.vocab != m[1].c.vocab) {
        fprintf(stderr, "%s: the two models have different vocabularies\n", argv[0]);
        return 2;
    }
    int *toks = malloc(sizeof(int) * (size_t)L);
    if (!toks) return 1;
    double ratio[1000], total[2] = {0, 0};
    for (int r = 0; r < R; r++) {
        double t[2] = {0, 0};
        if (prefill)  // one prompt per sequence, run once per variant
            for (int j = 0; j < L; j++) toks[j] = (int)((j * 7919u + (unsigned)r) % m[0].c.vocab);
        // one model: each position with one variant, A at even positions in half the sequences;
        // two models: each position on both (each has its own cache), A first in half of them
        for (int step = 0; step < (prefill ? 2 : two ? 2 * L : L); step++) {
            const int p = prefill ? 0 : two ? step / 2 : step, v = (step + r) & 1;
            if (!prefill) toks[0] = (int)((p * 7919u + (unsigned)r) % m[0].c.vocab);
            if (!two) dq_ab_mode = v;
            double t0 = dq_now();
            if (dq_forward(&m[two ? v : 0], &s[two ? v : 0], toks, prefill ? L : 1, p, DQ_LOGITS_LAST, &e)) {
                fprintf(stderr, "%s: %s\n", argv[0], e.msg);
                return 1;
            }
            t[v] += dq_now() - t0;
        }
        ratio[r] = t[0] / t[1];
        total[0] += t[0], total[1] += t[1];
    }
    dq_sort_doubles(ratio, (size_t)R);
    printf("%d threads, %d sequences of %d tokens: time A / time B median %.3f (quartiles %.3f-%.3f); "
           "A %.1f tok/s, B %.1f tok/s\n",
           nth, R, L, ratio[R / 2], ratio[R / 4], ratio[3 * R / 4], R * L / (prefill || two ? 1 : 2) / total[0],
           R * L / (prefill || two ? 1 : 2) / total[1]);
    free(toks);
    for (int i = 0; i < 1 + two; i++) dq_state_free(&s[i]), dq_model_free(&m[i]);
    return 0;
}
