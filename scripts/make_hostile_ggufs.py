"""A corpus of malformed and hostile GGUF files (issue 7), with the error each must give.

Writes ``tests/fixtures/hostile/*.gguf`` and ``manifest.json``: one small valid llama model
(``valid.gguf``: dim 64, one block, 2 heads over 1 KV head, a 264-piece byte-fallback
vocabulary, Q8_0 matrices) and one file per defect, each derived from it: truncations, huge
counts and lengths, overlapping and out-of-range offsets, bad types and dims, missing or
misshapen tensors, wrong architecture, vocabulary/embedding mismatch, token ids out of range,
NaN hyperparameters, NaN/inf weights. ``expect`` is the error class the JS API must throw
(``InvalidModelError``: the file is not valid GGUF; ``UnsupportedModelError``: valid GGUF but
not a usable llama model; ``generate:InternalError``: loads, then generation reports the
non-finite logits instead of sampling them). ``tests/hostile_models.rs`` loads each natively
(CPU and GPU), ``tests/web/run.mjs`` in Chromium.

    python3 scripts/make_hostile_ggufs.py [--check]   # numpy only; deterministic; --check: CI
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests/fixtures/hostile"

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?",
          U64: "<Q", I64: "<q", F64: "<d"}
GGML_F32, GGML_Q8_0 = 0, 8


def q8_0(a: np.ndarray) -> bytes:
    """ggml Q8_0 of a (rows, cols) array, cols a multiple of 32."""
    out = bytearray()
    for block in a.reshape(-1, 32):
        amax = float(np.abs(block).max())
        d = amax / 127.0
        q = np.zeros(32, np.int8) if d == 0 else np.clip(np.round(block / d), -127, 127).astype(np.int8)
        out += np.float16(d).tobytes() + q.tobytes()
    return bytes(out)


@dataclass
class Tensor:
    name: str
    dims: list[int]  # GGUF order: dims[0] = columns
    ty: int
    data: bytes
    offset: int | None = None  # None: placed after the previous one


@dataclass
class Model:
    kv: list[tuple[str, int, object]] = field(default_factory=list)  # (key, type, value)
    tensors: list[Tensor] = field(default_factory=list)
    magic: bytes = b"GGUF"
    version: int = 3
    tensor_count: int | None = None
    kv_count: int | None = None
    alignment: int = 32

    def set(self, key, ty, value):
        self.kv = [(k, t, v) if k != key else (key, ty, value) for k, t, v in self.kv]
        if key not in [k for k, _, _ in self.kv]:
            self.kv.append((key, ty, value))

    def drop(self, key):
        self.kv = [e for e in self.kv if e[0] != key]

    def tensor(self, name) -> Tensor:
        return next(t for t in self.tensors if t.name == name)


def put_str(b: bytearray, s: str | bytes):
    s = s.encode() if isinstance(s, str) else s
    b += struct.pack("<Q", len(s)) + s


def put_value(b: bytearray, ty: int, v):
    if ty == STR:
        put_str(b, v)
    elif ty == ARR:
        ety, items = v
        b += struct.pack("<IQ", ety, len(items))
        for x in items:
            put_value(b, ety, x)
    else:
        b += struct.pack(SCALAR[ty], v)


def serialize(m: Model) -> bytes:
    b = bytearray(m.magic)
    b += struct.pack("<I", m.version)
    b += struct.pack("<QQ", len(m.tensors) if m.tensor_count is None else m.tensor_count,
                     len(m.kv) if m.kv_count is None else m.kv_count)
    for k, ty, v in m.kv:
        put_str(b, k)
        b += struct.pack("<I", ty)
        put_value(b, ty, v)
    off, offsets = 0, []
    for t in m.tensors:
        o = off if t.offset is None else t.offset
        offsets.append(o)
        if t.offset is None:  # an explicit (hostile) offset does not move the data section
            off = -(-(o + len(t.data)) // m.alignment) * m.alignment
        put_str(b, t.name)
        b += struct.pack("<I", len(t.dims)) + b"".join(struct.pack("<Q", d) for d in t.dims)
        b += struct.pack("<IQ", t.ty, o)
    b += bytes(-len(b) % m.alignment)
    data = bytearray(off)
    for t, o in zip(m.tensors, offsets):
        end = min(len(data), o + len(t.data))
        data[o:end] = t.data[: end - o]
    return bytes(b + data)


def valid() -> Model:
    rng = np.random.default_rng(7)
    dim, ffn, heads, kv_heads, hd = 64, 64, 2, 1, 32
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + ["▁", "▁a", "a", "▁b", "b"]
    types = [2, 3, 3] + [6] * 256 + [1] * 5
    scores = [0.0] * 259 + [-1.0, -2.0, -3.0, -4.0, -5.0]
    vocab = len(pieces)
    m = Model()
    for k, ty, v in [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "hostile-corpus-base"),
        ("llama.context_length", U32, 128),
        ("llama.embedding_length", U32, dim),
        ("llama.block_count", U32, 1),
        ("llama.feed_forward_length", U32, ffn),
        ("llama.attention.head_count", U32, heads),
        ("llama.attention.head_count_kv", U32, kv_heads),
        ("llama.rope.freq_base", F32, 1e6),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("llama.rope.dimension_count", U32, hd),
        ("tokenizer.ggml.model", STR, "llama"),
        ("tokenizer.ggml.tokens", ARR, (STR, pieces)),
        ("tokenizer.ggml.scores", ARR, (F32, scores)),
        ("tokenizer.ggml.token_type", ARR, (I32, types)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
    ]:
        m.kv.append((k, ty, v))

    def mat(name, rows, cols):
        m.tensors.append(Tensor(name, [cols, rows], GGML_Q8_0,
                                q8_0((rng.standard_normal((rows, cols)) * 0.2).astype(np.float32))))

    def norm(name):
        m.tensors.append(Tensor(name, [dim], GGML_F32, np.ones(dim, np.float32).tobytes()))

    mat("token_embd.weight", vocab, dim)
    norm("blk.0.attn_norm.weight")
    mat("blk.0.attn_q.weight", dim, dim)
    mat("blk.0.attn_k.weight", kv_heads * hd, dim)
    mat("blk.0.attn_v.weight", kv_heads * hd, dim)
    mat("blk.0.attn_output.weight", dim, dim)
    norm("blk.0.ffn_norm.weight")
    mat("blk.0.ffn_gate.weight", ffn, dim)
    mat("blk.0.ffn_up.weight", ffn, dim)
    mat("blk.0.ffn_down.weight", dim, ffn)
    norm("output_norm.weight")
    mat("output.weight", vocab, dim)
    return m


def cases():
    """(file, what, expect, build): build returns the bytes."""
    base = serialize(valid())
    header_len = len(serialize(Model(kv=valid().kv, tensors=[])))  # key/value part, roughly
    out = []

    def case(name, what, expect):
        def deco(fn):
            out.append((name, what, expect, fn))
            return fn
        return deco

    def mod(fn):
        m = valid()
        fn(m)
        return serialize(m)

    inv, uns = "InvalidModelError", "UnsupportedModelError"
    case("valid", "the base model (loads and generates)", "ok")(lambda: base)
    case("empty", "zero bytes", inv)(lambda: b"")
    case("bad-magic", "magic 'GGUG'", inv)(lambda: b"GGUG" + base[4:])
    case("version-1", "GGUF version 1", inv)(lambda: base[:4] + struct.pack("<I", 1) + base[8:])
    case("version-99", "GGUF version 99", inv)(lambda: base[:4] + struct.pack("<I", 99) + base[8:])
    case("truncated-magic", "the first 3 bytes", inv)(lambda: base[:3])
    case("truncated-kv", "cut inside the key/value section", inv)(lambda: base[: header_len // 2])
    case("truncated-infos", "cut inside the tensor table", inv)(lambda: base[: header_len + 40])
    case("truncated-data", "cut at 90% (inside the tensor data)", inv)(lambda: base[: len(base) * 9 // 10])
    case("truncated-last-byte", "one byte short", inv)(lambda: base[:-1])
    case("huge-tensor-count", "tensor count 2^60", inv)(lambda: mod(lambda m: setattr(m, "tensor_count", 1 << 60)))
    case("huge-kv-count", "key/value count 2^62", inv)(lambda: mod(lambda m: setattr(m, "kv_count", 1 << 62)))
    case("kv-count-short", "key/value count one less than written", inv)(
        lambda: mod(lambda m: setattr(m, "kv_count", len(m.kv) - 1)))

    def huge_string(m):
        m.kv.insert(0, ("general.huge", STR, "x"))
    case("huge-string-length", "a string whose length field says 2^62", inv)(
        lambda: mod(huge_string).replace(struct.pack("<Q", 1) + b"x", struct.pack("<Q", 1 << 62) + b"x", 1))
    case("huge-array-count", "the token list claims 2^40 items", inv)(
        lambda: base.replace(struct.pack("<IQ", STR, 264), struct.pack("<IQ", STR, 1 << 40), 1))
    case("unknown-value-type", "a value of type 99", inv)(
        lambda: base.replace(struct.pack("<I", U32) + struct.pack("<I", 128), struct.pack("<I", 99) + struct.pack("<I", 128), 1))
    case("nested-arrays", "arrays nested 100 deep", inv)(
        lambda: mod(lambda m: m.kv.insert(0, ("general.deep", ARR, nest(100)))))
    case("duplicate-key", "llama.block_count twice", inv)(
        lambda: mod(lambda m: m.kv.append(("llama.block_count", U32, 1))))
    case("invalid-utf8-key", "a key with invalid UTF-8", inv)(
        lambda: mod(lambda m: m.kv.insert(0, (b"general.\xff\xfe", U32, 1))))
    case("zero-dims", "a tensor with 0 dimensions", inv)(lambda: mod(lambda m: setattr(m.tensor("output_norm.weight"), "dims", [])))
    case("many-dims", "a tensor with 9 dimensions", inv)(lambda: mod(lambda m: setattr(m.tensor("output_norm.weight"), "dims", [1] * 8 + [64])))
    case("unknown-tensor-type", "ggml type 99", inv)(lambda: mod(lambda m: setattr(m.tensor("output_norm.weight"), "ty", 99)))
    case("dims-overflow", "dims 2^32 x 2^32 x 2^32", inv)(
        lambda: mod(lambda m: setattr(m.tensor("output_norm.weight"), "dims", [1 << 32, 1 << 32, 1 << 32])))
    case("dims-not-block-multiple", "a Q8_0 tensor of 33 columns", inv)(
        lambda: mod(lambda m: setattr(m.tensor("blk.0.attn_q.weight"), "dims", [33, 64])))
    case("offset-past-end", "a tensor offset past the end of the file", inv)(
        lambda: mod(lambda m: setattr(m.tensor("output.weight"), "offset", 1 << 40)))
    case("offset-misaligned", "a tensor offset not a multiple of the alignment", inv)(
        lambda: mod(lambda m: setattr(m.tensor("output_norm.weight"), "offset", m_offset(m, "output_norm.weight") + 4)))
    case("offsets-overlap", "two tensors at the same offset", inv)(
        lambda: mod(lambda m: setattr(m.tensor("blk.0.ffn_norm.weight"), "offset", 0)))
    case("offsets-overlap-forward", "a tensor starting inside the previous one", inv)(
        lambda: mod(lambda m: setattr(m.tensor("blk.0.ffn_norm.weight"), "offset",
                                      m_offset(m, "blk.0.attn_output.weight") + 32)))
    case("alignment-3", "general.alignment = 3", inv)(lambda: mod(lambda m: m.kv.append(("general.alignment", U32, 3))))
    case("duplicate-tensor", "output_norm.weight twice", inv)(
        lambda: mod(lambda m: m.tensors.append(Tensor("output_norm.weight", [64], GGML_F32, bytes(256)))))
    # valid GGUF, not a usable llama model
    case("arch-gpt2", "general.architecture = gpt2", uns)(lambda: mod(lambda m: m.set("general.architecture", STR, "gpt2")))
    case("no-architecture", "general.architecture missing", uns)(lambda: mod(lambda m: m.drop("general.architecture")))
    case("no-embedding-length", "llama.embedding_length missing", uns)(lambda: mod(lambda m: m.drop("llama.embedding_length")))
    case("heads-zero", "llama.attention.head_count = 0", uns)(lambda: mod(lambda m: m.set("llama.attention.head_count", U32, 0)))
    case("heads-not-dividing", "3 heads over dim 64", uns)(lambda: mod(lambda m: m.set("llama.attention.head_count", U32, 3)))
    case("kv-heads-more", "4 KV heads for 2 heads", uns)(lambda: mod(lambda m: m.set("llama.attention.head_count_kv", U32, 4)))
    case("context-zero", "llama.context_length = 0", uns)(lambda: mod(lambda m: m.set("llama.context_length", U32, 0)))
    case("rope-base-nan", "llama.rope.freq_base = NaN", uns)(lambda: mod(lambda m: m.set("llama.rope.freq_base", F32, float("nan"))))
    case("eps-inf", "rms epsilon = inf", uns)(lambda: mod(lambda m: m.set("llama.attention.layer_norm_rms_epsilon", F32, float("inf"))))
    case("block-count-huge", "llama.block_count = 2^31", uns)(lambda: mod(lambda m: m.set("llama.block_count", U32, 1 << 31)))
    case("missing-tensor", "blk.0.ffn_up.weight missing", uns)(
        lambda: mod(lambda m: setattr(m, "tensors", [t for t in m.tensors if t.name != "blk.0.ffn_up.weight"])))
    case("wrong-shape", "attn_q of 64 x 32", uns)(lambda: mod(lambda m: wrong_shape(m)))
    case("vocab-mismatch", "264 pieces, token_embd of 200 rows", uns)(lambda: mod(lambda m: short_embd(m)))
    case("bos-out-of-range", "bos token id 100000", uns)(lambda: mod(lambda m: m.set("tokenizer.ggml.bos_token_id", U32, 100000)))
    case("scores-short", "200 scores for 264 pieces", uns)(
        lambda: mod(lambda m: m.set("tokenizer.ggml.scores", ARR, (F32, [0.0] * 200))))
    case("tokenizer-missing", "tokenizer.ggml.tokens missing", uns)(lambda: mod(lambda m: m.drop("tokenizer.ggml.tokens")))
    # well formed, non-finite weights: loads; generation reports it
    case("nan-norm", "output_norm.weight[3] = NaN", "generate:InternalError")(
        lambda: mod(lambda m: poke_f32(m.tensor("output_norm.weight"), 3, float("nan"))))
    case("inf-q8-scale", "an infinite Q8_0 scale in output.weight", "generate:InternalError")(
        lambda: mod(lambda m: poke_f16(m.tensor("output.weight"), 0, np.float16(np.inf))))
    return out


def nest(depth):
    v = (U8, [1])
    for _ in range(depth - 1):
        v = (ARR, [v])
    return v


def m_offset(m: Model, name: str) -> int:
    off = 0
    for t in m.tensors:
        if t.name == name:
            return off
        off = -(-(off + len(t.data)) // m.alignment) * m.alignment
    raise KeyError(name)


def wrong_shape(m: Model):
    t = m.tensor("blk.0.attn_q.weight")
    t.dims = [64, 32]
    t.data = t.data[: len(t.data) // 2]


def short_embd(m: Model):
    t = m.tensor("token_embd.weight")
    t.dims = [64, 200]
    t.data = t.data[: 200 * 2 * 34]


def poke_f32(t: Tensor, i: int, v: float):
    d = bytearray(t.data)
    d[4 * i : 4 * i + 4] = struct.pack("<f", v)
    t.data = bytes(d)


def poke_f16(t: Tensor, block: int, v):
    d = bytearray(t.data)
    d[34 * block : 34 * block + 2] = np.float16(v).tobytes()
    t.data = bytes(d)


def main(argv: list[str]) -> int:
    files, manifest = {}, []
    for name, what, expect, build in cases():
        data = build()
        files[f"{name}.gguf"] = data
        manifest.append({"file": f"{name}.gguf", "what": what, "expect": expect, "bytes": len(data)})
    files["manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode()
    if "--check" in argv:  # CI: the committed corpus is what this script writes
        have = {p.name for p in OUT.glob("*")}
        bad = sorted(n for n, d in files.items() if not (OUT / n).exists() or (OUT / n).read_bytes() != d)
        bad += sorted(have - set(files))
        if bad:
            print(f"tests/fixtures/hostile differs from scripts/make_hostile_ggufs.py: {bad}")
            return 1
        print(f"{len(manifest)} hostile GGUF files match the script")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    for n, d in files.items():
        (OUT / n).write_bytes(d)
    print(f"{len(manifest)} files in {OUT} ({sum(m['bytes'] for m in manifest):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
