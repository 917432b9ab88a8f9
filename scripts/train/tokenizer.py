#!/usr/bin/env python3
"""Train the demo model's SentencePiece BPE tokenizer (Llama / Code Llama style).

Usage (from the repository root, in the training venv):

    python scripts/train/tokenizer.py [--work build/demo-train] [--vocab 4096]

Input: ``<work>/spm_input.txt`` from ``corpus.py`` (one source line per sentence).
Output: ``<work>/spm.model`` (+ ``spm.vocab``), the tokenizer ``train.py`` and ``export.py`` use.

Settings mirror Llama's tokenizer: BPE, byte fallback (``<0x00>``..``<0xFF>`` at ids 3..258),
``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, no pad; identity normalization, whitespace runs kept
(``remove_extra_whitespaces=False``), whitespace-only pieces allowed (indentation compresses
into ``▁▁▁`` pieces), digits split, a dummy ``▁`` prefix when encoding.

Two post-training edits of the model proto:

* SentencePiece trains on lines, but in a file a line follows ``\\n`` and carries no dummy
  prefix, so training runs with ``add_dummy_prefix=False`` (statistics of real line starts,
  e.g. ``▁▁▁`` + ``▁return`` for an indented line) and the flag is switched on afterwards
  (encoding a whole prompt prepends one ``▁``, like Llama).
* Code Llama's infill pieces ``▁<PRE>``, ``▁<SUF>``, ``▁<MID>``, ``▁<EOT>`` are appended as the
  last four ids, typed NORMAL with the lowest scores, as in Code Llama's 32016-piece vocabulary
  (there they are ordinary BPE pieces, ids 32007..32010). Prompts insert them by id; plain text
  never merges into them (checked below: no split of them into two mergeable pieces exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

INFILL_PIECES = ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--vocab", type=int, default=4096, help="total pieces incl. the 4 infill pieces")
    a = ap.parse_args(argv)
    prefix = a.work / "spm_raw"
    spm.SentencePieceTrainer.train(
        input=str(a.work / "spm_input.txt"),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=a.vocab - len(INFILL_PIECES),
        byte_fallback=True,
        character_coverage=0.9999,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        split_digits=True,
        split_by_whitespace=True,
        split_by_unicode_script=True,
        split_by_number=True,
        allow_whitespace_only_pieces=True,
        max_sentencepiece_length=16,
        max_sentence_length=16384,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=2,
        minloglevel=1,
    )
    m = pb.ModelProto()
    m.ParseFromString((prefix.with_suffix(".model")).read_bytes())
    m.normalizer_spec.add_dummy_prefix = True
    low = min(p.score for p in m.pieces)
    vocab = {p.piece for p in m.pieces if p.type in (pb.ModelProto.SentencePiece.NORMAL, pb.ModelProto.SentencePiece.USER_DEFINED)}
    for k, piece in enumerate(INFILL_PIECES):
        assert piece not in vocab, piece
        for i in range(1, len(piece)):
            assert not (piece[:i] in vocab and piece[i:] in vocab), f"{piece} is reachable by merging"
        p = m.pieces.add()
        p.piece = piece
        p.score = low - 1.0 - k
        p.type = pb.ModelProto.SentencePiece.NORMAL
    m.trainer_spec.vocab_size = len(m.pieces)
    out = a.work / "spm.model"
    out.write_bytes(m.SerializeToString())
    sp = spm.SentencePieceProcessor(model_file=str(out))
    assert sp.get_piece_size() == a.vocab
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert sp.id_to_piece(3) == "<0x00>" and sp.id_to_piece(258) == "<0xFF>"
    with open(a.work / "spm.vocab", "w", encoding="utf-8") as f:
        for p in m.pieces:
            f.write(f"{p.piece}\t{p.score}\t{p.type}\n")
    ids = {p: sp.piece_to_id(p) for p in INFILL_PIECES}
    print(f"wrote {out}: {sp.get_piece_size()} pieces; infill ids {ids}")
    sample = "def f(x):\n    return x + 1\n"
    print(sample, "->", sp.encode(sample, out_type=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
