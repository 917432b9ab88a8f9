#!/usr/bin/env python3
"""Train the demo model: a small Code Llama (next-token prediction + fill-in-the-middle + instruct).

Usage (from the repository root, in the training venv, after corpus.py and tokenizer.py):

    nice -n 19 python scripts/train/train.py --steps N [--work build/demo-train]
    nice -n 19 python scripts/train/train.py --minutes 55   # N picked from the speed of the first steps

Each batch row is one example, drawn with a fixed seed:

* 45% plain next-token windows of ``context`` + 1 tokens from the training stream
  (``[BOS] + enc(file) + [EOS]`` for every training file, concatenated); with ``--snippet-lm P``
  a share P of them is packed with whole snippets instead, each ``[BOS] + enc(snippet) + [EOS]``,
  and with ``--def-split P`` the name after ``def`` / ``class`` is split into ``▁`` + name with
  probability P (the prompt ``def `` ends in a lone ``▁``);
* 50% fill-in-the-middle, half prefix-suffix-middle, half suffix-prefix-middle, built exactly
  like Meta's inference prompts plus the answer (``enc`` prepends the dummy ``▁``,
  ``enc_nospace`` does not):
    PSM ``[BOS, ▁<PRE>] + enc(prefix) + [▁<SUF>] + enc_nospace(suffix) + [▁<MID>] + enc_nospace(middle) + [▁<EOT>]``
    SPM ``[BOS, ▁<PRE>, ▁<SUF>] + enc_nospace(suffix) + [▁<MID>] + enc(prefix) + enc_nospace(middle) + [▁<EOT>]``
  The middle is ``enc_nospace``: the engine decodes a generated middle without stripping a
  leading space, so the middle's tokens are the raw continuation. A document span of about
  ``context`` tokens is cut at two points: half the time uniformly random characters (as in the
  paper), half the time whole lines (1 to 4; the demo's "fill in a missing line" use);
* with ``--snippet-fim P``, a share P of the FIM rows is packed with missing-line examples over
  whole snippets (a def, class or block of 2 to 30 lines moved to column 0, as a pasted or
  freshly typed piece of code is): one code line is the middle, the rest prefix and suffix,
  in either order (``--psm``);
* 5% instruct examples in Meta's chat format,
  ``[BOS] + enc(f"[INST] {user} [/INST] {answer} ") + [EOS]``, user = a request built from the
  first docstring line of a training-split function, answer = that function's source; the loss
  skips the prompt.

Padding (short FIM / instruct rows) is masked out of the loss. AdamW (0.9, 0.95, wd 0.1), linear
warm-up then cosine decay to 10%, gradient clip 1.0. Held-out loss: plain next-token windows of
the held-out files (fixed set). The unigram baseline is the cross-entropy of the held-out tokens
under the training split's token frequencies (add-one smoothed).

Writes ``<work>/ckpt.pt`` (config, weights, step, losses) at every evaluation and at the end,
and appends to ``<work>/train.log``.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from sentencepiece import sentencepiece_model_pb2 as pb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Config, Llama  # noqa: E402

BOS, EOS = 1, 2


class Tok:
    """SentencePiece encoders with and without the dummy prefix, and the infill ids."""

    def __init__(self, path: Path):
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        m = pb.ModelProto()
        m.ParseFromString(path.read_bytes())
        m.normalizer_spec.add_dummy_prefix = False
        self.sp_np = spm.SentencePieceProcessor(model_proto=m.SerializeToString())
        self.pre, self.suf, self.mid, self.eot = (
            self.sp.piece_to_id(p) for p in ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")
        )
        assert len({self.pre, self.suf, self.mid, self.eot, 0}) == 5
        self.n = self.sp.get_piece_size()

    def enc(self, s: str) -> list[int]:
        return self.sp.encode(s) if s else []

    def enc_nospace(self, s: str) -> list[int]:
        return self.sp_np.encode(s) if s else []

    def enc_docs(self, texts: list[str]) -> list[list[int]]:
        """``enc`` of whole files, fast: no piece contains a newline (it is byte fallback
        ``<0x0A>``), so a file's encoding is its lines' encodings joined by that byte, the first
        line with the dummy prefix (equality with ``enc`` is checked on a sample)."""
        nl = self.sp.piece_to_id("<0x0A>")
        split = [t.split("\n") for t in texts]
        flat = [ln for lines in split for ln in lines[1:]]
        rest = iter(self.sp_np.encode(flat, num_threads=2))
        firsts = self.sp.encode([lines[0] or "\n" for lines in split], num_threads=2)
        out = []
        for lines, first in zip(split, firsts):
            ids = list(first) if lines[0] else list(first[:-1])  # "\n" alone encodes to ▁ <0x0A>
            for _ in lines[1:]:
                ids.append(nl)
                ids.extend(next(rest))
            out.append(ids)
        return out


def instruct_pairs(docs) -> list[tuple[str, str]]:
    """(request, function source) for documented functions of the training split."""
    out = []
    for d in docs:
        try:
            tree = ast.parse(d["text"])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            first = doc.strip().split("\n")[0].strip()
            if len(first) < 12 or node.end_lineno - node.lineno > 40:
                continue
            src = ast.get_source_segment(d["text"], node, padded=True)
            if not src:
                continue
            out.append((node.name, first, textwrap.dedent(src)))
    return out


def top_level_line(lines: list[str], li: int) -> int:
    """The nearest line at or before ``li`` that starts at column 0 with code."""
    while li > 0 and lines[li][:1] in (" ", "\t", "\n"):
        li -= 1
    return li


def without_docstrings(text: str) -> str:
    """The file with its docstrings' lines removed (comments and layout kept): the code view
    that ``--code-fim`` examples are cut from. A docstring that shares a line with other code
    stays; a body that was only a docstring becomes ``pass`` at the docstring's indentation."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    edits = {}  # first line index -> (last line index, replacement)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            continue
        e = body[0]
        a, b = e.lineno - 1, e.end_lineno - 1
        if lines[a][: e.col_offset].strip() or lines[b][e.end_col_offset :].strip():
            continue  # shares a line with other code
        edits[a] = (b, "" if len(body) > 1 else lines[a][: e.col_offset] + "pass\n")
    out, i = [], 0
    while i < len(lines):
        if i in edits:
            b, rep = edits[i]
            out.append(rep)
            i = b + 1
        else:
            out.append(lines[i])
            i += 1
    code = "".join(out)
    try:
        ast.parse(code)
    except SyntaxError:
        return text
    return code


