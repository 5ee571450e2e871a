#!/usr/bin/python3
"""bench_torch.py: PyTorch as a peer for `dynq bench`, on a random-weight Llama of the same shape.

  /usr/bin/python3 scripts/bench_torch.py --shape stories110M --threads 1,2 --reps 5

Runs the model in FP32 and after torch.quantization.quantize_dynamic(model, {nn.Linear},
dtype=torch.qint8) (int8 weights, activations quantized per call; the embedding stays FP32)
and prints prefill (pp) and generation (tg) tokens/s, medians of --reps, measured as
`dynq bench` does: one batched prefill of -p random tokens with logits for the last one, then
-n tokens one at a time after it, one untimed warm-up round first.
The model is a plain eager Llama: RMSNorm, rotary embedding, grouped-query attention over a
preallocated KV cache, SwiGLU FFN, output head. Eager PyTorch pays per-op dispatch overhead
that an engine does not, which weighs most on small shapes and on generation.
FP32 matmuls go to the system BLAS. Debian's OpenBLAS 0.3.21 does not know recent Xeons and falls
back to its SSE3 "Prescott" kernels (3x slower FP32 prefill), so on an AVX-512 CPU this script
sets OPENBLAS_CORETYPE=SkylakeX unless it is set already; the core in use is printed.
It also sets OMP_WAIT_POLICY=PASSIVE unless set: libgomp's spinning threads starve OpenBLAS's own
threads, and with 2 threads on 2 vCPUs ACTIVE ran 2-6x slower than PASSIVE (stories110M).
"""
import argparse
import ctypes
import os
import statistics
import time

if "OPENBLAS_CORETYPE" not in os.environ and " avx512f" in open("/proc/cpuinfo").read():
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"  # read once, when torch loads OpenBLAS
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads libgomp

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {  # as scripts/random_model.py
    "stories110M": dict(dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000, seq=1024),
    "tinyllama": dict(dim=2048, hidden=5632, layers=22, heads=32, kv_heads=4, vocab=32000, seq=2048),
}

