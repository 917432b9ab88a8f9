#!/usr/bin/env python3
"""Expected token ids for tests/prompt_formats.rs, derived independently of the Rust code.

A real SentencePiece BPE model is built from the Code Llama vocabulary
(scripts/make_codellama_vocab.py: llama.cpp's Llama vocab + Code Llama's 16 pieces) through
`sentencepiece_model_pb2`, and Meta's prompt formatting (`llama/tokenizer.py` and
`llama/generation.py` of meta-llama/codellama) is re-typed below on top of it.

Needs `sentencepiece` and `protobuf` (>= the version sentencepiece_model_pb2 was generated
with), e.g.:

    pip install --target /tmp/pydeps 'protobuf>=7.36.1'
    PYTHONPATH=/tmp/pydeps python scripts/prompt_vectors.py

Prints Rust constants to paste into tests/prompt_formats.rs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_codellama_vocab import VOCAB_DIR, codellama_vocab, llama_vocab  # noqa: E402


def build_sp(tokens: list[str], scores: list[float], types: list[int]) -> spm.SentencePieceProcessor:
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.vocab_size = len(tokens)
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id = 0, 1, 2
    m.trainer_spec.pad_id = -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for piece, score, ty in zip(tokens, scores, types):
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, ty  # GGUF token types use SentencePiece's numbers
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def check_llama_vectors() -> None:
    """The same construction must reproduce llama.cpp's own Llama vectors."""
    sp = build_sp(*llama_vocab())
    raw = (VOCAB_DIR / "ggml-vocab-llama-spm.gguf.inp").read_text(encoding="utf-8")
    outs = (VOCAB_DIR / "ggml-vocab-llama-spm.gguf.out").read_text(encoding="utf-8").splitlines()
    sep = "\n__ggml_vocab_test__\n"
    inputs, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt < 0:
            inputs.append(raw[pos:])
            break
        inputs.append(raw[pos:nxt])
        pos = nxt + len(sep)
    assert len(inputs) == len(outs)
    ok = sum(sp.encode(s) == [int(t) for t in o.split()] for s, o in zip(inputs, outs))
    print(f"// SentencePiece on llama.cpp's Llama vectors: {ok} of {len(inputs)}")
    assert ok == len(inputs)


class Tokenizer:
    """Meta's llama/tokenizer.py, re-typed."""

    def __init__(self, sp: spm.SentencePieceProcessor):
        self.sp_model = sp
        self.bos_id = sp.bos_id()
        self.eos_id = sp.eos_id()
        self.prefix_id: Optional[int] = sp.piece_to_id("▁<PRE>") or None
        self.middle_id: Optional[int] = sp.piece_to_id("▁<MID>") or None
        self.suffix_id: Optional[int] = sp.piece_to_id("▁<SUF>") or None
        self.eot_id: Optional[int] = sp.piece_to_id("▁<EOT>") or None

    def encode(self, s: str, bos: bool, eos: bool) -> List[int]:
        t = self.sp_model.encode(s)
        if bos:
            t = [self.bos_id] + t
        if eos:
            t = t + [self.eos_id]
        return t

    def encode_infilling(self, s: str) -> List[int]:
        """Encode a string without an implicit leading space."""
        return self.sp_model.encode("☺" + s)[2:]


def infilling_prompt_tokens(tok: Tokenizer, pre: str, suf: str, suffix_first: bool = False) -> List[int]:
    if suffix_first:
        return (
            [tok.bos_id, tok.prefix_id, tok.suffix_id]
            + tok.encode_infilling(suf)
            + [tok.middle_id]
            + tok.encode(pre, bos=False, eos=False)
        )
    return (
        [tok.bos_id, tok.prefix_id]
        + tok.encode(pre, bos=False, eos=False)
        + [tok.suffix_id]
        + tok.encode_infilling(suf)
        + [tok.middle_id]
    )


B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"


def chat_prompt_tokens(tok: Tokenizer, dialog: list[dict]) -> List[int]:
    """The prompt part of Meta's Llama.chat_completion (no step_id)."""
    if dialog[0]["role"] == "system":
        dialog = [
            {
                "role": dialog[1]["role"],
                "content": B_SYS + dialog[0]["content"] + E_SYS + dialog[1]["content"],
            }
        ] + dialog[2:]
    assert all(m["role"] == "user" for m in dialog[::2]) and all(
        m["role"] == "assistant" for m in dialog[1::2]
    )
    dialog_tokens: List[int] = sum(
        [
            tok.encode(
                f"{B_INST} {prompt['content'].strip()} {E_INST} {answer['content'].strip()} ",
                bos=True,
                eos=True,
            )
            for prompt, answer in zip(dialog[::2], dialog[1::2])
        ],
        [],
    )
    assert dialog[-1]["role"] == "user"
    dialog_tokens += tok.encode(f"{B_INST} {dialog[-1]['content'].strip()} {E_INST}", bos=True, eos=False)
    return dialog_tokens


