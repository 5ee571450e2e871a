// tests/test_kernels_simde_neon.c: ggml_like/neon.c compiled against SIMDe's NEON and checked
// against the scalar spec, all three variants (plain NEON, dotprod, i8mm), on any host.
#define DQ_SIMDE_HEADER "tests/kernels_simde_neon.h"
#define dq_kernels_neon dq_kernels_neon_simde
#define dq_kernels_neon_level dq_kernels_neon_level_simde
#include "ggml_like/neon.c"
#undef dq_kernels_neon
#undef dq_kernels_neon_level

#include "kernels_check.h"

int main(void) {
    dq_pool *pool;
    dq_err e;
    if (dq_kernels_init(&e) || dq_pool_create(&pool, 2, &e)) {
        printf("FAIL simde_neon: %s\n", e.msg);
        return 1;
    }
    static const char *const label[] = {"simde_neon_plain", "simde_neon_dot", "simde_neon_i8mm"};
    for (int level = 0; level < 3; level++) {
        const dq_kernels *K = dq_kernels_neon_level_simde(level);
        kc_check_table(K, label[level], pool, 0);
        if (level == 0) kc_check_f32(K, "simde_neon", pool);
        if (level == 0) kc_check_vec(K, "simde_neon");
    }
    dq_pool_free(pool);
    return kc_failures ? 1 : 0;
}
