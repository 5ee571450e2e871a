#!/usr/bin/python3
# tests/tok_pretok_ref.py: reference splits for the byte-level BPE pre-tokenizers, from the
# families' published regexes run by the Python `regex` module (Debian python3-regex).
#   tok_pretok_ref.py items OUT [N]        -> N random strings, N/2 digit-heavy ones + data lines,
#                                             NUL-separated
#   tok_pretok_ref.py split FAMILY ITEMS   -> per item, the UTF-8 byte lengths of the pieces
import os
import random
import sys

PATTERNS = {
    'gpt2': r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    'llama3': r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
    'qwen2': r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""",
}

# Families whose pre-tokenizer is a sequence of isolated splits (each regex splits every piece
# the previous one produced into matches and the gaps between them). DeepSeek's long list of
# cased letters is written here as \p{Lu}\p{Ll}\p{Lt} plus U+00B5, as dynq implements it.
SEQUENCES = {
    'falcon': [r"[\p{P}\$\+<=>\^~\|`]+",
               r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
               r"[0-9][0-9][0-9]"],
    # SmolLM: Hugging Face's Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)],
    # i.e. every \p{N} character isolated, then the GPT-2 regex (with its final \s+)
    'smollm': [r"\p{N}", PATTERNS['gpt2']],
    'deepseek-llm': [r"[\r\n]",
                     r"\s?[\p{Lu}\p{Ll}\p{Lt}\u00b5]+",
                     r"\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
                     r"\s+$",
                     r"[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
                     r"\p{N}+"],
}


def isolated_split(pieces, pat):
    out = []
    for frag in pieces:
        pos = 0
        for m in pat.finditer(frag):
            if m.start() > pos:
                out.append(frag[pos:m.start()])
            out.append(m.group())
            pos = m.end()
        if pos < len(frag):
            out.append(frag[pos:])
    return out


def random_strings(n, seed=99):
    rng = random.Random(seed)
    alphabet = list("abcXYZ019 '\t\n\r.,!?-_\"()[]") + ["'s", "'LL", "'Re", "'ve", "  ", "\n\n", " \n "]
    pools = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x400, 0x4FF), (0x660, 0x669), (0x4E00, 0x4E80),
             (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x3000, 0x3010), (0xFF01, 0xFF5E), (0x01, 0x1F)]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.5:
                s.append(rng.choice(alphabet))
            else:
                lo, hi = rng.choice(pools)
                c = rng.randint(lo, hi)
                s.append(chr(c if c else 0x20))
        out.append(''.join(s))
    return out


def digit_strings(n, seed=7):
    """Strings full of numbers: ASCII digit runs with and without a space or sign before them,
    digits of other scripts (Nd), letter numbers (Nl: Roman numerals) and other numbers (No:
    superscripts, fractions, circled), mixed with letters, punctuation and whitespace."""
    rng = random.Random(seed)
    numeric = [(0x30, 0x39), (0x660, 0x669), (0x966, 0x96F), (0xFF10, 0xFF19), (0x1D7CE, 0x1D7FF),
               (0x2160, 0x2188), (0x2460, 0x249B), (0xB2, 0xB3), (0xBC, 0xBE), (0x2070, 0x2079), (0x3007, 0x3007)]
    other = list("aZé  \t\n.,-+'$%/:") + ["'s", "  ", " \n", "x", "Ω", "中", "🦙"]
    out = []
    for _ in range(n):
        s = []
        for _ in range(rng.randint(1, 24)):
            r = rng.random()
            if r < 0.35:
                s.append(''.join(chr(rng.randint(0x30, 0x39)) for _ in range(rng.randint(1, 9))))
            elif r < 0.6:
                lo, hi = rng.choice(numeric)
                s.append(chr(rng.randint(lo, hi)))
            else:
                s.append(rng.choice(other))
        out.append(''.join(s))
    return out


def main():
    if sys.argv[1] == 'items':
        shared = os.environ.get('DYNQ_SHARED', '../shared')
        n = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
        items = random_strings(n) + digit_strings(n // 2)
        with open(os.path.join(shared, 'data', 'wikitext2-test.txt'), encoding='utf-8') as f:
            items.extend(f.read().split('\n')[:1500])
        with open(sys.argv[2], 'wb') as f:
            for it in items:
                f.write(it.encode('utf-8') + b'\0')
    elif sys.argv[1] == 'split':
        import regex
        fam = sys.argv[2]
        with open(sys.argv[3], 'rb') as f:
            items = f.read().split(b'\0')[:-1]
        out = sys.stdout
        for it in items:
            if fam in SEQUENCES:
                parts = [it.decode('utf-8')] if it else []
                for p in SEQUENCES[fam]:
                    parts = isolated_split(parts, regex.compile(p))
            else:
                parts = regex.compile(PATTERNS[fam]).findall(it.decode('utf-8'))
            assert ''.join(parts) == it.decode('utf-8')
            out.write(' '.join(str(len(p.encode('utf-8'))) for p in parts) + '\n')
    else:
        sys.exit('usage: tok_pretok_ref.py items OUT [N] | split FAMILY ITEMS')


main()
