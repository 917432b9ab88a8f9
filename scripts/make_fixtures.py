#!/usr/bin/env python3
"""Write tiny, deterministic Code Llama-shaped GGUF models and their reference logits.

Output (gitignored): tests/fixtures/generated/
  tiny-mha-f32.gguf   4 heads / 4 kv heads, F32
  tiny-gqa-f32.gguf   4 heads / 2 kv heads, F32
  tiny-mha-f16.gguf   same weights as tiny-mha-f32, every matrix F16
  tiny-gqa-q8_0.gguf  same weights as tiny-gqa-f32, every matrix Q8_0 (gguf.quants.quantize)
  tiny-mha-q4_0.gguf  same weights as tiny-mha-f32, every matrix Q4_0 (gguf.quants.quantize)
  <name>.logits.npy   float32 [T, vocab] teacher-forced logits from scripts/reference_forward.py
  manifest.json       {"models": [{"name", "file", "n_heads", "n_kv_heads", "tokens", "logits", ...}]}

All models: dim 256, head_dim 64, 2 layers, context 512, rope theta 1e6, rms eps 1e-5, the real
Code Llama vocabulary (scripts/make_codellama_vocab.py; until that exists, llama.cpp's 32000-piece
Llama vocab fixture). Norms are always F32; token_embd and output use the model's type.
The llama.cpp-quantized file tests/fixtures/models/tiny-gqa-q4_k_m.gguf (committed, made by
scripts/quantize_fixtures.py) is added to "models" as well, with logits computed here; the small
llama.cpp quant-coverage files tests/fixtures/models/tiny-cov-v512-*.gguf (512-piece vocab, one
per quant type) get entries of the same shape under "extra_models".

Token sequences are real code text encoded with the model's own vocabulary by a small
SentencePiece-BPE encoder (highest-score merge first, byte fallback) -- see `encode`; it
reproduces all 47 of llama.cpp's ggml-vocab-llama-spm test vectors and the facts doc's infill
vector. "tiny-gqa-f32-long" (same file as tiny-gqa-f32) is a 300-token infill prompt
(BOS, ▁<PRE> 32007, prefix, ▁<SUF> 32008, suffix, ▁<MID> 32009, more code).

Only needs numpy + gguf. Usage: python scripts/make_fixtures.py [--out DIR]
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import reference_forward  # noqa: E402

LLAMA_SPM_VOCAB = os.path.join(ROOT, "tests", "fixtures", "vocab", "ggml-vocab-llama-spm.gguf")
MODELS_DIR = os.path.join(ROOT, "tests", "fixtures", "models")

DIM = 256
HEAD_DIM = 64
N_LAYERS = 2
CONTEXT = 512
ROPE_THETA = 1e6
RMS_EPS = 1e-5

# architecture name -> (n_heads, n_kv_heads, ffn hidden, seed)
ARCHS = {
    "mha": (4, 4, 512, 1234),
    "gqa": (4, 2, 768, 5678),
}
# model name -> (arch, type of every matrix)
MODELS = [
    ("tiny-mha-f32", "mha", QT.F32),
    ("tiny-gqa-f32", "gqa", QT.F32),
    ("tiny-mha-f16", "mha", QT.F16),
    ("tiny-gqa-q8_0", "gqa", QT.Q8_0),
    ("tiny-mha-q4_0", "mha", QT.Q4_0),
]
FILE_TYPE = {
    QT.F32: gguf.LlamaFileType.ALL_F32,
    QT.F16: gguf.LlamaFileType.MOSTLY_F16,
    QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
    QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
}
LONG_MODEL = "tiny-gqa-f32"   # also gets a 300-token sequence (entry "<name>-long")
SHORT_LEN = 40
LONG_LEN = 300

# ---------------------------------------------------------------------------------------------
# vocabulary


@dataclass
class Vocab:
    tokens: list[str]
    scores: list[float]
    types: list[int]
    source: str

    def __len__(self) -> int:
        return len(self.tokens)

    def truncated(self, n: int) -> "Vocab":
        return Vocab(self.tokens[:n], self.scores[:n], self.types[:n], f"{self.source}[:{n}]")


CODELLAMA_SOURCE = "scripts/make_codellama_vocab.py codellama_vocab()"


def _read_vocab_gguf(path_or_reader) -> Vocab:
    r = path_or_reader
    if not isinstance(r, gguf.GGUFReader):
        r = reference_forward.open_gguf(path_or_reader)
    path = path_or_reader if isinstance(path_or_reader, str) else "<gguf>"
    f = r.get_field("tokenizer.ggml.tokens")
    tokens = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    f = r.get_field("tokenizer.ggml.scores")
    scores = [float(f.parts[i][0]) for i in f.data]
    f = r.get_field("tokenizer.ggml.token_type")
    types = [int(f.parts[i][0]) for i in f.data]
    return Vocab(tokens, scores, types, os.path.relpath(path, ROOT))


def load_vocab() -> Vocab:
    """The Code Llama vocabulary if scripts/make_codellama_vocab.py is present, else llama-spm."""
    try:
        import make_codellama_vocab as mcv  # noqa: F401
    except ImportError:
        return _read_vocab_gguf(LLAMA_SPM_VOCAB)
    # write_vocab_metadata() calls codellama_vocab(), which re-reads the 32000-piece GGUF each
    # time; the lists are only read by GGUFWriter, so memoize it for this process.
    if not hasattr(mcv.codellama_vocab, "cache_info"):
        mcv.codellama_vocab = functools.lru_cache(maxsize=1)(mcv.codellama_vocab)
    v = mcv.codellama_vocab()
    return _vocab_from_codellama(v)


def _vocab_from_codellama(v) -> Vocab:
    # accept (tokens, scores, types) tuples or objects/dicts with those fields
    if isinstance(v, dict):
        t, s, ty = v["tokens"], v["scores"], v["types"] if "types" in v else v["token_types"]
    elif isinstance(v, (tuple, list)) and len(v) == 3:
        t, s, ty = v
    else:
        t = getattr(v, "tokens")
        s = getattr(v, "scores")
        ty = getattr(v, "types", None) or getattr(v, "token_types")
    t = [x.decode("utf-8") if isinstance(x, (bytes, bytearray)) else str(x) for x in t]
    return Vocab(t, [float(x) for x in s], [int(x) for x in ty], CODELLAMA_SOURCE)


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    if vocab.source == CODELLAMA_SOURCE:
        import make_codellama_vocab as mcv
        mcv.write_vocab_metadata(writer)
        return
    # same keys as make_codellama_vocab.write_vocab_metadata, for other (e.g. truncated) vocabs
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


# ---------------------------------------------------------------------------------------------
# SentencePiece-BPE encoder (for choosing realistic token ids only)


def encode(vocab: Vocab, text: str, add_space_prefix: bool = True) -> list[int]:
    ids = {}
    for i, (p, ty) in enumerate(zip(vocab.tokens, vocab.types)):
        if ty in (1, 4) and p not in ids:      # normal / user-defined pieces take part in merges
            ids[p] = i
    byte_ids = {}
    for i, p in enumerate(vocab.tokens):
        if vocab.types[i] == 6 and len(p) == 6 and p.startswith("<0x"):
            byte_ids[int(p[3:5], 16)] = i
    s = ("▁" if add_space_prefix else "") + text.replace(" ", "▁")
    sym = list(s)
    while len(sym) > 1:
        best, best_i = None, -1
        for i in range(len(sym) - 1):
            m = sym[i] + sym[i + 1]
            j = ids.get(m)
            if j is not None and (best is None or vocab.scores[j] > best):
                best, best_i = vocab.scores[j], i
        if best_i < 0:
            break
        sym[best_i:best_i + 2] = [sym[best_i] + sym[best_i + 1]]
    out = []
    for p in sym:
        if p in ids:
            out.append(ids[p])
        else:
            out.extend(byte_ids[b] for b in p.encode("utf-8"))
    return out


SHORT_CODE = '''def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''

LONG_PREFIX = '''import json
from typing import Dict, List


class Inventory:
    """A tiny in-memory inventory with JSON persistence."""

    def __init__(self) -> None:
        self.items: Dict[str, int] = {}

    def add(self, name: str, count: int = 1) -> None:
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        self.items[name] = self.items.get(name, 0) + count

    def remove(self, name: str, count: int = 1) -> bool:
'''
LONG_SUFFIX = '''
        return True

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.items, f, indent=2, sort_keys=True)
'''
LONG_TAIL = '''        have = self.items.get(name, 0)
        if have < count:
            return False
        if have == count:
            del self.items[name]
        else:
            self.items[name] = have - count
'''
LONG_MORE = '''

def load(path: str) -> "Inventory":
    inv = Inventory()
    with open(path, encoding="utf-8") as f:
        for name, count in json.load(f).items():
            inv.add(name, int(count))
    return inv


if __name__ == "__main__":
    inv = Inventory()
    for word in "apple banana apple cherry banana apple".split():
        inv.add(word)
    print(sorted(inv.items.items(), key=lambda kv: (-kv[1], kv[0])))
'''


def piece_id(vocab: Vocab, piece: str):
    try:
        return vocab.tokens.index(piece)
    except ValueError:
        return None


def short_tokens(vocab: Vocab) -> list[int]:
    t = [1] + encode(vocab, SHORT_CODE)
    assert len(t) >= SHORT_LEN, len(t)
    return t[:SHORT_LEN]


def long_tokens(vocab: Vocab) -> list[int]:
    """300 tokens; an infill (prefix-suffix-middle) prompt when the vocab has the FIM pieces."""
    pre, suf, mid = (piece_id(vocab, p) for p in ("▁<PRE>", "▁<SUF>", "▁<MID>"))
    if None not in (pre, suf, mid):
        t = [1, pre] + encode(vocab, LONG_PREFIX) + [suf]
        t += encode(vocab, LONG_SUFFIX, add_space_prefix=False) + [mid]
    else:
        t = [1] + encode(vocab, LONG_PREFIX + LONG_SUFFIX)
    t += encode(vocab, LONG_TAIL + LONG_MORE, add_space_prefix=False)
    assert len(t) >= LONG_LEN, len(t)
    return t[:LONG_LEN]


# ---------------------------------------------------------------------------------------------
# weights and GGUF writing


def make_weights(arch: str, vocab_size: int) -> dict[str, np.ndarray]:
    """float32 weights, numpy shape (out, in) for matrices. Deterministic per (arch, vocab size)."""
    n_heads, n_kv, ffn, seed = ARCHS[arch]
    rng = np.random.default_rng([seed, vocab_size])
    hd = DIM // n_heads
    assert hd == HEAD_DIM

    def mat(out_f, in_f, gain=1.0):
        return (rng.standard_normal((out_f, in_f)) * (gain / np.sqrt(in_f))).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"token_embd.weight": rng.standard_normal((vocab_size, DIM)).astype(np.float32)}
    for l in range(N_LAYERS):
        b = f"blk.{l}."
        w[b + "attn_norm.weight"] = norm(DIM)
        w[b + "attn_q.weight"] = mat(n_heads * hd, DIM, 1.5)
        w[b + "attn_k.weight"] = mat(n_kv * hd, DIM, 1.5)
        w[b + "attn_v.weight"] = mat(n_kv * hd, DIM)
        w[b + "attn_output.weight"] = mat(DIM, n_heads * hd)
        w[b + "ffn_norm.weight"] = norm(DIM)
        w[b + "ffn_gate.weight"] = mat(ffn, DIM)
        w[b + "ffn_up.weight"] = mat(ffn, DIM)
        w[b + "ffn_down.weight"] = mat(DIM, ffn)
    w["output_norm.weight"] = norm(DIM)
    w["output.weight"] = mat(vocab_size, DIM, 2.0)
    return w


def write_model(path: str, name: str, arch: str, qtype: QT, vocab: Vocab,
                weights: dict[str, np.ndarray] | None = None) -> None:
    n_heads, n_kv, ffn, _ = ARCHS[arch]
    if weights is None:
        weights = make_weights(arch, len(vocab))
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(int(FILE_TYPE.get(qtype, gguf.LlamaFileType.ALL_F32)))
    w.add_context_length(CONTEXT)
    w.add_embedding_length(DIM)
    w.add_block_count(N_LAYERS)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(ROPE_THETA)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(DIM // n_heads)
    w.add_vocab_size(len(vocab))
    write_vocab(w, vocab)
    for tname, arr in weights.items():
        if arr.ndim == 1 or qtype == QT.F32:
            w.add_tensor(tname, arr.astype(np.float32))
        elif qtype == QT.F16:
            w.add_tensor(tname, arr.astype(np.float16))
        else:
            w.add_tensor(tname, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_layout(r: gguf.GGUFReader, weights: dict[str, np.ndarray], qtype: QT) -> None:
    """GGUF dims must be innermost first: numpy (out, in) is stored as [in, out]."""
    for t in r.tensors:
        src = weights[t.name]
        assert t.shape.tolist() == list(reversed(src.shape)), (t.name, t.shape, src.shape)
        if src.ndim == 2 and qtype == QT.F32:
            assert np.array_equal(np.asarray(t.data), src), t.name


def top2_gaps(logits: np.ndarray) -> np.ndarray:
    s = np.sort(logits, axis=-1)
    return s[:, -1] - s[:, -2]


def gap_stats(logits: np.ndarray) -> dict:
    g = top2_gaps(logits)
    return {"min_top2_gap": float(g.min()), "median_top2_gap": float(np.median(g)),
            "frac_top2_gap_gt_1e-3": float(np.mean(g > 1e-3))}


def reference_entry(name, model, rel_file, n_heads, n_kv, tokens, out_dir, qtype_name):
    assert (model.n_heads, model.n_kv_heads) == (n_heads, n_kv)
    logits = reference_forward.forward(model, tokens)
    fn = f"{name}.logits.npy"
    np.save(os.path.join(out_dir, fn), logits.astype(np.float32))
    e = {"name": name, "file": rel_file, "n_heads": n_heads, "n_kv_heads": n_kv,
         "tokens": [int(t) for t in tokens], "logits": fn, "type": qtype_name,
         "vocab_size": int(logits.shape[1]), "dim": DIM, "n_layers": N_LAYERS,
         "argmax": [int(i) for i in np.argmax(logits, axis=-1)]}
    e.update(gap_stats(logits))
    return e


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="write tiny GGUF fixtures + reference logits")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "generated"))
    a = ap.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    t0 = time.time()
    vocab = load_vocab()
    print(f"vocab: {len(vocab)} pieces from {vocab.source}")
    toks = short_tokens(vocab)
    toks_long = long_tokens(vocab)
    weights_cache: dict[str, dict] = {}
    entries = []
    for name, arch, qtype in MODELS:
        n_heads, n_kv, _, _ = ARCHS[arch]
        if arch not in weights_cache:
            weights_cache[arch] = make_weights(arch, len(vocab))
        weights = weights_cache[arch]
        path = os.path.join(a.out, f"{name}.gguf")
        write_model(path, name, arch, qtype, vocab, weights)
        reader = reference_forward.open_gguf(path)
        check_layout(reader, weights, qtype)
        model = reference_forward.GGUFModel(reader)
        e = reference_entry(name, model, f"{name}.gguf", n_heads, n_kv, toks, a.out, qtype.name)
        entries.append(e)
        print(f"{name}: {os.path.getsize(path)} bytes, min top2 gap {e['min_top2_gap']:.4g} "
              f"({time.time() - t0:.1f}s)")
        if name == LONG_MODEL:
            e = reference_entry(name + "-long", model, f"{name}.gguf", n_heads, n_kv, toks_long,
                                a.out, qtype.name)
            entries.append(e)
            print(f"{name}-long: T={len(toks_long)}, min top2 gap {e['min_top2_gap']:.4g}")
    q4km = os.path.join(MODELS_DIR, "tiny-gqa-q4_k_m.gguf")
    if os.path.exists(q4km):
        n_heads, n_kv, _, _ = ARCHS["gqa"]
        reader = reference_forward.open_gguf(q4km)
        qvocab = _read_vocab_gguf(reader)
        e = reference_entry("tiny-gqa-q4_k_m", reference_forward.GGUFModel(reader), "../models/tiny-gqa-q4_k_m.gguf",
                            n_heads, n_kv, short_tokens(qvocab), a.out, "Q4_K_M")
        entries.append(e)
        print(f"tiny-gqa-q4_k_m: min top2 gap {e['min_top2_gap']:.4g}")
    else:
        print(f"warning: {q4km} missing, not in manifest", file=sys.stderr)
    # llama.cpp quant-coverage files (small vocab): same entry shape, separate list
    extra = []
    for fn in sorted(os.listdir(MODELS_DIR)) if os.path.isdir(MODELS_DIR) else []:
        if not (fn.startswith("tiny-cov-") and fn.endswith(".gguf")):
            continue
        reader = reference_forward.open_gguf(os.path.join(MODELS_DIR, fn))
        model = reference_forward.GGUFModel(reader)
        qtype = fn[len("tiny-cov-"):-len(".gguf")].split("-")[-1].upper()
        e = reference_entry(fn[:-len(".gguf")], model, f"../models/{fn}", model.n_heads,
                            model.n_kv_heads, short_tokens(_read_vocab_gguf(reader)), a.out, qtype)
        e["dim"], e["n_layers"] = model.dim, model.n_layers
        extra.append(e)
        print(f"{e['name']}: min top2 gap {e['min_top2_gap']:.4g}")
    manifest = {"vocab_source": vocab.source, "models": entries, "extra_models": extra}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(f"done in {time.time() - t0:.1f}s -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
