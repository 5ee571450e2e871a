#!/usr/bin/python3
"""scripts/make_malformed.py: damaged model, checkpoint and tokenizer files for tests/test_malformed.sh.

  /usr/bin/python3 scripts/make_malformed.py --dynq ./dynq --out DIR

Starts from valid files (a .dynq converted from models/stories260K.bin + models/tok512.bin, tiny
llama2.c checkpoints, a tiny Hugging Face directory, tok512.bin, a small GGUF vocabulary) and
writes one damaged copy per case into DIR, plus DIR/cases.tsv with one line per case:
  name  expected-status  kind  input  tokenizer  [expect]
(expect, when present: a text the error line must contain besides the case name, e.g. the file to blame.)
kind "run": dynq run -m input; kind "convert": dynq convert input [--tokenizer tok] -o DIR/out/name.dynq.
A few valid controls (expected status 0) prove the harness can tell success from failure.
.dynq damage past the header is written twice where it matters: with the stale checksum (must be
rejected as damaged) and with the FNV-1a checksum recomputed (so the deeper check must fire).
"""
import argparse
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_seeds as ms  # noqa: E402  (shared writers)

H_NTENS, H_DIM, H_NHEADS, H_NKV, H_HEADDIM, H_VOCAB, H_CTX, H_THETA, H_EPS, H_WTYPE, H_ARCH = \
    12, 20, 28, 32, 36, 44, 48, 56, 60, 68, 16
