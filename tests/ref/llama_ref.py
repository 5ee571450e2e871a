#!/usr/bin/python3
"""llama_ref.py: an independent NumPy reference forward pass for Llama-family models.

Written from the math (Touvron et al. 2023, "LLaMA"; Su et al. 2021, RoPE; Shazeer 2020, GLU
variants; Ainslie et al. 2023, GQA), not from dynq's C code. It is the oracle for dynq's tests.

    x_0      = E[id_t]                                   token embedding, (T, D)
    per layer l:
      h      = RMSNorm(x) * g_att          RMSNorm(x) = x / sqrt(mean(x^2) + eps)
      q,k,v  = h Wq^T, h Wk^T, h Wv^T       (T, H*hd), (T, Hkv*hd), (T, Hkv*hd)
      q,k    = RoPE(q, pos), RoPE(k, pos)   per head; angle(pos, i) = pos * theta^(-2i/hd)
      a_h    = softmax(q_h k_g^T / sqrt(hd) + causal mask) v_g,   g = h // (H / Hkv)   (GQA)
      x      = x + concat(a_h) Wo^T
      h      = RMSNorm(x) * g_ffn
      x      = x + (silu(h W1^T) * (h W3^T)) W2^T                 (SwiGLU; W1 = gate, W3 = up)
    logits   = (RMSNorm(x) * g_final) Wcls^T        (Wcls = E when the classifier is tied)

RoPE pair layout (the one difference between the two file kinds):
  - llama2.c checkpoints rotate consecutive pairs (2i, 2i+1) inside each head ("interleaved");
  - Hugging Face checkpoints rotate halves (i, i + hd/2) ("half"; rotate_half in transformers).
  Each layout is applied as stored; the permutation between them is NOT applied here, so agreement
  between kjv.bin and kjv-hf checks the converter's permutation independently.

Loaders:
  - llama2.c version 0 ".bin": 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
    vocab_size, seq_len), vocab_size < 0 => a separate classifier follows at the end; then float32
    token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real,
    freq_cis_imag (both seq_len*hd/2, unused), [wcls].
  - Hugging Face Llama directory: config.json + model.safetensors or model.safetensors.index.json
    (sharded); F32, F16, BF16 tensors, parsed here with json + numpy.

All arithmetic is float64 by default (dtype=np.float32 is available for speed).

CLI:
  llama_ref.py logits MODEL --ids "1 2 3" -o OUT.f32       float32 LE (T, vocab) logits
  llama_ref.py generate MODEL --sp TOK.model -p TEXT -n N  greedy; prints the continuation
  llama_ref.py info MODEL
MODEL is a llama2.c .bin file or a Hugging Face directory.
"""
import json
import os
import struct
import sys

import numpy as np


# ----------------------------------------------------------------------------------------------
# model container

class Model:
    """Hyperparameters + float weights. Shapes (rows = output features):
    emb (V, D); per layer: att_norm (D,), wq (H*hd, D), wk (Hkv*hd, D), wv (Hkv*hd, D),
    wo (D, H*hd), ffn_norm (D,), w1 (F, D), w2 (D, F), w3 (F, D); final_norm (D,); wcls (V, D)."""

    def __init__(self, cfg, emb, layers, final_norm, wcls, rope, dtype=np.float64):
        self.dim = cfg["dim"]
        self.hidden = cfg["hidden"]
        self.n_layers = cfg["n_layers"]
        self.n_heads = cfg["n_heads"]
        self.n_kv = cfg["n_kv"]
        self.vocab = cfg["vocab"]
        self.seq_len = cfg["seq_len"]
        self.head_dim = cfg.get("head_dim") or self.dim // self.n_heads
        self.eps = cfg.get("eps", 1e-5)
        self.theta = cfg.get("theta", 10000.0)
        self.tied = cfg["tied"]
        self.rope = rope  # "interleaved" (llama2.c) or "half" (Hugging Face)
        self.dtype = dtype
        c = lambda a: np.ascontiguousarray(a, dtype=dtype)
        self.emb = c(emb)
        self.layers = [{k: c(v) for k, v in L.items()} for L in layers]
        # (in, out) contiguous copies for x @ W^T: about 2x faster with the reference BLAS
        for L in self.layers:
            for k in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
                L[k + "_t"] = np.ascontiguousarray(L[k].T)
        self.final_norm = c(final_norm)
        self.wcls = self.emb if wcls is None else c(wcls)
        self.wcls_t = np.ascontiguousarray(self.wcls.T)
        assert self.n_heads % self.n_kv == 0
        assert self.head_dim % 2 == 0
        assert self.emb.shape == (self.vocab, self.dim)
        assert self.wcls.shape == (self.vocab, self.dim)

    def describe(self):
        return ("dim %d hidden %d layers %d heads %d kv %d head_dim %d vocab %d seq %d eps %g "
                "theta %g tied %s rope %s" % (self.dim, self.hidden, self.n_layers, self.n_heads,
                                              self.n_kv, self.head_dim, self.vocab, self.seq_len,
                                              self.eps, self.theta, self.tied, self.rope))


