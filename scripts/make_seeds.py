#!/usr/bin/python3
"""scripts/make_seeds.py: small seed corpora for the libFuzzer harnesses (tests/fuzz/), generated
at run time from valid files so that no large binary lives in the repository.

  /usr/bin/python3 scripts/make_seeds.py --dynq ./dynq --out build-fuzz/seeds

Writes <out>/<harness>/<seed> for every harness. Tiny models (width 8, one or two layers, the
512-token vocabulary of models/tok512.bin) keep each execution cheap. The writers below
(llama2.c .bin, safetensors, GGUF) are also used by scripts/make_malformed.py.
"""
import argparse
import json
import os
import random
import struct
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_dir():
    return os.environ.get("DYNQ_SHARED", os.path.join(REPO, "..", "shared"))


# ---------------------------------------------------------------- llama2.c checkpoints

def llama2c_bin(dim=8, hidden=16, n_layers=1, n_heads=2, n_kv=2, vocab=512, seq=16, shared=True, seed=1,
                header=None):
    """A llama2.c version-0 checkpoint with random weights; header overrides the 7 ints."""
    rng = random.Random(seed)
    hd = dim // n_heads
    kd = hd * n_kv
    L, C, F, V = n_layers, dim, hidden, vocab
    counts = [V * C, L * C, L * C * C, L * C * kd, L * C * kd, L * C * C, L * C, L * F * C, L * C * F, L * F * C, C,
              seq * hd]
    if not shared:
        counts.append(V * C)
    n = sum(counts)
    vals = [rng.uniform(-0.5, 0.5) for _ in range(n)]
    # norms at 1 so the model is well-behaved
    off = V * C
    for i in range(L * C):
        vals[off + i] = 1.0
    hdr = header if header is not None else [dim, hidden, n_layers, n_heads, n_kv, vocab if shared else -vocab, seq]
    return struct.pack("<7i", *hdr) + struct.pack("<%df" % n, *vals)


# ---------------------------------------------------------------- safetensors (Hugging Face)

def hf_config(dim=8, hidden=16, n_layers=1, n_heads=2, n_kv=1, vocab=512, ctx=32, tied=False, **extra):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
         "intermediate_size": hidden, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
         "num_key_value_heads": n_kv, "vocab_size": vocab, "max_position_embeddings": ctx, "rms_norm_eps": 1e-5,
         "rope_theta": 10000.0, "tie_word_embeddings": tied, "torch_dtype": "float32"}
    c.update(extra)
    return json.dumps(c, indent=2).encode()


def hf_tensors(dim=8, hidden=16, n_layers=1, n_heads=2, n_kv=1, vocab=512, tied=False, **_):
    hd = dim // n_heads
    t = [("model.embed_tokens.weight", [vocab, dim]), ("model.norm.weight", [dim])]
    if not tied:
        t.append(("lm_head.weight", [vocab, dim]))
    for l in range(n_layers):
        p = "model.layers.%d." % l
        t += [(p + "input_layernorm.weight", [dim]), (p + "post_attention_layernorm.weight", [dim]),
              (p + "self_attn.q_proj.weight", [n_heads * hd, dim]), (p + "self_attn.k_proj.weight", [n_kv * hd, dim]),
              (p + "self_attn.v_proj.weight", [n_kv * hd, dim]), (p + "self_attn.o_proj.weight", [dim, n_heads * hd]),
              (p + "mlp.gate_proj.weight", [hidden, dim]), (p + "mlp.up_proj.weight", [hidden, dim]),
              (p + "mlp.down_proj.weight", [dim, hidden])]
    return t


def f32_to_f16(x):
    return struct.pack("<e", x)


def f32_to_bf16(x):
    return struct.pack("<f", x)[2:]


