#!/usr/bin/env python3
"""Build the demo model's training corpus from CPython's standard library sources.

Usage (from the repository root):

    python scripts/train/corpus.py [--src /usr/lib/python3.11] [--work build/demo-train]
        [--pypi build/demo-train/pypi]

Takes every ``*.py`` file under ``--src`` (the standard library shipped with the Debian
``python3.11`` interpreter), skipping test suites (``test/``, ``tests/``, ``idle_test/``),
``site-packages`` / ``dist-packages`` and ``__pycache__``. Files that are not UTF-8 are skipped;
``\\r\\n`` becomes ``\\n``; files over 400 KB are skipped (generated tables).

Split: a file is held out when the first 8 hex digits of SHA-256 of its path relative to
``--src``, as an integer, modulo 100 is below ``--heldout-pct`` (default 5). Deterministic,
file level (no window of a held-out file is ever trained on).

Writes ``<work>/corpus.json`` (``{"train": [{"path", "text"}], "heldout": [...]}``) and
``<work>/spm_input.txt`` (the non-empty lines of the training files, the tokenizer's input).

With ``--pypi DIR`` (a directory written by ``pypi_corpus.py``), the files of
``DIR/texts.jsonl`` are appended after the standard library's to the split that
``DIR/manifest.jsonl`` gives each (paths ``pypi/{name}-{version}/...``), so ``corpus.json`` and
``spm_input.txt`` include them. Without it the output is unchanged.

Licence of the data: the Python Software Foundation License Version 2 (CPython's
``LICENSE`` file, shipped as ``/usr/lib/python3.11/LICENSE.txt``). With ``--pypi``, each added
file's package, version, SPDX licence (MIT, BSD-2-Clause, BSD-3-Clause, Apache-2.0 or PSF-2.0)
and sdist SHA-256 are in ``DIR/manifest.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}
MAX_BYTES = 400_000


def heldout(rel: str, pct: int) -> bool:
    return int(hashlib.sha256(rel.encode()).hexdigest()[:8], 16) % 100 < pct


def collect(src: Path) -> list[tuple[str, str]]:
    out = []
    for p in sorted(src.rglob("*.py")):
        rel = p.relative_to(src).as_posix()
        if any(part in SKIP_DIRS for part in p.relative_to(src).parts[:-1]):
            continue
        if p.is_symlink() or not p.is_file() or p.stat().st_size > MAX_BYTES:
            continue
        try:
            text = p.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            continue
        text = text.replace("\r\n", "\n")
        if text.strip():
            out.append((rel, text))
    return out


def load_pypi(d: Path) -> tuple[list[dict], list[dict]]:
    """The (train, held-out) files of a pypi_corpus.py directory, in its manifest's order."""
    texts = {}
    with open(d / "texts.jsonl", encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            texts[t["path"]] = t["text"]
    train, held = [], []
    with open(d / "manifest.jsonl", encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            text = texts[m["path"]]
            if hashlib.sha256(text.encode()).hexdigest() != m["sha256"]:
                raise SystemExit(f"{d}: the text of {m['path']} does not match its manifest sha256")
            (held if m["split"] == "heldout" else train).append({"path": m["path"], "text": text})
    return train, held


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", type=Path, default=Path("/usr/lib/python3.11"))
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--heldout-pct", type=int, default=5)
    ap.add_argument("--pypi", type=Path, default=None,
                    help="a directory written by pypi_corpus.py: its files join the split its manifest gives")
    a = ap.parse_args(argv)
    files = collect(a.src)
    train = [{"path": r, "text": t} for r, t in files if not heldout(r, a.heldout_pct)]
    held = [{"path": r, "text": t} for r, t in files if heldout(r, a.heldout_pct)]
    if a.pypi is not None:
        ptrain, pheld = load_pypi(a.pypi)
        train += ptrain
        held += pheld
    a.work.mkdir(parents=True, exist_ok=True)
    (a.work / "corpus.json").write_text(json.dumps({"src": str(a.src), "train": train, "heldout": held}))
    with open(a.work / "spm_input.txt", "w", encoding="utf-8") as f:
        for d in train:
            for line in d["text"].split("\n"):
                if line.strip():
                    f.write(line + "\n")
    size = lambda ds: sum(len(d["text"].encode()) for d in ds)
    print(f"train: {len(train)} files, {size(train):,} bytes; held-out: {len(held)} files, {size(held):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
