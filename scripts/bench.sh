#!/usr/bin/env bash
# scripts/bench.sh: FP32 and INT8 of the same model side by side in one run, with ratios (also
# as alternating INT8 / FP32 processes, the generation ratio taken round by round), and the
# thread pool under a CPU-burning neighbour.
#   scripts/bench.sh [--shape stories110M|tinyllama] [--reps N] [--threads 1,2] [--kv f32|f16|q8_0]
#                    [--depth D] [--no-neighbour] [--llama-bench PATH [--rounds N]]
# --kv: the key/value cache type of every run (dynq's default f32; f16 is llama.cpp's default).
# --depth: prompt and generation start from a cache of D tokens (dynq bench -d, llama-bench -d;
# default 0: generation from an empty cache, as llama-bench's tg64).
# --llama-bench: also llama.cpp's Q8_0 of the same weights, back to back with dynq's INT8 in
# --rounds rounds (default 3) of `llama-bench -p 128 -n 64 -d D -t THREADS -r N` then `dynq bench`
# with the same arguments, and the ratios round by round. --kv f16 or q8_0 goes to both; with
# --kv f32 (dynq's default) llama.cpp keeps its own default, f16, as it has no FP32 cache
# (`llama-bench -ctk f32` is refused). The GGUF is written by
# scripts/llama2c_to_gguf.py with $GGUF_PYTHON (default /tmp/ggufenv/bin/python: see that script)
# and quantized by the llama-quantize beside llama-bench. Neither llama.cpp nor a script that
# builds it is in this repository; the figures in docs/PERFORMANCE.md used llama.cpp as vendored in
# PyPI's llama-cpp-python sdist, built with cmake -DGGML_NATIVE=ON -DCMAKE_BUILD_TYPE=Release.
# Models are random-weight llama2.c checkpoints of the shape (scripts/random_model.py), cached
# in $BENCH_DIR (default /tmp/dynq-bench). Speed figures are medians of --reps repetitions.
set -eu
cd "$(dirname "$0")/.."
shape=stories110M reps=5 threads=1,2 neighbour=1 kv=f32 depth=0 lbench="" rounds=3
while [ $# -gt 0 ]; do
    case "$1" in
        --shape) shape=$2; shift ;;
        --reps) reps=$2; shift ;;
        --threads) threads=$2; shift ;;
        --kv) kv=$2; shift ;;
        --depth) depth=$2; shift ;;
        --no-neighbour) neighbour=0 ;;
        --llama-bench) lbench=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        *) echo "usage: $0 [--shape stories110M|tinyllama] [--reps N] [--threads 1,2] [--kv f32|f16|q8_0] [--depth D] [--no-neighbour] [--llama-bench PATH [--rounds N]]" >&2; exit 1 ;;
    esac
    shift