def safetensors(tensors, dtype="F32", seed=2, header_override=None, pad=True, extra_header=None):
    """tensors: [(name, shape)]; returns the file bytes. header_override(dict) may edit the header."""
    rng = random.Random(seed)
    esz = 4 if dtype == "F32" else 2
    hdr = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        vals = [1.0 if name.endswith("norm.weight") else rng.uniform(-0.5, 0.5) for _ in range(n)]
        if dtype == "F32":
            b = struct.pack("<%df" % n, *vals)
        elif dtype == "F16":
            b = b"".join(f32_to_f16(v) for v in vals)
        else:
            b = b"".join(f32_to_bf16(v) for v in vals)
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if extra_header:
        hdr.update(extra_header)
    if header_override:
        header_override(hdr)
    h = json.dumps(hdr).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# ---------------------------------------------------------------- GGUF

GG_U8, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STR, GG_ARR, GG_U64, GG_I64, GG_F64 = range(13)
_GG_FMT = {GG_U8: "<B", GG_I8: "<b", GG_U16: "<H", GG_I16: "<h", GG_U32: "<I", GG_I32: "<i", GG_F32: "<f",
           GG_BOOL: "<B", GG_U64: "<Q", GG_I64: "<q", GG_F64: "<d"}


def gg_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gg_val(t, v, arr_t=None):
    if t == GG_STR:
        return gg_str(v)
    if t == GG_ARR:
        return struct.pack("<IQ", arr_t, len(v)) + b"".join(gg_val(arr_t, x) for x in v)
    return struct.pack(_GG_FMT[t], v)


