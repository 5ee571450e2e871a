#!/usr/bin/env bash
# tests/test_neon_qemu.sh: builds the aarch64 flavour (make ARCH=aarch64, neon.c + scalar) and
# runs the kernel test under qemu-aarch64 on three CPU models: "max" (dotprod + i8mm; each NEON
# variant forced in turn with DYNQ_NEON), and "cortex-a53" (plain NEON, chosen from HWCAP).
# Every NEON variant must match the scalar spec bit for bit. Skips if the cross tools are absent.
set -u
cd "$(dirname "$0")/.."
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "skip neon_qemu: $tool not installed (apt-get install gcc-aarch64-linux-gnu qemu-user)"
        exit 0
    fi
done
if [ -n "${DYNQ_SANITIZED:-}" ]; then
    echo "skip neon_qemu: the sanitizer run does not rebuild the aarch64 flavour (it runs in make test)"
    exit 0
fi
# The cross build must not inherit the sanitizer flags of a parent make.
unset MAKEFLAGS MAKELEVEL MFLAGS
sysroot=/usr/aarch64-linux-gnu
build="${BUILD_ARM:-build-arm}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! make -s -j"$(nproc)" ARCH=aarch64 CC=aarch64-linux-gnu-gcc BUILD="$build" SAN= "$build/tests/test_kernels" "$build/dynq" >"$log" 2>&1; then
    echo "FAIL neon_build: make ARCH=aarch64 failed:"
    tail -n 15 "$log" | sed 's/^/    /'
    exit 1
fi
echo "ok neon_build (aarch64-linux-gnu-gcc, $build/tests/test_kernels)"
bin="$build/tests/test_kernels"
export DYNQ_TEST_EXEC="qemu-aarch64 -L $sysroot"
run() {  # label cpu [DYNQ_NEON value] [expected kernel name fragment] [DYNQ_TEST_ONLY value]
    local label=$1 cpu=$2 variant=$3 expect=$4 only=${5:-} out rc
    out=$(QEMU_CPU=$cpu DYNQ_NEON=$variant DYNQ_TEST_ONLY=$only qemu-aarch64 -L "$sysroot" "$bin" 2>&1)
    rc=$?
    # Only the NEON lines and the forcing check differ between runs; rename them per variant.
    grep -E '^(ok|FAIL) (neon_|isa_force|f16_conversions)' <<<"$out" | sed -E "s/^(ok|FAIL) /\1 ${label}:/"
    if ! grep -q "^kernels: .*$expect" <<<"$out"; then
        echo "FAIL ${label}:variant: expected kernel '$expect', test reported: $(grep '^kernels:' <<<"$out")"
    else
        echo "ok ${label}:variant ($expect chosen)"
    fi
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' <<<"$out"; then
        echo "FAIL ${label}: exited with status $rc"
        tail -n 5 <<<"$out" | sed 's/^/    /'
    fi
}
# The first run is the whole test (the scalar spec, the pool, the FP16 conversions against
# fcvtn/fcvtl); the others check only their NEON table (emulation makes each whole run ~40 s).
run qemu_max_i8mm max "" neoni8mm
run qemu_max_dot max dot neondot neon
run qemu_max_plain max plain "1x16c4__neon" neon
run qemu_a53 cortex-a53 "" "1x16c4__neon" neon

# One full generation on the aarch64 binary gives the same tokens as this host's binary, with
# the fastest NEON path (max) and the plain one (cortex-a53). INT8 and FP32 models, and the INT8
# one over an FP16 KV cache (NEON's fcvtn / fcvtl against the host's F16C or AVX-512) and over a
# q8_0 one (NEON's byte widening and narrowing against the host's).
DYNQ="${DYNQ:-./dynq}"
gt=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$gt"' EXIT
for wt in int8 f32 int8-kv16 int8-kv8; do
    kv=() base=${wt%-kv*}
    [ "$wt" = int8-kv16 ] && kv=(-ctk f16 -ctv f16)
    [ "$wt" = int8-kv8 ] && kv=(-ctk q8_0 -ctv q8_0)
    [ -s "$gt/s-$base.dynq" ] || "$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin \
        --type "$base" -o "$gt/s-$base.dynq" 2>/dev/null
    "$DYNQ" run -m "$gt/s-$base.dynq" -p "Once upon a time" -n 80 --temp 0 --quiet "${kv[@]}" > "$gt/host-$wt.txt" 2>/dev/null
    for cpu in max cortex-a53; do
        QEMU_CPU=$cpu qemu-aarch64 -L "$sysroot" "$build/dynq" run -m "$gt/s-$base.dynq" -p "Once upon a time" \
            -n 80 --temp 0 --quiet "${kv[@]}" > "$gt/arm.txt" 2>&1
        if [ -s "$gt/host-$wt.txt" ] && cmp -s "$gt/host-$wt.txt" "$gt/arm.txt"; then
            echo "ok qemu_generation_${cpu}_$wt (same 80 tokens as the host)"
        else
            echo "FAIL qemu_generation_${cpu}_$wt: $(head -c 120 "$gt/arm.txt") vs $(head -c 120 "$gt/host-$wt.txt")"
        fi
    done
done