done
case "$kv" in f32|f16|q8_0) ;; *) echo "$0: --kv must be f32, f16 or q8_0, not '$kv'" >&2; exit 1 ;; esac
case "$depth" in ''|*[!0-9]*) echo "$0: --depth must be a number of tokens, not '$depth'" >&2; exit 1 ;; esac
case "$rounds" in ''|*[!0-9]*|0) echo "$0: --rounds must be a positive number, not '$rounds'" >&2; exit 1 ;; esac
if [ -n "$lbench" ] && ! [ -x "$lbench" ] ; then echo "$0: --llama-bench: $lbench is not an executable" >&2; exit 1; fi
runf=(-ctk "$kv" -ctv "$kv" -d "$depth")  # the cache of every dynq bench run below
DYNQ="${DYNQ:-./dynq}"
SH="${DYNQ_SHARED:-../shared}"
B="${BENCH_DIR:-/tmp/dynq-bench}"
mkdir -p "$B"
[ -x "$DYNQ" ] || make -s
tok="$SH/models/llama2-tokenizer/tokenizer.bin"
[ -f "$B/$shape.bin" ] || /usr/bin/python3 scripts/random_model.py --shape "$shape" -o "$B/$shape.bin"
# (re)convert when missing or not readable by this dynq (e.g. an older format version)
"$DYNQ" info "$B/$shape-int8.dynq" > /dev/null 2>&1 || "$DYNQ" convert "$B/$shape.bin" --tokenizer "$tok" -o "$B/$shape-int8.dynq"
"$DYNQ" info "$B/$shape-f32.dynq" > /dev/null 2>&1 || "$DYNQ" convert "$B/$shape.bin" --tokenizer "$tok" --type f32 -o "$B/$shape-f32.dynq"
echo "== $shape, KV cache $kv, depth $depth, on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) CPUs, $(date -u +%F)"
"$DYNQ" info --cpu | sed 's/^/   /'
"$DYNQ" bench -m "$B/$shape-int8.dynq" -t "$threads" -r "$reps" "${runf[@]}" --roofline --json > "$B/int8.json"
"$DYNQ" bench -m "$B/$shape-f32.dynq" -t "$threads" -r "$reps" "${runf[@]}" --json > "$B/f32.json"
/usr/bin/python3 - "$B/int8.json" "$B/f32.json" <<'PY'
import json, sys
q = [json.loads(l) for l in open(sys.argv[1])]
f = [json.loads(l) for l in open(sys.argv[2])]
print(f"{'threads':>7} | {'INT8 pp t/s':>11} {'FP32 pp t/s':>11} {'ratio':>6} | {'INT8 tg t/s':>11} {'FP32 tg t/s':>11} {'ratio':>6} |"
      f" {'tg GB/s':>7} {'of read':>7} {'+KV':>5} {'paired':>6} | {'pp GOPS':>7} {'of peak':>7} {'paired':>6} {'of roof':>7} | isa")
for a, b in zip(q, f):
    print(f"{a['threads']:>7} | {a['pp_tok_s']:>11.1f} {b['pp_tok_s']:>11.1f} {a['pp_tok_s']/b['pp_tok_s']:>6.2f} |"
          f" {a['tg_tok_s']:>11.1f} {b['tg_tok_s']:>11.1f} {a['tg_tok_s']/b['tg_tok_s']:>6.2f} |"
          f" {a['tg_gbps']:>7.2f} {100*a['tg_gbps']/a['read_gbps']:>6.0f}% {100*a['tg_kv_gbps']/a['read_gbps']:>4.0f}% {100*a['tg_bw_fraction_paired']:>5.0f}% |"
          f" {a['pp_gops']:>7.1f} {100*a['pp_gops']/a['int8_peak_gops']:>6.0f}% {100*a['pp_peak_fraction_paired']:>5.0f}% {100*a['pp_roofline_fraction']:>6.0f}% | {a['isa']}")
print(f"(tg GB/s: weight bytes per second; +KV: with the {q[0]['cache_type_k']} key/value cache each generated token also reads;"
      " paired: each repetition against a read or peak pass taken right after it, median of those ratios;"
      " of roof: of the most the prompt length allows, min(peak, the weights read once at the read bandwidth))")
print(f"measured limits: read {q[-1]['read_gbps']:.1f} GB/s (a buffer the weights' size; {q[-1]['read_512mib_gbps']:.1f} over 512 MiB), int8 peak {q[-1]['int8_peak_gops']:.0f} GOPS "
      f"(at {q[-1]['threads']} threads); INT8 load {q[0]['load_ms']:.0f} ms")
for a in q:  # where the threads' time went (dynq bench, more than one thread)
    if a["threads"] > 1 and a.get("tg_workers_busy", -1) >= 0:
        print(f"INT8 at {a['threads']} threads, generation: workers running slots {100 * a['tg_workers_busy']:.0f} %; the caller"
              f" outside parallel jobs {100 * a['tg_caller_outside']:.1f} %, waiting at their ends {100 * a['tg_caller_wait']:.1f} %,"
              f" backed off {100 * a['tg_caller_alone']:.1f} %; prompt: {100 * a['pp_workers_busy']:.0f} %,"
              f" {100 * a['pp_caller_outside']:.1f} %, {100 * a['pp_caller_wait']:.1f} %, {100 * a['pp_caller_alone']:.1f} %")
