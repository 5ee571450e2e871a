#!/usr/bin/python3
"""bench_ort.py: ONNX Runtime dynamic quantization as a peer for `dynq bench`, same random-weight shape.

  /usr/bin/python3 -m venv --system-site-packages /tmp/ortenv      # torch and numpy from Debian
  /tmp/ortenv/bin/pip install onnxruntime==1.32.0 onnx==1.23.2 numpy==1.26.4 ml_dtypes==0.5.4
  /tmp/ortenv/bin/python scripts/bench_ort.py --shape stories110M --threads 1,2 --reps 5

The model is scripts/bench_torch.py's Llama (same shapes, same N(0, 0.02^2) weights), written
with the KV cache as graph inputs and outputs (past_k_i / past_v_i in, present_k_i / present_v_i =
past with the new rows appended out), the usual form of a decoder exported for ONNX Runtime, and
exported with torch.onnx.export (opset 17, dynamic token and past lengths). The INT8 model is
onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8) over the MatMul
nodes (every linear layer and the output head; the embedding stays FP32): int8 weights per output
channel, activations quantized at run time as u8 with one scale and zero point per tensor (ORT's
DynamicQuantizeLinear), MatMulInteger, fused by the graph optimizer where it can.
Timing as `dynq bench`: one prefill of -p random tokens (logits for the last one), then -n tokens
one at a time, feeding each step's present cache back as the next past; one untimed warm-up round.
Sessions: intra_op_num_threads = threads, one inter-op thread, ORT_ENABLE_ALL; OMP/spinning is
ORT's default (allow_spinning=1), as a user gets it.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_torch as bt  # noqa: E402  (its model, shapes and weight init)


class Step(torch.nn.Module):
    """bench_torch.Llama with the cache passed in and out: forward(tokens, cos, sin, mask, *past)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, tokens, cos, sin, mask, *past):
        m = self.m
        L = len(m.layers)
        x = m.embed(tokens)
        T = x.shape[0]
        present = []
        for i, b in enumerate(m.layers):
            h = b.attn_norm(x)
            q = bt.rope(b.wq(h).view(T, b.H, b.hd), cos, sin)
            k = torch.cat([past[i], bt.rope(b.wk(h).view(T, b.G, b.hd), cos, sin)], 0)
            v = torch.cat([past[L + i], b.wv(h).view(T, b.G, b.hd)], 0)
            present.append((k, v))
            rep = b.H // b.G
            kk = k.repeat_interleave(rep, 1).transpose(0, 1)  # (H, S, hd)
            vv = v.repeat_interleave(rep, 1).transpose(0, 1)
            att = (q.transpose(0, 1) @ kk.transpose(1, 2)) / b.hd ** 0.5 + mask  # (H, T, S)
            o = (att.softmax(-1) @ vv).transpose(0, 1).reshape(T, -1)
            x = x + b.wo(o)
            h = b.ffn_norm(x)
            x = x + b.w2(F.silu(b.w1(h)) * b.w3(h))
        logits = m.head(m.norm(x[-1:]))
        return (logits, *[k for k, _ in present], *[v for _, v in present])


