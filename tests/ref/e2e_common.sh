# tests/ref/e2e_common.sh: sourced by the end-to-end test scripts tests/test_{golden,forward,
# prefill,ppl,badinput}.sh. Sets up a scratch directory and runs one suite of tests/ref/e2e.py.
set -u
cd "$(dirname "$0")/.."
export DYNQ="${DYNQ:-./dynq}" DYNQ_SHARED="${DYNQ_SHARED:-../shared}"
e2e_suite() {  # e2e_suite SUITE...
    local tmpbase="${DYNQ_TMP:-${TMPDIR:-/tmp}}"
    mkdir -p "$tmpbase"
    E2E_TMP=$(mktemp -d "$tmpbase/e2e.XXXXXX") || { echo "FAIL e2e: mktemp"; return 1; }
    export E2E_TMP
    trap 'rm -rf "$E2E_TMP"' EXIT
    if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import numpy, sentencepiece' 2>/dev/null; then
        echo "skip e2e_$1: /usr/bin/python3 with numpy and sentencepiece is missing"
        return 0
    fi
    local s rc=0
    for s in "$@"; do
        /usr/bin/python3 tests/ref/e2e.py "$s" || rc=1
    done
    return $rc
}
