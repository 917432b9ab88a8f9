"""Infill rate of a checkpoint, in PyTorch (no engine needed): for trying recipes quickly.

Greedy prefix-suffix-middle infill exactly as the engine lays it out
(``[BOS, ▁<PRE>] + enc(prefix) + [▁<SUF>] + enc_nospace(suffix) + [▁<MID>]``), stopping at
``▁<EOT>`` or ``</s>`` or after ``--max-tokens`` (48, as ``tests/demo_model.rs``). A case counts
when ``prefix + middle + suffix`` parses (``ast.parse``) and the middle is not blank.

Two sets: the fixed cases of ``tests/fixtures/demo_cases.json`` (the test's), and ``--heldout N``
cases cut from functions of the held-out files (never trained on): a function of 3 to 30 lines,
one non-blank line removed, its newline left with the middle or moved to the suffix (half each).
The engine's own figure stays the one of ``tests/demo_model.rs``; this is the quick proxy.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Config, Llama  # noqa: E402
from train import BOS, EOS, Data, Tok, evaluate  # noqa: E402


def parses(src: str) -> bool:
    try:
        ast.parse(src)
        return True
    except (SyntaxError, ValueError):
        return False


def heldout_cases(corpus: dict, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    funcs = []
    for d in corpus["heldout"]:
        try:
            tree = ast.parse(d["text"])
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and 3 <= node.end_lineno - node.lineno + 1 <= 30:
                src = ast.get_source_segment(d["text"], node, padded=True)
                if src and parses(textwrap.dedent(src)):
                    funcs.append(textwrap.dedent(src).rstrip("\n") + "\n")
    cases = []
    for k in rng.permutation(len(funcs)):
        lines = funcs[k].splitlines(keepends=True)
        cand = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
        i = int(rng.choice(cand))
        pre, mid, suf = "".join(lines[:i]), lines[i], "".join(lines[i + 1 :])
        if rng.random() < 0.5 and suf:
            mid, suf = mid[:-1], "\n" + suf
        cases.append({"prefix": pre, "suffix": suf, "middle": mid})
        if len(cases) == n:
            break
    return cases


def piece_text(tok: Tok, ids: list[int]) -> str:
    """The engine's decoding of a continuation: pieces joined, ``▁`` is a space, byte pieces are
    bytes; no leading space is stripped."""
    out = bytearray()
    for i in ids:
        p = tok.sp.id_to_piece(i)
        if tok.sp.is_byte(i):
            out.append(int(p[3:5], 16))
        else:
            out.extend(p.replace("▁", " ").encode())
    return out.decode("utf-8", errors="replace")


@torch.no_grad()
def infill(model, tok: Tok, pre: str, suf: str, max_tokens: int, dev, spm: bool = False) -> tuple[str, bool]:
    if spm:
        ids = [BOS, tok.pre, tok.suf] + tok.enc_nospace(suf) + [tok.mid] + tok.enc(pre)
    else:
        ids = [BOS, tok.pre] + tok.enc(pre) + [tok.suf] + tok.enc_nospace(suf) + [tok.mid]
    gen: list[int] = []
    for _ in range(max_tokens):
        x = torch.tensor([ids + gen], device=dev)
        nxt = int(model(x)[0, -1].argmax())
        if nxt in (tok.eot, EOS):
            return piece_text(tok, gen), True
        gen.append(nxt)
    return piece_text(tok, gen), False


def rate(model, tok, cases, max_tokens, dev, show=False, spm=False) -> dict:
    ok = eot = 0
    for c in cases:
        mid, stopped = infill(model, tok, c["prefix"], c["suffix"], max_tokens, dev, spm)
        good = parses(c["prefix"] + mid + c["suffix"]) and bool(mid.strip())
        ok += good
        eot += stopped
        if show:
            print(f"  ok={good} eot={stopped} {mid!r}", flush=True)
    return {"ok": ok, "eot": eot, "n": len(cases)}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", type=Path, nargs="+")
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--cases", type=Path, default=Path("tests/fixtures/demo_cases.json"))
    ap.add_argument("--heldout", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--show", action="store_true")
    ap.add_argument("--loss-windows", type=int, default=0,
                    help="also the held-out loss over N windows of --work's held-out files "
                         "(train.py's final figure is N = 64), so that checkpoints of phases "
                         "trained on other corpora are compared on one set")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    tok = Tok(a.work / "spm.model")
    fixed = json.loads(a.cases.read_text())["cases"]
    corpus = json.loads((a.work / "corpus.json").read_text())
    held = heldout_cases(corpus, a.heldout, a.seed) if a.heldout else []
    windows = None
    for path in a.ckpt:
        ck = torch.load(path, map_location="cpu", weights_only=False)
        model = Llama(Config(**ck["config"])).to(dev)
        model.load_state_dict(ck["model"])
        model.eval()
        loss = None
        if a.loss_windows:
            if windows is None:
                data = Data({**corpus, "_work": str(a.work)}, tok, ck["config"]["context_length"], a.seed)
                windows = tuple(t.to(dev) for t in data.heldout_windows(a.loss_windows))
            loss = round(evaluate(model, *windows), 4)
            model.eval()  # evaluate() leaves the model in training mode
        f = rate(model, tok, fixed, a.max_tokens, dev, a.show)
        h = rate(model, tok, held, a.max_tokens, dev) if held else {"ok": 0, "eot": 0, "n": 0}
        fs = rate(model, tok, fixed, a.max_tokens, dev, spm=True)
        print(json.dumps({"ckpt": str(path), "step": ck.get("step"), "heldout_loss": ck.get("heldout_loss"),
                          "loss_windows": loss,
                          "fixed": f"{f['ok']}/{f['n']}", "fixed_eot": f["eot"],
                          "heldout_cases": f"{h['ok']}/{h['n']}", "heldout_eot": h["eot"],
                          "fixed_spm": f"{fs['ok']}/{fs['n']}", "fixed_spm_eot": fs["eot"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
