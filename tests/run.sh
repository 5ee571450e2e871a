#!/usr/bin/env bash
# tests/run.sh: runs every test program (build/tests/test_*) and script (tests/test_*.sh).
# Each test prints lines "ok NAME", "FAIL NAME: why" or "skip NAME: why"; this tallies them
# and ends with "N passed, N failed, N skipped". Exit status 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
export DYNQ="${DYNQ:-./dynq}" BUILD="${BUILD:-build}"
export DYNQ_SHARED="${DYNQ_SHARED:-../shared}"
export DYNQ_TMP="${DYNQ_TMP:-$(mktemp -d)}"
only="${1:-}"
log="$DYNQ_TMP/tests.log"
: > "$log"
pass=0 fail=0 skip=0
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.c|*.o|*.d) continue ;; esac
    [ -n "$only" ] && [[ "$t" != *"$only"* ]] && continue
    start=$(date +%s)
    out=$({ if [[ "$t" == *.sh ]]; then bash "$t"; else "$t"; fi; } 2>&1)
    rc=$?
    secs=$(( $(date +%s) - start ))
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
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