FACTS_PREFIX = 'def remove_non_ascii(s: str) -> str:\n    """ '
FACTS_SUFFIX = "\n    return result\n"
FACTS_IDS = [int(t) for t in (
    "1 32007 822 3349 29918 5464 29918 294 18869 29898 29879 29901 851 29897 1599 851 29901 13 "
    "1678 9995 29871 32008 13 1678 736 1121 13 32009"
).split()]

INFILL_CASES = [
    # (name, prefix, suffix, suffix_first)
    ("PSM_FACTS", FACTS_PREFIX, FACTS_SUFFIX, False),
    ("SPM_FACTS", FACTS_PREFIX, FACTS_SUFFIX, True),
    ("PSM_EMPTY_PREFIX", "", "    return x\n", False),
    ("SPM_EMPTY_PREFIX", "", "    return x\n", True),
    ("PSM_EMPTY_SUFFIX", "fn main() {\n    let x = ", "", False),
    ("SPM_EMPTY_SUFFIX", "fn main() {\n    let x = ", "", True),
    ("PSM_BOTH_EMPTY", "", "", False),
    ("PSM_UNICODE", "# Grüße, 世界 🦙\ns = '", "'  # ☺ naïve\n", False),
    ("SPM_UNICODE", "# Grüße, 世界 🦙\ns = '", "'  # ☺ naïve\n", True),
    ("PSM_SPACES", "  if x:\n\t", " \n  \n", False),
]

CHAT_CASES = [
    ("CHAT_SINGLE", [{"role": "user", "content": "Write a function that reverses a string."}]),
    (
        "CHAT_SYSTEM_MULTI",
        [
            {"role": "system", "content": "  Provide answers in JavaScript.\n"},
            {"role": "user", "content": "Reverse a string?  "},
            {"role": "assistant", "content": "\n s.split('').reverse().join('') \n"},
            {"role": "user", "content": "\tAnd in Rust, with ünïcödé 🦀?"},
        ],
    ),
    (
        "CHAT_MULTI_NO_SYSTEM",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "\u3000Thanks\x1c"},
        ],
    ),
    ("CHAT_SYSTEM_EMPTY_USER", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": ""}]),
]

COMPLETION_CASES = [
    ("COMPLETION_CODE", "import socket\n\ndef ping_exponential_backoff(host: str):"),
    ("COMPLETION_INFILL_TEXT", "a <PRE> b <SUF>c <MID> <EOT>"),
]


# Id sequences for the decoder: leading-space rule, control/unknown pieces, byte runs.
DECODE_CASES = [
    [29871, 29871, 15043],
    [1, 29871, 15043, 2],
    [0, 15043],
    [1, 0, 29871],
    [259, 1678, 15043],
    [3 + 0x20, 15043],
    [3 + 0xE2, 3 + 0x82, 15043, 3 + 0xC3],
    [3 + 0xF2, 3 + 0xB2, 3 + 0xF6, 3 + 0x41],
    [2, 1, 3 + 0xF0, 3 + 0x9F, 3 + 0xA6, 3 + 0x99, 32010, 32007],
]


def rust_str(s: str) -> str:
    out = []
    for c in s:
        if c in "\\\"":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or c == "\ufffd":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def rust_const(name: str, ids: list[int]) -> str:
    return f"const {name}: &[u32] = &{ids};"


def main() -> int:
    check_llama_vectors()
    tok = Tokenizer(build_sp(*codellama_vocab()))
    assert (tok.prefix_id, tok.suffix_id, tok.middle_id, tok.eot_id) == (32007, 32008, 32009, 32010)
    psm = infilling_prompt_tokens(tok, FACTS_PREFIX, FACTS_SUFFIX)
    assert psm == FACTS_IDS, psm
    print("// The facts doc's reference infill vector reproduces.")
    for name, pre, suf, spm_mode in INFILL_CASES:
        print(rust_const(name, infilling_prompt_tokens(tok, pre, suf, spm_mode)))
    for name, dialog in CHAT_CASES:
        print(rust_const(name, chat_prompt_tokens(tok, dialog)))
    for name, text in COMPLETION_CASES:
        print(rust_const(name, tok.encode(text, bos=True, eos=False)))
    print("const SP_DECODE: &[(&[u32], &str)] = &[")
    for ids in DECODE_CASES:
        print(f"    (&{ids}, {rust_str(tok.sp_model.decode(ids))}),")
    print("];")
    return 0


if __name__ == "__main__":
    sys.exit(main())
