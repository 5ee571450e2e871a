#!/usr/bin/python3
# tests/tok_bpe_ref.py: a small, independent byte-level BPE (Hugging Face semantics) in Python:
# the tokenizer.json's Split regex (or GPT-2's) run by the `regex` module, GPT-2's byte map,
# then repeatedly the lowest-rank adjacent pair, leftmost first; with ignore_merges a
# pre-token that is itself in the vocabulary is taken whole.
#   tok_bpe_ref.py TOKENIZER_JSON ITEMS   (ITEMS: NUL-separated) -> ids, one line per item
import json
import sys

import regex

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def byte_map():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    tj = json.load(open(sys.argv[1], encoding='utf-8'))
    model = tj['model']
    vocab = model['vocab']
    ranks = {}
    for r, m in enumerate(model['merges']):
        a, b = m.split(' ', 1) if isinstance(m, str) else m
        ranks.setdefault((a, b), r)
    pat = GPT2
    pre = tj.get('pre_tokenizer') or {}
    for p in pre.get('pretokenizers', []):
        if p.get('type') == 'Split':
            pat = p['pattern']['Regex']
    pat = regex.compile(pat)
    ignore = model.get('ignore_merges', False)
    bm = byte_map()
    items = open(sys.argv[2], 'rb').read().split(b'\0')[:-1]
    out = []
    for it in items:
        ids = []
        for word in pat.findall(it.decode('utf-8')):
            w = ''.join(bm[b] for b in word.encode('utf-8'))
            if ignore and w in vocab:
                ids.append(vocab[w])
                continue
            syms = list(w)
            while len(syms) > 1:
                best = None
                for i in range(len(syms) - 1):
                    r = ranks.get((syms[i], syms[i + 1]))
                    if r is not None and (best is None or r < best[0]):
                        best = (r, i)
                if best is None:
                    break
                i = best[1]
                syms[i:i + 2] = [syms[i] + syms[i + 1]]
            ids.extend(vocab[s] for s in syms)
        out.append(' '.join(map(str, ids)))
    sys.stdout.write('\n'.join(out) + '\n')


main()