# ---------------------------------------------------------------- model


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    # x: (T, heads, head_dim), rotating pairs (x[2i], x[2i+1]) as llama2.c; cos, sin: (T, 1, head_dim/2)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, c, max_seq):
        super().__init__()
        D, H, G = c["dim"], c["heads"], c["kv_heads"]
        self.H, self.G, self.hd = H, G, D // H
        self.wq = nn.Linear(D, H * self.hd, bias=False)
        self.wk = nn.Linear(D, G * self.hd, bias=False)
        self.wv = nn.Linear(D, G * self.hd, bias=False)
        self.wo = nn.Linear(H * self.hd, D, bias=False)
        self.w1 = nn.Linear(D, c["hidden"], bias=False)  # gate
        self.w3 = nn.Linear(D, c["hidden"], bias=False)  # up
        self.w2 = nn.Linear(c["hidden"], D, bias=False)  # down
        self.attn_norm, self.ffn_norm = RMSNorm(D), RMSNorm(D)
        self.register_buffer("k_cache", torch.zeros(max_seq, G, self.hd), persistent=False)
        self.register_buffer("v_cache", torch.zeros(max_seq, G, self.hd), persistent=False)

    def forward(self, x, pos, cos, sin):  # x: (T, D), rows at positions pos..pos+T-1
        T = x.shape[0]
        h = self.attn_norm(x)
        q = rope(self.wq(h).view(T, self.H, self.hd), cos, sin)
        self.k_cache[pos:pos + T] = rope(self.wk(h).view(T, self.G, self.hd), cos, sin)
        self.v_cache[pos:pos + T] = self.wv(h).view(T, self.G, self.hd)
        rep = self.H // self.G
        k = self.k_cache[:pos + T].repeat_interleave(rep, 1).transpose(0, 1)  # (H, S, hd)
        v = self.v_cache[:pos + T].repeat_interleave(rep, 1).transpose(0, 1)
        att = (q.transpose(0, 1) @ k.transpose(1, 2)) / self.hd ** 0.5     # (H, T, S)
        if T > 1:
            mask = torch.ones(T, pos + T, dtype=torch.bool).tril(pos)
            att = att.masked_fill(~mask, float("-inf"))
        o = (att.softmax(-1) @ v).transpose(0, 1).reshape(T, -1)
        x = x + self.wo(o)
        h = self.ffn_norm(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Llama(nn.Module):
    def __init__(self, c, max_seq):
        super().__init__()
        self.embed = nn.Embedding(c["vocab"], c["dim"])
        self.layers = nn.ModuleList(Block(c, max_seq) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"])
        self.head = nn.Linear(c["dim"], c["vocab"], bias=False)
        hd = c["dim"] // c["heads"]
        ang = torch.arange(max_seq)[:, None] * 10000.0 ** (-torch.arange(0, hd, 2) / hd)[None, :]
        self.register_buffer("cos", ang.cos()[:, None, :], persistent=False)
        self.register_buffer("sin", ang.sin()[:, None, :], persistent=False)

    def forward(self, tokens, pos):  # logits of the last token only, as dynq's DQ_LOGITS_LAST
        T = tokens.shape[0]
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x, pos, cos, sin)
        return self.head(self.norm(x[-1:]))


def build(c, max_seq):
    torch.manual_seed(42)
    m = Llama(c, max_seq).eval()
    with torch.no_grad():  # N(0, 0.02^2) as scripts/random_model.py; norms stay 1
        for name, p in m.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
    return m

# ---------------------------------------------------------------- timing


def time_rounds(prefill, step, n_pp, n_tg, reps):
    """prefill(), then step(i) for i < n_tg, in one untimed warm-up round and reps timed ones:
    the prefill and generation tokens/s of each timed round (scripts/bench_ort.py uses it too)."""
    pp, tg = [], []
    for r in range(-1, reps):  # round -1 is the warm-up
        t0 = time.perf_counter()
        prefill()
        t1 = time.perf_counter()
        for i in range(n_tg):
            step(i)
        t2 = time.perf_counter()
        if r >= 0:
            pp.append(n_pp / (t1 - t0))
            tg.append(n_tg / (t2 - t1))
    return pp, tg


@torch.inference_mode()
def bench(model, n_pp, n_tg, reps, vocab):
    toks = torch.randint(0, vocab, (n_pp + n_tg,), generator=torch.Generator().manual_seed(1))
    return time_rounds(lambda: model(toks[:n_pp], 0), lambda i: model(toks[n_pp + i:n_pp + i + 1], n_pp + i),
                       n_pp, n_tg, reps)


def add_args(ap):
    """The arguments bench_torch.py and bench_ort.py share."""
    ap.add_argument("--shape", choices=sorted(SHAPES), default="stories110M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("-p", type=int, default=128, help="prompt tokens")
    ap.add_argument("-n", type=int, default=64, help="generated tokens")
    ap.add_argument("--types", default="int8,fp32", help="int8 (quantize_dynamic) and/or fp32")


def print_header():
    print(f"{'type':>5} {'threads':>7} {'pp t/s':>9} {'tg t/s':>9}   (min-max of the reps)")


def print_row(typ, threads, pp, tg):
    print(f"{typ:>5} {threads:>7} {statistics.median(pp):>9.1f} {statistics.median(tg):>9.2f}   "
          f"(pp {min(pp):.1f}-{max(pp):.1f}, tg {min(tg):.2f}-{max(tg):.2f})", flush=True)


def openblas():
    # OpenBLAS keeps its own pthreads, which torch.set_num_threads does not reach
    try:
        lib = ctypes.CDLL("libopenblas.so.0", mode=os.RTLD_NOLOAD)
    except OSError:
        return None
    lib.openblas_get_config.restype = ctypes.c_char_p
    return lib


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_args(ap)
    ap.add_argument("--engine", default=None, help="torch.backends.quantized.engine (default: torch's)")
    a = ap.parse_args()
    if a.engine:
        torch.backends.quantized.engine = a.engine
    torch.set_flush_denormal(True)
    c = SHAPES[a.shape]
    threads = [int(t) for t in a.threads.split(",")]
    blas = openblas()
    print(f"torch {torch.__version__}, quantized engine {torch.backends.quantized.engine} "
          f"(supported: {', '.join(torch.backends.quantized.supported_engines)}), "
          f"BLAS: {blas.openblas_get_config().decode() if blas else 'not OpenBLAS'}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    print(f"{a.shape}, pp{a.p} tg{a.n}, median of {a.reps}")
    print_header()
    fp32 = build(c, a.p + a.n)
    for typ in a.types.split(","):
        if typ == "int8":
            model = torch.quantization.quantize_dynamic(fp32, {nn.Linear}, dtype=torch.qint8)
        elif typ == "fp32":
            model = fp32
        else:
            ap.error(f"unknown type {typ}")
        for t in threads:
            torch.set_num_threads(t)
            if blas:
                blas.openblas_set_num_threads(t)
            pp, tg = bench(model, a.p, a.n, a.reps, c["vocab"])
            print_row(typ, t, pp, tg)
        del model


if __name__ == "__main__":
    main()
