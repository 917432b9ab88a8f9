#!/usr/bin/env python3
"""Turn an exported demo model (GGUF, as export.py writes it) back into a train.py checkpoint.

Usage (from the repository root, in the training venv):

    python scripts/train/from_gguf.py --gguf models/codellama-demo.gguf --out build/demo-train/ckpt-shipped.pt

so that a further training phase can start from the committed file (``train.py --init``) when the
checkpoints that produced it are gone: the file is the recorded artefact (its sha256 is in
scripts/train/README.md), the checkpoint is not. The inverse of export.py's ``gguf_tensors``:
matrices are dequantized with gguf-py (Q8_0: each weight is its block's f16 scale times an int8,
so the result is the trained weight rounded to 8 bits per 32-weight block), norms are F32 as
written. The vocabulary is checked against ``--spm`` (tokenizer.py's model, which must be the one
the GGUF was exported with) so that the token ids mean the same in training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import LAYER_TENSORS  # noqa: E402
from model import Config  # noqa: E402


def field(r: gguf.GGUFReader, key: str):
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0] == gguf.GGUFValueType.STRING else v.item()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, default=Path("models/codellama-demo.gguf"))
    ap.add_argument("--spm", type=Path, default=Path("build/demo-train/spm.model"))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    r = gguf.GGUFReader(str(a.gguf))
    cfg = Config(
        dim=field(r, "llama.embedding_length"), n_layers=field(r, "llama.block_count"),
        n_heads=field(r, "llama.attention.head_count"),
        n_kv_heads=field(r, "llama.attention.head_count_kv"),
        ffn_dim=field(r, "llama.feed_forward_length"), vocab_size=field(r, "llama.vocab_size"),
        context_length=field(r, "llama.context_length"),
        rope_theta=float(field(r, "llama.rope.freq_base")),
        rms_eps=float(field(r, "llama.attention.layer_norm_rms_epsilon")),
    )
    # GGUF keeps the float hyperparameters as f32: snap them back to train.py's defaults when
    # they are those defaults rounded, so that `train.py --init` sees the same config.
    for k in ("rope_theta", "rms_eps"):
        if np.float32(getattr(Config, k)) == np.float32(getattr(cfg, k)):
            setattr(cfg, k, getattr(Config, k))
    m = pb.ModelProto()
    m.ParseFromString(a.spm.read_bytes())
    toks = r.fields["tokenizer.ggml.tokens"]
    pieces = [bytes(toks.parts[i]).decode() for i in toks.data]
    assert pieces == [p.piece for p in m.pieces], f"{a.spm} is not the vocabulary of {a.gguf}"

    by_name = {t.name: t for t in r.tensors}

    def tensor(name: str) -> torch.Tensor:
        t = by_name[name]
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        # GGUF lists dims innermost first; PyTorch's (out, in) is the reverse.
        shape = tuple(int(d) for d in reversed(t.shape))
        return torch.from_numpy(np.array(arr, dtype=np.float32).reshape(shape))

    sd = {"tok_embeddings.weight": tensor("token_embd.weight")}
    for i in range(cfg.n_layers):
        for src, dst in LAYER_TENSORS.items():
            sd[f"layers.{i}.{src}.weight"] = tensor(f"blk.{i}.{dst}.weight")
    sd["norm.weight"] = tensor("output_norm.weight")
    sd["output.weight"] = tensor("output.weight")
    n_params = sum(v.numel() for v in sd.values())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg.to_dict(), "model": sd, "step": 0, "n_params": n_params,
                "init_from": {"gguf": str(a.gguf)}}, a.out)
    print(f"wrote {a.out}: {n_params:,} params from {a.gguf} ({cfg.to_dict()})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
