// tests/test_kernels_amx.c: the AMX kernel source (ggml_like/amx.c) run on a software model of
// the tile instructions (tests/kernels_amx_model.h), its AVX-512 parts through SIMDe, and
// checked against the scalar spec like every other table, on any x86-64 machine. Where the CPU
// has AMX (one Intel Xeon here so far), test_kernels.c also runs the real tile code natively.
#define DQ_SIMDE_HEADER "tests/kernels_simde_x86.h"
#define DQ_AMX_MODEL_HEADER "tests/kernels_amx_model.h"
#define dq_kernels_avx512vnni dq_kernels_avx512vnni_simde
#define dq_kernels_amx dq_kernels_amx_model
#include "ggml_like/avx512vnni.c"
#include "ggml_like/amx.c"
#undef dq_kernels_avx512vnni
#undef dq_kernels_amx

#include "kernels_check.h"

int main(void) {
    dq_pool *pool;
    dq_err e;
    if (dq_kernels_init(&e) || dq_pool_create(&pool, 1, &e)) {  // 1 thread: the model state is per thread
        printf("FAIL amx_model: %s\n", e.msg);
        return 1;
    }
    const dq_kernels *K = dq_kernels_amx_model();
    kc_check_table(K, "amx_model", pool, 0);
    kc_check_kblock(K, "amx_model");  // its own key-block store (the rest of vec_f32.h is the AVX-512 table's)
    // The tile path must really have run (m >= 16 shapes), not only the VNNI fallback.
    if (amxm_ops > 0) printf("ok amx_model_tiles_used (%ld TDPBUSD executed)\n", amxm_ops);
    else printf("FAIL amx_model_tiles_used: no tile instruction ran\n");
    // A shape with every tile variant: m = 50 (32 + 16 + 2 tokens), n = 40 (2 + 1 panels).
    char why[600];
    if (kc_one(K, pool, 50, 40, 200, 1, 2, DQ_ACT_SYM, 1, why, sizeof why)) printf("FAIL amx_model_blocks: %s\n", why);
    else printf("ok amx_model_blocks (2x2, 2x1, 1x2, 1x1 tile blocks)\n");
    dq_pool_free(pool);
    return kc_failures ? 1 : 0;
}
