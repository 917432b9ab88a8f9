#!/usr/bin/env python3
"""Generate (or --check) the bit-exact dequantization fixtures in tests/fixtures/quant/.

For every ggml type the crate supports, writes ``<TYPE>.bin`` (raw blocks) and
``<TYPE>.f32`` (gguf-py's ``gguf.quants.dequantize`` of them, little-endian
float32). Block payloads are pseudo-random bytes; the f16 scales / mins are
finite but of every kind: ordinary (2^-12..2), large (up to 65504), subnormal,
signed zero, either sign. The float types (F32, F16, BF16) hold random values
plus infinities, zeros, subnormals and quiet NaNs; signalling NaNs are left out
because hardware half-to-float converters may quieten them.

Also writes ``gguf-py-small.gguf`` (one small tensor of each type gguf-py can
quantize, made with ``gguf.quants.quantize`` and ``GGUFWriter``) and its
``dequant-manifest.json`` (see ``scripts/dequant_manifest.py``).

All randomness comes from SHAKE-256 of fixed seeds, so the output does not depend
on numpy's generators. ``--check`` regenerates everything in memory and fails
if a committed file differs.

    .venv/bin/python scripts/gen_quant_vectors.py [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "tests" / "fixtures" / "quant"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import dequant_manifest  # noqa: E402

SEED = "codellama-webgpu quant vectors v1"

# Quantized types: blocks to generate, byte offsets of the f16 fields in a block.
QUANT_TYPES: dict[T, tuple[int, tuple[int, ...]]] = {
    T.Q4_0: (64, (0,)),
    T.Q4_1: (64, (0, 2)),
    T.Q5_0: (64, (0,)),
    T.Q5_1: (64, (0, 2)),
    T.Q8_0: (64, (0,)),
    T.Q4_K: (32, (0, 2)),
    T.Q5_K: (32, (0, 2)),
    T.Q6_K: (32, (208,)),
}
FLOAT_ELEMS = 1024
GGUF_NAME = "gguf-py-small.gguf"
MANIFEST_NAME = "dequant-manifest.json"


def stream(label: str, n: int) -> bytes:
    """n deterministic pseudo-random bytes for `label`."""
    return hashlib.shake_256(f"{SEED} {label}".encode()).digest(n)


def scale_bits(raw: bytes) -> int:
    """A finite f16 (as bits) from 3 random bytes: mostly ordinary magnitudes,
    some large, subnormal and zero; random sign."""
    cat, bits = raw[0], int.from_bytes(raw[1:3], "little")
    sign, e, man = bits & 0x8000, (bits >> 10) & 0x1F, bits & 0x3FF
    if cat < 176:  # ordinary: 2^-12 <= |x| < 2
        exp = 3 + e % 13
    elif cat < 208:  # subnormal
        exp, man = 0, man or 1
    elif cat < 224:  # +-0
        exp, man = 0, 0
    else:  # large: 2 <= |x| <= 65504
        exp = 16 + e % 15
    return sign | (exp << 10) | man


def quant_blocks(qtype: T) -> bytes:
    n_blocks, f16_offsets = QUANT_TYPES[qtype]
    _, type_size = GGML_QUANT_SIZES[qtype]
    data = bytearray(stream(f"{qtype.name} payload", n_blocks * type_size))
    scales = stream(f"{qtype.name} scales", 3 * n_blocks * len(f16_offsets))
    k = 0
    for b in range(n_blocks):
        for off in f16_offsets:
            pos = b * type_size + off
            data[pos:pos + 2] = scale_bits(scales[3 * k:3 * k + 3]).to_bytes(2, "little")
            k += 1
    return bytes(data)


def float_values(qtype: T) -> bytes:
    """Random values of a float type, specials first; NaNs made quiet."""
    if qtype == T.F32:
        bits = np.frombuffer(stream("F32", 4 * FLOAT_ELEMS), dtype="<u4").copy()
        special = [0x0, 0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC12345,
                   0x00000001, 0x807FFFFF, 0x7F7FFFFF, 0x3F800000]
        exp_mask, quiet = 0x7F800000, 0x00400000
    else:
        bits = np.frombuffer(stream(qtype.name, 2 * FLOAT_ELEMS), dtype="<u2").copy()
        if qtype == T.F16:
            special = [0x0, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE3F, 0x0001, 0x83FF, 0x7BFF, 0x3C00]
            exp_mask, quiet = 0x7C00, 0x0200
        else:  # BF16
            special = [0x0, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC5, 0x0001, 0x807F, 0x7F7F, 0x3F80]
            exp_mask, quiet = 0x7F80, 0x0040
    bits[:len(special)] = special
    # A NaN has all exponent bits set and a non-zero mantissa.
    man_mask = (quiet << 1) - 1
    nan = ((bits & exp_mask) == exp_mask) & ((bits & man_mask) != 0)
    bits[nan] |= quiet
    return bits.tobytes()


def reference(qtype: T, raw: bytes, n_elems: int) -> bytes:
    values = dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qtype)
    values = np.asarray(values).reshape(-1)
    if values.dtype != np.float32 or values.size != n_elems:
        raise SystemExit(f"{qtype.name}: gguf-py gave {values.size} {values.dtype} values, expected {n_elems} float32")
    return values.astype("<f4").tobytes()


def vector_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for qtype in (T.F32, T.F16, T.BF16):
        raw = float_values(qtype)
        files[f"{qtype.name}.bin"] = raw
        files[f"{qtype.name}.f32"] = reference(qtype, raw, FLOAT_ELEMS)
    for qtype, (n_blocks, _) in QUANT_TYPES.items():
        raw = quant_blocks(qtype)
        block_size, _ = GGML_QUANT_SIZES[qtype]
        files[f"{qtype.name}.bin"] = raw
        files[f"{qtype.name}.f32"] = reference(qtype, raw, n_blocks * block_size)
    return files


def uniform(label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Deterministic float32 values in [-1, 1)."""
    n = int(np.prod(shape))
    u = np.frombuffer(stream(label, 4 * n), dtype="<u4").astype(np.float64)
    return (u / 2.0**31 - 1.0).astype(np.float32).reshape(shape)


