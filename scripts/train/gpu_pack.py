"""Packs a training work folder for a lent GPU machine, and unpacks it there.

A device call carries at most 64 MiB of working tree and brings back files of at most 16 MiB
(``../.library/device/README.md`` of the tool library; scripts/train/README.md, "Training on a lent
GPU"). The PyPI-phase work folder is too large as it stands (``corpus.json`` 40 MB and its token
cache 136 MB: int64 streams of ids below 4,096), so ``pack`` writes

    PACK/spm.model          the tokenizer, byte for byte
    PACK/corpus.json.xz     corpus.json, xz-compressed
    PACK/cache.npz          the token cache with the streams as uint16, compressed
    PACK/pack.json          sizes and the SHA-256 of corpus.json and of the cache's key
    PACK/whl/               wheels the machine's image lacks (gguf, for export.py)

and ``unpack`` (on the GPU machine) writes a work folder ``train.py`` reads as it reads the
original: ``corpus.json`` and ``spm.model`` byte for byte, ``data-cache.npz`` with the same arrays
and dtypes and the same key (checked), so no token is encoded there.

    python scripts/train/gpu_pack.py pack [--work build/demo-train-pypi] [--out build/gpu-pack]
    python3 scripts/train/gpu_pack.py unpack --pack build/gpu-pack --work build/gpu-work
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import subprocess
import sys
from pathlib import Path

import numpy as np

# export.py's GGUF writer; the GPU image has numpy, PyYAML and tqdm (its other needs).
WHEELS = ["gguf==0.19.0"]
STREAMS = ("stream", "held_stream")


def cache_key(work: Path) -> str:
    """The key train.py stores in data-cache.npz for this spm.model and corpus.json."""
    return hashlib.sha256((work / "spm.model").read_bytes() + (work / "corpus.json").read_bytes()).hexdigest()


def pack(work: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    corpus = (work / "corpus.json").read_bytes()
    z = np.load(work / "data-cache.npz")
    key = str(z["key"])
    assert key == cache_key(work), f"{work}/data-cache.npz is stale: run train.py once to rebuild it"
    arrays = {k: z[k] for k in z.files}
    for k in STREAMS:
        s = arrays[k]
        assert s.dtype == np.int64 and s.min() >= 0 and s.max() < 2**16, k
        arrays[k] = s.astype(np.uint16)
    np.savez_compressed(out / "cache.npz", **arrays)
    (out / "corpus.json.xz").write_bytes(lzma.compress(corpus, preset=6))
    (out / "spm.model").write_bytes((work / "spm.model").read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "-d", str(out / "whl"), *WHEELS],
        check=True,
    )
    info = {
        "work": str(work),
        "key": key,
        "corpus_sha256": hashlib.sha256(corpus).hexdigest(),
        "tokens": {k: int(len(arrays[k])) for k in STREAMS},
        "bytes": {p.name: p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()},
    }
    (out / "pack.json").write_text(json.dumps(info, indent=1) + "\n")
    total = sum(info["bytes"].values())
    print(f"{out}: {total / 2**20:.1f} MiB ({', '.join(f'{k} {v / 2**20:.1f}' for k, v in info['bytes'].items())})")


def unpack(pack_dir: Path, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    info = json.loads((pack_dir / "pack.json").read_text())
    corpus = lzma.decompress((pack_dir / "corpus.json.xz").read_bytes())
    assert hashlib.sha256(corpus).hexdigest() == info["corpus_sha256"], "corpus.json.xz is damaged"
    (work / "corpus.json").write_bytes(corpus)
    (work / "spm.model").write_bytes((pack_dir / "spm.model").read_bytes())
    z = np.load(pack_dir / "cache.npz")
    arrays = {k: z[k] for k in z.files}
    for k in STREAMS:
        arrays[k] = arrays[k].astype(np.int64)
    assert str(arrays["key"]) == info["key"] == cache_key(work), "the cache's key does not match"
    np.savez(work / "data-cache.npz", **arrays)
    print(f"{work}: corpus.json, spm.model, data-cache.npz "
          f"({', '.join(f'{k} {len(arrays[k]):,} tokens' for k in STREAMS)})")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--work", type=Path, default=Path("build/demo-train-pypi"))
    p.add_argument("--out", type=Path, default=Path("build/gpu-pack"))
    u = sub.add_parser("unpack")
    u.add_argument("--pack", type=Path, default=Path("build/gpu-pack"))
    u.add_argument("--work", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        pack(a.work, a.out)
    else:
        unpack(a.pack, a.work)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
