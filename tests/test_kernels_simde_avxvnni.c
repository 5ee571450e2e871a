// tests/test_kernels_simde_avxvnni.c: ggml_like/avxvnni.c compiled against SIMDe (no -m flags, so
// portable C under the intrinsics) and checked against the scalar spec like the native
// tables: this runs the avxvnni kernel code on any x86-64 host, whatever its CPU has.
#define DQ_SIMDE_HEADER "tests/kernels_simde_x86.h"
#define dq_kernels_avxvnni dq_kernels_avxvnni_simde
#define dq_kernels_avx2 dq_kernels_scalar  // its FP32 kernel comes from avx2.c (not built on every arch)
#include "ggml_like/avxvnni.c"
#undef dq_kernels_avxvnni
#undef dq_kernels_avx2

#include "kernels_check.h"

int main(void) {
    dq_pool *pool;
    dq_err e;
    if (dq_kernels_init(&e) || dq_pool_create(&pool, 2, &e)) {
        printf("FAIL simde_avxvnni: %s\n", e.msg);
        return 1;
    }
    const dq_kernels *K = dq_kernels_avxvnni_simde();
    kc_check_table(K, "simde_avxvnni", pool, 0);
    kc_check_table_other_pf(K, "simde_avxvnni", pool);  // the four-stream GEMV's other prefetch form
    kc_check_f32(K, "simde_avxvnni", pool);
    dq_pool_free(pool);
    return kc_failures ? 1 : 0;
}
