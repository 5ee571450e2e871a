#!/usr/bin/env bash
# tests/test_progress.sh: progress lines (convert, perplexity) go to stderr only when it is a
# terminal: run once under a pseudo-terminal made by script(1), once with stderr in a file.
set -u
cd "$(dirname "$0")/.."
DYNQ="${DYNQ:-./dynq}"
T=$(mktemp -d "${DYNQ_TMP:-/tmp}/progress.XXXXXX")
trap 'rm -rf "$T"' EXIT
if ! command -v script > /dev/null; then echo "skip progress: script(1) not installed"; exit 0; fi
D=$(cd "$(dirname "$DYNQ")" && pwd)/$(basename "$DYNQ")

# convert: "converting: i/n tensors" on a terminal, nothing on a redirected stderr
script -qec "'$D' convert models/stories260K.bin --tokenizer models/tok512.bin -o '$T/a.dynq'" /dev/null \
    > "$T/tty.txt" 2>&1 < /dev/null
if grep -q 'converting: [0-9]*/[0-9]* tensors' "$T/tty.txt" && [ -f "$T/a.dynq" ]; then
    ok=1; echo "ok progress_convert_tty"
else
    ok=0; echo "FAIL progress_convert_tty: $(head -c 300 "$T/tty.txt" | tr '\r' ' ')"
fi
"$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$T/b.dynq" 2> "$T/err.txt" < /dev/null
if grep -q 'converting:' "$T/err.txt"; then echo "FAIL progress_convert_not_redirected: $(head -c 200 "$T/err.txt")"
else echo "ok progress_convert_not_redirected"; fi
[ "$ok" = 1 ] || exit 0

# perplexity: "ETA" on a terminal, not in a redirected stderr. The text is the model's own
# greedy output (no ../shared needed), long enough for several windows of 64 tokens.
"$DYNQ" run -m "$T/a.dynq" -p "Once upon a time" -n 400 --temp 0 --quiet > "$T/text.txt" 2>/dev/null
script -qec "'$D' perplexity -m '$T/a.dynq' -f '$T/text.txt' --ctx 64" /dev/null > "$T/ptty.txt" 2>&1 < /dev/null
if grep -q 'ETA' "$T/ptty.txt" && grep -q 'windows' "$T/ptty.txt"; then echo "ok progress_perplexity_tty"
else echo "FAIL progress_perplexity_tty: $(head -c 300 "$T/ptty.txt" | tr '\r' ' ')"; fi
"$DYNQ" perplexity -m "$T/a.dynq" -f "$T/text.txt" --ctx 64 > /dev/null 2> "$T/perr.txt"
if grep -q 'ETA' "$T/perr.txt"; then echo "FAIL progress_perplexity_not_redirected: $(head -c 200 "$T/perr.txt")"
else echo "ok progress_perplexity_not_redirected"; fi
exit 0
