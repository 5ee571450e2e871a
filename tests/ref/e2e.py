#!/usr/bin/python3
"""e2e.py: end-to-end checks of the dynq CLI against the NumPy reference (llama_ref.py, ppl_ref.py).

Called by tests/test_golden.sh, test_forward.sh, test_prefill.sh, test_ppl.sh, test_badinput.sh:
    e2e.py SUITE            SUITE in golden | logits | prefill | int8top1 | ppl | badinput
Environment: DYNQ (binary, default ./dynq), DYNQ_SHARED (default ../shared), E2E_TMP (scratch
directory, made by the caller and removed by it).
Prints one line per check: "ok NAME", "FAIL NAME: why", "skip NAME: why"; exit status 0 even when
checks fail (run.sh counts the FAIL lines), 1 only on an internal error.

Metrics (defined once, used everywhere):
  rel(a, b) = max|a - b| / max|b| over the whole (T, vocab) logits matrix, b = reference.
  FP32 logits vs reference:   rel <= 1e-4.
  FP32 prefill vs one-by-one: rel <= 1e-5.
  INT8 prefill vs one-by-one: per position t, max_j |a_tj - b_tj| <= step_t, where step_t is one
    quantization step of the classifier's input seen at the logits: step_t = s_t * max|Wcls|,
    s_t = max_i |h_ti| / 127 (sym) or (max_i h_ti - min_i h_ti) / 255 (asym), h_t = the final
    RMSNorm output of the reference at position t. It bounds the logit change of one int8 code
    flipping by 1 at the classifier; larger differences mean the two paths compute different
    things (they are printed, with the INT8-vs-FP32 error for scale, which is many steps).
  Perplexity: ppl and nll_sum rel <= 1e-4 of the reference, n_tokens exact, ppl_stderr <= 1e-3.
  perplexity --ref figures (ppl, ref_ppl, delta PPL and its 95% interval, ratio and interval, KLD
    mean/median/p99/max, top-1, per-layer error) vs NumPy on dynq's own logits and hidden-state
    dumps of both models: rel <= 1e-6 (same float32 inputs, float64 maths on both sides).
"""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_ref as R  # noqa: E402
import ppl_ref  # noqa: E402

DYNQ = os.environ.get("DYNQ", "./dynq")
SH = os.environ.get("DYNQ_SHARED", "../shared")
TMP = os.environ.get("E2E_TMP") or "/tmp"
PY = "/usr/bin/python3"
ROOT = os.path.dirname(os.path.dirname(HERE))

ST_BIN = SH + "/models/stories260K/stories260K.bin"
ST_TOK = SH + "/models/stories260K/tok512.bin"
ST_SP = SH + "/models/stories260K/tok512.model"
KJV_BIN = SH + "/models/kjv/kjv.bin"
KJV_TOK = SH + "/models/kjv/kjv1k-tok.bin"
KJV_SP = SH + "/models/kjv/kjv1k.model"
KJV_HF = SH + "/models/kjv/kjv-hf"
KJV_BF16 = SH + "/models/kjv/kjv-hf-bf16"
SYN_BIN = TMP + "/synth.bin"
SYN_HF = TMP + "/synth-hf"
SYN_HF_THETA = TMP + "/synth-hf-theta"   # same weights, rope_theta 500000 and rms_norm_eps 1e-2 (each changes the logits by ~1e-2 or more, far above 1e-4)


def ok(name):
    print("ok %s" % name, flush=True)


def fail(name, why):
    print("FAIL %s: %s" % (name, why), flush=True)


def skip(name, why):
    print("skip %s: %s" % (name, why), flush=True)


def check(name, cond, why):
    (ok(name) if cond else fail(name, why))
    return cond