# ----------------------------------------------------------------------------------------------
# llama2.c version-0 checkpoint

def load_llama2c(path, dtype=np.float64):
    raw = np.fromfile(path, dtype="<f4", offset=28)
    with open(path, "rb") as f:
        hdr = struct.unpack("<7i", f.read(28))
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = hdr
    tied = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    shapes = [("emb", (vocab, dim)), ("rms_att", (n_layers, dim)),
              ("wq", (n_layers, n_heads * hd, dim)), ("wk", (n_layers, n_kv * hd, dim)),
              ("wv", (n_layers, n_kv * hd, dim)), ("wo", (n_layers, dim, n_heads * hd)),
              ("rms_ffn", (n_layers, dim)), ("w1", (n_layers, hidden, dim)),
              ("w2", (n_layers, dim, hidden)), ("w3", (n_layers, hidden, dim)),
              ("rms_final", (dim,)), ("fcr", (seq_len, hd // 2)), ("fci", (seq_len, hd // 2))]
    if not tied:
        shapes.append(("wcls", (vocab, dim)))
    need = sum(int(np.prod(s)) for _, s in shapes)
    if raw.size != need:
        raise ValueError("%s: %d floats, expected %d" % (path, raw.size, need))
    t, off = {}, 0
    for name, s in shapes:
        n = int(np.prod(s))
        t[name] = raw[off:off + n].reshape(s)
        off += n
    layers = [dict(att_norm=t["rms_att"][l], wq=t["wq"][l], wk=t["wk"][l], wv=t["wv"][l],
                   wo=t["wo"][l], ffn_norm=t["rms_ffn"][l], w1=t["w1"][l], w2=t["w2"][l],
                   w3=t["w3"][l]) for l in range(n_layers)]
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len, eps=1e-5, theta=10000.0, tied=tied)
    return Model(cfg, t["emb"], layers, t["rms_final"], t.get("wcls"), "interleaved", dtype)


# ----------------------------------------------------------------------------------------------
# Hugging Face directory (safetensors parsed by hand)

def read_safetensors(path):
    """Returns {name: float32 ndarray}. Format: u64 LE header length, JSON header, raw data."""
    out = {}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in hdr.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = data[base + b:base + e]
        dt, shape = info["dtype"], info["shape"]
        if dt == "F32":
            a = buf.view("<f4").astype(np.float32)
        elif dt == "F16":
            a = buf.view("<f2").astype(np.float32)
        elif dt == "BF16":
            a = (buf.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError("%s: %s has unsupported dtype %s" % (path, name, dt))
        out[name] = a.reshape(shape)
    return out


def load_hf(d, dtype=np.float64):
    with open(os.path.join(d, "config.json")) as f:
        c = json.load(f)
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for fn in files:
            tensors.update(read_safetensors(os.path.join(d, fn)))
    else:
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    dim = c["hidden_size"]
    n_heads = c["num_attention_heads"]
    cfg = dict(dim=dim, hidden=c["intermediate_size"], n_layers=c["num_hidden_layers"],
               n_heads=n_heads, n_kv=c.get("num_key_value_heads", n_heads),
               vocab=c["vocab_size"], seq_len=c.get("max_position_embeddings", 2048),
               head_dim=c.get("head_dim") or dim // n_heads, eps=c.get("rms_norm_eps", 1e-6),
               theta=c.get("rope_theta", 10000.0),
               tied=bool(c.get("tie_word_embeddings", False)) or "lm_head.weight" not in tensors)
    p = "model.layers.%d."
    layers = []
    for l in range(cfg["n_layers"]):
        g = lambda n: tensors[(p % l) + n]
        layers.append(dict(att_norm=g("input_layernorm.weight"), wq=g("self_attn.q_proj.weight"),
                           wk=g("self_attn.k_proj.weight"), wv=g("self_attn.v_proj.weight"),
                           wo=g("self_attn.o_proj.weight"),
                           ffn_norm=g("post_attention_layernorm.weight"),
                           w1=g("mlp.gate_proj.weight"), w2=g("mlp.down_proj.weight"),
                           w3=g("mlp.up_proj.weight")))
    wcls = None if cfg["tied"] else tensors["lm_head.weight"]
    return Model(cfg, tensors["model.embed_tokens.weight"], layers, tensors["model.norm.weight"],
                 wcls, "half", dtype)


def load(path, dtype=np.float64):
    if os.path.isdir(path):
        return load_hf(path, dtype)
    return load_llama2c(path, dtype)


# ----------------------------------------------------------------------------------------------
# forward pass

def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope(x, pos, hd, theta, style):
    """x: (..., T, n_heads, hd); pos: (T,) absolute positions."""
    half = hd // 2
    freq = theta ** (-(2.0 * np.arange(half)) / hd)            # (half,)
    ang = pos[:, None].astype(np.float64) * freq[None, :]        # (T, half)
    cos = np.cos(ang)[:, None, :].astype(x.dtype)                # (T, 1, half)
    sin = np.sin(ang)[:, None, :].astype(x.dtype)
    if style == "interleaved":
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = x[..., :half], x[..., half:]
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = np.empty_like(x)
    if style == "interleaved":
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., :half], out[..., half:] = ra, rb
    return out


def forward(m, ids, return_hidden=False):
    """ids: (T,) or (B, T) token ids, positions 0..T-1 from an empty cache.
    Returns logits (T, V) or (B, T, V) in m.dtype; with return_hidden also the list of residual
    streams after each block (each (.., T, D))."""
    ids = np.asarray(ids, dtype=np.int64)
    squeeze = ids.ndim == 1
    if squeeze:
        ids = ids[None, :]
    B, T = ids.shape
    if T > m.seq_len:
        raise ValueError("sequence of %d tokens exceeds the model context %d" % (T, m.seq_len))
    H, G, hd = m.n_heads, m.n_kv, m.head_dim
    rep = H // G
    pos = np.arange(T)
    mask = np.triu(np.full((T, T), -np.inf, dtype=m.dtype), k=1)
    scale = 1.0 / np.sqrt(hd)
    x = m.emb[ids]                                                # (B, T, D)
    hidden = []
    for L in m.layers:
        h = rmsnorm(x, L["att_norm"], m.eps)
        q = (h @ L["wq_t"]).reshape(B, T, H, hd)
        k = (h @ L["wk_t"]).reshape(B, T, G, hd)
        v = (h @ L["wv_t"]).reshape(B, T, G, hd)
        q = rope(q, pos, hd, m.theta, m.rope)
        k = rope(k, pos, hd, m.theta, m.rope)
        # GQA: query head h reads kv head h // rep
        q = q.transpose(0, 2, 1, 3).reshape(B, G, rep, T, hd)
        k = k.transpose(0, 2, 1, 3)[:, :, None]                   # (B, G, 1, T, hd)
        v = v.transpose(0, 2, 1, 3)[:, :, None]
        s = (q @ k.swapaxes(-1, -2)) * scale + mask               # (B, G, rep, T, T)
        s = s - s.max(axis=-1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=-1, keepdims=True)
        a = (p @ v).reshape(B, H, T, hd).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        x = x + a @ L["wo_t"]
        h = rmsnorm(x, L["ffn_norm"], m.eps)
        g = h @ L["w1_t"]
        u = h @ L["w3_t"]
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ L["w2_t"]
        if return_hidden:
            hidden.append(x[0] if squeeze else x)
    logits = rmsnorm(x, m.final_norm, m.eps) @ m.wcls_t
    if squeeze:
        logits = logits[0]
    return (logits, hidden) if return_hidden else logits


# ----------------------------------------------------------------------------------------------
# tokenizer helpers (python sentencepiece)

def sp_load(path):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=path)


def piece_bytes(sp, i):
    """Bytes a piece prints as, the way llama2.c's run.c prints it (before the BOS rule)."""
    if sp.is_byte(i):
        return bytes([int(sp.id_to_piece(i)[3:5], 16)])
    if sp.is_control(i) or sp.is_unknown(i):
        return b""
    return sp.id_to_piece(i).replace("\u2581", " ").encode("utf-8")


def greedy(m, prompt_ids, n):
    """Greedy continuation: n new ids after prompt_ids (stops early at BOS/EOS, like run.c stops at
    BOS; neither occurs in the golden files). Full recompute each step (no cache): slow but simple."""
    ids = list(prompt_ids)
    out = []
    for _ in range(n):
        if len(ids) >= m.seq_len:
            break
        nxt = int(np.argmax(forward(m, ids)[-1]))
        if nxt in (1, 2):
            break
        ids.append(nxt)
        out.append(nxt)
    return out


def render(sp, ids, after_bos):
    """run.c printing: first piece after BOS loses its leading space; <0xXX> -> raw byte; raw
    bytes that are neither printable nor whitespace are skipped."""
    b = bytearray()
    for j, i in enumerate(ids):
        p = piece_bytes(sp, i)
        if j == 0 and after_bos and p.startswith(b" "):
            p = p[1:]
        if len(p) == 1 and not (32 <= p[0] < 127 or p[0] in b" \t\n\r\x0b\x0c") and p[0] < 128:
            continue
        b += p
    return bytes(b)


# ----------------------------------------------------------------------------------------------
# CLI

def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("logits")
    a.add_argument("model")
    a.add_argument("--ids", required=True)
    a.add_argument("-o", "--out", required=True)
    a = sub.add_parser("generate")
    a.add_argument("model")
    a.add_argument("--sp", required=True)
    a.add_argument("-p", "--prompt", default="")
    a.add_argument("-n", type=int, default=32)
    a = sub.add_parser("info")
    a.add_argument("model")
    args = ap.parse_args(argv)
    m = load(args.model)
    if args.cmd == "info":
        print(m.describe())
    elif args.cmd == "logits":
        ids = [int(t) for t in args.ids.split()]
        forward(m, ids).astype("<f4").tofile(args.out)
    elif args.cmd == "generate":
        sp = sp_load(args.sp)
        pids = [1] + (sp.encode(args.prompt) if args.prompt else [])
        out = greedy(m, pids, args.n)
        sys.stdout.buffer.write(render(sp, out, after_bos=(len(pids) == 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
