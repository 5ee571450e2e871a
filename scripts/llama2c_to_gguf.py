#!/usr/bin/env python3
"""llama2c_to_gguf.py: a llama2.c version-0 checkpoint (scripts/random_model.py writes them) as an
F32 GGUF (architecture llama), so that llama.cpp can run the same weights as `dynq bench`
(scripts/bench.sh --llama-bench; `llama-quantize F32.gguf Q8_0.gguf Q8_0` makes its Q8_0 model).

  /usr/bin/python3 -m venv --system-site-packages /tmp/ggufenv   # numpy, sentencepiece from Debian
  /tmp/ggufenv/bin/pip install gguf==0.19.0
  /tmp/ggufenv/bin/python scripts/llama2c_to_gguf.py MODEL.bin MODEL-f32.gguf [--tokenizer tokenizer.model]

A benchmark tool, not part of dynq (which reads no GGUF weights). Layout: the llama2.c header (7
int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, negative when the classifier
is stored apart, seq_len), then float32 tensors in its order. llama2.c rotates adjacent pairs of
each head's query and key values, as llama.cpp's normal RoPE mode does, so wq and wk go over as
they are (the row permutation of Hugging Face converters undoes HF's half-split layout, which
these files do not have). The vocabulary is a SentencePiece model's (Llama 2's tokenizer.model,
32000 pieces, from ../shared), or, without one, placeholder pieces of the right count: speed does
not depend on them.
"""
import argparse
import os
import struct
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("llama2c_to_gguf.py: needs PyPI's gguf package (see the top of this file)")


def vocabulary(path, n):
    """(pieces, scores, types) of n tokens: the SentencePiece model at path, else placeholders."""
    T = gguf.TokenType
    if path:
        from sentencepiece import SentencePieceProcessor
        sp = SentencePieceProcessor()
        sp.LoadFromFile(path)
        if sp.vocab_size() != n:
            sys.exit(f"llama2c_to_gguf.py: {path} has {sp.vocab_size()} pieces, the model {n}")
        kind = lambda i: (T.UNKNOWN if sp.IsUnknown(i) else T.CONTROL if sp.IsControl(i) else
                          T.UNUSED if sp.IsUnused(i) else T.BYTE if sp.IsByte(i) else T.NORMAL)
        return ([sp.IdToPiece(i).encode() for i in range(n)], [sp.GetScore(i) for i in range(n)],
                [kind(i) for i in range(n)])
    pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % b for b in range(256)]
    pieces += [("\u2581t%d" % i).encode() for i in range(n - len(pieces))]
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL] + [T.BYTE] * 256 + [T.NORMAL] * (n - 259)
    return pieces, [0.0] * 259 + [-float(i) for i in range(n - 259)], types


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin")
    ap.add_argument("out")
    shared = os.environ.get("DYNQ_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    ap.add_argument("--tokenizer", default=os.path.join(shared, "models", "llama2-tokenizer", "tokenizer.model"),
                    help="SentencePiece model (default: Llama 2's from DYNQ_SHARED, placeholders if absent)")
    a = ap.parse_args()
    with open(a.bin, "rb") as f:
        head = f.read(28)
    if len(head) != 28:
        sys.exit(f"llama2c_to_gguf.py: {a.bin}: shorter than a llama2.c header")
    D, F, L, H, G, V, S = struct.unpack("<7i", head)
    tied, V = V > 0, abs(V)
    if min(D, F, L, H, G, V, S) <= 0 or D % H or H % G:
        sys.exit(f"llama2c_to_gguf.py: {a.bin}: not a llama2.c header ({D} {F} {L} {H} {G} {V} {S})")
    hd = D // H
    m = np.memmap(a.bin, dtype="<f4", mode="r", offset=28)
    shapes = [("emb", (V, D)), ("rms_att", (L, D)), ("wq", (L, D, D)), ("wk", (L, G * hd, D)),
              ("wv", (L, G * hd, D)), ("wo", (L, D, D)), ("rms_ffn", (L, D)), ("w1", (L, F, D)),
              ("w2", (L, D, F)), ("w3", (L, F, D)), ("rms_final", (D,)), ("freq_re", (S, hd // 2)),
              ("freq_im", (S, hd // 2))] + ([] if tied else [("wcls", (V, D))])
    t, off = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape))
        t[name] = m[off:off + n].reshape(shape)
        off += n
    if off != m.size:
        sys.exit(f"llama2c_to_gguf.py: {a.bin}: {m.size * 4 + 28} bytes, the header implies {off * 4 + 28}")

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name(os.path.splitext(os.path.basename(a.bin))[0])
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(V)
    w.add_context_length(S)
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(G)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    pieces, scores, types = vocabulary(a.tokenizer if os.path.exists(a.tokenizer) else None, V)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    f32 = lambda x: np.ascontiguousarray(x, dtype=np.float32)
    w.add_tensor("token_embd.weight", f32(t["emb"]))
    names = (("attn_norm", "rms_att"), ("attn_q", "wq"), ("attn_k", "wk"), ("attn_v", "wv"), ("attn_output", "wo"),
             ("ffn_norm", "rms_ffn"), ("ffn_gate", "w1"), ("ffn_down", "w2"), ("ffn_up", "w3"))
    for i in range(L):
        for gname, name in names:
            w.add_tensor(f"blk.{i}.{gname}.weight", f32(t[name][i]))
    w.add_tensor("output_norm.weight", f32(t["rms_final"]))
    if not tied:
        w.add_tensor("output.weight", f32(t["wcls"]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{a.out}: dim {D}, FFN {F}, {L} layers, {H} heads, {G} KV heads, vocab {V} "
          f"({'tied' if tied else 'own'} classifier), {os.path.getsize(a.out) / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