def export(c, path):
    m = bt.build(c, 8)  # max_seq only sizes bench_torch's own cache buffers, unused here
    L, G, hd = c["layers"], c["kv_heads"], c["dim"] // c["heads"]
    T, P = 3, 2
    past = [torch.zeros(P, G, hd) for _ in range(2 * L)]
    args = (torch.zeros(T, dtype=torch.int64), torch.zeros(T, 1, hd // 2), torch.zeros(T, 1, hd // 2),
            torch.zeros(T, P + T), *past)
    pin = [f"past_k_{i}" for i in range(L)] + [f"past_v_{i}" for i in range(L)]
    pout = [f"present_k_{i}" for i in range(L)] + [f"present_v_{i}" for i in range(L)]
    dyn = {"tokens": {0: "T"}, "cos": {0: "T"}, "sin": {0: "T"}, "mask": {0: "T", 1: "S"}}
    dyn.update({n: {0: "P"} for n in pin})
    dyn.update({n: {0: "S"} for n in pout})
    with torch.no_grad():
        torch.onnx.export(Step(m), args, path, opset_version=17, do_constant_folding=True,
                          input_names=["tokens", "cos", "sin", "mask"] + pin,
                          output_names=["logits"] + pout, dynamic_axes=dyn)


def rope_tables(hd, n):
    ang = np.arange(n)[:, None] * 10000.0 ** (-np.arange(0, hd, 2) / hd)[None, :]
    return np.cos(ang).astype(np.float32)[:, None, :], np.sin(ang).astype(np.float32)[:, None, :]


def stepper(sess, c, toks):
    """run(pos, T, past) -> (logits, present): tokens toks[pos:pos+T] after a cache of pos rows."""
    L, G, hd = c["layers"], c["kv_heads"], c["dim"] // c["heads"]
    cos, sin = rope_tables(hd, len(toks))
    pnames = [f"past_k_{i}" for i in range(L)] + [f"past_v_{i}" for i in range(L)]

    def run(pos, T, past):
        mask = np.triu(np.full((T, pos + T), -np.inf, np.float32), pos + 1)
        feed = {"tokens": toks[pos:pos + T], "cos": cos[pos:pos + T], "sin": sin[pos:pos + T], "mask": mask}
        feed.update(zip(pnames, past))
        out = sess.run(None, feed)
        return out[0], out[1:]

    return run, [np.zeros((0, G, hd), np.float32)] * (2 * L)


def check(sessions, c, n_pp=9, n_tg=3):
    """The exported graph against bench_torch's eager model: a prefill, then single tokens."""
    toks = np.random.default_rng(2).integers(0, c["vocab"], n_pp + n_tg, dtype=np.int64)
    m = bt.build(c, n_pp + n_tg)
    with torch.inference_mode():
        ref = [m(torch.from_numpy(toks[:n_pp]), 0).numpy()]
        ref += [m(torch.from_numpy(toks[p:p + 1]), p).numpy() for p in range(n_pp, n_pp + n_tg)]
    errs = {}
    for typ, sess in sessions.items():
        run, past = stepper(sess, c, toks)
        got = []
        for pos, T in [(0, n_pp)] + [(p, 1) for p in range(n_pp, n_pp + n_tg)]:
            lg, past = run(pos, T, past)
            got.append(lg)
        errs[typ] = max(float(np.abs(g - r).max() / np.abs(r).max()) for g, r in zip(got, ref))
        top1 = sum(int(g.argmax() == r.argmax()) for g, r in zip(got, ref))
        print(f"      check {typ}: max |logit - eager torch FP32| / max |logit| = {errs[typ]:.2e}, "
              f"top-1 agrees {top1}/{len(ref)}")
    if errs.get("fp32", 0.0) > 1e-4:
        sys.exit("bench_ort.py: the exported FP32 graph does not match the eager model")


def bench(sess, c, n_pp, n_tg, reps):
    toks = np.random.default_rng(1).integers(0, c["vocab"], n_pp + n_tg, dtype=np.int64)
    run1, empty = stepper(sess, c, toks)

    def run(pos, T, past):
        return run1(pos, T, past)[1]

    pp, tg = [], []
    for r in range(-1, reps):  # round -1 is the warm-up
        t0 = time.perf_counter()
        past = run(0, n_pp, empty)
        t1 = time.perf_counter()
        for i in range(n_tg):
            past = run(n_pp + i, 1, past)
        t2 = time.perf_counter()
        if r >= 0:
            pp.append(n_pp / (t1 - t0))
            tg.append(n_tg / (t2 - t1))
    return pp, tg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(bt.SHAPES), default="stories110M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-p", type=int, default=128, help="prompt tokens")
    ap.add_argument("-n", type=int, default=64, help="generated tokens")
    ap.add_argument("--types", default="int8,fp32", help="int8 (quantize_dynamic) and/or fp32")
    ap.add_argument("--keep", metavar="DIR", help="write the .onnx files here (default: a temporary directory)")
    a = ap.parse_args()
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    c = bt.SHAPES[a.shape]
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or tmp
        f32 = os.path.join(d, f"{a.shape}-f32.onnx")
        i8 = os.path.join(d, f"{a.shape}-int8.onnx")
        export(c, f32)
        if "int8" in a.types.split(","):
            big = os.path.getsize(f32) + sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
                                             if not f.endswith(".onnx")) > 2 ** 31 - 2 ** 26
            quantize_dynamic(f32, i8, per_channel=True, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             use_external_data_format=big)  # protobuf's 2 GiB limit (TinyLlama: 4.4 GB FP32)
        print(f"onnxruntime {ort.__version__} ({ort.get_device()}), torch {torch.__version__} (export only)")
        print(f"{a.shape}, pp{a.p} tg{a.n}, median of {a.reps}")
        types = a.types.split(",")
        paths = {"int8": i8, "fp32": f32}
        for typ in types:
            if typ not in paths:
                ap.error(f"unknown type {typ}")

        def session(typ, t):
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(paths[typ], so, providers=["CPUExecutionProvider"])

        if "int8" in types:
            ops = sorted({n.op_type for n in onnx.load(i8).graph.node})
            print(f"      int8 graph ops: {' '.join(ops)}")
        check({typ: session(typ, 1) for typ in ["fp32"] + [t for t in types if t == "int8"]}, c)
        print(f"{'type':>5} {'threads':>7} {'pp t/s':>9} {'tg t/s':>9}   (min-max of the reps)")
        for typ in types:
            for t in [int(x) for x in a.threads.split(",")]:
                sess = session(typ, t)
                pp, tg = bench(sess, c, a.p, a.n, a.reps)
                print(f"{typ:>5} {t:>7} {statistics.median(pp):>9.1f} {statistics.median(tg):>9.2f}   "
                      f"(pp {min(pp):.1f}-{max(pp):.1f}, tg {min(tg):.2f}-{max(tg):.2f})", flush=True)
                del sess


if __name__ == "__main__":
    main()
