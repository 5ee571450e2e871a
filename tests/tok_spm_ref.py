#!/usr/bin/python3
# tests/tok_spm_ref.py: writes the test items for the SentencePiece comparison and the ids
# python3-sentencepiece gives them. Items: every line of every text in $DYNQ_SHARED/data/,
# then N random Unicode strings (seeded). Usage:
#   tok_spm_ref.py items OUT_ITEMS [N]          -> one item per line (UTF-8, no '\n' inside)
#   tok_spm_ref.py ids MODEL ITEMS OUT_IDS      -> one line of space-separated ids per item
#   tok_spm_ref.py metaspace-json IN OUT        -> IN (a tokenizer.json with a Prepend/Replace
#        normalizer) rewritten in the newer style: no normalizer, Metaspace pre-tokenizer and decoder
#   tok_spm_ref.py metaspace-ids MODEL ITEMS OUT_IDS -> the ids Hugging Face gives with that
#        tokenizer.json. Its Metaspace prepends "▁" only to text that does not start with one
#        (after spaces become "▁"), where SentencePiece always prepends: for an item that starts
#        with a space that is SentencePiece's ids of the item without that space.
import json
import os
import random
import sys


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    pools = [
        (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E),   # ASCII, most of the time
        (0x01, 0x1F),                               # control characters (no '\n': it separates items)
        (0xA0, 0x24F),                              # Latin-1 + Latin Extended
        (0x370, 0x3FF), (0x400, 0x4FF),             # Greek, Cyrillic
        (0x4E00, 0x9FFF),                           # CJK
        (0x3040, 0x30FF),                           # kana
        (0x1F300, 0x1FAFF),                         # emoji
        (0x10000, 0x10FFFF),                        # anything astral
        (0x2000, 0x206F),                           # general punctuation, odd spaces
    ]
    out = []
    for i in range(n):
        k = rng.randint(0, 40)
        chars = []
        for _ in range(k):
            r = rng.random()
            if r < 0.08:
                chars.append(' ' * rng.randint(1, 20))   # runs of spaces
                continue
            lo, hi = rng.choice(pools)
            c = rng.randint(lo, hi)
            if 0xD800 <= c <= 0xDFFF or c in (0x0A, 0x0D):
                c = 0x41
            chars.append(chr(c))
        out.append(''.join(chars))
    return out


def main():
    if sys.argv[1] == 'items':
        shared = os.environ.get('DYNQ_SHARED', os.path.join(os.path.dirname(__file__), '..', '..', 'shared'))
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
        items = []
        d = os.path.join(shared, 'data')
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), encoding='utf-8') as f:
                items.extend(f.read().split('\n'))
        items.extend(random_strings(n))
        with open(sys.argv[2], 'w', encoding='utf-8', newline='') as f:
            f.write('\n'.join(items))
            f.write('\n')
    elif sys.argv[1] == 'metaspace-json':
        with open(sys.argv[2], encoding='utf-8') as f:
            tj = json.load(f)
        ms = {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'first', 'split': False}
        tj['normalizer'] = None
        tj['pre_tokenizer'] = ms
        tj['decoder'] = dict(ms)
        with open(sys.argv[3], 'w', encoding='utf-8') as f:
            json.dump(tj, f, ensure_ascii=False)
    elif sys.argv[1] in ('ids', 'metaspace-ids'):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
        with open(sys.argv[3], encoding='utf-8', newline='') as f:
            items = f.read().split('\n')[:-1]
        meta = sys.argv[1] == 'metaspace-ids'
        texts = [it[1:] if meta and it.startswith(' ') else it for it in items]
        with open(sys.argv[4], 'w') as f:
            for it, ids in zip(items, sp.encode(texts)):
                if meta and it == ' ':  # "▁" alone: SentencePiece adds nothing to the empty rest
                    ids = [sp.piece_to_id('\u2581')]
                f.write(' '.join(map(str, ids)) + '\n')
    elif sys.argv[1] == 'special-items':
        # N lines of ITEMS with 1 to 3 of "<s>" / "</s>" put in at random places (start, end,
        # next to each other, next to spaces).
        import random
        rng = random.Random(4321)
        with open(sys.argv[2], encoding='utf-8', newline='') as f:
            items = [it for it in f.read().split('\n')[:-1] if '<' not in it]
        out = []
        for it in rng.sample(items, min(int(sys.argv[4]), len(items))):
            for _ in range(rng.randint(1, 3)):
                at = rng.choice([0, len(it), rng.randint(0, len(it))])
                it = it[:at] + rng.choice(['<s>', '</s>', ' </s>', '</s> ', '<s><s>']) + it[at:]
            out.append(it)
        with open(sys.argv[3], 'w', encoding='utf-8', newline='') as f:
            f.write('\n'.join(out) + '\n')
    elif sys.argv[1] == 'special-ids':
        # llama.cpp's rule for SentencePiece vocabularies with special tokens parsed (and Hugging
        # Face's with a Prepend normalizer, applied to each piece of text between added tokens):
        # each text fragment between special tokens is encoded on its own, so each one gets the
        # dummy-prefix space; the special tokens are their own ids.
        import re
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
        with open(sys.argv[3], encoding='utf-8', newline='') as f:
            items = f.read().split('\n')[:-1]
        with open(sys.argv[4], 'w') as f:
            for it in items:
                ids = []
                for frag in re.split(r'(</s>|<s>)', it):
                    if frag in ('<s>', '</s>'):
                        ids.append(sp.piece_to_id(frag))
                    elif frag:
                        ids.extend(sp.encode(frag))
                f.write(' '.join(map(str, ids)) + '\n')
    else:
        sys.exit('usage: tok_spm_ref.py items OUT [N] | ids MODEL ITEMS OUT | metaspace-json IN OUT | '
                 'metaspace-ids MODEL ITEMS OUT | special-items ITEMS OUT N | special-ids MODEL ITEMS OUT')


main()
