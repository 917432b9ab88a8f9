#!/usr/bin/env python3
"""Write the trained demo model as a GGUF file laid out like a llama.cpp-converted Code Llama.

Usage (from the repository root, in the training venv):

    python scripts/train/export.py [--work build/demo-train] [--out models/codellama-demo.gguf] [--type Q8_0]

Reads ``<work>/ckpt.pt`` (train.py), ``<work>/spm.model`` (tokenizer.py) and ``<work>/corpus.json``
(corpus.py: the description names the PyPI packages' count when the corpus has them).

* ``general.architecture`` ``llama`` and every ``llama.*`` hyperparameter key (context length,
  embedding length, block count, FFN length, head counts, RMS eps, ``rope.freq_base``,
  ``rope.dimension_count``, ``vocab_size``).
* The SentencePiece vocabulary as ``tokenizer.ggml.*``: model ``llama``, pieces, scores, types
  (1 normal, 2 unknown, 3 control, 6 byte; the infill pieces are normal, like Code Llama's),
  BOS 1 / EOS 2 / UNK 0, ``add_bos_token`` true, ``add_eos_token`` false,
  ``add_space_prefix`` true, and the infill ids under ``tokenizer.ggml.fim_{pre,suf,mid}_token_id``
  / ``eot_token_id``.
* Tensors ``token_embd``, ``blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,
  ffn_gate,ffn_up,ffn_down}``, ``output_norm``, ``output``. The PyTorch model rotates adjacent
  pairs (Meta's layout), which is what GGUF ``llama`` tensors hold, so Q and K are written as
  they are (llama.cpp's converter permutes only Hugging Face's half-split layout back to this).
  Matrices are quantized with gguf-py (Q8_0 by default), norms stay F32.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from sentencepiece import sentencepiece_model_pb2 as pb

QTYPES = {"Q8_0": gguf.GGMLQuantizationType.Q8_0, "F16": gguf.GGMLQuantizationType.F16,
          "F32": gguf.GGMLQuantizationType.F32}
FILE_TYPES = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "F16": gguf.LlamaFileType.MOSTLY_F16,
              "F32": gguf.LlamaFileType.ALL_F32}
# SentencePiece piece type -> GGUF token type (same numbering: 1 normal, 2 unknown, 3 control,
# 4 user-defined, 5 unused, 6 byte).
SP_TYPES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}


# model.py's per-layer state-dict name -> GGUF tensor name (blk.N.<name>.weight); from_gguf.py
# reads by the same table.
LAYER_TENSORS = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
                 "wo": "attn_output", "ffn_norm": "ffn_norm", "w1": "ffn_gate", "w3": "ffn_up",
                 "w2": "ffn_down"}


def gguf_tensors(sd: dict, n_layers: int) -> dict[str, np.ndarray]:
    t = lambda k: sd[k].detach().float().numpy()
    out = {"token_embd.weight": t("tok_embeddings.weight")}
    for i in range(n_layers):
        for src, dst in LAYER_TENSORS.items():
            out[f"blk.{i}.{dst}.weight"] = t(f"layers.{i}.{src}.weight")
    out["output_norm.weight"] = t("norm.weight")
    out["output.weight"] = t("output.weight")
    return out


def description(work: Path) -> str:
    """The GGUF's ``general.description``: what the weights were trained on (corpus.json)."""
    text = ("Tiny Code Llama-architecture demo model trained by codellama-webgpu "
            "(scripts/train) on CPython 3.11 standard library sources (PSF License)")
    corpus = json.loads((work / "corpus.json").read_text())
    pkgs = {d["path"].split("/")[1] for d in corpus["train"] if d["path"].startswith("pypi/")}
    if pkgs:
        text += (f" and {len(pkgs)} permissively licensed PyPI source distributions "
                 "(MIT, BSD, Apache-2.0, PSF; listed in the project's README)")
    return text


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--ckpt", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("models/codellama-demo.gguf"))
    ap.add_argument("--type", choices=sorted(QTYPES), default="Q8_0")
    a = ap.parse_args(argv)
    ck = torch.load(a.ckpt or a.work / "ckpt.pt", map_location="cpu", weights_only=False)
    c = ck["config"]
    m = pb.ModelProto()
    m.ParseFromString((a.work / "spm.model").read_bytes())
    pieces = [p.piece for p in m.pieces]
    scores = [float(p.score) for p in m.pieces]
    types = [SP_TYPES[int(p.type)] for p in m.pieces]
    assert len(pieces) == c["vocab_size"]
    assert m.normalizer_spec.add_dummy_prefix and m.normalizer_spec.name == "identity"
    ids = {p: pieces.index(p) for p in ("<unk>", "<s>", "</s>", "▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")}
    assert (ids["<unk>"], ids["<s>"], ids["</s>"]) == (0, 1, 2)

    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(a.out.suffix + ".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("codellama-demo")
    w.add_description(description(a.work))
    w.add_file_type(int(FILE_TYPES[a.type]))
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(c["context_length"])
    w.add_embedding_length(c["dim"])
    w.add_block_count(c["n_layers"])
    w.add_feed_forward_length(c["ffn_dim"])
    w.add_head_count(c["n_heads"])
    w.add_head_count_kv(c["n_kv_heads"])
    w.add_rope_freq_base(float(c["rope_theta"]))
    w.add_layer_norm_rms_eps(float(c["rms_eps"]))
    w.add_rope_dimension_count(c["dim"] // c["n_heads"])
    w.add_vocab_size(c["vocab_size"])
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.add_uint32("tokenizer.ggml.fim_pre_token_id", ids["▁<PRE>"])
    w.add_uint32("tokenizer.ggml.fim_suf_token_id", ids["▁<SUF>"])
    w.add_uint32("tokenizer.ggml.fim_mid_token_id", ids["▁<MID>"])
    w.add_eot_token_id(ids["▁<EOT>"])
    qt = QTYPES[a.type]
    for name, arr in gguf_tensors(ck["model"], c["n_layers"]).items():
        if arr.ndim == 1 or qt == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, arr.astype(np.float32))
        elif qt == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, a.out)
    print(f"wrote {a.out}: {a.out.stat().st_size:,} bytes, step {ck['step']}, {ck['n_params']:,} params")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