SNIPPET_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While,
                 ast.With, ast.Try)


def snippets(texts: list[str], max_lines: int = 30) -> list[str]:
    """Every compound statement (def, class, if, for, while, with, try) of 2 to ``max_lines``
    lines in ``texts``, moved to column 0: the size and shape of an editor snippet. Statements
    that do not parse on their own (an ``elif`` branch, a one-line ``if x: y`` sharing a line)
    are left out."""
    out = []
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, SNIPPET_NODES) or not 2 <= node.end_lineno - node.lineno + 1 <= max_lines:
                continue
            src = textwrap.dedent("".join(lines[node.lineno - 1 : node.end_lineno]))
            if src[:1] in (" ", "\t"):
                continue
            try:
                ast.parse(src)
            except SyntaxError:
                continue
            out.append(src if src.endswith("\n") else src + "\n")
    return out


def request(rng, name: str, first: str) -> str:
    k = rng.integers(4)
    if k == 0:
        return f"Write a Python function `{name}`: {first}"
    if k == 1:
        return f"Write a Python function that does this: {first}"
    if k == 2:
        return first
    return f"Implement {name} in Python. {first}"


class Data:
    def __init__(self, corpus: dict, tok: Tok, T: int, seed: int):
        self.tok, self.T = tok, T
        self.rng = np.random.default_rng(seed)
        self.docs = corpus["train"]
        t0 = time.time()
        cache = Path(corpus["_work"]) / "data-cache.npz"
        key = hashlib.sha256(Path(corpus["_work"], "spm.model").read_bytes()
                             + Path(corpus["_work"], "corpus.json").read_bytes()).hexdigest()
        if cache.exists() and str(np.load(cache)["key"]) == key:
            z = np.load(cache)
            self.stream, self.held_stream, self.cpt = z["stream"], z["held_stream"], z["cpt"]
            self.pairs = [tuple(p) for p in json.loads(str(z["pairs"]))]
        else:
            enc = tok.enc_docs([d["text"] for d in self.docs])
            for k in sorted(range(len(self.docs)), key=lambda k: len(self.docs[k]["text"]))[::50]:
                if len(self.docs[k]["text"]) < 20_000:
                    assert enc[k] == tok.enc(self.docs[k]["text"]), self.docs[k]["path"]
            self.cpt = np.array([len(d["text"]) / max(1, len(e)) for d, e in zip(self.docs, enc)])
            self.stream = np.fromiter((t for e in enc for t in [BOS] + e + [EOS]), dtype=np.int64)
            held = tok.enc_docs([d["text"] for d in corpus["heldout"]])
            self.held_stream = np.fromiter((t for e in held for t in [BOS] + e + [EOS]), dtype=np.int64)
            self.pairs = instruct_pairs(self.docs)
            np.savez(cache, key=key, stream=self.stream, held_stream=self.held_stream, cpt=self.cpt,
                     pairs=json.dumps(self.pairs))
        self.split_p = 0.0
        self.short_fim = 0.0
        self.snippet_fim = 0.0  # share of FIM rows packed with whole-snippet missing-line examples
        self.snippet_pool = None
        self.snippet_lm = 0.0  # share of plain rows packed with whole snippets, each a file of its own
        self.fim_p = 0.5  # share of FIM rows (the rest: 5% instruct, plain next-token)
        self.line_fim = 0.5  # share of FIM examples cut at whole lines (else at random characters)
        self.one_line = 0.0  # of those, the share whose middle is exactly one line (else 1 to 4)
        self.top_start = 0.0  # share of FIM spans moved back to start at a top-level line
        self.code_fim = 0.0  # share of FIM examples cut from the files' docstring-free view
        self.dedent = 0.0  # share of FIM spans moved to column 0 where all their lines allow it
        self.nonblank_mid = False  # whole-line middles always hold code (never a blank line)
        self.code_docs = None
        self.spm_top_start = 0.0  # share of SPM spans moved back to start at a top-level line
        self.psm = 0.5  # share of FIM examples in prefix-suffix-middle order (else suffix-prefix-middle)
        self.space_id = tok.sp.piece_to_id("▁")
        self.def_split = 0.0  # share of names after "def" / "class" (either piece) split as "▁" + name
        self.def_ids = np.array([tok.sp.piece_to_id(p) for p in ("▁def", "▁class", "def", "class")])
        self.split_map = np.full(tok.n, -1, dtype=np.int64)
        for i in range(tok.n):
            piece = tok.sp.id_to_piece(i)
            if (tok.sp.get_score(i) < 0 and piece.startswith("▁") and len(piece) > 1
                    and piece[1] != "▁" and tok.sp.piece_to_id(piece[1:]) not in (0, i)):
                self.split_map[i] = tok.sp.piece_to_id(piece[1:])
        lens = np.array([len(d["text"]) for d in self.docs], dtype=np.float64)
        self.doc_p = lens / lens.sum()
        # Unigram baseline: held-out cross-entropy under add-one smoothed training frequencies.
        counts = np.bincount(self.stream, minlength=tok.n).astype(np.float64) + 1.0
        logp = np.log(counts / counts.sum())
        self.unigram_xent = float(-logp[self.held_stream].mean())
        print(
            f"data: {len(self.stream):,} train tokens, {len(self.held_stream):,} held-out tokens, "
            f"{len(self.pairs)} instruct pairs, unigram baseline {self.unigram_xent:.4f} nats "
            f"({time.time() - t0:.0f}s)",
            flush=True,
        )

    def lm_row(self):
        i = self.rng.integers(0, len(self.stream) - self.T - 1)
        w = self.stream[i : i + self.T + 1]
        if self.split_p and self.rng.random() < 0.5:
            # Space healing: split some "▁word" tokens into "▁" + "word", so that a prompt ending
            # in a space ("def ") is continued with a word, not a digit (the lone "▁" piece is
            # otherwise almost only seen before digits, which are split).
            cand = self.split_map[w] >= 0
            w = self.split_at(w, cand & (self.rng.random(len(w)) < self.split_p))
        return self.split_names(w).tolist(), None

    def split_names(self, w):
        """``--def-split``: the space split aimed at the name after "def" / "class". The prompt
        "def " is "▁def" + "▁", and indented code puts "def" (no "▁") after a whitespace piece, so
        a model trained on method-heavy code answers "def " with "def" again."""
        if not self.def_split:
            return w
        cand = np.zeros(len(w), dtype=bool)
        cand[1:] = np.isin(w[:-1], self.def_ids) & (self.split_map[w[1:]] >= 0)
        return self.split_at(w, cand & (self.rng.random(len(w)) < self.def_split))

    def snippet_lm_row(self):
        """A whole snippet (``snippets``: a def, class or block at column 0) as a file of its own,
        ``[BOS] + enc(snippet) + [EOS]``: how a fresh editor buffer starts, which a random
        window of the training stream almost never is (the prompt "def " is "BOS ▁def ▁").
        Packed several to a row."""
        pool = self.snippet_lists()[0]
        text = pool[int(self.rng.integers(len(pool)))]
        return self.split_names(np.array([BOS] + self.tok.enc(text) + [EOS])).tolist(), None

    def split_at(self, w, pick):
        """``w`` with each picked ``▁word`` token replaced by ``▁`` + ``word``, cut to ``T + 1``."""
        if not pick.any():
            return w
        out = []
        for t, p in zip(w.tolist(), pick.tolist()):
            out.extend((self.space_id, int(self.split_map[t])) if p else (t,))
        return np.array(out[: self.T + 1])

    def fim_row(self, short: bool = False):
        """One FIM example over a span of about ``T`` tokens, or (``short``) over a window of
        3 to 30 whole lines, the size of an editor snippet (packed several to a row)."""
        tok, T, rng = self.tok, self.T, self.rng
        d = int(rng.choice(len(self.docs), p=self.doc_p))
        text = self.docs[d]["text"]
        if self.code_fim and rng.random() < self.code_fim:
            text = self.code_texts()[d]
        span_chars = int((T - 8) * self.cpt[d] * 0.95)
        lines = text.splitlines(keepends=True)
        starts = np.cumsum([0] + [len(x) for x in lines])
        li = int(rng.integers(0, max(1, len(lines))))
        if self.top_start and rng.random() < self.top_start:
            # Start at a top-level line (column 0), as a snippet or a file does: a span that
            # starts indented puts "indent + ▁word" (the dummy prefix) right after ▁<PRE> or
            # ▁<MID>, which the model then copies into PSM middles one space too deep.
            li = top_level_line(lines, li)
        n_short = int(rng.integers(3, 31)) if short else 0

        def cut(li: int) -> str:
            a = int(starts[li])
            n = span_chars
            if short:
                n = min(n, int(starts[min(len(lines), li + n_short)]) - a)
            return text[a : a + n]

        span = cut(li)
        if self.dedent and span[:1] in (" ", "\t") and rng.random() < self.dedent:
            # A block pasted at column 0, as a snippet is: only where every line of the span is
            # at least as indented as its first (the span is cut at a line end first).
            body = span[: span.rfind("\n") + 1]
            ded = textwrap.dedent(body)
            if ded[:1] not in (" ", "\t", ""):
                span = ded
        psm = None
        if self.spm_top_start:
            # The order is drawn first here; suffix-first spans that still start indented move
            # back to a top-level line (the reason is at --top-start above), as a real SPM
            # prompt's prefix, the file's start, does.
            psm = bool(rng.random() < self.psm)
            if not psm and span[:1] in (" ", "\t", "\n") and rng.random() < self.spm_top_start:
                span = cut(top_level_line(lines, li))
        if rng.random() < self.line_fim:
            # Whole lines: the middle is 1..4 complete lines of the span (newline included).
            sl = span.splitlines(keepends=True)
            if len(sl) < 2:
                return None
            i = int(rng.integers(0, len(sl)))
            one = self.one_line and rng.random() < self.one_line
            j = min(len(sl), i + 1 + (0 if one else int(rng.integers(0, 4))))
            pre, mid, suf = "".join(sl[:i]), "".join(sl[i:j]), "".join(sl[j:])
            if self.nonblank_mid and not mid.strip():
                return None
            if rng.random() < 0.5 and mid.endswith("\n") and suf:
                # Same cut, newline kept by the suffix ("...\n" | "    x = 1" | "\n...").
                mid, suf = mid[:-1], "\n" + suf
        else:
            i, j = sorted(rng.integers(0, len(span) + 1, size=2).tolist())
            pre, mid, suf = span[:i], span[i:j], span[j:]
        p, s, m = tok.enc(pre), tok.enc_nospace(suf), tok.enc_nospace(mid)
        budget = T + 1 - 5 - len(m)
        if budget < 16:
            return None
        while len(p) + len(s) > budget:  # trim the far ends of prefix and suffix
            if len(p) >= len(s):
                p = p[len(p) + len(s) - budget :] if len(s) < budget else p[-(budget // 2) :]
            else:
                s = s[: max(0, budget - len(p))] if len(p) < budget else s[: budget // 2]
        if psm is None:
            psm = bool(rng.random() < self.psm)
        return self.layout(p, s, m, psm), None

    def code_texts(self) -> list[str]:
        """The training files' docstring-free view (``without_docstrings``), built once."""
        if self.code_docs is None:
            self.code_docs = [without_docstrings(x["text"]) for x in self.docs]
        return self.code_docs

    def layout(self, p: list[int], s: list[int], m: list[int], psm: bool) -> list[int]:
        """One FIM example as Meta's infill prompt (``psm``: prefix first) + middle + ``▁<EOT>``."""
        tok = self.tok
        if psm:
            return [BOS, tok.pre] + p + [tok.suf] + s + [tok.mid] + m + [tok.eot]
        return [BOS, tok.pre, tok.suf] + s + [tok.mid] + p + m + [tok.eot]

    def snippet_lists(self) -> tuple[list[str], list[str]]:
        """``snippets`` of the training files and of their docstring-free view, built once."""
        if self.snippet_pool is None:
            self.snippet_pool = (snippets([d["text"] for d in self.docs]), snippets(self.code_texts()))
        return self.snippet_pool

    def snippet_row(self):
        """One missing-line FIM example over a whole snippet (``snippets``: a def, class or block
        at column 0, from the docstring-free view with probability ``code_fim``): one non-blank,
        non-comment line is the middle, the rest of the snippet is prefix and suffix, as in an
        editor where one line is missing. The middle's newline stays with it or moves to the
        suffix (half each)."""
        tok, rng = self.tok, self.rng
        pool = self.snippet_lists()[1 if self.code_fim and rng.random() < self.code_fim else 0]
        lines = pool[int(rng.integers(len(pool)))].splitlines(keepends=True)
        cand = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
        if not cand:
            return None
        i = int(rng.choice(cand))
        pre, mid, suf = "".join(lines[:i]), lines[i], "".join(lines[i + 1 :])
        if rng.random() < 0.5 and suf:
            mid, suf = mid[:-1], "\n" + suf
        p, s, m = tok.enc(pre), tok.enc_nospace(suf), tok.enc_nospace(mid)
        if len(p) + len(s) + len(m) + 5 > self.T + 1:
            return None
        return self.layout(p, s, m, bool(rng.random() < self.psm)), None

    def packed(self, row) -> list[int]:
        """Examples from ``row()`` one after another (each starts with BOS) up to ``T + 1`` tokens."""
        ids: list[int] = []
        while len(ids) < self.T + 1:
            ex = None
            while ex is None:
                ex = row()
            ids.extend(ex[0])
        return ids[: self.T + 1]

    def instruct_row(self):
        tok, rng = self.tok, self.rng
        for _ in range(10):
            name, first, src = self.pairs[int(rng.integers(len(self.pairs)))]
            user = request(rng, name, first).strip()
            prompt = [BOS] + tok.enc(f"[INST] {user} [/INST]")
            ids = [BOS] + tok.enc(f"[INST] {user} [/INST] {src.strip()} ") + [EOS]
            if len(ids) <= self.T + 1:
                return ids, len(prompt) - 1  # targets before this index are masked
        return None

    def batch(self, B: int):
        """Returns x (B, T), y (B, T) with -100 where masked, and each row's kind."""
        T = self.T
        x = np.full((B, T), EOS, dtype=np.int64)
        y = np.full((B, T), -100, dtype=np.int64)
        kinds = []
        for b in range(B):
            r = self.rng.random()
            kind = "lm" if r < 0.95 - self.fim_p else ("fim" if r < 0.95 else "inst")
            packer = None  # several short examples to the row
            if kind == "lm" and self.snippet_lm and self.rng.random() < self.snippet_lm:
                packer = self.snippet_lm_row
            elif kind == "fim" and self.snippet_fim and self.rng.random() < self.snippet_fim:
                packer = self.snippet_row
            elif kind == "fim" and self.short_fim and self.rng.random() < self.short_fim:
                packer = lambda: self.fim_row(short=True)  # noqa: E731
            if packer:
                ids = self.packed(packer)
                kinds.append(kind)
                n = len(ids) - 1
                x[b, :n] = ids[:-1]
                y[b, :n] = ids[1:]
                continue
            row = None
            while row is None:
                row = {"lm": self.lm_row, "fim": self.fim_row, "inst": self.instruct_row}[kind]()
            ids, mask_until = row
            ids = ids[: T + 1]
            n = len(ids) - 1
            x[b, :n] = ids[:-1]
            y[b, :n] = ids[1:]
            if mask_until:
                y[b, :mask_until] = -100
            kinds.append(kind)
        return torch.from_numpy(x), torch.from_numpy(y), kinds

    def heldout_windows(self, n: int):
        T, s = self.T, self.held_stream
        starts = np.linspace(0, len(s) - T - 1, n).astype(np.int64)
        w = np.stack([s[i : i + T + 1] for i in starts])
        return torch.from_numpy(w[:, :-1]), torch.from_numpy(w[:, 1:])


class Batches(torch.utils.data.IterableDataset):
    """``Data.batch`` in DataLoader worker processes (``--workers``): each worker draws from its
    own generator, seeded with (seed, worker id); the loader takes the workers' batches in turn."""

    def __init__(self, data: Data, batch: int, seed: int):
        self.data, self.batch, self.seed = data, batch, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        self.data.rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            yield self.data.batch(self.batch)


@torch.no_grad()
def evaluate(model, xs, ys, bs=8):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(xs), bs):
        logits = model(xs[i : i + bs])
        tot += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ys[i : i + bs].reshape(-1), reduction="sum").item()
        n += ys[i : i + bs].numel()
    model.train()
    return tot / n


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--steps", type=int, default=0, help="total optimizer steps")
    ap.add_argument("--minutes", type=float, default=0, help="pick --steps from the speed of the first steps")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop after this step; the learning-rate schedule still spans --steps")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--rope-theta", type=float, default=1_000_000.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--space-split", type=float, default=0.0,
                    help="in half the plain rows, split this share of '▁word' tokens into '▁' + 'word'")
    ap.add_argument("--def-split", type=float, default=0.0,
                    help="in every plain row, split this share of the names after 'def' and 'class' "
                         "('▁name' into '▁' + 'name'), as the prompt 'def ' ends")
    ap.add_argument("--snippet-lm", type=float, default=0.0,
                    help="share of plain rows packed with whole snippets (a def, class or block at "
                         "column 0), each as a file of its own: BOS + snippet + EOS")
    ap.add_argument("--short-fim", type=float, default=0.0,
                    help="share of FIM rows packed with short (3-30 line) examples")
    ap.add_argument("--snippet-fim", type=float, default=0.0,
                    help="share of FIM rows packed with missing-line examples over whole snippets "
                         "(a def, class or block of 2-30 lines moved to column 0)")
    ap.add_argument("--fim", type=float, default=0.5, help="share of fill-in-the-middle rows")
    ap.add_argument("--line-fim", type=float, default=0.5,
                    help="share of FIM examples cut at whole lines (the rest at random characters)")
    ap.add_argument("--one-line", type=float, default=0.0,
                    help="share of whole-line FIM middles that are exactly one line (else 1 to 4 lines)")
    ap.add_argument("--top-start", type=float, default=0.0,
                    help="share of FIM spans that start at a top-level (unindented) line")
    ap.add_argument("--code-fim", type=float, default=0.0,
                    help="share of FIM examples cut from the files with their docstrings removed")
    ap.add_argument("--dedent", type=float, default=0.0,
                    help="share of indented FIM spans dedented to column 0 where all their lines allow it")
    ap.add_argument("--nonblank-mid", action="store_true",
                    help="whole-line FIM middles are never blank lines")
    ap.add_argument("--spm-top-start", type=float, default=0.0,
                    help="share of suffix-prefix-middle spans that start at a top-level line")
    ap.add_argument("--psm", type=float, default=0.5, help="share of FIM examples in PSM order (else SPM)")
    ap.add_argument("--device", default="cpu",
                    help="torch device; the recorded runs are CPU runs ('cuda' only for trying recipes fast)")
    ap.add_argument("--workers", type=int, default=0,
                    help="make batches in this many processes (0: in the training loop, as the recorded runs "
                         "did; a GPU outruns one process's FIM cutting). Worker i draws from seed (--seed, i): "
                         "other batches than --workers 0, as reproducible")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast for the forward pass (the loss in float32); for CUDA")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this checkpoint's weights (fresh optimizer and schedule): a second phase")
    a = ap.parse_args(argv)
    assert a.steps or a.minutes, "give --steps or --minutes"

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t_start = time.time()
    log = open(a.work / "train.log", "a")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    tok = Tok(a.work / "spm.model")
    corpus = json.loads((a.work / "corpus.json").read_text())
    corpus["_work"] = str(a.work)
    data = Data(corpus, tok, a.context, a.seed)
    data.split_p = a.space_split
    data.def_split = a.def_split
    data.snippet_lm = a.snippet_lm
    data.short_fim = a.short_fim
    data.snippet_fim = a.snippet_fim
    data.fim_p, data.line_fim, data.one_line, data.psm = a.fim, a.line_fim, a.one_line, a.psm
    data.top_start = a.top_start
    data.spm_top_start = a.spm_top_start
    data.code_fim, data.dedent, data.nonblank_mid = a.code_fim, a.dedent, a.nonblank_mid
    dev = torch.device(a.device)
    cfg = Config(
        dim=a.dim, n_layers=a.layers, n_heads=a.heads, n_kv_heads=a.kv_heads, ffn_dim=a.ffn,
        vocab_size=tok.n, context_length=a.context, rope_theta=a.rope_theta,
    )
    model = Llama(cfg).to(dev)
    phase0 = None
    if a.init:
        ck0 = torch.load(a.init, map_location="cpu", weights_only=False)
        assert ck0["config"] == cfg.to_dict(), "--init checkpoint has another shape"
        model.load_state_dict(ck0["model"])
        phase0 = {k: ck0.get(k) for k in ("step", "heldout_loss", "train_loss_ema", "wall_s", "init_from")}
    n_params = sum(p.numel() for p in model.parameters())
    say(f"args {vars(a)}")
    say(f"config {cfg.to_dict()} params {n_params:,}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
    )
    batches = None
    if a.workers:
        # Built once here and shared with the forked workers (each would build its own).
        t0 = time.time()
        if a.snippet_fim or a.snippet_lm:
            data.snippet_lists()  # the docstring-free view too
        elif a.code_fim:
            data.code_texts()
        say(f"snippet lists / code view built for the workers ({time.time() - t0:.0f} s)")
        loader = torch.utils.data.DataLoader(
            Batches(data, a.batch, a.seed), batch_size=None, num_workers=a.workers,
            prefetch_factor=4, persistent_workers=True, pin_memory=dev.type == "cuda",
        )
        batches = iter(loader)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    hx, hy = (t.to(dev) for t in data.heldout_windows(16))
    total = a.steps
    ema, hist = None, []
    kind_loss = {"lm": [], "fim": [], "inst": []}
    t_train = time.time()

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        prog = min(1.0, (step - a.warmup) / max(1, (total or 10**9) - a.warmup))
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * prog)))

    def save(step, held):
        torch.save(
            {"config": cfg.to_dict(), "model": {k: v.cpu() for k, v in model.state_dict().items()}, "step": step, "total_steps": total,
             "train_loss_ema": ema, "heldout_loss": held, "unigram_xent": data.unigram_xent,
             "n_params": n_params, "seed": a.seed, "hist": hist, "wall_s": time.time() - t_start,
             "init_from": phase0},
            a.work / "ckpt.pt.tmp",
        )
        (a.work / "ckpt.pt.tmp").replace(a.work / "ckpt.pt")

    step = 0
    held = None
    while True:
        if step == 3:
            t3 = time.time()
        if a.minutes and not a.steps and step == 13:
            per = (time.time() - t3) / 10
            total = max(a.warmup + 10, int((a.minutes * 60 - (time.time() - t_train)) / per) + step)
            say(f"speed {per:.2f} s/step over steps 3..13 -> total steps {total}")
        if total and step >= total or a.stop_at and step >= a.stop_at:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y, kinds = next(batches) if batches is not None else data.batch(a.batch)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(x)
        logits = logits.float()
        per_tok = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1), reduction="none").view(y.shape)
        mask = (y != -100).float()
        loss = (per_tok * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            row = (per_tok * mask).sum(1) / mask.sum(1).clamp(min=1)
            for k, v in zip(kinds, row.tolist()):
                kind_loss[k].append(v)
        lv = loss.item()
        ema = lv if ema is None else 0.95 * ema + 0.05 * lv
        step += 1
        if step % 10 == 0 or step == 1:
            el = time.time() - t_train
            kl = " ".join(f"{k} {np.mean(v[-100:]):.3f}" for k, v in kind_loss.items() if v)
            say(f"step {step}/{total or '?'} loss {lv:.4f} ema {ema:.4f} ({kl}) lr {lr_at(step - 1):.2e} "
                f"gnorm {gn:.2f} {el / step:.2f} s/step {step * a.batch * a.context / el:.0f} tok/s elapsed {el / 60:.1f} min")
        if step % a.eval_every == 0:
            held = evaluate(model, hx, hy)
            hist.append({"step": step, "train_ema": ema, "heldout": held})
            say(f"eval step {step} held-out {held:.4f} (unigram {data.unigram_xent:.4f})")
            save(step, held)
    hx, hy = (t.to(dev) for t in data.heldout_windows(64))
    held = evaluate(model, hx, hy)
    hist.append({"step": step, "train_ema": ema, "heldout": held})
    say(f"final step {step} train ema {ema:.4f} held-out {held:.4f} (64 windows x {a.context}) "
        f"unigram {data.unigram_xent:.4f} wall {(time.time() - t_start) / 60:.1f} min")
    save(step, held)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
