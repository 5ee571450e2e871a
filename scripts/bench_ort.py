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
import sys
import tempfile

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
    """Writes the FP32 graph to path; returns its weights' bytes."""
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
    return sum(p.numel() * p.element_size() for p in m.parameters())


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
    run, empty = stepper(sess, c, toks)
    past = [empty]  # each step's present cache, the next step's past

    def prefill():
        past[0] = run(0, n_pp, empty)[1]

    def step(i):
        past[0] = run(n_pp + i, 1, past[0])[1]

    return bt.time_rounds(prefill, step, n_pp, n_tg, reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    bt.add_args(ap)
    ap.add_argument("--keep", metavar="DIR", help="write the .onnx files here (default: a temporary directory)")
    a = ap.parse_args()
    types = a.types.split(",")
    for typ in types:
        if typ not in ("int8", "fp32"):
            ap.error(f"unknown type {typ}")
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    c = bt.SHAPES[a.shape]
    with tempfile.TemporaryDirectory() as tmp:
        d = a.keep or tmp
        paths = {typ: os.path.join(d, f"{a.shape}-{typ}.onnx") for typ in ("fp32", "int8")}
        wbytes = export(c, paths["fp32"])
        if "int8" in types:  # over protobuf's 2 GiB the weights go to external files (TinyLlama: 4.4 GB FP32)
            quantize_dynamic(paths["fp32"], paths["int8"], per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], use_external_data_format=wbytes >= 2 ** 31)
        print(f"onnxruntime {ort.__version__} ({ort.get_device()}), torch {torch.__version__} (export only)")
        print(f"{a.shape}, pp{a.p} tg{a.n}, median of {a.reps}")

        def session(typ, t):
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = t, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(paths[typ], so, providers=["CPUExecutionProvider"])

        if "int8" in types:
            ops = sorted({n.op_type for n in onnx.load(paths["int8"], load_external_data=False).graph.node})
            print(f"      int8 graph ops: {' '.join(ops)}")
        check({typ: session(typ, 1) for typ in ["fp32"] + [t for t in types if t == "int8"]}, c)
        bt.print_header()
        for typ in types:
            for t in [int(x) for x in a.threads.split(",")]:
                sess = session(typ, t)
                pp, tg = bench(sess, c, a.p, a.n, a.reps)
                bt.print_row(typ, t, pp, tg)
                del sess


if __name__ == "__main__":
    main()
