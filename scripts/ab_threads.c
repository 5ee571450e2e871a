// scripts/ab_threads.c: -t 1 against -t 2 (or any two thread counts) decoding in one process,
// token by token alternating between two states of the same model, each with its own pool.
//
// scripts/bench.sh compares thread counts beside a CPU-burning neighbour as alternating
// processes; on these shared VMs a process's start (its first pool stalls, before the pool backs
// off) and the host's drift between processes weigh on that ratio. Here both counts run in the
// same seconds, so the ratio is the steady state's.
//     make build/libdynq.a
//     cc -O2 -I. scripts/ab_threads.c build/libdynq.a -lm -pthread -o /tmp/ab_threads
//     ( while :; do :; done ) & /tmp/ab_threads MODEL.dynq [A=1] [B=2] [L=64] [R=11]; kill %1
// Prints the median and quartiles over R sequences of L tokens of (time with A threads) / (time
// with B threads), i.e. B's speed relative to A's. Nothing here is built by the Makefile.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.dynq [A=1] [B=2] [L=64] [R=11]\n", argv[0]);
        return 2;
    }
    const int nth[2] = {argc > 2 ? atoi(argv[2]) : 1, argc > 3 ? atoi(argv[3]) : 2};
    const int L = argc > 4 ? atoi(argv[4]) : 64, R = argc > 5 ? atoi(argv[5]) : 11;
    if (nth[0] < 1 || nth[1] < 1 || nth[0] > 1024 || nth[1] > 1024 || L < 2 || L > 100000 || R < 3 || R > 1000) {
        fprintf(stderr, "%s: 1 <= A, B <= 1024, 2 <= L <= 100000, 3 <= R <= 1000\n", argv[0]);
        return 2;
    }
    dq_model m;
    dq_state s[2];
    dq_err e;
    if (dq_model_load(&m, argv[1], &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    for (int w = 0; w < 2; w++)
        if (dq_state_alloc(&s[w], &m, L, 1, nth[w], DQ_ACT_SYM, DQ_KV_F32, DQ_KV_F32, &e)) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            return 1;
        }
    double ratio[1000], total[2] = {0, 0};
    for (int r = 0; r < R; r++) {
        double t[2] = {0, 0};
        for (int p = 0; p < L; p++)
            for (int h = 0; h < 2; h++) {
                const int w = (p + r + h) & 1;  // which state goes first alternates too
                int tok = (int)((p * 7919u + (unsigned)r) % m.c.vocab);
                double t0 = dq_now();
                if (dq_forward(&m, &s[w], &tok, 1, p, DQ_LOGITS_LAST, &e)) {
                    fprintf(stderr, "%s: %s\n", argv[0], e.msg);
                    return 1;
                }
                t[w] += dq_now() - t0;
            }
        ratio[r] = t[0] / t[1];
        total[0] += t[0], total[1] += t[1];
    }
    dq_sort_doubles(ratio, (size_t)R);
    printf("%d sequences of %d tokens: speed with %d threads / with %d: median %.3f (quartiles %.3f-%.3f); "
           "%d threads %.1f tok/s, %d threads %.1f tok/s\n",
           R, L, nth[1], nth[0], ratio[R / 2], ratio[R / 4], ratio[3 * R / 4], nth[0], R * L / total[0], nth[1],
           R * L / total[1]);
    for (int w = 0; w < 2; w++) dq_state_free(&s[w]);
    dq_model_free(&m);
    return 0;
}
