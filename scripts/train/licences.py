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
    total_files = sum(s[0] for lic in by.values() for s in lic.values())
    total_bytes = sum(s[1] for lic in by.values() for s in lic.values())
    n_pkgs = sum(len(lic) for lic in by.values())
    print(f"{n_pkgs} PyPI packages, {total_files:,} training files, {total_bytes:,} bytes:\n")
    for lic in sorted(by, key=lambda k: (-len(by[k]), k)):
        pkgs = by[lic]
        files = sum(s[0] for s in pkgs.values())
        size = sum(s[1] for s in pkgs.values())
        names = ", ".join(f"{p} {v}" for (p, v) in sorted(pkgs, key=lambda k: k[0].lower()))
        print(f"- **{lic}** ({len(pkgs)} packages, {files:,} files, {size / 1e6:.1f} MB): {names}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
