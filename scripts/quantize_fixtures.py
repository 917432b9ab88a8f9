#!/usr/bin/env python3
"""Make the committed llama.cpp-quantized fixtures in tests/fixtures/models/ (NOT run in CI).

Needs llama-cpp-python (built from source; see tests/fixtures/models/README.md) besides gguf and
numpy. Every F32 source model is rebuilt deterministically by scripts/make_fixtures.py's
`write_model`, then quantized by llama.cpp itself through `llama_cpp.llama_model_quantize`
(llama.cpp's own per-tensor type choices, e.g. Q4_K + Q6_K for Q4_K_M; 1-D norms stay F32).

  tiny-gqa-q4_k_m.gguf        the `gqa` tiny model of make_fixtures.py (dim 256, 4/2 heads,
                              ffn 768, 2 layers) with the full 32016-piece Code Llama vocab,
                              quantized Q4_K_M. make_fixtures.py computes its reference logits.
  tiny-cov-v512-<type>.gguf   quant-coverage files for Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q5_K_M Q6_K:
                              dim 256, 4/2 heads, ffn 256, 2 layers, the first 512 pieces of the
                              vocab only (small files; llama.cpp's quantizer does not load the
                              vocab, so a truncated one is fine).

Afterwards it writes tests/fixtures/models/dequant-manifest.json (sha256 of the
`gguf.quants.dequantize` output of every tensor) by running scripts/dequant_manifest.py (branch
`quant`; pass --dequant-tool PATH while it is not merged) or, if absent, the built-in
`dequant_manifest` below, whose output was checked byte-identical to that tool's on these files) and the tensor -> type tables of
tests/fixtures/models/README.md (between the TABLES markers).

Usage: python scripts/quantize_fixtures.py [--threads 2]
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_fixtures as mf  # noqa: E402

OUT_DIR = mf.MODELS_DIR
COV_VOCAB = 512
# coverage architecture: dim 256 (K-quants need rows of 256), GQA 4/2, small FFN
mf.ARCHS.setdefault("cov", (4, 2, 256, 4321))

# output file -> (llama_ftype name, arch, vocab size or None for the full vocab)
TARGETS = {
    "tiny-gqa-q4_k_m.gguf": ("LLAMA_FTYPE_MOSTLY_Q4_K_M", "gqa", None),
    "tiny-cov-v512-q4_0.gguf": ("LLAMA_FTYPE_MOSTLY_Q4_0", "cov", COV_VOCAB),
    "tiny-cov-v512-q4_1.gguf": ("LLAMA_FTYPE_MOSTLY_Q4_1", "cov", COV_VOCAB),
    "tiny-cov-v512-q5_0.gguf": ("LLAMA_FTYPE_MOSTLY_Q5_0", "cov", COV_VOCAB),
    "tiny-cov-v512-q5_1.gguf": ("LLAMA_FTYPE_MOSTLY_Q5_1", "cov", COV_VOCAB),
    "tiny-cov-v512-q8_0.gguf": ("LLAMA_FTYPE_MOSTLY_Q8_0", "cov", COV_VOCAB),
    "tiny-cov-v512-q5_k_m.gguf": ("LLAMA_FTYPE_MOSTLY_Q5_K_M", "cov", COV_VOCAB),
    "tiny-cov-v512-q6_k.gguf": ("LLAMA_FTYPE_MOSTLY_Q6_K", "cov", COV_VOCAB),
}


def quantize(src: str, dst: str, ftype_name: str, threads: int) -> None:
    import llama_cpp
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = threads
    tmp = dst + ".tmp"
    rc = llama_cpp.llama_model_quantize(src.encode(), tmp.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src} -> {dst}, {ftype_name}) returned {rc}")
    os.replace(tmp, dst)


def dequant_manifest(paths: list[str]) -> dict:
    """{"files": {file: {tensor: {"type", "n", "sha256_f32"}}}} over gguf.quants.dequantize."""
    files = {}
    for p in paths:
        r = gguf.GGUFReader(p)
        d = {}
        for t in r.tensors:
            x = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
            x = np.ascontiguousarray(x, dtype="<f4")
            assert x.size == int(t.n_elements), (p, t.name)
            d[t.name] = {"type": t.tensor_type.name, "n": int(t.n_elements),
                         "sha256_f32": hashlib.sha256(x.tobytes()).hexdigest()}
        files[os.path.basename(p)] = d
    return {"files": files}


def write_dequant_manifest(paths: list[str], out: str, tool: str | None) -> str:
    """Run the quant branch's scripts/dequant_manifest.py (`-o OUT FILES...`) when available,
    else the built-in equivalent above (verified byte-identical output on these files)."""
    tool = tool or os.path.join(HERE, "dequant_manifest.py")
    if os.path.exists(tool):
        subprocess.run([sys.executable, tool, "-o", out, *paths], check=True)
        return tool
    m = dequant_manifest(paths)
    with open(out, "w") as f:
        f.write(json.dumps(m, indent=1, sort_keys=True) + "\n")
    return "scripts/quantize_fixtures.py dequant_manifest (built-in)"


def type_table(path: str) -> str:
    r = gguf.GGUFReader(path)
    rows = ["| tensor | GGUF dims | type |", "|---|---|---|"]
    for t in r.tensors:
        rows.append(f"| `{t.name}` | {t.shape.tolist()} | {t.tensor_type.name} |")
    ft = r.get_field("general.file_type")
    ftv = int(ft.parts[ft.data[0]][0]) if ft else None
    head = (f"**{os.path.basename(path)}** ({os.path.getsize(path):,} bytes, "
            f"general.file_type {ftv}, {len(r.tensors)} tensors)\n\n")
    return head + "\n".join(rows) + "\n"


def update_readme(paths: list[str]) -> None:
    readme = os.path.join(OUT_DIR, "README.md")
    with open(readme) as f:
        text = f.read()
    begin, end = "<!-- TABLES BEGIN -->", "<!-- TABLES END -->"
    a, b = text.index(begin) + len(begin), text.index(end)
    tables = "\n" + "\n".join(type_table(p) for p in paths) + "\n"
    with open(readme, "w") as f:
        f.write(text[:a] + tables + text[b:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="llama.cpp-quantized fixtures")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="only these output files")
    ap.add_argument("--dequant-tool", help="path of dequant_manifest.py (default: scripts/)")
    a = ap.parse_args(argv)
    import llama_cpp
    print(f"llama-cpp-python {llama_cpp.__version__}")
    os.makedirs(OUT_DIR, exist_ok=True)
    full = mf.load_vocab()
    assert len(full) == 32016, f"expected the 32016-piece Code Llama vocab, got {full.source}"
    outs = []
    with tempfile.TemporaryDirectory() as tmp:
        srcs = {}
        for fn, (ftype, arch, nvocab) in TARGETS.items():
            dst = os.path.join(OUT_DIR, fn)
            outs.append(dst)
            if a.only and fn not in a.only:
                continue
            key = (arch, nvocab)
            if key not in srcs:
                vocab = full if nvocab is None else full.truncated(nvocab)
                src = os.path.join(tmp, f"src-{arch}-{len(vocab)}-f32.gguf")
                mf.write_model(src, f"tiny-{arch}-v{len(vocab)}", arch, gguf.GGMLQuantizationType.F32,
                               vocab)
                srcs[key] = src
            quantize(srcs[key], dst, ftype, a.threads)
            print(f"{fn}: {os.path.getsize(dst):,} bytes")
    how = write_dequant_manifest(outs, os.path.join(OUT_DIR, "dequant-manifest.json"),
                                 a.dequant_tool)
    print(f"dequant-manifest.json via {how}")
    update_readme(outs)
    total = sum(os.path.getsize(p) for p in outs)
    print(f"total {total:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
