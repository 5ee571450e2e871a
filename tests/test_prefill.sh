#!/usr/bin/env bash
# tests/test_prefill.sh: dynq end to end against the independent NumPy reference (tests/ref/).
# Suite(s): prefill int8top1 -- see tests/ref/e2e.py for what each checks and the tolerances.
source "$(dirname "$0")/ref/e2e_common.sh"
e2e_suite prefill int8top1 int8_loose
