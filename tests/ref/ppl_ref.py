#!/usr/bin/python3
"""ppl_ref.py: independent NumPy perplexity, the oracle for `dynq perplexity`.

Tokenization (both methods): the whole file is read as UTF-8 and encoded ONCE with SentencePiece
(add_dummy_prefix as the model says), with BOS (id 1) prepended:  tok = [BOS] + encode(text).
N = len(tok).

Method "chunks" (llama.cpp llama-perplexity):
  n_chunks = N // ctx (limited by --chunks); error if n_chunks == 0 (text shorter than one chunk).
  (llama.cpp itself refuses N < 2*ctx; dynq only needs one whole chunk.)
  Chunk c holds tok[c*ctx : (c+1)*ctx] with its FIRST token replaced by BOS, run from an empty
  cache at positions 0..ctx-1. Scored: the logits at positions j = ctx/2 .. ctx-2 (ctx/2 = integer
  division) predict the chunk's tokens j+1 = ctx/2+1 .. ctx-1; i.e. ctx - 1 - ctx/2 tokens per chunk.

Method "sliding" (Hugging Face "perplexity of fixed-length models", stride S, 1 <= S <= ctx;
  dynq's default S = ctx/2 is not relied on: the tests always pass --stride):
  windows k = 0, 1, 2, ...: begin = k*S, end = min(begin + ctx, N); prev_end = end of window k-1
  (0 for k = 0). Window k runs tok[begin:end] AS IS (no BOS substitution; only window 0 starts
  with the file's BOS) from an empty cache at positions 0..end-begin-1, and scores every token t
  with max(prev_end, begin+1) <= t < end, predicted by the logits at position t-1-begin.
  Stop after the window with end == N (or after --chunks windows). Over the whole file every
  token except the leading BOS is scored exactly once, each with at least min(t, ctx-S) tokens
  of history and at most ctx-1. Error if N < 2 (nothing to score).

  PPL = exp(sum NLL / n_scored), NLL = -log softmax(logits)[target] (natural log).
  ppl_stderr (llama.cpp's formula): with m = mean NLL, v = mean(NLL^2) - m^2,
  stderr = exp(m) * sqrt(v / (n - 1)).

Output (--json): {"ppl", "ppl_stderr", "n_tokens" (scored), "ctx", "method", "nll_sum",
  "n_chunks", "n_file_tokens"}.

The forward pass is llama_ref.forward (float64 by default; --f32 for float32, about 2x faster).
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref  # noqa: E402


def tokenize_file(sp, path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return [1] + sp.encode(text)


def log_softmax_at(logits, targets):
    """logits (n, V) float, targets (n,) -> NLL (n,) float64."""
    l = logits.astype(np.float64)
    mx = l.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(l - mx).sum(axis=-1)) + mx[:, 0]
    return lse - l[np.arange(len(targets)), targets]


def windows(n_tok, ctx, method, stride, max_chunks):
    """Yields (begin, end, first_scored_abs): tokens first..end-1 are scored."""
    out = []
    if method == "chunks":
        n = n_tok // ctx
        if max_chunks:
            n = min(n, max_chunks)
        for c in range(n):
            out.append((c * ctx, (c + 1) * ctx, c * ctx + ctx // 2 + 1))
    else:
        prev_end, begin = 0, 0
        while True:
            end = min(begin + ctx, n_tok)
            out.append((begin, end, max(prev_end, begin + 1)))
            prev_end = end
            if end == n_tok or (max_chunks and len(out) >= max_chunks):
                break
            begin += stride
    return out


def perplexity(m, tok, ctx, method="chunks", stride=None, max_chunks=0, batch=8):
    tok = np.asarray(tok, dtype=np.int64)
    if ctx > m.seq_len:
        raise ValueError("ctx %d exceeds the model context %d" % (ctx, m.seq_len))
    if method == "sliding":
        stride = stride or ctx // 2
        if not 1 <= stride <= ctx:
            raise ValueError("stride must be in 1..ctx")
        if len(tok) < 2:
            raise ValueError("nothing to score")
    elif len(tok) < ctx:
        raise ValueError("text has %d tokens, shorter than one chunk of %d" % (len(tok), ctx))
    wins = windows(len(tok), ctx, method, stride, max_chunks)
    nll = []
    # batch windows of equal length (all but maybe the last sliding one)
    i = 0
    while i < len(wins):
        j = i
        while j < len(wins) and j - i < batch and wins[j][1] - wins[j][0] == wins[i][1] - wins[i][0]:
            j += 1
        grp = wins[i:j]
        ids = np.stack([tok[b:e] for b, e, _ in grp])
        if method == "chunks":
            ids[:, 0] = 1
        logits = llama_ref.forward(m, ids)
        for (b, e, first), lg in zip(grp, logits):
            pos = np.arange(first - 1 - b, e - 1 - b)       # window positions whose logits score
            nll.append(log_softmax_at(lg[pos], tok[b + pos + 1]))
        i = j
    nll = np.concatenate(nll)
    n = len(nll)
    mean = float(nll.mean())
    var = float((nll * nll).mean() - mean * mean)
    stderr = math.exp(mean) * math.sqrt(var / (n - 1)) if n > 1 and var > 0 else 0.0
    return dict(ppl=math.exp(mean), ppl_stderr=stderr, n_tokens=n, ctx=ctx, method=method,
                nll_sum=float(nll.sum()), n_chunks=len(wins), n_file_tokens=len(tok),
                **({"stride": stride} if method == "sliding" else {}))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="reference perplexity (see module docstring)")
    ap.add_argument("-m", "--model", required=True, help="llama2.c .bin or Hugging Face dir")
    ap.add_argument("--sp", required=True, help="SentencePiece .model")
    ap.add_argument("-f", "--file", required=True)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--chunks", type=int, default=0)
    ap.add_argument("--method", choices=["chunks", "sliding"], default="chunks")
    ap.add_argument("--stride", type=int, default=0)
    ap.add_argument("--f32", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    m = llama_ref.load(a.model, np.float32 if a.f32 else np.float64)
    tok = tokenize_file(llama_ref.sp_load(a.sp), a.file)
    r = perplexity(m, tok, a.ctx, a.method, a.stride or None, a.chunks)
    if a.json:
        print(json.dumps(r))
    else:
        print("ppl %.6f +/- %.6f over %d tokens (%s, ctx %d, %d windows, nll_sum %.9f)" % (
            r["ppl"], r["ppl_stderr"], r["n_tokens"], a.method, a.ctx, r["n_chunks"], r["nll_sum"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
