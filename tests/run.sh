#!/usr/bin/env bash
# tests/run.sh [PATTERN]: runs every test program (build/tests/test_*) and script (tests/test_*.sh)
# whose path contains PATTERN (all without one). Each test prints lines "ok NAME", "FAIL NAME: why"
# or "skip NAME: why"; this tallies them and ends with "N passed, N failed, N skipped". Exit
# status 1 if anything failed.
#
# Tests run DYNQ_TEST_JOBS at a time (default: one per CPU; most of them are one process on one
# core), each with its own scratch directory as DYNQ_TMP. The few that take minutes start first
# so that they overlap the many short ones; results are printed as tests finish.
set -u
cd "$(dirname "$0")/.."
export DYNQ="${DYNQ:-./dynq}" BUILD="${BUILD:-build}"
export DYNQ_SHARED="${DYNQ_SHARED:-../shared}"
export DYNQ_TMP="${DYNQ_TMP:-$(mktemp -d)}"
only="${1:-}"
jobs="${DYNQ_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "tests/run.sh: DYNQ_TEST_JOBS must be a positive integer" >&2; exit 2; }
log="$DYNQ_TMP/tests.log"
: > "$log"

# The slow ones (a minute or more on a 2-CPU machine) first, then the rest in name order.
slow="test_neon_qemu.sh test_fuzz_smoke.sh test_ppl.sh test_tok_spm.sh test_prefill.sh"
list=()
for s in $slow; do [ -e "tests/$s" ] && list+=("tests/$s"); done
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.c|*.o|*.d) continue ;; esac
    [[ " $slow " == *" ${t#tests/} "* ]] && continue
    list+=("$t")
done

run_one() {  # run_one INDEX TEST: output, status and seconds into $DYNQ_TMP/run.INDEX/
    local d="$DYNQ_TMP/run.$1" start rc
    mkdir -p "$d/tmp"
    start=$(date +%s)
    if [[ "$2" == *.sh ]]; then DYNQ_TMP="$d/tmp" bash "$2" > "$d/out" 2>&1; else DYNQ_TMP="$d/tmp" "$2" > "$d/out" 2>&1; fi
    rc=$?
    echo "$rc $(( $(date +%s) - start ))" > "$d/res.tmp" && mv "$d/res.tmp" "$d/res"
}

pass=0 fail=0 skip=0
declare -A reported=()
report() {  # prints every finished test not printed yet
    local i t d rc secs out p f s
    for i in "${!list[@]}"; do
        d="$DYNQ_TMP/run.$i"
        [ -n "${reported[$i]:-}" ] || [ ! -e "$d/res" ] && continue
        reported[$i]=1
        t=${list[$i]}
        read -r rc secs < "$d/res"
        out=$(cat "$d/out")
        printf '%s\n' "$out" >> "$log"
        p=$(grep -c '^ok ' <<<"$out"); f=$(grep -c '^FAIL ' <<<"$out"); s=$(grep -c '^skip ' <<<"$out")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            f=1; out="$out"$'\n'"FAIL $t: exited with status $rc"
        fi
        pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
        printf '%-40s %3d ok %3d failed %3d skipped  (%ds)\n' "$t" "$p" "$f" "$s" "$secs"
        grep -E '^(FAIL|skip) ' <<<"$out" | sed 's/^/    /'
        if [ "$f" -gt 0 ]; then tail -n 20 <<<"$out" | grep -v -E '^(ok|FAIL|skip) ' | sed 's/^/    | /'; fi
    done
}

for i in "${!list[@]}"; do
    [ -n "$only" ] && [[ "${list[$i]}" != *"$only"* ]] && { reported[$i]=skip; continue; }
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; report; done
    run_one "$i" "${list[$i]}" &
done
wait
report
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
