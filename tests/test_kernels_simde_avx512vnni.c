// tests/test_kernels_simde_avx512vnni.c: ggml_like/avx512vnni.c compiled against SIMDe (no -m flags, so
// portable C under the intrinsics) and checked against the scalar spec like the native
// tables: this runs the avx512vnni kernel code on any x86-64 host, whatever its CPU has.
#define DQ_SIMDE_HEADER "tests/kernels_simde_x86.h"
#define dq_kernels_avx512vnni dq_kernels_avx512vnni_simde
#include "ggml_like/avx512vnni.c"
#undef dq_kernels_avx512vnni

#include "kernels_check.h"

int main(void) {
    dq_pool *pool;
    dq_err e;
    if (dq_kernels_init(&e) || dq_pool_create(&pool, 2, &e)) {
        printf("FAIL simde_avx512vnni: %s\n", e.msg);
        return 1;
    }
    const dq_kernels *K = dq_kernels_avx512vnni_simde();
    kc_check_table(K, "simde_avx512vnni", pool, 0);
    kc_check_table_other_pf(K, "simde_avx512vnni", pool);  // the four-stream GEMV's other prefetch form
    kc_check_f32(K, "simde_avx512vnni", pool);
    kc_check_vec(K, "simde_avx512vnni");
    dq_pool_free(pool);
    return kc_failures ? 1 : 0;
}
