#!/usr/bin/env python3
"""Build the Code Llama 32016-piece vocabulary as a vocab-only GGUF.

Usage (from the repository root, with the venv that has the `gguf` package):

    python scripts/make_codellama_vocab.py [--out tests/fixtures/generated/codellama-vocab.gguf]

The first 32000 pieces, scores and types are read from llama.cpp's Llama vocabulary
`tests/fixtures/vocab/ggml-vocab-llama-spm.gguf` (see PROVENANCE.md there). Code Llama
appends 16 pieces, ids 32000..32015 (`CODELLAMA_EXTRA_PIECES` below).

Importable API (used by other fixture builders):

    codellama_vocab() -> (tokens: list[str], scores: list[float], types: list[int])
    write_vocab_metadata(writer: gguf.GGUFWriter) -> None   # all tokenizer.ggml.* keys

Sources for the 16 extra pieces
-------------------------------
* Piece texts and ids: microsoft/aici, `aicirt/src/bintokens.rs` ("llama16": "same as llama,
  with 16 added tokens (used by 13B codellama)"), which lists exactly
  32000 `▁<SU`, 32001 `▁<SUF`, 32002 `▁<PRE`, 32003 `▁<M`, 32004 `▁<MID`, 32005 `▁<E`,
  32006 `▁<EOT`, 32007 `▁<PRE>`, 32008 `▁<SUF>`, 32009 `▁<MID>`, 32010 `▁<EOT>`,
  32011..32015 `▁<EOT>` followed by 1..5 more `<EOT>`. The infill ids agree with Meta's
  `llama/tokenizer.py` (`piece_to_id("▁<PRE>")` etc.) and with this project's facts doc.
* Token types: NORMAL (1). Published Code Llama GGUF files (llama.cpp load logs of
  CodeLlama-7b-instruct / ELYZA-japanese-CodeLlama-7b GGUFs) print
  `llm_load_vocab: mismatch in special tokens definition ( 259/32016 vs 275/32016 )`:
  259 non-NORMAL tokens by type (unk + 2 control + 256 bytes), i.e. all 16 extra pieces are
  typed NORMAL (they are ordinary pieces of Meta's SentencePiece model, whose vocab_size is
  asserted equal to its piece count), while llama.cpp's text heuristic found 16 more
  special-looking ones.
* Scores: NOT found verbatim in any public source reachable here. Meta's pieces form BPE merge
  chains (`▁<` + `SU` -> `▁<SU`, + `F` -> `▁<SUF`, + `>` -> `▁<SUF>`), i.e. they were appended
  as ordinary BPE pieces after Llama's last piece. Llama's normal pieces have score
  -(id - 259) (id 260 -> -1.0, id 31999 -> -31740.0); we continue that sequence
  (32000 -> -31741.0 ... 32015 -> -31756.0). Scores this low only matter if user text itself
  contains " <PRE>"-like strings; prompts insert the infill ids directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gguf

REPO_ROOT = Path(__file__).resolve().parent.parent
VOCAB_DIR = REPO_ROOT / "tests" / "fixtures" / "vocab"
LLAMA_VOCAB = VOCAB_DIR / "ggml-vocab-llama-spm.gguf"
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "generated" / "codellama-vocab.gguf"

TOKEN_TYPE_NORMAL = 1

# ids 32000..32015, in order.
CODELLAMA_EXTRA_PIECES = [
    "▁<SU",
    "▁<SUF",
    "▁<PRE",
    "▁<M",
    "▁<MID",
    "▁<E",
    "▁<EOT",
    "▁<PRE>",
    "▁<SUF>",
    "▁<MID>",
    "▁<EOT>",
    "▁<EOT><EOT>",
    "▁<EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT>",
    "▁<EOT><EOT><EOT><EOT><EOT><EOT>",
]

PREFIX_ID, SUFFIX_ID, MIDDLE_ID, EOT_ID = 32007, 32008, 32009, 32010
BOS_ID, EOS_ID, UNK_ID = 1, 2, 0


def _field_scalar(field):
    return field.parts[field.data[0]][0]


def llama_vocab(path: Path = LLAMA_VOCAB) -> tuple[list[str], list[float], list[int]]:
    """The 32000-piece Llama vocabulary (pieces, scores, types) from llama.cpp's vocab GGUF."""
    reader = gguf.GGUFReader(str(path))
    if bytes(reader.fields["tokenizer.ggml.model"].parts[-1]).decode() != "llama":
        raise ValueError(f"{path}: tokenizer.ggml.model is not 'llama'")
    toks = reader.fields["tokenizer.ggml.tokens"]
    scs = reader.fields["tokenizer.ggml.scores"]
    tys = reader.fields["tokenizer.ggml.token_type"]
    tokens = [bytes(toks.parts[i]).decode("utf-8") for i in toks.data]
    scores = [float(scs.parts[i][0]) for i in scs.data]
    types = [int(tys.parts[i][0]) for i in tys.data]
    if not (len(tokens) == len(scores) == len(types) == 32000):
        raise ValueError(f"{path}: expected 32000 pieces, got {len(tokens)}/{len(scores)}/{len(types)}")
    return tokens, scores, types


def codellama_vocab() -> tuple[list[str], list[float], list[int]]:
    """The Code Llama 32016-piece vocabulary: (tokens, scores, types)."""
    tokens, scores, types = llama_vocab()
    for k, piece in enumerate(CODELLAMA_EXTRA_PIECES):
        tid = 32000 + k
        tokens.append(piece)
        scores.append(-float(tid - 259))
        types.append(TOKEN_TYPE_NORMAL)
    assert len(tokens) == 32016
    assert tokens[PREFIX_ID] == "▁<PRE>" and tokens[SUFFIX_ID] == "▁<SUF>"
    assert tokens[MIDDLE_ID] == "▁<MID>" and tokens[EOT_ID] == "▁<EOT>"
    assert len(set(tokens)) == len(tokens), "duplicate piece"
    return tokens, scores, types


def write_vocab_metadata(writer: gguf.GGUFWriter) -> None:
    """Adds every tokenizer.ggml.* key of the Code Llama vocabulary to `writer`."""
    tokens, scores, types = codellama_vocab()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)


def write_vocab_gguf(out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name("codellama-vocab")
    writer.add_vocab_size(32016)
    write_vocab_metadata(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    write_vocab_gguf(args.out)
    print(f"wrote {args.out} (32016 pieces)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