def small_gguf(path: Path) -> None:
    """A small GGUF with one tensor per type gguf-py can quantize."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("gguf-py quantization fixture")
    specs = [
        ("f32.weight", T.F32, (3, 64)),
        ("f16.weight", T.F16, (4, 64)),
        ("bf16.weight", T.BF16, (2, 64)),
        ("q4_0.weight", T.Q4_0, (4, 128)),
        ("q4_1.weight", T.Q4_1, (4, 128)),
        ("q5_0.weight", T.Q5_0, (4, 128)),
        ("q5_1.weight", T.Q5_1, (4, 128)),
        ("q8_0.weight", T.Q8_0, (4, 128)),
    ]
    for name, qtype, shape in specs:
        # Rows of different magnitudes, and one constant row (d = 0 edge cases).
        x = uniform(name, shape) * np.float32(2.0) ** np.arange(shape[0], dtype=np.float32).reshape(-1, 1)
        x[-1, :] = 0.0
        q = quantize(x, qtype)
        if qtype in (T.F32, T.F16):
            w.add_tensor(name, q)
        else:
            w.add_tensor(name, q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / GGUF_NAME
        small_gguf(path)
        manifest = dequant_manifest.manifest_for([path], Path(tmp))
        return {GGUF_NAME: path.read_bytes(), MANIFEST_NAME: dequant_manifest.dumps(manifest).encode()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="verify the committed fixtures instead of writing them")
    args = ap.parse_args()

    files = vector_files() | gguf_files()
    if args.check:
        bad = []
        for name, data in files.items():
            p = OUT_DIR / name
            if not p.exists():
                bad.append(f"{p.relative_to(ROOT)}: missing")
            elif p.read_bytes() != data:
                bad.append(f"{p.relative_to(ROOT)}: differs from regenerated ({p.stat().st_size} vs {len(data)} bytes)")
        for b in bad:
            print(b, file=sys.stderr)
        if bad:
            print(f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else '?'}, numpy {np.__version__}", file=sys.stderr)
            return 1
        print(f"ok: {len(files)} fixture files in {OUT_DIR.relative_to(ROOT)} match")
        return 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT_DIR / name).write_bytes(data)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total} bytes, to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