def gguf(kvs, tensors=(), version=3, n_kv=None, n_tensors=None):
    """kvs: [(key, type, value[, arr_type])]; tensors: [(name, dims, ggml_type, offset)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv)
    for kv in kvs:
        key, t, v = kv[0], kv[1], kv[2]
        out += gg_str(key) + struct.pack("<I", t) + gg_val(t, v, kv[3] if len(kv) > 3 else None)
    for name, dims, gt, off in tensors:
        out += gg_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", gt, off)
    out += b"\0" * ((32 - len(out) % 32) % 32)
    if tensors:
        out += b"\0" * 64
    return out


def gguf_vocab(model="llama"):
    """A small but complete GGUF vocabulary of the given family."""
    if model == "llama":
        toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
               ["\u2581", "\u2581t", "he", "\u2581the", "\u2581a", "e", "t", "h", "a", "o", "n", "\u2581o", "on",
                "ce", "\u2581on", "\u2581once", "c", "\u00e9", "\U0001F600"]
        types = [2, 3, 3] + [6] * 256 + [1] * (len(toks) - 259)
        scores = [0.0] * 259 + [-float(i) for i in range(len(toks) - 259)]
        kv = [("general.architecture", GG_STR, "llama"), ("tokenizer.ggml.model", GG_STR, "llama"),
              ("tokenizer.ggml.tokens", GG_ARR, toks, GG_STR), ("tokenizer.ggml.scores", GG_ARR, scores, GG_F32),
              ("tokenizer.ggml.token_type", GG_ARR, types, GG_I32), ("tokenizer.ggml.bos_token_id", GG_U32, 1),
              ("tokenizer.ggml.eos_token_id", GG_U32, 2), ("tokenizer.ggml.unknown_token_id", GG_U32, 0),
              ("tokenizer.ggml.add_bos_token", GG_BOOL, 1)]
    elif model == "gpt2":
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        byte_chars = [chr(c) for _, c in sorted(zip(bs, cs))]
        toks = byte_chars + ["\u0120t", "he", "\u0120the", "in", "\u0120a", "<|endoftext|>"]
        types = [1] * (len(toks) - 1) + [3]
        merges = ["\u0120 t", "h e", "\u0120t he", "i n", "\u0120 a"]
        kv = [("general.architecture", GG_STR, "gpt2"), ("tokenizer.ggml.model", GG_STR, "gpt2"),
              ("tokenizer.ggml.pre", GG_STR, "gpt-2"), ("tokenizer.ggml.tokens", GG_ARR, toks, GG_STR),
              ("tokenizer.ggml.token_type", GG_ARR, types, GG_I32), ("tokenizer.ggml.merges", GG_ARR, merges, GG_STR),
              ("tokenizer.ggml.bos_token_id", GG_U32, len(toks) - 1),
              ("tokenizer.ggml.eos_token_id", GG_U32, len(toks) - 1)]
    else:
        toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "once", "upon", "a", "time", "##s", "##ing",
                ",", ".", "!", "caf", "##e", "t", "##h", "##e"]
        types = [3, 2, 3, 3, 3] + [1] * (len(toks) - 5)
        kv = [("general.architecture", GG_STR, "bert"), ("tokenizer.ggml.model", GG_STR, "bert"),
              ("tokenizer.ggml.tokens", GG_ARR, toks, GG_STR), ("tokenizer.ggml.token_type", GG_ARR, types, GG_I32),
              ("tokenizer.ggml.unknown_token_id", GG_U32, 1), ("tokenizer.ggml.seperator_token_id", GG_U32, 3),
              ("tokenizer.ggml.cls_token_id", GG_U32, 2), ("tokenizer.ggml.padding_token_id", GG_U32, 0)]
    return kv


# ---------------------------------------------------------------- .dynq helpers

def dynq_sections(b):
    """(dir_off, n_tensors, tok_off, tok_size, meta_off, meta_size, data_off) of a .dynq file."""
    n_t = struct.unpack_from("<I", b, 12)[0]
    d, to, ts, mo, ms, do = struct.unpack_from("<6Q", b, 72)
    return d, n_t, to, ts, mo, ms, do


def fnv1a(h, data):
    for x in data:
        h = ((h ^ x) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def dynq_fix_checksum(b):
    """Recomputes the FNV-1a header checksum (docs/FORMAT.md) of a (damaged) .dynq, if its ranges are valid."""
    b = bytearray(b)
    if len(b) < 256:
        return bytes(b)
    d, n_t, to, ts, mo, ms, _ = dynq_sections(b)
    if d + n_t * 96 > len(b) or to + ts > len(b) or mo + ms > len(b):
        return bytes(b)
    b[128:136] = b"\0" * 8
    h = fnv1a(0xcbf29ce484222325, bytes(b[:256]))
    h = fnv1a(h, bytes(b[d:d + n_t * 96]))
    h = fnv1a(h, bytes(b[to:to + ts]))
    h = fnv1a(h, bytes(b[mo:mo + ms]))
    b[128:136] = struct.pack("<Q", h)
    return bytes(b)


def convert(dynq, src, tok, out, f32=False):
    cmd = [dynq, "convert", src, "-o", out] + (["--tokenizer", tok] if tok else []) + (["--type", "f32"] if f32 else [])
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit("make_seeds: %s failed: %s" % (" ".join(cmd), r.stderr.decode(errors="replace")))
    with open(out, "rb") as f:
        return f.read()


def tok512_path():
    p = os.path.join(REPO, "models", "tok512.bin")
    return p if os.path.exists(p) else os.path.join(shared_dir(), "models", "stories260K", "tok512.bin")


# ---------------------------------------------------------------- seeds

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dynq", default=os.path.join(REPO, "dynq"))
    ap.add_argument("--out", default=os.path.join(REPO, "build-fuzz", "seeds"))
    a = ap.parse_args()
    out = a.out
    work = os.path.join(out, "_work")
    os.makedirs(work, exist_ok=True)
    n = 0

    def put(h, name, data):
        nonlocal n
        d = os.path.join(out, "fuzz_" + h)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        n += 1

    tok512 = tok512_path()
    with open(tok512, "rb") as f:
        tokbin = f.read()

    # llama2.c checkpoints (and the .dynq made from them)
    bins = {"shared": llama2c_bin(), "unshared": llama2c_bin(shared=False, seed=3),
            "gqa2l": llama2c_bin(n_layers=2, n_heads=4, n_kv=2, seed=4)}
    for k, b in bins.items():
        put("llama2c", k + ".bin", b)
        src = os.path.join(work, k + ".bin")
        with open(src, "wb") as f:
            f.write(b)
        for f32 in (False, True):
            d = convert(a.dynq, src, tok512, os.path.join(work, k + (".f32" if f32 else "") + ".dynq"), f32)
            put("dynq", k + (".f32" if f32 else "") + ".dynq", b"\0" + d)
            put("dynq", k + (".f32" if f32 else "") + ".raw.dynq", b"\1" + d)
            if k == "shared" and not f32:
                _, _, to, ts, _, _, _ = dynq_sections(d)
                put("tokblob", "tok512.blob", d[to:to + ts])

    # Hugging Face directories: mode byte, u32 config length, config.json, then (mode bit 0 clear)
    # model.safetensors or (bit 0 set) u32 index length, index.json, u32 shard-1 length, shard 1, shard 2.
    def u32(b):
        return struct.pack("<I", len(b)) + b
    for i, (kw, dtype) in enumerate([({}, "F32"), ({"tied": True}, "F16"), ({"n_kv": 2}, "BF16"),
                                     ({"n_layers": 2}, "F32")]):
        cfg = hf_config(**kw)
        T = hf_tensors(**kw)
        st = safetensors(T, dtype=dtype, seed=10 + i)
        for mode in (0, 2):
            put("safetensors", "hf%d-%s-m%d" % (i, dtype, mode), bytes([mode]) + u32(cfg) + st)
        # sharded: the first tensors in model-1, the rest in model-2, and the index naming them
        cut = 2 + i
        sh = [safetensors(T[:cut], dtype=dtype, seed=20 + i), safetensors(T[cut:], dtype=dtype, seed=30 + i)]
        wm = {t: "model-%d.safetensors" % (1 + (j >= cut)) for j, (t, _) in enumerate(T)}
        idx = json.dumps({"metadata": {"total_size": len(sh[0]) + len(sh[1]) - 16}, "weight_map": wm}).encode()
        for mode in (1, 3):
            put("safetensors", "hf%d-%s-index-m%d" % (i, dtype, mode), bytes([mode]) + u32(cfg) + u32(idx) + u32(sh[0]) + sh[1])
    # index variants: an I64 buffer listed (allowed), everything in one shard with model-2 empty
    cfg = hf_config()
    T = hf_tensors()
    end = sum(4 * d[0] * (d[1] if len(d) > 1 else 1) for _, d in T[3:])
    buf = {"model.layers.0.self_attn.rotary_emb.inv_freq": {"dtype": "I64", "shape": [1], "data_offsets": [end, end + 8]}}
    sh = [safetensors(T[:3], seed=40), safetensors(T[3:], seed=41, extra_header=buf) + b"\0" * 8]
    wm = {t: "model-%d.safetensors" % (1 + (j >= 3)) for j, (t, _) in enumerate(T)}
    wm["model.layers.0.self_attn.rotary_emb.inv_freq"] = "model-2.safetensors"
    idx = json.dumps({"weight_map": wm}).encode()
    put("safetensors", "index-i64-buffer", b"\1" + u32(cfg) + u32(idx) + u32(sh[0]) + sh[1])
    one = safetensors(T, seed=42)
    idx = json.dumps({"metadata": {}, "weight_map": {t: "model-1.safetensors" for t, _ in T}}).encode()
    put("safetensors", "index-one-shard", b"\1" + u32(cfg) + u32(idx) + u32(one) + b"\x02\0\0\0\0\0\0\0{}")

    # tokenizers: llama2.c .bin (byte 0 = hint selector: 0 -> 512), tokenizer.json, GGUF, blob
    put("tokbin", "tok512", b"\0" + tokbin)
    put("tokbin", "tok512-hint32000", b"\3" + tokbin)
    kjv_tok = os.path.join(shared_dir(), "models", "kjv", "kjv-hf", "tokenizer.json")
    if os.path.exists(kjv_tok):
        with open(kjv_tok, "rb") as f:
            tj = f.read()
        put("tokjson", "kjv-tokenizer.json", tj)
        put("json", "kjv-tokenizer.json", tj)
    small_bpe = {"version": "1.0", "added_tokens": [{"id": 5, "content": "<|end|>", "special": True}],
                 "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
                 "decoder": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "\u0120ab": 4, "<|end|>": 5},
                           "merges": ["a b", "\u0120 ab"]}}
    small_wp = {"version": "1.0", "normalizer": {"type": "BertNormalizer", "lowercase": True},
                "pre_tokenizer": {"type": "BertPreTokenizer"},
                "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                          "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "the": 3, "##s": 4}}}
    small_spm = {"version": "1.0", "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>",
                  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "\u2581": 4, "a": 5, "\u2581a": 6},
                  "merges": ["\u2581 a"]}}
    for name, j in (("bpe", small_bpe), ("wordpiece", small_wp), ("spm", small_spm)):
        put("tokjson", name + ".json", json.dumps(j).encode())
        put("json", name + ".json", json.dumps(j).encode())
    for fam in ("llama", "gpt2", "bert"):
        g = gguf(gguf_vocab(fam), tensors=[("token_embd.weight", [8, 4], 0, 0)] if fam == "llama" else ())
        put("gguf", fam + ".gguf", g)
    put("gguf", "v2-empty.gguf", gguf([("general.alignment", GG_U32, 64), ("x", GG_ARR, [[1, 2]], GG_ARR)][:1],
                                      version=2))

    # JSON: configs, headers and edge cases
    put("json", "config.json", hf_config())
    for i, s in enumerate([b'{"a":[1,2.5e-3,-0,true,false,null,"\\u00e9\\ud83d\\ude00\\n"]}', b'[[[[[[[[[]]]]]]]]]',
                           b'"\\u0000x"', b'{"":{"":{}}}', b'-12345678901234567890', b'1e400', b'  \n[]  ']):
        put("json", "edge%d.json" % i, s)

    # encode/decode: byte 0 selects tokenizer (low 3 bits) and flags (bits 3-4)
    texts = ["Once upon a time, there was a little girl named Lily.", "caf\u00e9 \u2014 na\u00efve \U0001F600 \u4f60\u597d",
             "<s>hello</s> <|endoftext|> [CLS]", "   leading spaces\n\ttabs\r\n", "\xff\xfe invalid"]
    for i, t in enumerate(texts):
        b = t.encode("utf-8", errors="surrogateescape") if i < 4 else b"\xff\xfe\xc3 invalid \xed\xa0\x80"
        for sel in range(6):
            put("tokenc", "t%d-%d" % (i, sel), bytes([sel | ((i & 3) << 3)]) + b)

    # command lines (NUL-separated)
    for args in (["run", "-m", "model.dynq", "-p", "hi", "-n", "5", "--temp", "0.5", "--top-p", "0.9", "--seed", "1"],
                 ["run", "--ctx=4096", "-t", "2", "--act", "asym", "-p"], ["convert", "in.bin", "-o", "x.dynq",
                 "--tokenizer", "tok.bin", "--type", "f32"], ["info", "-m", "x"], ["info", "--cpu"], ["help", "run"],
                 ["logits", "-m", "m", "--ids", "1,2,3"], ["perplexity", "-m", "m", "-f", "t", "--ctx", "64",
                 "--method", "sliding", "--stride", "32"], ["bench", "-m", "m", "-p", "8", "-n", "8"],
                 ["tokenize", "-m", "m", "-p", "x"], ["chat", "-m", "m"], ["--version"], ["--help"]):
        put("cli", "_".join(args)[:60].replace("/", "_"), b"\0".join(a.encode() for a in args))

    print("make_seeds: %d seeds in %s" % (n, out))


if __name__ == "__main__":
    main()
