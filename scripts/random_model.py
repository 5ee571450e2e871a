#!/usr/bin/python3
"""random_model.py: a seeded random-weight llama2.c version-0 checkpoint of a given shape, for
speed benchmarks (the weights are noise; only the shape and the byte count matter).

  random_model.py --shape stories110M -o s110m.bin      dim 768, FFN 2048, 12 layers, 12 heads,
                                                         vocab 32000, seq 1024 (~440 MB)
  random_model.py --shape tinyllama -o tl.bin           dim 2048, FFN 5632, 22 layers, 32 heads,
                                                         4 kv heads, vocab 32000, seq 2048 (~4.4 GB)
  random_model.py --dim 96 --hidden 250 --layers 2 --heads 6 --kv-heads 2 --vocab 512 --seq 64 -o x.bin
Options override the shape's fields; --untied writes a separate classifier (negative vocab).
The classifier is tied by default (as in stories110M). Written tensor by tensor in chunks with
numpy tofile (float32 N(0, 0.02^2), RMSNorm gains 1), so memory stays small.
The file goes to OUT.tmp first and is renamed at the end.
Pair it with models/llama2-tokenizer/tokenizer.bin (32000) in $DYNQ_SHARED for vocab 32000.
"""
import os
import struct
import sys

import numpy as np

SHAPES = {
    "stories110M": dict(dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000,
                        seq=1024),
    "tinyllama": dict(dim=2048, hidden=5632, layers=22, heads=32, kv_heads=4, vocab=32000,
                      seq=2048),
    "stories260K": dict(dim=64, hidden=172, layers=5, heads=8, kv_heads=4, vocab=512, seq=512),
}


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="seeded random llama2.c checkpoint")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None)
    for k in ("dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq"):
        ap.add_argument("--" + k.replace("_", "-"), type=int, default=None)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    s = dict(SHAPES[a.shape]) if a.shape else {}
    for k in ("dim", "hidden", "layers", "heads", "kv_heads", "vocab", "seq"):
        v = getattr(a, k)
        if v is not None:
            s[k] = v
    if "kv_heads" not in s and "heads" in s:
        s["kv_heads"] = s["heads"]
    missing = [k for k in ("dim", "hidden", "layers", "heads", "vocab", "seq") if k not in s]
    if missing:
        ap.error("missing shape fields: %s (give --shape or all of them)" % ", ".join(missing))
    D, F, L, H, G, V, S = (s[k] for k in ("dim", "hidden", "layers", "heads", "kv_heads",
                                          "vocab", "seq"))
    if D % H or H % G or (D // H) % 2:
        ap.error("dim must be a multiple of heads, heads of kv_heads, head_dim even")
    hd = D // H
    rng = np.random.default_rng(a.seed)
    tmp = a.out + ".tmp"
    chunk = 1 << 22

    def noise(f, count):
        left = count
        while left:
            n = min(left, chunk)
            (rng.standard_normal(n, dtype=np.float32) * np.float32(0.02)).astype("<f4").tofile(f)
            left -= n

    with open(tmp, "wb") as f:
        f.write(struct.pack("<7i", D, F, L, H, G, -V if a.untied else V, S))
        noise(f, V * D)                                  # token_embedding
        np.ones(L * D, "<f4").tofile(f)                  # rms_att
        noise(f, L * D * H * hd)                         # wq
        noise(f, L * G * hd * D)                         # wk
        noise(f, L * G * hd * D)                         # wv
        noise(f, L * D * H * hd)                         # wo
        np.ones(L * D, "<f4").tofile(f)                  # rms_ffn
        noise(f, L * F * D)                              # w1
        noise(f, L * D * F)                              # w2
        noise(f, L * F * D)                              # w3
        np.ones(D, "<f4").tofile(f)                      # rms_final
        ang = np.arange(S)[:, None] * (10000.0 ** (-np.arange(0, hd, 2) / hd))[None, :]
        np.cos(ang).astype("<f4").tofile(f)              # freq_cis_real (unused by dynq)
        np.sin(ang).astype("<f4").tofile(f)              # freq_cis_imag
        if a.untied:
            noise(f, V * D)                              # wcls
    os.replace(tmp, a.out)
    print("%s: dim %d hidden %d layers %d heads %d kv %d vocab %d seq %d, %.1f MB" % (
        a.out, D, F, L, H, G, V, S, os.path.getsize(a.out) / 1e6), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
