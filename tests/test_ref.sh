#!/usr/bin/env bash
# tests/test_ref.sh: checks the NumPy oracle itself (tests/ref/validate_ref.py) against the shared
# golden files, so that a bug in the reference cannot hide a bug in dynq (or invent one).
set -u
cd "$(dirname "$0")/.."
sh="${DYNQ_SHARED:-../shared}"
if [ ! -d "$sh/models" ]; then echo "skip ref_validate: DYNQ_SHARED=$sh has no models/"; exit 0; fi
if ! /usr/bin/python3 -c 'import numpy, sentencepiece' 2>/dev/null; then
    echo "skip ref_validate: /usr/bin/python3 with numpy and sentencepiece is missing"; exit 0
fi
/usr/bin/python3 tests/ref/validate_ref.py "$sh"
