#!/usr/bin/python3
# tests/tok_nfc_ref.py: random strings rich in canonical (de)compositions, and their NFC by
# Python's unicodedata (an independent implementation).
#   tok_nfc_ref.py items OUT [N]   -> N NUL-separated strings
#   tok_nfc_ref.py nfc ITEMS       -> NFC of each, one per line
import random
import sys
import unicodedata


def main():
    if sys.argv[1] == 'items':
        rng = random.Random(7)
        pools = [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x17F), (0x1E00, 0x1EFF), (0x300, 0x36F), (0x300, 0x36F),
                 (0x1100, 0x11FF), (0xAC00, 0xD7A3), (0x370, 0x3FF), (0x1F00, 0x1FFF), (0x900, 0x97F),
                 (0xFB1D, 0xFB4F), (0x3040, 0x30FF), (0x2126, 0x212B), (0x0591, 0x05C7), (0x1D15E, 0x1D164)]
        out = []
        for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3000):
            s = []
            for _ in range(rng.randint(1, 25)):
                lo, hi = rng.choice(pools)
                c = chr(rng.randint(lo, hi))
                if unicodedata.category(c) != 'Cn':  # assigned in Python's Unicode version
                    s.append(c)
            out.append(''.join(s))
        with open(sys.argv[2], 'wb') as f:
            for s in out:
                f.write(s.encode('utf-8') + b'\0')
    else:
        with open(sys.argv[2], 'rb') as f:
            items = f.read().split(b'\0')[:-1]
        for it in items:
            sys.stdout.write(unicodedata.normalize('NFC', it.decode('utf-8')) + '\n')


main()