pages = lambda r: "unknown" if r.get("file_2m_fraction", -1) < 0 else f"{100 * r['file_2m_fraction']:.0f} %"
print(f"model files in 2 MiB pages (docs/PERFORMANCE.md, \"Huge pages\"): INT8 {pages(q[0])}, FP32 {pages(f[0])}")
PY
# INT8 / FP32 generation again, as alternating processes round by round (-r 1 each, a short
# prompt: only tg is compared), the ratio taken within each round: the runs above are minutes
# apart for the large shape, and the host drifts between them (docs/PERFORMANCE.md).
echo "== INT8 / FP32 generation, alternating processes, $reps rounds per thread count"
: > "$B/pair.json"
for t in ${threads//,/ }; do
    for r in $(seq 1 "$reps"); do
        for ty in int8 f32; do "$DYNQ" bench -m "$B/$shape-$ty.dynq" -p 8 -n 64 -t "$t" -r 1 "${runf[@]}" --json >> "$B/pair.json"; done
    done
done
/usr/bin/python3 - "$B/pair.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for a, b in zip(rows[0::2], rows[1::2]):
    by.setdefault(a["threads"], []).append((a["tg_tok_s"], b["tg_tok_s"]))
for t, pairs in by.items():
    ratio = sorted(a / b for a, b in pairs)
    print(f"  -t {t}: INT8 tg median {statistics.median(a for a, b in pairs):.1f} tok/s, FP32 {statistics.median(b for a, b in pairs):.1f};"
          f" INT8 / FP32 per round: median {statistics.median(ratio):.2f}x (range {ratio[0]:.2f}-{ratio[-1]:.2f})")
PY
if [ "$neighbour" = 1 ]; then
    # -t 1 and -t 2 in alternating processes, round by round (the host drifts between phases of
    # one long run more than -t 2 differs from -t 1 here), the ratio taken within each round.
    echo "== with a CPU-burning neighbour process (one busy loop), $reps rounds of -t 1 / -t 2, alternating"
    ( while :; do :; done ) &
    burner=$!
    trap 'kill $burner 2>/dev/null; wait $burner 2>/dev/null' EXIT
    : > "$B/busy.json"
    for r in $(seq 1 "$reps"); do
        order="1 2"; [ $((r % 2)) = 0 ] && order="2 1"
        for t in $order; do "$DYNQ" bench -m "$B/$shape-int8.dynq" -t "$t" -r 3 "${runf[@]}" --json >> "$B/busy.json"; done
    done
    kill $burner; wait $burner 2>/dev/null || true
    trap - EXIT
    /usr/bin/python3 - "$B/busy.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds = [(rows[i], rows[i + 1]) if rows[i]["threads"] == 1 else (rows[i + 1], rows[i]) for i in range(0, len(rows) - 1, 2)]
for key, name in (("pp_tok_s", "pp"), ("tg_tok_s", "tg")):
    one = [a[key] for a, b in rounds]
    two = [b[key] for a, b in rounds]
    ratio = sorted(b[key] / a[key] for a, b in rounds)
    print(f"  {name}: -t 1 median {statistics.median(one):.1f} tok/s, -t 2 median {statistics.median(two):.1f};"
          f" -t 2 / -t 1 per round: median {statistics.median(ratio):.2f}x (range {ratio[0]:.2f}-{ratio[-1]:.2f})")
PY
fi
if [ -n "$lbench" ]; then
    # llama.cpp Q8_0 and dynq INT8 of the same weights, back to back, round by round
    gguf_py="${GGUF_PYTHON:-/tmp/ggufenv/bin/python}"
    if ! [ -f "$B/$shape-q8_0.gguf" ]; then
        "$gguf_py" scripts/llama2c_to_gguf.py "$B/$shape.bin" "$B/$shape-f32.gguf.tmp"
        "$(dirname "$lbench")/llama-quantize" "$B/$shape-f32.gguf.tmp" "$B/$shape-q8_0.gguf.tmp" Q8_0 > /dev/null 2>&1
        rm -f "$B/$shape-f32.gguf.tmp"
        mv "$B/$shape-q8_0.gguf.tmp" "$B/$shape-q8_0.gguf"
    fi
    echo "== llama.cpp Q8_0 ($("$lbench" --version 2>&1 | grep -m1 -o 'commit [0-9a-f]*' || echo 'version unknown'), KV cache ${kv/f32/f16}) and dynq INT8 (KV cache $kv), back to back, $rounds rounds"
    lkv=(); [ "$kv" = f32 ] || lkv=(-ctk "$kv" -ctv "$kv")  # llama-bench's cache (no f32 there)
    : > "$B/peers.json"
    for r in $(seq 1 "$rounds"); do
        "$lbench" -m "$B/$shape-q8_0.gguf" -p 128 -n 64 -d "$depth" -t "$threads" -r "$reps" "${lkv[@]}" -o jsonl 2> /dev/null |
            grep '^{' | sed 's/^/{"round": '"$r"', "engine": "llama.cpp", "row": /; s/$/}/' >> "$B/peers.json" || true
        "$DYNQ" bench -m "$B/$shape-int8.dynq" -p 128 -n 64 -t "$threads" -r "$reps" "${runf[@]}" --json |
            sed 's/^/{"round": '"$r"', "engine": "dynq", "row": /; s/$/}/' >> "$B/peers.json"
    done
    /usr/bin/python3 - "$B/peers.json" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
res = {}  # (round, threads, test) -> {engine: tok/s}
for r in rows:
    x = r["row"]
    if r["engine"] == "dynq":
        res.setdefault((r["round"], x["threads"], "pp"), {})["dynq"] = x["pp_tok_s"]
        res.setdefault((r["round"], x["threads"], "tg"), {})["dynq"] = x["tg_tok_s"]
    else:  # llama-bench: one row per test, its repetitions in samples_ts (median, as dynq's)
        test = "pp" if x["n_prompt"] > 0 else "tg"
        res.setdefault((r["round"], x["n_threads"], test), {})["llama.cpp"] = statistics.median(x["samples_ts"])
print(f"{'round':>5} {'threads':>7} | {'llama.cpp pp128':>15} {'dynq pp128':>10} {'ratio':>6} | {'llama.cpp tg64':>14} {'dynq tg64':>9} {'ratio':>6}")
ratios = {}
for rnd, t in sorted({(k[0], k[1]) for k in res}):
    pp, tg = res.get((rnd, t, "pp"), {}), res.get((rnd, t, "tg"), {})
    if len(pp) < 2 or len(tg) < 2:
        print(f"{rnd:>5} {t:>7} | incomplete round (a run failed)")
        continue
    ratios.setdefault(t, []).append((pp["dynq"] / pp["llama.cpp"], tg["dynq"] / tg["llama.cpp"]))
    print(f"{rnd:>5} {t:>7} | {pp['llama.cpp']:>15.1f} {pp['dynq']:>10.1f} {pp['dynq'] / pp['llama.cpp']:>5.2f}x |"
          f" {tg['llama.cpp']:>14.1f} {tg['dynq']:>9.1f} {tg['dynq'] / tg['llama.cpp']:>5.2f}x")
for t, rs in sorted(ratios.items()):
    pp, tg = sorted(a for a, b in rs), sorted(b for a, b in rs)
    print(f"  -t {t}: dynq / llama.cpp per round: prefill median {statistics.median(pp):.2f}x (range {pp[0]:.2f}-{pp[-1]:.2f}),"
          f" generation median {statistics.median(tg):.2f}x (range {tg[0]:.2f}-{tg[-1]:.2f})")
PY
fi
