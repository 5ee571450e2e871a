#!/usr/bin/python3
"""make_synthetic.py: a small seeded random-weight Llama with a SEPARATE classifier, written twice.

Shape (defaults): dim 80, hidden 200, 3 layers, 5 heads of 16, 1 KV head (GQA 5:1), vocab 1024,
seq_len 128 -- no dimension is a multiple of 64, so SIMD tails are exercised. Vocabulary 1024 so
that the KJV tokenizer fits (kjv1k-tok.bin for the .bin, tokenizer.json copied for HF).

Outputs in OUT_DIR:
  synth.bin        llama2.c version-0 checkpoint, vocab_size written NEGATIVE => wcls at the end
  synth-hf/        Hugging Face LlamaForCausalLM directory: F16 tensors sharded in two files
                   (model-00001-of-00002.safetensors, model-00002-of-00002.safetensors) with
                   model.safetensors.index.json, tie_word_embeddings false, lm_head.weight, q/k
                   rows permuted to the rotate-half layout (HF row c*hd/2 + i = llama2.c row 2i + c
                   in each head), tokenizer files copied from kjv-hf.
Every weight is rounded to float16 first, so both files hold exactly the same values and must
give the same logits. Scales: embeddings N(0,1); projection matrices N(0, 1/in); RMSNorm gains
1 + N(0, 0.1^2); classifier N(0, 4/dim) -- logits have a spread of a few units, neither flat nor
one-hot.

Usage: make_synthetic.py OUT_DIR [--kjv-hf DIR] [--seed N]
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

SHAPE = dict(dim=80, hidden=200, n_layers=3, n_heads=5, n_kv=1, vocab=1024, seq_len=128)


def make_weights(seed, s):
    rng = np.random.default_rng(seed)
    D, F, L, H, G, V = s["dim"], s["hidden"], s["n_layers"], s["n_heads"], s["n_kv"], s["vocab"]
    hd = D // H
    f16 = lambda a: a.astype(np.float16).astype(np.float32)
    n = lambda *shape, std=1.0: f16(rng.standard_normal(shape) * std)
    w = {}
    w["emb"] = n(V, D)
    w["rms_att"] = f16(1 + 0.1 * rng.standard_normal((L, D)))
    w["wq"] = n(L, H * hd, D, std=D ** -0.5)
    w["wk"] = n(L, G * hd, D, std=D ** -0.5)
    w["wv"] = n(L, G * hd, D, std=D ** -0.5)
    w["wo"] = n(L, D, H * hd, std=(H * hd) ** -0.5)
    w["rms_ffn"] = f16(1 + 0.1 * rng.standard_normal((L, D)))
    w["w1"] = n(L, F, D, std=D ** -0.5)
    w["w2"] = n(L, D, F, std=F ** -0.5)
    w["w3"] = n(L, F, D, std=D ** -0.5)
    w["rms_final"] = f16(1 + 0.1 * rng.standard_normal(D))
    w["wcls"] = n(V, D, std=2 * D ** -0.5)
    return w


def write_llama2c(path, s, w):
    hd = s["dim"] // s["n_heads"]
    pos = np.arange(s["seq_len"])[:, None] * (10000.0 ** (-np.arange(0, hd, 2) / hd))[None, :]
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", s["dim"], s["hidden"], s["n_layers"], s["n_heads"], s["n_kv"],
                            -s["vocab"], s["seq_len"]))
        for k in ("emb", "rms_att", "wq", "wk", "wv", "wo", "rms_ffn", "w1", "w2", "w3",
                  "rms_final"):
            w[k].astype("<f4").tofile(f)
        np.cos(pos).astype("<f4").tofile(f)
        np.sin(pos).astype("<f4").tofile(f)
        w["wcls"].astype("<f4").tofile(f)


def to_half(m, n_head, hd):
    """llama2.c interleaved rows -> HF rotate-half rows, per head."""
    return m.reshape(n_head, hd // 2, 2, -1).swapaxes(1, 2).reshape(m.shape)


def write_safetensors(path, tensors, dtype="F16"):
    """tensors: (name, array) pairs, stored as F16 or F32 (also used by chat_synth_model.py)."""
    hdr, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    np_dtype = {"F16": "<f2", "F32": "<f4"}[dtype]
    for name, a in tensors:
        b = np.ascontiguousarray(a, dtype=np_dtype).tobytes()
        hdr[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_hf(d, s, w, kjv_hf):
    os.makedirs(d, exist_ok=True)
    H, G, hd = s["n_heads"], s["n_kv"], s["dim"] // s["n_heads"]
    t = [("model.embed_tokens.weight", w["emb"])]
    for l in range(s["n_layers"]):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", w["rms_att"][l]),
              (p + "self_attn.q_proj.weight", to_half(w["wq"][l], H, hd)),
              (p + "self_attn.k_proj.weight", to_half(w["wk"][l], G, hd)),
              (p + "self_attn.v_proj.weight", w["wv"][l]),
              (p + "self_attn.o_proj.weight", w["wo"][l]),
              (p + "post_attention_layernorm.weight", w["rms_ffn"][l]),
              (p + "mlp.gate_proj.weight", w["w1"][l]),
              (p + "mlp.up_proj.weight", w["w3"][l]),
              (p + "mlp.down_proj.weight", w["w2"][l])]
    t += [("model.norm.weight", w["rms_final"]), ("lm_head.weight", w["wcls"])]
    # two shards: embeddings + first layer in shard 1, the rest in shard 2
    split = 1 + 9
    shards = [("model-00001-of-00002.safetensors", t[:split]),
              ("model-00002-of-00002.safetensors", t[split:])]
    wmap = {}
    total = 0
    for fn, part in shards:
        write_safetensors(os.path.join(d, fn), part)
        for name, a in part:
            wmap[name] = fn
            total += a.size * 2
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
           "hidden_size": s["dim"], "intermediate_size": s["hidden"],
           "num_hidden_layers": s["n_layers"], "num_attention_heads": H,
           "num_key_value_heads": G, "head_dim": hd, "vocab_size": s["vocab"],
           "max_position_embeddings": s["seq_len"], "rms_norm_eps": 1e-5,
           "rope_theta": 10000.0, "rope_scaling": None, "hidden_act": "silu",
           "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
           "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fn in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json",
               "special_tokens_map.json", "generation_config.json"):
        src = os.path.join(kjv_hf, fn)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(d, fn))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="seeded synthetic Llama (separate classifier)")
    ap.add_argument("out_dir")
    ap.add_argument("--kjv-hf", default=os.path.join(os.environ.get("DYNQ_SHARED", "../shared"),
                                                     "models/kjv/kjv-hf"))
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args(argv)
    if not os.path.isdir(a.kjv_hf):
        print("make_synthetic.py: %s: not a directory (tokenizer source)" % a.kjv_hf,
              file=sys.stderr)
        return 2
    os.makedirs(a.out_dir, exist_ok=True)
    w = make_weights(a.seed, SHAPE)
    write_llama2c(os.path.join(a.out_dir, "synth.bin"), SHAPE, w)
    write_hf(os.path.join(a.out_dir, "synth-hf"), SHAPE, w, a.kjv_hf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