D_DTYPE, D_NDIM, D_DIMS, D_OFFSET, D_NBYTES = 48, 52, 56, 80, 88


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dynq", default=os.path.join(ms.REPO, "dynq"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "out"))
    cases = []

    def add(name, status, kind, data=None, tok="", is_dir=False):
        p = os.path.join(out, name)
        if data is not None and not is_dir:
            with open(p, "wb") as f:
                f.write(data)
        cases.append((name, str(status), kind, p, tok))

    tok512 = ms.tok512_path()
    with open(tok512, "rb") as f:
        tokbin = f.read()
    stories = os.path.join(ms.REPO, "models", "stories260K.bin")
    if not os.path.exists(stories):
        stories = os.path.join(ms.shared_dir(), "models", "stories260K", "stories260K.bin")
    good = ms.convert(a.dynq, stories, tok512, os.path.join(out, "out", "_good.dynq"))
    os.unlink(os.path.join(out, "out", "_good.dynq"))
    d_off, n_t, to, ts, mo, msz, do = ms.dynq_sections(good)
    fix = ms.dynq_fix_checksum

    def patch(b, off, fmt, *v):
        b = bytearray(b)
        struct.pack_into(fmt, b, off, *v)
        return bytes(b)

    def dirent(i):
        return d_off + 96 * i

    # ---- .dynq: controls, truncation at every section boundary
    add("dynq_valid.dynq", 0, "run", good)
    add("dynq_zero_scale.dynq", 0, "run", None)  # filled below (a zero scale is a valid all-zero row)
    for nm, cut in (("empty", 0), ("mid_header", 100), ("header_only", 256), ("mid_directory", d_off + 48),
                    ("at_tokenizer", to), ("mid_tokenizer", to + ts // 2), ("at_metadata", mo),
                    ("at_data", do), ("mid_data", do + 1000), ("last_byte", len(good) - 1)):
        add("dynq_trunc_%s.dynq" % nm, 2, "run", good[:cut])
    # truncated, but the header's file size patched to match: the section/tensor checks must fire
    add("dynq_trunc_data_sizefixed.dynq", 2, "run", fix(patch(good[:do + 64], 120, "<Q", do + 64)))
    add("dynq_trunc_tok_sizefixed.dynq", 2, "run", fix(patch(good[:to + 64], 120, "<Q", to + 64)))
    add("dynq_bad_magic.dynq", 2, "run", b"GGUF" + good[4:])
    add("dynq_version1.dynq", 2, "run", fix(patch(good, 4, "<I", 1)))  # before the panel layout
    add("dynq_version3.dynq", 2, "run", fix(patch(good, 4, "<I", 3)))
    add("dynq_header_size.dynq", 2, "run", fix(patch(good, 8, "<I", 128)))
    add("dynq_bad_checksum.dynq", 2, "run", patch(good, mo, "<B", good[mo] ^ 1))
    # offsets and counts
    add("dynq_dir_past_end.dynq", 2, "run", fix(patch(good, 72, "<Q", len(good) - 10)))
    add("dynq_tok_past_end.dynq", 2, "run", fix(patch(good, 80, "<Q", len(good) + 64)))
    add("dynq_meta_huge.dynq", 2, "run", fix(patch(good, 104, "<Q", 1 << 63)))
    add("dynq_ntensors_huge.dynq", 2, "run", fix(patch(good, H_NTENS, "<I", 0xFFFFFFFF)))
    add("dynq_ntensors_short.dynq", 2, "run", fix(patch(good, H_NTENS, "<I", n_t - 1)))
    last = dirent(n_t - 1)
    add("dynq_tensor_past_end.dynq", 2, "run", fix(patch(good, last + D_OFFSET, "<Q", len(good) + 64)))
    add("dynq_tensor_offset_wrap.dynq", 2, "run", fix(patch(good, last + D_OFFSET, "<Q", (1 << 64) - 64)))
    add("dynq_tensor_unaligned.dynq", 2, "run", fix(patch(good, dirent(1) + D_OFFSET, "<Q",
                                                           struct.unpack_from("<Q", good, dirent(1) + D_OFFSET)[0] + 4)))
    off0 = struct.unpack_from("<Q", good, dirent(0) + D_OFFSET)[0]
    add("dynq_tensor_overlap.dynq", 2, "run", fix(patch(good, dirent(1) + D_OFFSET, "<Q", off0)))
    add("dynq_tensor_over_header.dynq", 2, "run", fix(patch(good, dirent(1) + D_OFFSET, "<Q", 0)))
    # the first tensor placed on top of the header/directory/tokenizer (the next tensor stays after it)
    add("dynq_tensor0_over_header.dynq", 2, "run", fix(patch(good, dirent(0) + D_OFFSET, "<Q", 0)))
    add("dynq_tensor0_over_tokenizer.dynq", 2, "run", fix(patch(good, dirent(0) + D_OFFSET, "<Q", (to // 64) * 64)))
    add("dynq_shape_overflow.dynq", 2, "run", fix(patch(patch(good, dirent(0) + D_NDIM, "<I", 3), dirent(0) + D_DIMS,
                                                         "<QQQ", 1 << 32, 1 << 32, 16)))
    add("dynq_zero_dim.dynq", 2, "run", fix(patch(good, dirent(0) + D_DIMS, "<Q", 0)))
    add("dynq_ndim4.dynq", 2, "run", fix(patch(good, dirent(0) + D_NDIM, "<I", 4)))
    add("dynq_bad_dtype.dynq", 2, "run", fix(patch(good, dirent(0) + D_DTYPE, "<I", 9)))
    add("dynq_nbytes_mismatch.dynq", 2, "run", fix(patch(good, dirent(0) + D_NBYTES, "<Q",
                                                          struct.unpack_from("<Q", good, dirent(0) + D_NBYTES)[0] - 1)))
    add("dynq_name_unterminated.dynq", 2, "run", fix(patch(good, dirent(0), "48s", b"x" * 48)))
    # int8 matrices are stored in panels (dtype 3): n rounded up to 16, k to 64
    pan = [i for i in range(n_t) if struct.unpack_from("<I", good, dirent(i) + D_DTYPE)[0] == 3]
    odd = [i for i in pan if struct.unpack_from("<Q", good, dirent(i) + D_DIMS + 8)[0] % 64]
    i0 = pan[0]
    add("dynq_panels_as_i8.dynq", 2, "run", fix(patch(good, dirent(i0) + D_DTYPE, "<I", 1)))
    add("dynq_panels_ndim1.dynq", 2, "run", fix(patch(good, dirent(i0) + D_NDIM, "<I", 1)))
    add("dynq_panels_dims_overflow.dynq", 2, "run", fix(patch(good, dirent(i0) + D_DIMS, "<QQ", (1 << 64) - 1, 64)))
    if odd:  # a matrix whose k is not a multiple of 64, its size given unpadded
        n0, k0 = struct.unpack_from("<QQ", good, dirent(odd[0]) + D_DIMS)
        add("dynq_panels_unpadded.dynq", 2, "run", fix(patch(good, dirent(odd[0]) + D_NBYTES, "<Q", n0 * k0)))
    add("dynq_tensor_renamed.dynq", 2, "run", fix(patch(good, dirent(2), "48s", b"blk.0.wq_missing")))
    # hyperparameters
    add("dynq_dim_zero.dynq", 2, "run", fix(patch(good, H_DIM, "<I", 0)))
    add("dynq_dim_changed.dynq", 2, "run", fix(patch(good, H_DIM, "<I", 32)))
    add("dynq_kv_heads_not_divide.dynq", 2, "run", fix(patch(good, H_NKV, "<I", 3)))
    add("dynq_head_dim_odd.dynq", 2, "run", fix(patch(good, H_HEADDIM, "<I", 7)))
    add("dynq_heads_huge.dynq", 2, "run", fix(patch(patch(good, H_NHEADS, "<I", 1 << 31), H_NKV, "<I", 1)))
    add("dynq_vocab_mismatch.dynq", 2, "run", fix(patch(good, H_VOCAB, "<I", 513)))
    add("dynq_ctx_zero.dynq", 2, "run", fix(patch(good, H_CTX, "<I", 0)))
    add("dynq_theta_nan.dynq", 2, "run", fix(patch(good, H_THETA, "<f", float("nan"))))
    add("dynq_eps_inf.dynq", 2, "run", fix(patch(good, H_EPS, "<f", float("inf"))))
    add("dynq_arch.dynq", 2, "run", fix(patch(good, H_ARCH, "<I", 7)))
    add("dynq_wtype.dynq", 2, "run", fix(patch(good, H_WTYPE, "<I", 5)))
    # scales (the first .scale tensor)
    for i in range(n_t):
        nm = good[dirent(i):dirent(i) + 48].split(b"\0")[0]
        if nm.endswith(b".scale"):
            so = struct.unpack_from("<Q", good, dirent(i) + D_OFFSET)[0]
            break
    add("dynq_scale_nan.dynq", 2, "run", patch(good, so + 4, "<f", float("nan")))
    add("dynq_scale_inf.dynq", 2, "run", patch(good, so + 4, "<f", float("inf")))
    add("dynq_scale_negative.dynq", 2, "run", patch(good, so + 4, "<f", -1.0))
    cases[1] = cases[1][:3] + (os.path.join(out, "dynq_zero_scale.dynq"), "")
    with open(cases[1][3], "wb") as f:
        f.write(patch(good, so + 4, "<f", 0.0))
    # tokenizer section (blob): huge piece length, counts that disagree with the size
    add("dynq_tok_piece_huge.dynq", 2, "run", fix(patch(good, to + 64, "<I", 0x7FFFFFF0)))
    add("dynq_tok_vocab_count.dynq", 2, "run", fix(patch(good, to + 24, "<i", 511)))
    add("dynq_tok_bad_magic.dynq", 2, "run", fix(patch(good, to, "4s", b"XXXX")))

    # ---- llama2.c checkpoints (convert with tok512.bin)
    tiny = ms.llama2c_bin()
    add("l2c_valid.bin", 0, "convert", tiny, tok512)
    add("l2c_trunc_header.bin", 2, "convert", tiny[:20], tok512)
    add("l2c_trunc_weights.bin", 2, "convert", tiny[:-4], tok512)
    add("l2c_extra_bytes.bin", 2, "convert", tiny + b"\0\0\0\0", tok512)
    for nm, hdr in (("zero_dim", [0, 16, 1, 2, 2, 512, 16]), ("negative_layers", [8, 16, -1, 2, 2, 512, 16]),
                    ("heads_not_divide_width", [8, 16, 1, 3, 3, 512, 16]),
                    ("kv_not_divide_heads", [8, 16, 1, 4, 3, 512, 16]), ("odd_head_dim", [6, 16, 1, 2, 2, 512, 16]),
                    ("vocab_intmin", [8, 16, 1, 2, 2, -2 ** 31, 16]), ("huge_everything", [65536, 1 << 20, 1024, 1, 1, 1 << 24, 1 << 22])):
        add("l2c_%s.bin" % nm, 2, "convert", struct.pack("<7i", *hdr) + tiny[28:], tok512)
    add("l2c_vocab_mismatch.bin", 2, "convert", ms.llama2c_bin(vocab=600), tok512)
    nanb = bytearray(tiny)
    struct.pack_into("<f", nanb, 28 + 4 * 100, float("nan"))
    add("l2c_nan_weight.bin", 2, "convert", bytes(nanb), tok512)
    struct.pack_into("<f", nanb, 28 + 4 * 100, float("inf"))
    add("l2c_inf_weight.bin", 2, "convert", bytes(nanb), tok512)

    # ---- tokenizer.bin damage (converting the valid tiny checkpoint)
    l2c = os.path.join(out, "l2c_valid.bin")
    add("tokbin_trunc.bin", 2, "convert", tokbin[:len(tokbin) // 2], None)
    add("tokbin_huge_len.bin", 2, "convert", tokbin[:12] + struct.pack("<i", 0x7FFFFFFF) + tokbin[16:], None)
    add("tokbin_negative_len.bin", 2, "convert", tokbin[:12] + struct.pack("<i", -5) + tokbin[16:], None)
    add("tokbin_max_len_huge.bin", 2, "convert", struct.pack("<i", 1 << 30) + tokbin[4:], None)
    for i in range(len(cases) - 4, len(cases)):
        n_, s_, k_, p_, _ = cases[i]
        cases[i] = (n_, s_, k_, l2c, p_)  # input = valid checkpoint, tokenizer = the damaged file

    # ---- Hugging Face directories
    def hf(name, status, cfg=None, st=None, cfgkw=None, tok=tok512):
        d = os.path.join(out, name)
        os.makedirs(d)
        kw = cfgkw or {}
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(cfg if cfg is not None else ms.hf_config(**kw))
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(st if st is not None else ms.safetensors(ms.hf_tensors(**kw)))
        add(name, status, "convert", None, tok, is_dir=True)

    T = ms.hf_tensors()
    good_st = ms.safetensors(T)
    hf("hf_valid", 0)
    hf("hf_valid_bf16", 0, st=ms.safetensors(T, dtype="BF16"))
    hf("hf_header_len_past_end", 2, st=struct.pack("<Q", len(good_st)) + good_st[8:])
    hf("hf_header_len_huge", 2, st=struct.pack("<Q", 1 << 63) + good_st[8:])
    hf("hf_header_not_json", 2, st=struct.pack("<Q", 8) + b"{garbage" + good_st[8:])
    hf("hf_header_invalid_utf8", 2, st=struct.pack("<Q", 16) + b'{"\xff\xfe":1}    ' + good_st[8:])
    hf("hf_trunc_data", 2, st=good_st[:-100])
    hf("hf_trunc_8", 2, st=good_st[:8])

    def edit(name, fn):
        def o(h):
            fn(h[name])
        return o
    hf("hf_offsets_past_end", 2, st=ms.safetensors(T, header_override=edit("model.norm.weight",
       lambda t: t.__setitem__("data_offsets", [10 ** 9, 10 ** 9 + 32]))))
    hf("hf_offsets_reversed", 2, st=ms.safetensors(T, header_override=edit("model.norm.weight",
       lambda t: t.__setitem__("data_offsets", t["data_offsets"][::-1]))))
    hf("hf_overlapping_tensors", 2, st=ms.safetensors(T, header_override=lambda h: h["model.norm.weight"].__setitem__(
        "data_offsets", [h["model.embed_tokens.weight"]["data_offsets"][0],
                         h["model.embed_tokens.weight"]["data_offsets"][0] + 32])))
    hf("hf_shape_overflow", 2, st=ms.safetensors(T, header_override=edit("model.embed_tokens.weight",
       lambda t: t.__setitem__("shape", [2 ** 62, 2 ** 8]))))
    hf("hf_zero_dim", 2, st=ms.safetensors(T, header_override=edit("model.norm.weight",
       lambda t: t.__setitem__("shape", [0]))))
    hf("hf_negative_dim", 2, st=ms.safetensors(T, header_override=edit("model.norm.weight",
       lambda t: t.__setitem__("shape", [-8]))))
    hf("hf_wrong_dtype", 2, st=ms.safetensors(T, header_override=edit("model.norm.weight",
       lambda t: t.__setitem__("dtype", "I64"))))
    hf("hf_missing_tensor", 2, st=ms.safetensors([t for t in T if t[0] != "model.layers.0.mlp.up_proj.weight"]))
    hf("hf_heads_not_divide", 2, cfg=ms.hf_config(n_heads=3, n_kv=3))
    hf("hf_kv_not_divide", 2, cfg=ms.hf_config(n_heads=2, n_kv=3))
    hf("hf_vocab_mismatch", 2, cfgkw={"vocab": 600})
    hf("hf_config_missing_width", 2, cfg=b'{"model_type": "llama", "vocab_size": 512}')
    hf("hf_config_not_llama", 2, cfg=ms.hf_config(model_type="gpt2"))
    hf("hf_config_trunc", 2, cfg=ms.hf_config()[:40])
    hf("hf_config_huge_string", 2, cfg=b'{"model_type": "' + b"l" * 100000 + b'"}')
    hf("hf_config_bad_escape", 2, cfg=b'{"model_type": "\\ud800x"}')
    hf("hf_theta_nan", 2, cfg=ms.hf_config().replace(b'"rope_theta": 10000.0', b'"rope_theta": 1e999'))
    nan_st = bytearray(good_st)
    struct.pack_into("<f", nan_st, len(nan_st) - 8, float("nan"))
    hf("hf_nan_weight", 2, st=bytes(nan_st))

    # ---- sharded Hugging Face directories: model.safetensors.index.json + shards
    def hf_sharded(name, status, index=None, shards=None, expect="", extra=None):
        """shards: {file: [(tensor, shape)]}; index: the JSON object to write (default: the real weight_map).
        expect: a text the one stderr line must contain (the file to blame and/or the problem)."""
        d = os.path.join(out, name)
        os.makedirs(d)
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(ms.hf_config())
        if shards is None:
            shards = {"model-00001-of-00002.safetensors": T[:5], "model-00002-of-00002.safetensors": T[5:]}
        for fn, ts in shards.items():
            with open(os.path.join(d, fn), "wb") as f:
                f.write(ms.safetensors(ts, seed=len(fn) + len(ts)))
        if index is None:
            index = {"metadata": {"total_size": 0}, "weight_map": {t: fn for fn, ts in shards.items() for t, _ in ts}}
        with open(os.path.join(d, "model.safetensors.index.json"), "wb") as f:
            f.write(index if isinstance(index, bytes) else json.dumps(index, indent=2).encode())
        if extra:
            extra(d)
        assert tok512
        add(name, status, "convert", None, tok512, is_dir=True)
        cases[-1] = cases[-1] + (expect,)

    IDX = "model.safetensors.index.json"
    S1, S2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    wm = {t: (S1 if i < 5 else S2) for i, (t, _) in enumerate(T)}

    def with_map(**changes):
        m = dict(wm)
        for k, v in changes.items():
            m[k.replace("__", ".")] = v
        return {"metadata": {}, "weight_map": m}
    hf_sharded("hf_index_valid", 0)
    # a non-float buffer listed in the index (as old checkpoints' rotary inv_freq) is allowed
    def with_i64(ts):
        end = sum(4 * (d[0] * (d[1] if len(d) > 1 else 1)) for _, d in ts)
        return ms.safetensors(ts, extra_header={"model.layers.0.self_attn.rotary_emb.inv_freq": {
            "dtype": "I64", "shape": [1], "data_offsets": [end, end + 8]}}) + b"\0" * 8
    hf_sharded("hf_index_valid_i64_buffer", 0,
               index={"weight_map": dict(wm, **{"model.layers.0.self_attn.rotary_emb.inv_freq": S2})},
               extra=lambda d: open(os.path.join(d, S2), "wb").write(with_i64(T[5:])))
    emb = "model.embed_tokens.weight"
    hf_sharded("hf_index_missing_shard", 2, index={"weight_map": dict(wm, **{emb: "model-00003-of-00003.safetensors"})},
               expect="model-00003-of-00003.safetensors")
    hf_sharded("hf_index_shard_dotdot", 2, index={"weight_map": dict(wm, **{emb: "../hf_valid/model.safetensors"})},
               expect=IDX)
    hf_sharded("hf_index_shard_dotdot_only", 2, index={"weight_map": dict(wm, **{emb: ".."})}, expect=IDX)
    hf_sharded("hf_index_shard_absolute", 2,
               index={"weight_map": dict(wm, **{emb: os.path.join(out, "hf_valid", "model.safetensors")})}, expect=IDX)
    hf_sharded("hf_index_shard_is_dir", 2, index={"weight_map": dict(wm, **{emb: "subdir"})},
               extra=lambda d: os.makedirs(os.path.join(d, "subdir")), expect="subdir")
    hf_sharded("hf_index_shard_not_string", 2, index={"weight_map": dict(wm, **{emb: 1})}, expect=IDX)
    hf_sharded("hf_index_shard_empty_name", 2, index={"weight_map": dict(wm, **{emb: ""})}, expect=IDX)
    hf_sharded("hf_index_shard_name_huge", 2, index={"weight_map": dict(wm, **{emb: "s" * 100000})}, expect=IDX)
    # a required tensor listed in the index but in none of the shards
    hf_sharded("hf_index_tensor_absent", 2, shards={S1: T[:5], S2: [t for t in T[5:] if t[0] != T[7][0]]},
               index={"weight_map": wm}, expect=T[7][0])
    # listed in one shard, stored in the other
    hf_sharded("hf_index_tensor_wrong_shard", 2, index={"weight_map": dict(wm, **{T[7][0]: S1})}, expect=T[7][0])
    # an extra (unused) tensor listed but stored nowhere: the index does not describe the shards
    hf_sharded("hf_index_extra_tensor_absent", 2, index={"weight_map": dict(wm, **{"model.extra.weight": S1})},
               expect="model.extra.weight")
    hf_sharded("hf_index_duplicate_tensor", 2, shards={S1: T[:5], S2: T[5:] + [T[1]]}, index={"weight_map": wm},
               expect=T[1][0])
    def dup_key(st, name):
        """st with a second header entry for tensor name (a JSON duplicate key) on bytes of its own."""
        hl = struct.unpack_from("<Q", st)[0]
        h = json.loads(st[8:8 + hl])
        o0, o1 = h[name]["data_offsets"]
        end = len(st) - 8 - hl
        d = dict(h[name], data_offsets=[end, end + o1 - o0])
        nh = b'{"%s": %s, ' % (name.encode(), json.dumps(d).encode()) + st[9:8 + hl]
        return struct.pack("<Q", len(nh)) + nh + st[8 + hl:] + st[8 + hl + o0:8 + hl + o1]
    hf_sharded("hf_index_duplicate_in_header", 2,
               extra=lambda d: open(os.path.join(d, S2), "wb").write(dup_key(ms.safetensors(T[5:]), T[6][0])),
               expect=T[6][0])
    hf_sharded("hf_index_weight_map_array", 2, index={"weight_map": [[emb, S1]]}, expect=IDX)
    hf_sharded("hf_index_weight_map_missing", 2, index={"metadata": {}}, expect=IDX)
    hf_sharded("hf_index_weight_map_empty", 2, index={"metadata": {}, "weight_map": {}}, expect=IDX)
    hf_sharded("hf_index_not_object", 2, index=b'["weight_map"]', expect=IDX)
    hf_sharded("hf_index_not_json", 2, index=b'{"weight_map": {"a": "b"', expect=IDX)
    hf_sharded("hf_index_trunc_empty", 2, index=b'', expect=IDX)
    hf_sharded("hf_index_too_many_shards", 2,
               index={"weight_map": dict(wm, **{"x%d" % i: "s%d.safetensors" % i for i in range(70)})}, expect=IDX)

    # ---- GGUF vocabularies (as the tokenizer of a checkpoint with the same vocabulary size)
    kv = ms.gguf_vocab("llama")
    nv = len(kv[2][2])
    l2c_g = os.path.join(out, "l2c_gguf_vocab.bin")
    with open(l2c_g, "wb") as f:
        f.write(ms.llama2c_bin(vocab=nv))
    gg = ms.gguf(kv)

    def gadd(name, status, data):
        p = os.path.join(out, name)
        with open(p, "wb") as f:
            f.write(data)
        cases.append((name, str(status), "convert", l2c_g, p))
    gadd("gguf_valid.gguf", 0, gg)
    gadd("gguf_version1.gguf", 2, gg[:4] + struct.pack("<I", 1) + gg[8:])
    gadd("gguf_nkv_huge.gguf", 2, gg[:16] + struct.pack("<Q", 1 << 62) + gg[24:])
    gadd("gguf_ntensors_huge.gguf", 2, gg[:8] + struct.pack("<Q", 1 << 62) + gg[16:])
    gadd("gguf_key_len_huge.gguf", 2, gg[:24] + struct.pack("<Q", 1 << 63) + gg[32:])
    for cut in (10, 30, len(gg) // 2, len(gg) - 40):
        gadd("gguf_trunc_%d.gguf" % cut, 2, gg[:cut])
    bad = [list(x) for x in kv]
    bad[2][2] = bad[2][2][:-1] + [b"\xff\xfe\xc0"]
    gadd("gguf_token_invalid_utf8.gguf", 2, ms.gguf([tuple(x) for x in bad]))
    bad = [list(x) for x in kv]
    bad[4][2] = bad[4][2][:10]
    gadd("gguf_token_type_short.gguf", 2, ms.gguf([tuple(x) for x in bad]))
    bad = [list(x) for x in kv]
    bad[5][2] = 100000
    gadd("gguf_bos_out_of_range.gguf", 2, ms.gguf([tuple(x) for x in bad]))
    # a string whose declared length runs past the end of the file
    i = gg.find(b"tokenizer.ggml.model")
    sl = i + len(b"tokenizer.ggml.model") + 4
    gadd("gguf_string_len_huge.gguf", 2, gg[:sl] + struct.pack("<Q", 1 << 40) + gg[sl + 8:])
    j = gg.find(b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens") + 4 + 4
    gadd("gguf_array_len_huge.gguf", 2, gg[:j] + struct.pack("<Q", 1 << 61) + gg[j + 8:])
    gadd("gguf_value_type_unknown.gguf", 2, gg[:j - 8] + struct.pack("<I", 77) + gg[j - 4:])

    with open(os.path.join(out, "cases.tsv"), "w") as f:
        for c in cases:
            f.write("\t".join(x or "" for x in c) + "\n")
    print("make_malformed: %d cases (%d damaged) in %s" % (len(cases), sum(c[1] != "0" for c in cases), out))


if __name__ == "__main__":
    main()