def run(args, stdin=None):
    p = subprocess.run([DYNQ] + args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr


def strip_nl(out):
    """dynq run ends its output with one newline, as llama2.c's run.c does; like llama2.c's
    test_all.py, the tests require it and remove exactly that last byte before comparing."""
    return out[:-1] if out.endswith(b"\n") else out + b"<no final newline>"


def first_line(b):
    s = b.decode("utf-8", "replace").strip().splitlines()
    return s[0] if s else "(no stderr)"


_converted = {}


def convert(src, typ="f32", tok=None):
    """Converts once per process; returns the .dynq path or None (after printing a FAIL)."""
    key = (src, typ, tok)
    if key in _converted:
        return _converted[key]
    out = os.path.join(TMP, "%s-%s.dynq" % (os.path.basename(src.rstrip("/")).replace(".", "_"),
                                             typ))
    args = ["convert", src, "--type", typ, "-o", out] + (["--tokenizer", tok] if tok else [])
    rc, _, err = run(args)
    if rc != 0 or not os.path.exists(out):
        fail("convert[%s,%s]" % (os.path.basename(src), typ), "exit %d: %s" % (rc, first_line(err)))
        out = None
    _converted[key] = out
    return out


def ensure_synth():
    if not os.path.exists(SYN_BIN):
        subprocess.run([PY, os.path.join(ROOT, "scripts/make_synthetic.py"), TMP,
                        "--kjv-hf", KJV_HF], check=True)
    if not os.path.exists(SYN_HF_THETA):
        shutil.copytree(SYN_HF, SYN_HF_THETA)
        cp = os.path.join(SYN_HF_THETA, "config.json")
        with open(cp) as f:
            c = json.load(f)
        c["rope_theta"], c["rms_norm_eps"] = 500000.0, 1e-2
        with open(cp, "w") as f:
            json.dump(c, f, indent=2)


def dynq_logits(model, ids, extra=()):
    out = os.path.join(TMP, "logits.f32")
    if os.path.exists(out):
        os.remove(out)
    rc, _, err = run(["logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out]
                     + list(extra))
    if rc != 0:
        return None, "exit %d: %s" % (rc, first_line(err))
    a = np.fromfile(out, dtype="<f4")
    if a.size % len(ids):
        return None, "%d floats for %d positions" % (a.size, len(ids))
    return a.reshape(len(ids), -1).astype(np.float64), None


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def worst(a, b):
    d = np.abs(a - b)
    t, j = np.unravel_index(np.argmax(d), d.shape)
    return "worst at position %d token %d: dynq %.7g ref %.7g" % (t, j, a[t, j], b[t, j])


# ----------------------------------------------------------------------------------------------
# golden text

def suite_golden():
    m = convert(ST_BIN, "f32", ST_TOK)
    if m:
        want = open(SH + "/golden/stories260K-t0-n200.txt", "rb").read()
        rc, out, err = run(["run", "-m", m, "-p", "", "-n", "200", "--temp", "0", "--quiet"])
        out = strip_nl(out)
        if rc != 0:
            fail("golden_stories260K_f32", "exit %d: %s" % (rc, first_line(err)))
        elif out == want:
            ok("golden_stories260K_f32")
        else:
            n = next((i for i in range(min(len(out), len(want))) if out[i] != want[i]),
                     min(len(out), len(want)))
            fail("golden_stories260K_f32", "differs at byte %d: got %r want %r" % (
                n, out[max(0, n - 20):n + 30], want[max(0, n - 20):n + 30]))
    lines = open(SH + "/golden/kjv-greedy.tsv", encoding="utf-8").read().splitlines()
    for name, src, tok in (("kjv.bin", KJV_BIN, KJV_TOK), ("kjv-hf", KJV_HF, None),
                           ("kjv-hf-bf16", KJV_BF16, None)):
        m = convert(src, "f32", tok)
        if not m:
            continue
        bad = []
        for ln in lines:
            prompt, cont = ln.split("\t")
            want = cont.replace("\\n", "\n").encode()
            rc, out, err = run(["run", "-m", m, "-p", prompt, "-n", "32", "--temp", "0", "--quiet"])
            out = strip_nl(out)
            if rc != 0:
                bad.append("%r: exit %d: %s" % (prompt, rc, first_line(err)))
            elif out != want:
                bad.append("%r: got %r want %r" % (prompt, out, want))
        if name == "kjv-hf-bf16":
            # not required by the golden file (BF16 weights differ); informational only
            print("   kjv-hf-bf16 greedy: %d of %d golden lines reproduced" % (
                len(lines) - len(bad), len(lines)))
            continue
        check("golden_kjv_greedy[%s]" % name, not bad, "%d of %d lines differ; %s" % (
            len(bad), len(lines), " | ".join(bad[:2])))
    # INT8: not bound to the golden text; how much of it survives is printed for the record
    mi = convert(ST_BIN, "int8", ST_TOK)
    if mi:
        want = open(SH + "/golden/stories260K-t0-n200.txt", "rb").read()
        rc, out, _ = run(["run", "-m", mi, "-p", "", "-n", "200", "--temp", "0", "--quiet"])
        out = strip_nl(out)
        n = next((i for i in range(min(len(out), len(want))) if out[i] != want[i]),
                 min(len(out), len(want)))
        print("   stories260K INT8 greedy: first %d of %d golden bytes reproduced" % (n, len(want)))
    mi = convert(KJV_BIN, "int8", KJV_TOK)
    if mi:
        same = 0
        for ln in lines:
            prompt, cont = ln.split("\t")
            rc, out, _ = run(["run", "-m", mi, "-p", prompt, "-n", "32", "--temp", "0", "--quiet"])
            same += strip_nl(out) == cont.replace("\\n", "\n").encode()
        print("   kjv INT8 greedy: %d of %d golden lines reproduced exactly" % (same, len(lines)))
    # INT8 generation path (prefill, then one token at a time, classifier on the last position
    # only) == greedy argmax of INT8 logits over the whole prefix (dynq logits)
    if mi:
        sp = R.sp_load(KJV_SP)
        for prompt in ("And the LORD said unto Moses", "Blessed are the"):
            ids = [1] + sp.encode(prompt)
            gen = []
            err = None
            for _ in range(16):
                a, err = dynq_logits(mi, ids + gen)
                if a is None:
                    break
                gen.append(int(np.argmax(a[-1])))
            cname = "run_int8_equals_logits_greedy[kjv,%r]" % prompt
            if err:
                fail(cname, err)
                continue
            want = R.render(sp, gen, after_bos=False)
            rc, out, e = run(["run", "-m", mi, "-p", prompt, "-n", "16", "--temp", "0", "--quiet"])
            out = strip_nl(out)
            check(cname, rc == 0 and out == want, "exit %d: run gave %r, logits argmax gives %r" % (
                rc, out, want))
    # stdin prompt: the same as -p
    m = convert(KJV_BIN, "f32", KJV_TOK)
    if m:
        prompt, cont = lines[1].split("\t")
        rc, out, err = run(["run", "-m", m, "-n", "32", "--temp", "0", "--quiet"],
                           stdin=prompt.encode())
        out = strip_nl(out)
        check("golden_kjv_stdin_prompt", rc == 0 and out == cont.replace("\\n", "\n").encode(),
              "exit %d got %r" % (rc, out))


# ----------------------------------------------------------------------------------------------
# logits vs reference

def model_table(with_synth=True):
    t = [("stories260K", ST_BIN, ST_TOK, ST_BIN), ("kjv.bin", KJV_BIN, KJV_TOK, KJV_BIN),
         ("kjv-hf", KJV_HF, None, KJV_HF), ("kjv-hf-bf16", KJV_BF16, None, KJV_BF16)]
    if with_synth:
        ensure_synth()
        t += [("synth.bin", SYN_BIN, KJV_TOK, SYN_BIN), ("synth-hf-f16", SYN_HF, None, SYN_HF),
              ("synth-hf-theta5e5-eps1e-2", SYN_HF_THETA, None, SYN_HF_THETA)]
    return t


def suite_logits():
    rng = np.random.default_rng(20261125)
    for name, src, tok, refsrc in model_table():
        m = convert(src, "f32", tok)
        if not m:
            continue
        ref = R.load(refsrc)
        for T in (1, 7, 64, ref.seq_len):
            ids = [int(x) for x in rng.integers(0, ref.vocab, T)]
            got, err = dynq_logits(m, ids)
            cname = "logits_f32[%s,T=%d]" % (name, T)
            if got is None:
                fail(cname, err)
                continue
            if got.shape[1] != ref.vocab:
                fail(cname, "vocab %d, want %d" % (got.shape[1], ref.vocab))
                continue
            want = R.forward(ref, ids)
            r = rel(got, want)
            print("   %s: rel %.3g" % (cname, r))
            check(cname, r <= 1e-4, "rel %.3g > 1e-4; %s" % (r, worst(got, want)))
            if name == "kjv-hf" and T == 64:
                # control: the metric must see a wrong RoPE layout (rotate-half weights run with
                # interleaved pairs), else a silently skipped permutation could pass
                ref.rope = "interleaved"
                r2 = rel(got, R.forward(ref, ids))
                ref.rope = "half"
                check("logits_control_wrong_rope_detected[kjv-hf]", r2 > 1e-2,
                      "rel %.3g: the metric cannot tell the RoPE layouts apart" % r2)


def suite_logits_text():
    """dynq logits -p TEXT: the prompt is BOS + SentencePiece(TEXT) (python sentencepiece is the
    oracle for the ids) and the logits equal the reference on those ids."""
    texts = ["Once upon a time, there was a little dog.", "  two  spaces\nand a newline",
             "And God said, Let there be light: and there was light."]
    for name, src, tok, spm in (("stories260K", ST_BIN, ST_TOK, ST_SP),
                                ("kjv.bin", KJV_BIN, KJV_TOK, KJV_SP), ("kjv-hf", KJV_HF, None, KJV_SP)):
        m = convert(src, "f32", tok)
        if not m:
            continue
        sp = R.sp_load(spm)
        ref = R.load(src)
        for k, text in enumerate(texts):
            cname = "logits_prompt_text[%s,%d]" % (name, k)
            ids = [1] + sp.encode(text)
            out = os.path.join(TMP, "logits.f32")
            rc, _, err = run(["logits", "-m", m, "-p", text, "-o", out])
            if rc != 0:
                fail(cname, "exit %d: %s" % (rc, first_line(err)))
                continue
            a = np.fromfile(out, dtype="<f4").astype(np.float64)
            if a.size != len(ids) * ref.vocab:
                fail(cname, "%d positions, want %d (BOS + %s)" % (a.size // ref.vocab, len(ids),
                                                                   ids[1:]))
                continue
            a = a.reshape(len(ids), -1)
            want = R.forward(ref, ids)
            r = rel(a, want)
            check(cname, r <= 1e-4, "rel %.3g (tokenized differently?) %s" % (r, worst(a, want)))


# ----------------------------------------------------------------------------------------------
# prefill vs one-by-one

def final_hidden(ref, ids):
    """Reference classifier input h_t (final RMSNorm output), (T, D)."""
    _, hs = R.forward(ref, ids, return_hidden=True)
    return R.rmsnorm(hs[-1], ref.final_norm, ref.eps)


def suite_prefill():
    rng = np.random.default_rng(7)
    for name, src, tok, refsrc in model_table():
        if name == "kjv-hf-bf16":
            continue
        ref = R.load(refsrc)
        for T in ((64, ref.seq_len) if name in ("stories260K", "kjv.bin", "synth.bin") else (64,)):
            prefill_one(name, src, tok, ref, T, rng)


def prefill_one(name, src, tok, ref, T, rng):
    """FP32: rel <= 1e-5; INT8 (sym, asym): within one classifier-input step (see top)."""
    ids = [1] + [int(x) for x in rng.integers(3, ref.vocab, T - 1)]
    m = convert(src, "f32", tok)
    if m:
        a, e1 = dynq_logits(m, ids)
        b, e2 = dynq_logits(m, ids, ["--one-by-one"])
        cname = "prefill_vs_onebyone_f32[%s,T=%d]" % (name, T)
        if a is None or b is None:
            fail(cname, e1 or e2)
        else:
            r = rel(a, b)
            print("   %s: rel %.3g" % (cname, r))
            check(cname, r <= 1e-5, "rel %.3g > 1e-5; %s" % (r, worst(a, b)))
    if name not in ("stories260K", "kjv.bin", "synth.bin"):
        return
    mi = convert(src, "int8", tok)
    if not mi or not m:
        return
    h = final_hidden(ref, ids)
    wmax = np.abs(ref.wcls).max()
    fp, _ = dynq_logits(m, ids)
    for act in ("sym", "asym"):
        cname = "prefill_vs_onebyone_int8_%s[%s,T=%d]" % (act, name, T)
        a, e1 = dynq_logits(mi, ids, ["--act", act])
        b, e2 = dynq_logits(mi, ids, ["--act", act, "--one-by-one"])
        if a is None or b is None:
            fail(cname, e1 or e2)
            continue
        if act == "sym":
            s = np.abs(h).max(axis=1) / 127.0
        else:
            s = (h.max(axis=1) - h.min(axis=1)) / 255.0
        step = s * wmax
        d = np.abs(a - b).max(axis=1)
        ratio = d / step
        t = int(np.argmax(ratio))
        qerr = np.abs(a - fp).max(axis=1) / step if fp is not None else np.zeros(1)
        print("   %s: max |prefill-onebyone| = %.3g steps (pos %d), INT8-vs-FP32 = %.3g steps "
              "(median %.3g)" % (cname, ratio.max(), t, qerr.max(), np.median(qerr)))
        check(cname, ratio.max() <= 1.0, "position %d differs by %.4g > one step %.4g" % (
            t, d[t], step[t]))


def suite_int8_loose():
    """INT8 logits near the reference on every loader path (separate classifier, GQA 5:1, F16/BF16
    Hugging Face): rel <= 0.08 and top-1 >= 85% on 64 tokens (observed 0.02-0.04 and 94-98%;
    a wrongly scaled or transposed INT8 matrix gives rel ~1). And thread-count independence:
    -t 1 and -t 2 give bit-identical logits, FP32 and INT8."""
    rng = np.random.default_rng(11)
    for name, src, tok, refsrc in model_table():
        ref = R.load(refsrc)
        ids = [1] + [int(x) for x in rng.integers(3, ref.vocab, 63)]
        want = R.forward(ref, ids)
        mi = convert(src, "int8", tok)
        if mi:
            a, err = dynq_logits(mi, ids)
            cname = "logits_int8_near_ref[%s]" % name
            if a is None:
                fail(cname, err)
            else:
                r, t1 = rel(a, want), float((a.argmax(1) == want.argmax(1)).mean())
                print("   %s: rel %.4f top-1 %.3f" % (cname, r, t1))
                check(cname, r <= 0.08 and t1 >= 0.85, "rel %.4f top-1 %.3f" % (r, t1))
        for typ, m in (("f32", convert(src, "f32", tok)), ("int8", mi)):
            if not m:
                continue
            a, e1 = dynq_logits(m, ids, ["-t", "1"])
            b, e2 = dynq_logits(m, ids, ["-t", "2"])
            cname = "logits_threads_identical_%s[%s]" % (typ, name)
            if a is None or b is None:
                fail(cname, e1 or e2)
            else:
                check(cname, np.array_equal(a, b), "max diff %.3g; %s" % (np.abs(a - b).max(),
                                                                          worst(a, b)))


# ----------------------------------------------------------------------------------------------
# INT8 vs FP32 top-1 on KJV text

def suite_int8top1():
    mf = convert(KJV_BIN, "f32", KJV_TOK)
    mi = convert(KJV_BIN, "int8", KJV_TOK)
    if not mf or not mi:
        return
    sp = R.sp_load(KJV_SP)
    tok = ppl_ref.tokenize_file(sp, SH + "/data/kjv-eval.txt")
    W, n = 250, 8   # 8 windows of 250 = 2,000 positions, each starting with BOS
    for act in ("sym", "asym"):
        agree = total = 0
        err = None
        for k in range(n):
            ids = [1] + tok[k * W + 1:(k + 1) * W]
            a, e1 = dynq_logits(mi, ids, ["--act", act])
            b, e2 = dynq_logits(mf, ids)
            if a is None or b is None:
                err = e1 or e2
                break
            agree += int((a.argmax(1) == b.argmax(1)).sum())
            total += len(ids)
        cname = "int8_vs_f32_top1_%s[kjv,2000 positions]" % act
        if err:
            fail(cname, err)
            continue
        print("   INT8 (%s) vs FP32 top-1 agreement on kjv-eval: %d/%d = %.2f%%" % (
            act, agree, total, 100.0 * agree / total))
        check(cname, agree >= 0.97 * total, "%.2f%% < 97%%" % (100.0 * agree / total))


# ----------------------------------------------------------------------------------------------
# perplexity

def ppl_json(args):
    rc, out, err = run(["perplexity"] + args + ["--json"])
    if rc != 0:
        return None, "exit %d: %s" % (rc, first_line(err))
    try:
        return json.loads(out), None
    except ValueError:
        return None, "stdout is not one JSON object: %r" % out[:200]


def suite_ppl():
    cases = [  # name, src, tok, sp, text, ctx, method, stride, chunks
        ("stories260K", ST_BIN, ST_TOK, ST_SP, SH + "/data/tinystories-val.txt", 256, "chunks", 0, 4),
        ("stories260K", ST_BIN, ST_TOK, ST_SP, SH + "/data/tinystories-val.txt", 128, "sliding", 64, 8),
        ("kjv", KJV_BIN, KJV_TOK, KJV_SP, SH + "/data/kjv-eval.txt", 256, "chunks", 0, 4),
        ("kjv", KJV_BIN, KJV_TOK, KJV_SP, SH + "/data/kjv-eval.txt", 128, "chunks", 0, 6),
        ("kjv", KJV_BIN, KJV_TOK, KJV_SP, SH + "/data/kjv-eval.txt", 128, "sliding", 48, 8),
        ("kjv", KJV_BIN, KJV_TOK, KJV_SP, SH + "/data/kjv-eval.txt", 256, "sliding", 256, 3),
    ]
    refs, toks = {}, {}
    for name, src, tok, spm, text, ctx, method, stride, chunks in cases:
        m = convert(src, "f32", tok)
        if not m:
            continue
        cname = "ppl_f32[%s,%s,ctx=%d%s,chunks=%d]" % (name, method, ctx,
                                                        ",stride=%d" % stride if stride else "",
                                                        chunks)
        args = ["-m", m, "-f", text, "--ctx", str(ctx), "--chunks", str(chunks),
                "--method", method] + (["--stride", str(stride)] if stride else [])
        got, err = ppl_json(args)
        if got is None:
            fail(cname, err)
            continue
        if src not in refs:
            refs[src] = R.load(src)
            toks[src] = ppl_ref.tokenize_file(R.sp_load(spm), text)
        want = ppl_ref.perplexity(refs[src], toks[src], ctx, method, stride or None, chunks)
        probs = []
        missing = [k for k in ("ppl", "ppl_stderr", "n_tokens", "ctx", "method") if k not in got]
        if missing:
            probs.append("missing keys %s" % missing)
        else:
            if got["n_tokens"] != want["n_tokens"]:
                probs.append("n_tokens %s want %d" % (got["n_tokens"], want["n_tokens"]))
            r = abs(got["ppl"] - want["ppl"]) / want["ppl"]
            if r > 1e-4:
                probs.append("ppl %.6f want %.6f (rel %.2g)" % (got["ppl"], want["ppl"], r))
            if "nll_sum" in got and abs(got["nll_sum"] - want["nll_sum"]) > 1e-4 * want["nll_sum"]:
                probs.append("nll_sum %.6f want %.6f" % (got["nll_sum"], want["nll_sum"]))
            if abs(got["ppl_stderr"] - want["ppl_stderr"]) > 1e-3 * want["ppl_stderr"]:
                probs.append("ppl_stderr %.6f want %.6f" % (got["ppl_stderr"], want["ppl_stderr"]))
            if got["ctx"] != ctx or got["method"] != method:
                probs.append("ctx/method echoed as %s/%s" % (got["ctx"], got["method"]))
        print("   %s: dynq %s, ref ppl %.6f over %d tokens" % (
            cname, "ppl %.6f n %s" % (got.get("ppl", float("nan")), got.get("n_tokens"))
            if "ppl" in got else "?", want["ppl"], want["n_tokens"]))
        check(cname, not probs, "; ".join(probs))

    mf = convert(KJV_BIN, "f32", KJV_TOK)
    mi = convert(KJV_BIN, "int8", KJV_TOK)
    text = SH + "/data/kjv-eval.txt"
    if mf:
        base = ["-f", text, "--ctx", "128", "--chunks", "3"]
        for nm, m in (("f32", mf), ("int8", mi)):
            if not m:
                continue
            got, err = ppl_json(["-m", m, "--ref", m] + base)
            cname = "ppl_self_ref[kjv-%s]" % nm
            if got is None:
                fail(cname, err)
            else:
                probs = []
                for k, v in (("kld_mean", 0.0), ("top1_agree", 1.0), ("delta_ppl", 0.0),
                             ("kld_p99", 0.0)):
                    if k not in got:
                        probs.append("missing %s" % k)
                    elif abs(got[k] - v) > 1e-12:
                        probs.append("%s = %.6g, want %g" % (k, got[k], v))
                for k in ("ref_ppl", "ppl_ratio", "layers"):
                    if k not in got:
                        probs.append("missing %s" % k)
                if "ppl_ratio" in got and abs(got["ppl_ratio"] - 1) > 1e-12:
                    probs.append("ppl_ratio %.9g" % got["ppl_ratio"])
                if "layers" in got:
                    lay = got["layers"]
                    vals = [x if isinstance(x, (int, float)) else
                            (x.get("rms_rel_err", x.get("rel_rms", 0)) if isinstance(x, dict) else 0)
                            for x in lay]
                    if len(lay) != 6 or any(v != 0 for v in vals):
                        probs.append("layers %r (want 6 zeros)" % (lay,))
                check(cname, not probs, "; ".join(probs))
            r1, e1 = ppl_json(["-m", m, "-t", "1"] + base)
            r2, e2 = ppl_json(["-m", m, "-t", "2"] + base)
            cname = "ppl_threads_nll_sum[kjv-%s]" % nm
            if r1 is None or r2 is None:
                fail(cname, e1 or e2)
            elif "nll_sum" not in r1:
                fail(cname, "no nll_sum key")
            else:
                d = abs(r1["nll_sum"] - r2["nll_sum"]) / abs(r1["nll_sum"])
                check(cname, d <= 1e-9, "-t 1 %.12g vs -t 2 %.12g (rel %.3g)" % (
                    r1["nll_sum"], r2["nll_sum"], d))
        if mi:
            got, err = ppl_json(["-m", mi, "--ref", mf] + base)
            if got is not None:
                print("   kjv INT8 vs FP32 (ctx 128, 3 chunks): ppl %.4f ref %.4f kld_mean %.5f "
                      "top1 %.4f" % (got.get("ppl", 0), got.get("ref_ppl", 0),
                                     got.get("kld_mean", 0), got.get("top1_agree", 0)))
                check("ppl_int8_vs_f32_sane[kjv]",
                      # INT8 must differ (KLD > 0) yet stay close; on 189 scored tokens the top-1
                      # agreement may well be exactly 1
                      0 < got.get("kld_mean", -1) < 0.1 and 0.9 < got.get("top1_agree", 0) <= 1.0
                      and abs(got.get("ref_ppl", 0) - 0) > 0,
                      "implausible figures %r" % {k: got.get(k) for k in
                                                   ("kld_mean", "top1_agree", "ref_ppl")})
            else:
                fail("ppl_int8_vs_f32_sane[kjv]", err)

    if os.environ.get("E2E_FULL") == "1" and mf:
        # whole kjv-eval.txt against the figures of models/kjv/README.md (reference run:
        # 12.854306 / 34,671 tokens at ctx 256, 12.885503 / 34,398 at ctx 128)
        for ctx, want, n in ((256, 12.854306, 34671), (128, 12.885503, 34398)):
            got, err = ppl_json(["-m", mf, "-f", text, "--ctx", str(ctx)])
            cname = "ppl_full_kjv_eval[ctx=%d]" % ctx
            if got is None:
                fail(cname, err)
            else:
                check(cname, abs(got["ppl"] - want) <= 1e-4 * want and got["n_tokens"] == n,
                      "ppl %.6f n %d, want %.6f n %d" % (got["ppl"], got["n_tokens"], want, n))
    else:
        print("   (ppl_full_kjv_eval, the whole-file KJV figures, runs with E2E_FULL=1)")

    # --ref figures recomputed here from dynq's own `logits --hidden` dumps of both models, which
    # are independent of the perplexity command's bookkeeping: chunks of 128 (first token BOS),
    # positions 64..126 scored, every position of every chunk in the layer errors.
    if mf and mi:
        ppl_ref_recomputed(mf, mi, text)

    # whole short text without --chunks: partial last sliding window, N % ctx != 0 for chunks
    if mf:
        small = os.path.join(TMP, "kjv-small.txt")
        with open(text, encoding="utf-8") as f:
            body = f.read()[:2000]
        with open(small, "w", encoding="utf-8") as f:
            f.write(body)
        sp = R.sp_load(KJV_SP)
        tok = ppl_ref.tokenize_file(sp, small)
        kref = R.load(KJV_BIN)
        for method, ctx, stride in (("sliding", 128, 50), ("sliding", 100, 100), ("sliding", 16, 3),
                                    ("chunks", 100, 0)):
            cname = "ppl_whole_small_text[%s,ctx=%d,stride=%d,N=%d]" % (method, ctx, stride,
                                                                         len(tok))
            args = ["-m", mf, "-f", small, "--ctx", str(ctx), "--method", method] + (
                ["--stride", str(stride)] if stride else [])
            got, err = ppl_json(args)
            if got is None:
                fail(cname, err)
                continue
            want = ppl_ref.perplexity(kref, tok, ctx, method, stride or None, 0)
            ok_ = (got.get("n_tokens") == want["n_tokens"] and
                   abs(got["ppl"] - want["ppl"]) <= 1e-4 * want["ppl"])
            check(cname, ok_, "ppl %.6f n %s, want %.6f n %d" % (
                got.get("ppl", -1), got.get("n_tokens"), want["ppl"], want["n_tokens"]))
        r1, e1 = ppl_json(["-m", mf, "-f", small, "--ctx", "128", "--method", "sliding",
                           "--stride", "50", "-t", "1"])
        r2, e2 = ppl_json(["-m", mf, "-f", small, "--ctx", "128", "--method", "sliding",
                           "--stride", "50", "-t", "2"])
        if r1 is None or r2 is None:
            fail("ppl_threads_nll_sum[kjv-f32,sliding]", e1 or e2)
        else:
            d = abs(r1["nll_sum"] - r2["nll_sum"]) / abs(r1["nll_sum"])
            check("ppl_threads_nll_sum[kjv-f32,sliding]", d <= 1e-9, "rel %.3g" % d)

    # errors: non-zero exit and exactly one line on stderr
    ms = convert(ST_BIN, "f32", ST_TOK)
    empty = os.path.join(TMP, "empty.txt")
    open(empty, "w").close()
    short = os.path.join(TMP, "short.txt")
    with open(short, "w") as f:
        f.write("In the beginning God created the heaven and the earth.\n")
    errs = [("ppl_err_empty_text", ["-m", mf, "-f", empty, "--ctx", "64"]),
            ("ppl_err_short_text", ["-m", mf, "-f", short, "--ctx", "64"]),
            ("ppl_err_ctx_too_big", ["-m", mf, "-f", text, "--ctx", "512"]),
            ("ppl_err_ref_vocab", ["-m", mf, "--ref", ms or "", "-f", text, "--ctx", "64"]),
            ("ppl_err_missing_text", ["-m", mf, "-f", TMP + "/no-such.txt", "--ctx", "64"])]
    for name, args in errs:
        if not mf:
            break
        rc, out, err = run(["perplexity"] + args)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        want3 = name == "ppl_err_ctx_too_big"   # README: exit 3 for --ctx above the model's
        check(name, (rc == 3 if want3 else rc != 0) and len(lines) == 1,
              "exit %d%s, %d stderr lines: %r" % (rc, " (want 3)" if want3 else "", len(lines),
                                                  lines[:3]))
    # the quality gate: a distinct status (5) when not met
    if mf and mi:
        rc, out, err = run(["perplexity", "-m", mi, "--ref", mf, "-f", text, "--ctx", "128",
                            "--chunks", "2", "--max-kld", "0", "--json"])  # INT8 vs FP32: KLD > 0
        check("ppl_gate_fails_with_5", rc == 5 and out.strip().startswith(b"{"),
              "exit %d (want 5 and figures printed)" % rc)
        rc, out, err = run(["perplexity", "-m", mi, "--ref", mf, "-f", text, "--ctx", "128",
                            "--chunks", "2", "--min-top1", "0.5", "--json"])
        check("ppl_gate_passes_with_0", rc == 0, "exit %d: %s" % (rc, first_line(err)))
        ppl_gate_delta_ppl(mi, mf, text)


def ppl_gate_delta_ppl(mi, mf, text):
    """--max-delta-ppl alone: the bound is on 100 * (PPL / PPL_ref - 1), computed here from the
    ungated run's ppl and ref_ppl. A bound 10 % (relative) below it must fail with exit 5 after
    printing the figures; 10 % above it must pass. (An absolute delta PPL, about 0.13 x the
    percentage here, or a ratio would pass the lower bound.)"""
    base = ["-m", mi, "--ref", mf, "-f", text, "--ctx", "128", "--chunks", "2"]
    got, err = ppl_json(base)
    if got is None:
        fail("ppl_gate_delta_ppl", err)
        return
    dpct = 100.0 * (got["ppl"] / got["ref_ppl"] - 1.0)
    margin = 0.1 * abs(dpct) + 1e-9
    lo, hi = "%.9g" % (dpct - margin), "%.9g" % (dpct + margin)
    print("   ppl_gate_delta_ppl: delta PPL %+.5f %% (bounds %s fails, %s passes)" % (dpct, lo, hi))
    rc, out, err = run(["perplexity"] + base + ["--max-delta-ppl", lo])
    txt = out.decode("utf-8", "replace")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    check("ppl_gate_delta_ppl_fails_with_5", rc == 5 and "delta PPL" in txt and
          "PPL ratio" in txt and "quality gate: FAILED" in txt and len(lines) == 1,
          "exit %d (want 5), stdout %r, stderr %r" % (rc, txt[-300:], lines[:3]))
    rc, out, err = run(["perplexity"] + base + ["--max-delta-ppl", lo, "--json"])
    try:
        j = json.loads(out)
    except ValueError:
        j = {}
    check("ppl_gate_delta_ppl_fails_json", rc == 5 and j.get("gate_passed") is False and
          abs(j.get("delta_ppl_pct", 1e9) - dpct) <= 1e-6 * abs(dpct),
          "exit %d, gate_passed %r, delta_ppl_pct %r (want %.9g)" % (
              rc, j.get("gate_passed"), j.get("delta_ppl_pct"), dpct))
    rc, out, err = run(["perplexity"] + base + ["--max-delta-ppl", hi])
    check("ppl_gate_delta_ppl_passes_with_0", rc == 0 and b"quality gate: passed" in out,
          "exit %d: %s" % (rc, first_line(err)))


# ----------------------------------------------------------------------------------------------
# perplexity --ref figures, recomputed in NumPy (float64) from per-token values

def dynq_logits_hidden(model, ids, n_layers, dim, extra=()):
    """dynq logits ... --hidden: (logits (T, V), hidden (L, T, D)) as float64, or (None, None, why)."""
    out, hid = os.path.join(TMP, "logits.f32"), os.path.join(TMP, "hidden.f32")
    for f in (out, hid):
        if os.path.exists(f):
            os.remove(f)
    rc, _, err = run(["logits", "-m", model, "--ids", " ".join(map(str, ids)), "-o", out,
                      "--hidden", hid] + list(extra))
    if rc != 0:
        return None, None, "exit %d: %s" % (rc, first_line(err))
    a, h = np.fromfile(out, dtype="<f4"), np.fromfile(hid, dtype="<f4")
    T = len(ids)
    if a.size % T or h.size != n_layers * T * dim:
        return None, None, "%d logits and %d hidden floats for %d positions" % (a.size, h.size, T)
    return (a.reshape(T, -1).astype(np.float64), h.reshape(n_layers, T, dim).astype(np.float64),
            None)


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def delta_ppl_ci95(a, b):
    """Half-width of the 95% interval of PPL_a - PPL_b, PPL = exp(mean NLL), by the delta method
    on the two correlated means: the gradient of exp(ma) - exp(mb) with respect to (ma, mb) is
    (PPL_a, -PPL_b) and the covariance matrix of (ma, mb) is the sample covariance of the
    per-token pairs (a_i, b_i) divided by n, so var = g' S g / n."""
    g = np.array([math.exp(a.mean()), -math.exp(b.mean())])
    S = np.cov(np.vstack([a, b]), ddof=1)
    return 1.96 * math.sqrt(float(g @ S @ g) / len(a))


def ppl_ratio_ci95(a, b):
    """PPL_a / PPL_b = exp(mean(a - b)); its 95% interval is exp(mean -/+ 1.96 standard errors of
    that mean), from the per-token differences (correlation included)."""
    d = a - b
    se = d.std(ddof=1) / math.sqrt(len(d))
    return math.exp(d.mean()), math.exp(d.mean() - 1.96 * se), math.exp(d.mean() + 1.96 * se)


def ppl_ref_recomputed(mf, mi, text):
    """Every figure of `perplexity -m INT8 --ref FP32` recomputed from dynq's logits and hidden-state
    dumps of both models on the same chunks. The dumps hold the same float32 numbers the
    perplexity pass sees (same batch, bit-identical kernels), and both sides do the same maths in
    float64, so the tolerance is 1e-6 relative: it only absorbs summation order and the 10 printed
    digits. An off-by-one scored position, a swapped KL direction, N in place of N - 1, a
    dropped covariance term or another percentile rule each move a figure by far more."""
    cname = "ppl_ref_figures_recomputed[kjv int8 vs f32]"
    sp = R.sp_load(KJV_SP)
    tok = ppl_ref.tokenize_file(sp, text)
    kref = R.load(KJV_BIN)
    L, D = len(kref.layers), kref.emb.shape[1]
    ctx, nch = 128, 2
    kl, nll_i, nll_f, t1 = [], [], [], 0
    err2, ref2 = np.zeros(L), np.zeros(L)
    bad = None
    for c in range(nch):
        ids = [1] + tok[c * ctx + 1:(c + 1) * ctx]
        a, ha, e1 = dynq_logits_hidden(mi, ids, L, D)
        b, hb, e2 = dynq_logits_hidden(mf, ids, L, D)
        if a is None or b is None:
            bad = e1 or e2
            break
        if c == 0:
            # what is dumped (and compared per layer) is the residual stream after each block:
            # the FP32 dump equals the float64 reference's hidden states
            _, hs = R.forward(kref, ids, return_hidden=True)
            r = max(rel(hb[l], hs[l]) for l in range(L))
            check("logits_hidden_f32_vs_ref[kjv,T=%d]" % ctx, r <= 1e-4, "rel %.3g > 1e-4" % r)
        pos = np.arange(ctx // 2, ctx - 1)
        tgt = np.array(ids)[pos + 1]
        la, lb = log_softmax(a[pos]), log_softmax(b[pos])
        kl.append((np.exp(lb) * (lb - la)).sum(1))       # KL(P_fp32 || P_int8) per position
        t1 += int((a[pos].argmax(1) == b[pos].argmax(1)).sum())
        nll_i.append(-la[np.arange(len(pos)), tgt])
        nll_f.append(-lb[np.arange(len(pos)), tgt])
        err2 += ((ha - hb) ** 2).sum(axis=(1, 2))
        ref2 += (hb ** 2).sum(axis=(1, 2))
    got, err = ppl_json(["-m", mi, "--ref", mf, "-f", text, "--ctx", str(ctx), "--chunks",
                         str(nch)])
    if bad or got is None:
        fail(cname, bad or err)
        return
    kl, a, b = np.concatenate(kl), np.concatenate(nll_i), np.concatenate(nll_f)
    n = len(kl)
    ratio, rlo, rhi = ppl_ratio_ci95(a, b)
    ppl, ref_ppl = math.exp(a.mean()), math.exp(b.mean())
    mine = dict(ppl=ppl, ref_ppl=ref_ppl, delta_ppl=ppl - ref_ppl,
                delta_ppl_pct=100.0 * (ppl / ref_ppl - 1.0), delta_ppl_ci95=delta_ppl_ci95(a, b),
                ppl_ratio=ratio, kld_mean=float(kl.mean()),
                kld_median=float(np.median(kl)),            # mean of the two middle values (n even)
                kld_p99=float(np.percentile(kl, 99)),       # linear interpolation, as llama.cpp
                kld_max=float(kl.max()), top1_agree=t1 / n,
                ppl_stderr=ppl * a.std(ddof=1) / math.sqrt(n),
                ref_ppl_stderr=ref_ppl * b.std(ddof=1) / math.sqrt(n))
    probs = []
    for k, v in sorted(mine.items()):
        g = got.get(k)
        if not isinstance(g, (int, float)):
            probs.append("%s missing" % k)
        elif abs(g - v) > 1e-6 * abs(v):
            probs.append("%s %.10g, recomputed %.10g (rel %.2g)" % (k, g, v, abs(g - v) / abs(v)))
    ci = got.get("ppl_ratio_ci95")
    if not (isinstance(ci, list) and len(ci) == 2 and
            all(abs(x - y) <= 1e-6 * y for x, y in zip(ci, (rlo, rhi)))):
        probs.append("ppl_ratio_ci95 %r, recomputed [%.10g, %.10g]" % (ci, rlo, rhi))
    lay, want = got.get("layers"), np.sqrt(err2 / ref2)
    if not (isinstance(lay, list) and len(lay) == L and
            np.all(np.abs(np.array(lay, dtype=float) - want) <= 1e-6 * want)):
        probs.append("layers %r, recomputed %s" % (lay, np.array2string(want, precision=8)))
    print("   %s: %d tokens; recomputed ppl %.6f ref %.6f dPPL %+.5f +/- %.5f ratio %.6f "
          "[%.6f, %.6f] kld mean %.6g median %.6g p99 %.6g max %.6g top1 %.4f layers %s" % (
              cname, n, ppl, ref_ppl, mine["delta_ppl"], mine["delta_ppl_ci95"], ratio, rlo,
              rhi, mine["kld_mean"], mine["kld_median"], mine["kld_p99"], mine["kld_max"],
              mine["top1_agree"], np.array2string(want, precision=5)))
    check(cname, not probs, "; ".join(probs))
    # --one-by-one feeds the same hidden-state dump through the KV cache one token at a time
    ids = [1] + tok[1:24]
    _, h1, e1 = dynq_logits_hidden(mf, ids, L, D)
    _, h2, e2 = dynq_logits_hidden(mf, ids, L, D, ["--one-by-one"])
    cname = "logits_hidden_onebyone_f32[kjv,T=%d]" % len(ids)
    if h1 is None or h2 is None:
        fail(cname, e1 or e2)
    else:
        r = max(rel(h2[l], h1[l]) for l in range(L))
        check(cname, r <= 1e-5, "rel %.3g > 1e-5" % r)


# ----------------------------------------------------------------------------------------------
# bad input

def suite_badinput():
    d = os.path.join(TMP, "bad")

    def fresh():
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def expect_fail(name, args, want_rc=2, outdir=None):
        rc, out, err = run(args)
        lines = err.decode("utf-8", "replace").strip().splitlines()
        left = os.listdir(outdir) if outdir else []
        probs = []
        want = want_rc if isinstance(want_rc, tuple) else (want_rc,)
        if rc not in want:
            probs.append("exit %d, want %s" % (rc, "/".join(map(str, want))))
        if len(lines) != 1:
            probs.append("%d stderr lines %r" % (len(lines), lines[:3]))
        if left:
            probs.append("left files %s" % left)
        print("   %s: exit %d: %s" % (name, rc, lines[0] if lines else ""))
        check(name, not probs, "; ".join(probs))

    text = os.path.join(TMP, "text.bin")
    with open(text, "w") as f:
        f.write("this is a text file, not a model\n" * 100)
    trunc = os.path.join(TMP, "trunc.bin")
    with open(ST_BIN, "rb") as f:
        blob = f.read()
    with open(trunc, "wb") as f:
        f.write(blob[:len(blob) // 2])
    hdr_only = os.path.join(TMP, "hdr.bin")
    with open(hdr_only, "wb") as f:
        f.write(blob[:20])
    # headers whose sizes overflow 32/64-bit products, or are negative/zero
    import struct
    hostile = []
    for k, hdr in enumerate([(1 << 30, 1 << 30, 1 << 20, 1 << 10, 1 << 10, 1 << 30, 1 << 30),
                             (64, 172, -5, 8, 4, 512, 512), (64, 172, 5, 8, 3, 512, 512),
                             (64, 172, 5, 0, 0, 512, 512), (65, 172, 5, 8, 4, 512, 512)]):
        pth = os.path.join(TMP, "hostile%d.bin" % k)
        with open(pth, "wb") as f:
            f.write(struct.pack("<7i", *hdr) + blob[28:])
        hostile.append(pth)
    o = lambda: os.path.join(fresh(), "out.dynq")
    for k, pth in enumerate(hostile):
        expect_fail("bad_convert_hostile_header%d" % k, ["convert", pth, "--tokenizer", ST_TOK,
                                                         "-o", o()], outdir=d)
    expect_fail("bad_convert_missing_file", ["convert", TMP + "/nope.bin", "--tokenizer", ST_TOK,
                                             "-o", o()], outdir=d)
    expect_fail("bad_convert_text_file", ["convert", text, "--tokenizer", ST_TOK, "-o", o()],
                outdir=d)
    expect_fail("bad_convert_truncated_ckpt", ["convert", trunc, "--tokenizer", ST_TOK, "-o", o()],
                outdir=d)
    expect_fail("bad_convert_truncated_header", ["convert", hdr_only, "--tokenizer", ST_TOK,
                                                 "-o", o()], outdir=d)
    expect_fail("bad_convert_tokenizer_size", ["convert", KJV_BIN, "--tokenizer", ST_TOK,
                                               "-o", o()], outdir=d)
    expect_fail("bad_convert_missing_tokenizer_file", ["convert", ST_BIN, "--tokenizer",
                                                       TMP + "/nope-tok.bin", "-o", o()], outdir=d)
    expect_fail("bad_convert_int8_tokenizer_size", ["convert", ST_BIN, "--tokenizer", KJV_TOK,
                                                    "--type", "int8", "-o", o()], outdir=d)
    # Hugging Face directories: a missing shard, a truncated shard, an empty directory
    ensure_synth()
    hf = os.path.join(TMP, "hf-bad")
    shutil.rmtree(hf, ignore_errors=True)
    shutil.copytree(SYN_HF, hf)
    os.remove(os.path.join(hf, "model-00002-of-00002.safetensors"))
    expect_fail("bad_convert_hf_missing_shard", ["convert", hf, "-o", o()], outdir=d)
    shutil.copyfile(os.path.join(SYN_HF, "model-00002-of-00002.safetensors"),
                    os.path.join(hf, "model-00002-of-00002.safetensors"))
    with open(os.path.join(hf, "model-00002-of-00002.safetensors"), "r+b") as f:
        f.truncate(100000)
    expect_fail("bad_convert_hf_truncated_shard", ["convert", hf, "-o", o()], outdir=d)
    # a safetensors header length far beyond the file
    with open(os.path.join(hf, "model-00002-of-00002.safetensors"), "r+b") as f:
        f.write(struct.pack("<Q", (1 << 63) + 5))
    expect_fail("bad_convert_hf_huge_header_len", ["convert", hf, "-o", o()], outdir=d)
    emp = os.path.join(TMP, "hf-empty")
    os.makedirs(emp, exist_ok=True)
    expect_fail("bad_convert_hf_empty_dir", ["convert", emp, "-o", o()], outdir=d)
    # loading: missing, text, truncated .dynq
    good = convert(ST_BIN, "int8", ST_TOK)
    if good:
        with open(good, "rb") as f:
            g = f.read()
        td = os.path.join(TMP, "trunc.dynq")
        with open(td, "wb") as f:
            f.write(g[:len(g) - 4096])
        flip = os.path.join(TMP, "flip.dynq")
        gb = bytearray(g)
        gb[40] ^= 0x55          # inside the header: the checksum must catch it
        with open(flip, "wb") as f:
            f.write(gb)
        for nm, path in (("missing", TMP + "/nope.dynq"), ("text", text), ("truncated", td),
                         ("header_bitflip", flip)):
            expect_fail("bad_run_%s_model" % nm, ["run", "-m", path, "-p", "Once", "-n", "4",
                                                  "--quiet"])
        expect_fail("bad_logits_missing_model", ["logits", "-m", TMP + "/nope.dynq", "--ids", "1",
                                                 "-o", os.path.join(fresh(), "l.f32")], outdir=d)
        expect_fail("bad_ppl_text_as_model", ["perplexity", "-m", text, "-f", text, "--ctx", "64"])
        # context overflow: prompt + n beyond the context -> exit 3 before any output
        rc, out, err = run(["run", "-m", good, "-p", "Once upon a time", "-n", "600", "--temp",
                            "0", "--quiet"])
        check("bad_run_context_overflow", rc == 3 and out == b"" and
              len(err.decode().strip().splitlines()) == 1,
              "exit %d, stdout %d bytes, stderr %r" % (rc, len(out), err[:200]))
        rc, out, err = run(["run", "-m", good, "-c", "16", "-p", "Once upon a time", "-n", "14",
                            "--temp", "0", "--quiet"])
        check("bad_run_ctx_option_overflow", rc == 3 and out == b"",
              "exit %d, stdout %d bytes, stderr %r" % (rc, len(out), err[:200]))
        rc, out, err = run(["run", "-m", good, "-c", "16", "-p", "Once upon a time", "-n", "8",
                            "--temp", "0", "--quiet"])
        check("run_ctx_option_fits", rc == 0 and len(out) > 1, "exit %d: %s" % (rc, first_line(err)))
        # a token id outside the vocabulary
        expect_fail("bad_logits_id_out_of_range", ["logits", "-m", good, "--ids", "1 512", "-o",
                                                   os.path.join(fresh(), "l.f32")],
                    want_rc=(1, 2), outdir=d)


def snapshot_dynq():
    """Runs a private copy of the binary: other engineers rebuild ./dynq in the same tree while
    the suite runs, and a half-linked or replaced file must not turn into false failures."""
    global DYNQ
    import time
    dst = os.path.join(TMP, "dynq-under-test")
    for _ in range(20):
        try:
            shutil.copy2(DYNQ, dst)
            if subprocess.run([dst, "help"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0:
                DYNQ = dst
                return
        except OSError:
            pass
        time.sleep(0.5)
    # fall back to the original path; failures will say what went wrong


def main(argv):
    suites = dict(golden=suite_golden, logits=suite_logits, logits_text=suite_logits_text, int8_loose=suite_int8_loose, prefill=suite_prefill,
                  int8top1=suite_int8top1, ppl=suite_ppl, badinput=suite_badinput)
    if len(argv) != 1 or argv[0] not in suites:
        print("usage: e2e.py %s" % "|".join(suites), file=sys.stderr)
        return 1
    if not os.path.isdir(SH + "/models"):
        skip("e2e_%s" % argv[0], "DYNQ_SHARED=%s has no models/" % SH)
        return 0
    if not os.access(DYNQ, os.X_OK):
        fail("e2e_%s" % argv[0], "%s is missing or not executable (run make first)" % DYNQ)
        return 0
    snapshot_dynq()
    suites[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
