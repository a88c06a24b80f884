#!/usr/bin/env python3
"""Split a Kaldi scp/list into N nearly equal parts: split_scp.py IN OUT1 ... OUTN."""

import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: split_scp.py IN OUT1 [OUT2 ...]")
    lines = open(sys.argv[1]).read().splitlines()
    outs = sys.argv[2:]
    if len(lines) < len(outs):
        sys.exit(f"{sys.argv[1]}: {len(lines)} lines cannot fill {len(outs)} parts")
    for k, out in enumerate(outs):
        start, end = k * len(lines) // len(outs), (k + 1) * len(lines) // len(outs)
        with open(out, "w") as f:
            f.writelines(line + "\n" for line in lines[start:end])


if __name__ == "__main__":
    main()
