#!/usr/bin/env python3
"""Print what the demo model was trained on, by licence, as the README's licence section lists it.

Usage (from the repository root, after pypi_corpus.py):

    python3 scripts/train/licences.py [--manifest build/demo-train/pypi/manifest.jsonl]

Reads pypi_corpus.py's manifest (one line per kept file: package, version, SPDX licence, split)
and prints one Markdown paragraph per licence: the packages (name and version) with their
training files and bytes. Held-out files are not counted: the weights never saw them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=Path("build/demo-train/pypi/manifest.jsonl"))
    a = ap.parse_args(argv)
    # licence -> (package, version) -> [files, bytes]
    by: dict[str, dict[tuple[str, str], list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for line in a.manifest.read_text(encoding="utf-8").splitlines():
        e = json.loads(line)
        if e["split"] != "train":
            continue
        s = by[e["license"]][(e["package"], e["version"])]
        s[0] += 1
        s[1] += e["bytes"]
    # licence -> (packages, files, bytes)
    sums = {lic: (len(p), sum(f for f, _ in p.values()), sum(b for _, b in p.values()))
            for lic, p in by.items()}
    n_pkgs, files, size = (sum(t[i] for t in sums.values()) for i in range(3))
    print(f"{n_pkgs} PyPI packages, {files:,} training files, {size:,} bytes:\n")
    for lic in sorted(by, key=lambda k: (-sums[k][0], k)):
        n, f, b = sums[lic]
        names = ", ".join(f"{p} {v}" for (p, v) in sorted(by[lic], key=lambda k: k[0].lower()))
        print(f"- **{lic}** ({n} packages, {f:,} files, {b / 1e6:.1f} MB): {names}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
