#!/usr/bin/env bash
# scripts/bench.sh: FP32 and INT8 of the same model side by side in one run, with ratios,
# and the thread pool under a CPU-burning neighbour.
#   scripts/bench.sh [--shape stories110M|tinyllama] [--reps N] [--threads 1,2] [--no-neighbour]
# Models are random-weight llama2.c checkpoints of the shape (scripts/random_model.py), cached
# in $BENCH_DIR (default /tmp/dynq-bench). Speed figures are medians of --reps repetitions.
set -eu
cd "$(dirname "$0")/.."
shape=stories110M reps=5 threads=1,2 neighbour=1
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) shape=$2; shift ;;
        --reps) reps=$2; shift ;;
        --threads) threads=$2; shift ;;
        --no-neighbour) neighbour=0 ;;
        *) echo "usage: $0 [--shape stories110M|tinyllama] [--reps N] [--threads 1,2] [--no-neighbour]" >&2; exit 1 ;;
    esac
    shift
done
DYNQ="${DYNQ:-./dynq}"
SH="${DYNQ_SHARED:-../shared}"
B="${BENCH_DIR:-/tmp/dynq-bench}"
mkdir -p "$B"
[ -x "$DYNQ" ] || make -s
tok="$SH/models/llama2-tokenizer/tokenizer.bin"
[ -f "$B/$shape.bin" ] || /usr/bin/python3 scripts/random_model.py --shape "$shape" -o "$B/$shape.bin"
[ -f "$B/$shape-int8.dynq" ] || "$DYNQ" convert "$B/$shape.bin" --tokenizer "$tok" -o "$B/$shape-int8.dynq"
[ -f "$B/$shape-f32.dynq" ] || "$DYNQ" convert "$B/$shape.bin" --tokenizer "$tok" --type f32 -o "$B/$shape-f32.dynq"
echo "== $shape on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(date -u +%F)"
"$DYNQ" info --cpu | sed 's/^/   /'
"$DYNQ" bench -m "$B/$shape-int8.dynq" -t "$threads" -r "$reps" --roofline --json > "$B/int8.json"
"$DYNQ" bench -m "$B/$shape-f32.dynq" -t "$threads" -r "$reps" --json > "$B/f32.json"
/usr/bin/python3 - "$B/int8.json" "$B/f32.json" <<'PY'
import json, sys
q = [json.loads(l) for l in open(sys.argv[1])]
f = [json.loads(l) for l in open(sys.argv[2])]
print(f"{'threads':>7} | {'INT8 pp t/s':>11} {'FP32 pp t/s':>11} {'ratio':>6} | {'INT8 tg t/s':>11} {'FP32 tg t/s':>11} {'ratio':>6} |"
      f" {'tg GB/s':>7} {'of read':>7} {'+KV':>5} | {'pp GOPS':>7} {'of peak':>7} | isa")
for a, b in zip(q, f):
    print(f"{a['threads']:>7} | {a['pp_tok_s']:>11.1f} {b['pp_tok_s']:>11.1f} {a['pp_tok_s']/b['pp_tok_s']:>6.2f} |"
          f" {a['tg_tok_s']:>11.1f} {b['tg_tok_s']:>11.1f} {a['tg_tok_s']/b['tg_tok_s']:>6.2f} |"
          f" {a['tg_gbps']:>7.2f} {100*a['tg_gbps']/a['read_gbps']:>6.0f}% {100*a['tg_kv_gbps']/a['read_gbps']:>4.0f}% | {a['pp_gops']:>7.1f} {100*a['pp_gops']/a['int8_peak_gops']:>6.0f}% | {a['isa']}")
print("(tg GB/s: weight bytes per second; +KV: with the FP32 key/value cache each generated token also reads)")
print(f"measured limits: read {q[-1]['read_gbps']:.1f} GB/s, int8 peak {q[-1]['int8_peak_gops']:.0f} GOPS "
      f"(at {q[-1]['threads']} threads); INT8 load {q[0]['load_ms']:.0f} ms")
PY
if [ "$neighbour" = 1 ]; then
    echo "== with a CPU-burning neighbour process (one busy loop)"
    ( while :; do :; done ) &
    burner=$!
    trap 'kill $burner 2>/dev/null; wait $burner 2>/dev/null' EXIT
    "$DYNQ" bench -m "$B/$shape-int8.dynq" -t 1,2 -r "$reps" --json > "$B/busy.json"
    kill $burner; wait $burner 2>/dev/null || true
    trap - EXIT
    /usr/bin/python3 - "$B/busy.json" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
for a in r:
    print(f"  -t {a['threads']}: pp {a['pp_tok_s']:.1f} tok/s, tg {a['tg_tok_s']:.1f} tok/s")
if len(r) == 2:
    print(f"  -t 2 / -t 1 with a busy neighbour: pp {r[1]['pp_tok_s']/r[0]['pp_tok_s']:.2f}x, tg {r[1]['tg_tok_s']/r[0]['tg_tok_s']:.2f}x")
PY
fi
