#!/usr/bin/env bash
# tests/test_forward.sh: dynq end to end against the independent NumPy reference (tests/ref/).
# Suite(s): logits -- see tests/ref/e2e.py for what each checks and the tolerances.
source "$(dirname "$0")/ref/e2e_common.sh"
e2e_suite logits logits_text
