#!/usr/bin/env python3
"""Independent float64 numpy reference forward pass for GGUF `llama` (Code Llama) models.

This deliberately shares no code with the project's Rust implementation: tensors are read with
gguf-py's `GGUFReader` and dequantized with `gguf.quants.dequantize`; every hyperparameter comes
from the GGUF metadata.

Model (Meta's original layout, as stored in GGUF):
  x = token_embd[tokens]
  per layer:
    h  = rmsnorm(x) * attn_norm
    q, k, v = h Wq^T, h Wk^T, h Wv^T       (per head, head_dim = dim / n_heads)
    RoPE on ADJACENT pairs (2i, 2i+1) of each q/k head, angle = pos * theta^(-2i/head_dim)
    causal softmax(q k^T / sqrt(head_dim)) v, kv head = q head // (n_heads / n_kv_heads)
    x += attn Wo^T
    h  = rmsnorm(x) * ffn_norm
    x += W2 (silu(W1 h) * W3 h)       (W1 = ffn_gate, W3 = ffn_up, W2 = ffn_down)
  logits = (rmsnorm(x) * output_norm) Wout^T          -> [T, vocab], teacher forced

Library use:  `forward_logits(path, tokens) -> np.ndarray[float64]  (T, vocab)`
CLI use:      `python scripts/reference_forward.py MODEL.gguf --tokens "1 2 3" --out F.npy`
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import gguf
from gguf.quants import dequantize


def _field_value(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.get_field(key)
    if f is None:
        return default
    # scalar fields: the value is the last part
    v = f.parts[f.data[0]]
    if f.types and f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(v).decode("utf-8")
    return v.tolist()[0]


def open_gguf(path: str) -> gguf.GGUFReader:
    """gguf.GGUFReader(path), parsed over a plain ndarray view of the file's memory map.

    GGUFReader slices `self.data` once per metadata element; slicing an np.memmap is ~3x slower
    than slicing a plain ndarray (memmap.__array_finalize__), which for a 32016-piece vocab costs
    seconds per file. The bytes and the parsing are exactly GGUFReader's."""
    orig = np.memmap

    def plain_memmap(*args, **kwargs):
        return orig(*args, **kwargs).view(np.ndarray)

    np.memmap = plain_memmap
    try:
        return gguf.GGUFReader(path)
    finally:
        np.memmap = orig


class GGUFModel:
    """Hyperparameters and dequantized (float64) tensors of a GGUF llama model."""

    def __init__(self, path_or_reader):
        r = path_or_reader
        if not isinstance(r, gguf.GGUFReader):
            r = open_gguf(path_or_reader)
        path = str(path_or_reader) if isinstance(path_or_reader, str) else "<gguf>"
        arch = _field_value(r, "general.architecture")
        if arch != "llama":
            raise ValueError(f"{path}: architecture {arch!r}, expected 'llama'")
        p = "llama."
        self.dim = int(_field_value(r, p + "embedding_length"))
        self.n_layers = int(_field_value(r, p + "block_count"))
        self.n_heads = int(_field_value(r, p + "attention.head_count"))
        self.n_kv_heads = int(_field_value(r, p + "attention.head_count_kv", self.n_heads))
        self.ffn = int(_field_value(r, p + "feed_forward_length"))
        self.eps = float(_field_value(r, p + "attention.layer_norm_rms_epsilon"))
        self.theta = float(_field_value(r, p + "rope.freq_base", 10000.0))
        self.head_dim = self.dim // self.n_heads
        self.rope_dim = int(_field_value(r, p + "rope.dimension_count", self.head_dim))
        if self.rope_dim != self.head_dim:
            raise ValueError("partial RoPE (rope.dimension_count != head_dim) is not supported")
        if self.n_heads % self.n_kv_heads:
            raise ValueError("head_count must be a multiple of head_count_kv")
        self.tensor_types: dict[str, str] = {}
        self.t: dict[str, np.ndarray] = {}
        for t in r.tensors:
            # GGUF dims are innermost first; numpy shape is the reverse, i.e. (out, in).
            shape = tuple(int(d) for d in reversed(t.shape.tolist()))
            w = dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)
            self.t[t.name] = w.astype(np.float64)
            self.tensor_types[t.name] = t.tensor_type.name
        self.vocab = self.t["token_embd.weight"].shape[0]
        assert self.t["token_embd.weight"].shape == (self.vocab, self.dim)

    def w(self, name: str) -> np.ndarray:
        return self.t[name]


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + eps) * weight


def rope_adjacent(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    """x: (T, n_heads, head_dim). Rotate adjacent pairs (2i, 2i+1) by pos * theta^(-2i/hd)."""
    hd = x.shape[-1]
    i = np.arange(hd // 2, dtype=np.float64)
    inv_freq = theta ** (-2.0 * i / hd)                      # (hd/2,)
    ang = positions.astype(np.float64)[:, None] * inv_freq[None, :]   # (T, hd/2)
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def forward(model: GGUFModel, tokens) -> np.ndarray:
    """Teacher-forced logits for every position: float64 array of shape (T, vocab)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or tokens.size == 0:
        raise ValueError("tokens must be a non-empty 1-D sequence")
    if tokens.min() < 0 or tokens.max() >= model.vocab:
        raise ValueError("token id out of range")
    T = tokens.size
    H, KV, hd = model.n_heads, model.n_kv_heads, model.head_dim
    group = H // KV
    pos = np.arange(T)
    x = model.w("token_embd.weight")[tokens].copy()          # (T, dim)
    causal = np.triu(np.ones((T, T), dtype=bool), k=1)        # True above the diagonal = masked
    for l in range(model.n_layers):
        b = f"blk.{l}."
        h = rmsnorm(x, model.w(b + "attn_norm.weight"), model.eps)
        q = (h @ model.w(b + "attn_q.weight").T).reshape(T, H, hd)
        k = (h @ model.w(b + "attn_k.weight").T).reshape(T, KV, hd)
        v = (h @ model.w(b + "attn_v.weight").T).reshape(T, KV, hd)
        q = rope_adjacent(q, pos, model.theta)
        k = rope_adjacent(k, pos, model.theta)
        attn = np.empty((T, H, hd))
        for hq in range(H):
            kh = hq // group
            s = (q[:, hq, :] @ k[:, kh, :].T) / np.sqrt(hd)   # (T, T)
            s[causal] = -np.inf
            s -= s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            attn[:, hq, :] = p @ v[:, kh, :]
        x = x + attn.reshape(T, H * hd) @ model.w(b + "attn_output.weight").T
        h = rmsnorm(x, model.w(b + "ffn_norm.weight"), model.eps)
        g = h @ model.w(b + "ffn_gate.weight").T
        u = h @ model.w(b + "ffn_up.weight").T
        x = x + (silu(g) * u) @ model.w(b + "ffn_down.weight").T
    h = rmsnorm(x, model.w("output_norm.weight"), model.eps)
    return h @ model.w("output.weight").T


def forward_logits(path: str, tokens) -> np.ndarray:
    return forward(GGUFModel(path), tokens)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="GGUF file (architecture llama)")
    ap.add_argument("--tokens", required=True, help='space- or comma-separated ids, e.g. "1 2 3"')
    ap.add_argument("--out", help="write the float32 logits [T, vocab] to this .npy file")
    a = ap.parse_args(argv)
    toks = [int(t) for t in a.tokens.replace(",", " ").split()]
    logits = forward_logits(a.model, toks)
    if a.out:
        np.save(a.out, logits.astype(np.float32))
    top = np.argmax(logits, axis=-1)
    print(f"T={logits.shape[0]} vocab={logits.shape[1]} argmax={top.tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
