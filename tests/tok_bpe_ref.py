#!/usr/bin/python3
# tests/tok_bpe_ref.py: a small, independent byte-level BPE (Hugging Face semantics) in Python:
# the tokenizer.json's pre-tokenizer steps in order, each cutting every piece into the matches
# of its regex and the gaps between them (Split: its regex; Digits: \p{N} one by one, or runs
# of them; ByteLevel with use_regex: GPT-2's), run by the `regex` module; GPT-2's byte map;
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


def isolated_split(pieces, pat):
    out = []
    for frag in pieces:
        pos = 0
        for m in pat.finditer(frag):
            if m.start() > pos:
                out.append(frag[pos:m.start()])
            if m.end() > m.start():
                out.append(m.group())
            pos = m.end()
        if pos < len(frag):
            out.append(frag[pos:])
    return out


def split_steps(pre):
    """The regexes of the pre-tokenizer's steps, in order."""
    steps = pre.get('pretokenizers', []) if pre.get('type') == 'Sequence' else [pre]
    pats = []
    for p in steps:
        if p.get('type') == 'Split':
            pats.append(p['pattern']['Regex'])
        elif p.get('type') == 'Digits':
            pats.append(r'\p{N}' if p.get('individual_digits') else r'\p{N}+')
        elif p.get('type') == 'ByteLevel' and p.get('use_regex', True):
            pats.append(GPT2)
    return [regex.compile(p) for p in pats]


def main():
    tj = json.load(open(sys.argv[1], encoding='utf-8'))
    model = tj['model']
    vocab = model['vocab']
    ranks = {}
    for r, m in enumerate(model['merges']):
        a, b = m.split(' ', 1) if isinstance(m, str) else m
        ranks.setdefault((a, b), r)
    pats = split_steps(tj.get('pre_tokenizer') or {})
    ignore = model.get('ignore_merges', False)
    bm = byte_map()
    items = open(sys.argv[2], 'rb').read().split(b'\0')[:-1]
    out = []
    for it in items:
        ids = []
        words = [it.decode('utf-8')] if it else []
        for pat in pats:
            words = isolated_split(words, pat)
        for word in words:
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
