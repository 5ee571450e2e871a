#!/usr/bin/python3
"""validate_ref.py: checks the NumPy reference itself against the shared golden data, so that the
oracle used by the dynq tests is known to be right. Prints ok/FAIL/skip lines.

  - stories260K greedy 200 steps from BOS == golden/stories260K-t0-n200.txt byte for byte
  - kjv.bin and kjv-hf greedy 32 tokens == every line of golden/kjv-greedy.tsv
  - kjv.bin (interleaved RoPE) and kjv-hf (rotate-half RoPE, permuted rows) give the same logits
    (max|a-b|/max|b| < 1e-10); kjv-hf-bf16 has the same argmax on a 64-token prompt
  - --full: chunked perplexity of kjv-eval.txt == 12.8543 (ctx 256) and 12.8855 (ctx 128), the
    figures in models/kjv/README.md (about 5 minutes with the reference BLAS: off by default)
Usage: validate_ref.py [SHARED_DIR] [--full]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as R  # noqa: E402
import ppl_ref  # noqa: E402


def main(argv):
    full = "--full" in argv
    argv = [a for a in argv if a != "--full"]
    sh = argv[0] if argv else os.environ.get("DYNQ_SHARED", "../shared")
    if not os.path.isdir(sh):
        print("skip ref_validate: shared dir %s absent" % sh)
        return 0
    fails = 0

    def check(name, cond, why=""):
        nonlocal fails
        if cond:
            print("ok %s" % name)
        else:
            fails += 1
            print("FAIL %s: %s" % (name, why))

    st = R.load(sh + "/models/stories260K/stories260K.bin")
    sp = R.sp_load(sh + "/models/stories260K/tok512.model")
    got = R.render(sp, R.greedy(st, [1], 200), after_bos=True)
    want = open(sh + "/golden/stories260K-t0-n200.txt", "rb").read()
    check("ref_golden_stories260K", got == want, "got %r" % got[:80])

    kb = R.load(sh + "/models/kjv/kjv.bin")
    kh = R.load(sh + "/models/kjv/kjv-hf")
    kbf = R.load(sh + "/models/kjv/kjv-hf-bf16")
    sp = R.sp_load(sh + "/models/kjv/kjv1k.model")
    lines = open(sh + "/golden/kjv-greedy.tsv", encoding="utf-8").read().splitlines()
    for name, m in (("kjv.bin", kb), ("kjv-hf", kh)):
        bad = []
        for ln in lines:
            prompt, cont = ln.split("\t")
            cont = cont.replace("\\n", "\n").encode()
            got = R.render(sp, R.greedy(m, [1] + sp.encode(prompt), 32), after_bos=False)
            if got != cont:
                bad.append("%r: got %r" % (prompt, got))
        check("ref_golden_kjv_greedy[%s]" % name, not bad, "; ".join(bad))

    rng = np.random.default_rng(1)
    ids = [1] + list(rng.integers(3, 1024, 63))
    a, b, c = R.forward(kb, ids), R.forward(kh, ids), R.forward(kbf, ids)
    rel = np.abs(a - b).max() / np.abs(a).max()
    check("ref_kjv_bin_vs_hf", rel < 1e-10, "rel %.3g" % rel)
    check("ref_kjv_bf16_argmax", (a.argmax(1) == c.argmax(1)).all(),
          "argmax differs at %s" % np.nonzero(a.argmax(1) != c.argmax(1))[0])

    if full:
        tok = ppl_ref.tokenize_file(sp, sh + "/data/kjv-eval.txt")
        for ctx, want in ((256, 12.8543), (128, 12.8855)):
            r = ppl_ref.perplexity(kb, tok, ctx)
            check("ref_kjv_ppl_ctx%d" % ctx, abs(r["ppl"] - want) < 5e-5,
                  "ppl %.6f want %.4f" % (r["ppl"], want))
            print("   kjv-eval ctx %d: ppl %.6f over %d tokens" % (ctx, r["ppl"], r["n_tokens"]))
    else:
        print("   (ref_kjv_ppl runs with --full: slow; last run 12.854306 @256, 12.885503 @128)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
