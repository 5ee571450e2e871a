#!/usr/bin/env bash
# scripts/quant_table.sh: what dynamic quantization costs, as the README's table: FP32 PPL and,
# for INT8 with each activation scheme, PPL, ΔPPL %, mean KLD and top-1 agreement, on the
# stories260K and KJV models, each INT8 run against its FP32 twin in one pass.
#   scripts/quant_table.sh [CHUNKS]      (default: all chunks; ctx 256)
set -eu
cd "$(dirname "$0")/.."
SH="${DYNQ_SHARED:-../shared}"
DYNQ="${DYNQ:-./dynq}"
CHUNKS=${1:-0}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin -o "$T/s8.dynq" 2>/dev/null
"$DYNQ" convert models/stories260K.bin --tokenizer models/tok512.bin --type f32 -o "$T/sf.dynq" 2>/dev/null
"$DYNQ" convert "$SH/models/kjv/kjv.bin" --tokenizer "$SH/models/kjv/kjv1k-tok.bin" -o "$T/k8.dynq" 2>/dev/null
"$DYNQ" convert "$SH/models/kjv/kjv.bin" --tokenizer "$SH/models/kjv/kjv1k-tok.bin" --type f32 -o "$T/kf.dynq" 2>/dev/null
extra=()
[ "$CHUNKS" != 0 ] && extra=(--chunks "$CHUNKS")
echo "| model | text | activations | PPL | ΔPPL % | mean KLD | top-1 % |"
echo "|---|---|---|---|---|---|---|"
for spec in "stories260K:s:tinystories-val.txt" "KJV:k:kjv-eval.txt"; do
    IFS=: read -r name p text <<< "$spec"
    for act in sym asym group tensor; do
        "$DYNQ" perplexity -m "$T/${p}8.dynq" --ref "$T/${p}f.dynq" -f "$SH/data/$text" --ctx 256 --act $act --json \
            "${extra[@]}" 2>/dev/null > "$T/j"
        /usr/bin/python3 - "$T/j" "$name" "$text" "$act" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); name, text, act = sys.argv[2:5]
desc = {"sym": "per-token symmetric", "asym": "per-token asymmetric", "group": "per-token, groups of 64",
        "tensor": "per-tensor"}[act]
if act == "sym":
    print(f"| {name} FP32 | {text} | – | {j['ref_ppl']:.4f} | – | – | – |")
print(f"| {name} INT8 | {text} | {desc} (`--act {act}`) | {j['ppl']:.4f} | {100*(j['ppl']/j['ref_ppl']-1):+.3f} | "
      f"{j['kld_mean']:.6f} | {100*j['top1_agree']:.2f} |")
PY
    done
done
