#!/usr/bin/env python3
"""Write a dequantization manifest for GGUF files, using gguf-py as the reference.

For every tensor of every given GGUF file, records its ggml type, element count
and the sha256 of gguf-py's dequantized values (``gguf.quants.dequantize``) as
little-endian float32 bytes, in file order. ``tests/quant_llamacpp.rs`` checks
the crate's dequantizer against every ``tests/fixtures/**/dequant-manifest.json``.

    python scripts/dequant_manifest.py -o tests/fixtures/models/dequant-manifest.json \\
        tests/fixtures/models/*.gguf

Manifest form (file keys are paths relative to the manifest's directory):

    {"files": {"<file>.gguf": {"<tensor>": {"type": "Q4_K", "n": 4096,
                                             "sha256_f32": "<hex>"}}}}

Tensors of a type the crate cannot dequantize are an error, unless
``--skip-unsupported`` is given (they are then left out and listed on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

# The types the crate's `quant` module dequantizes (`GgmlType` in ggml_type.rs).
SUPPORTED = {
    GGMLQuantizationType.F32,
    GGMLQuantizationType.F16,
    GGMLQuantizationType.BF16,
    GGMLQuantizationType.Q4_0,
    GGMLQuantizationType.Q4_1,
    GGMLQuantizationType.Q5_0,
    GGMLQuantizationType.Q5_1,
    GGMLQuantizationType.Q8_0,
    GGMLQuantizationType.Q4_K,
    GGMLQuantizationType.Q5_K,
    GGMLQuantizationType.Q6_K,
}


def f32_sha256(values: np.ndarray) -> str:
    """sha256 of the values as little-endian float32, in C order."""
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f4").tobytes()).hexdigest()


def tensor_entries(path: Path, skip_unsupported: bool = False) -> dict[str, dict]:
    """The manifest entries of one GGUF file, by tensor name."""
    reader = GGUFReader(path)
    entries: dict[str, dict] = {}
    for t in reader.tensors:
        qtype = GGMLQuantizationType(t.tensor_type)
        if qtype not in SUPPORTED:
            if skip_unsupported:
                print(f"{path}: skipping {t.name} ({qtype.name})", file=sys.stderr)
                continue
            raise SystemExit(f"{path}: tensor {t.name} has unsupported type {qtype.name}")
        values = dequantize(t.data, qtype)
        n = int(t.n_elements)
        if values.size != n or values.dtype != np.float32:
            raise SystemExit(f"{path}: {t.name}: gguf-py gave {values.size} {values.dtype} values, expected {n} float32")
        if t.name in entries:
            raise SystemExit(f"{path}: duplicate tensor {t.name}")
        entries[t.name] = {"type": qtype.name, "n": n, "sha256_f32": f32_sha256(values)}
    return entries


def manifest_for(paths: list[Path], base_dir: Path, skip_unsupported: bool = False) -> dict:
    """A manifest for `paths`, keyed by path relative to `base_dir` (the manifest's folder)."""
    files = {}
    for p in paths:
        key = Path(os.path.relpath(p, base_dir)).as_posix()
        files[key] = tensor_entries(p, skip_unsupported)
    return {"files": files}


def dumps(manifest: dict) -> str:
    """The manifest's canonical text (sorted keys, newline-terminated)."""
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf", nargs="+", type=Path, help="GGUF files")
    ap.add_argument("-o", "--output", type=Path,
                    help="manifest to write (file keys relative to its folder); default: stdout, keys relative to the current folder")
    ap.add_argument("--merge", action="store_true", help="keep the other files already in --output")
    ap.add_argument("--skip-unsupported", action="store_true", help="leave out tensors of types the crate lacks")
    args = ap.parse_args()

    base = args.output.parent if args.output else Path.cwd()
    manifest = manifest_for(args.gguf, base, args.skip_unsupported)
    if args.merge:
        if not args.output:
            ap.error("--merge needs --output")
        if args.output.exists():
            old = json.loads(args.output.read_text())
            old.setdefault("files", {}).update(manifest["files"])
            manifest = old
    text = dumps(manifest)
    if args.output:
        args.output.write_text(text)
        n = sum(len(v) for v in manifest["files"].values())
        print(f"wrote {args.output}: {len(manifest['files'])} files, {n} tensors", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
