#!/usr/bin/env python3
"""Check the exported demo model with this project's engine (the `codellama` CLI, CPU backend).

Usage (from the repository root, in the training venv, after export.py):

    cargo build --release -p codellama-webgpu --bin codellama
    python scripts/train/check.py --cli target/release/codellama [--model models/codellama-demo.gguf]

1. Tokenizer: the engine's token ids (GGUF vocabulary) equal SentencePiece's (``spm.model``) on
   held-out code.
2. Logits: the engine's CPU decoder against the PyTorch model, (a) with the GGUF's dequantized
   weights (must agree to float rounding: catches RoPE / layout / GQA mistakes) and (b) with the
   trained float weights (the Q8_0 error). Cosine per position, max |diff|, argmax agreement.
3. Greedy ``def `` (and a few more) completions: is the first line a valid function header
   (``ast.parse(header + " pass")``)?
4. Infill: a fixed set of snippets with one line removed; the middle the engine generates
   (greedy, PSM) must be non-blank and make the snippet parse. Reports the rate.
5. A chat answer.

Writes a JSON summary to ``--json`` when given.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Config, Llama  # noqa: E402

# The fixed cases, shared with tests/demo_model.rs: snippets with one required line removed.
CASES = json.loads((Path(__file__).resolve().parents[2] / "tests/fixtures/demo_cases.json").read_text())
INFILL_CASES = [(c["prefix"], c["suffix"]) for c in CASES["cases"]]
COMPLETION_PROMPTS = CASES["completion_prompts"]


def run(cli, *args) -> str:
    r = subprocess.run([str(cli), *args], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"{cli} {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def torch_from_gguf(path: Path) -> Llama:
    rd = gguf.GGUFReader(str(path))
    f = rd.fields
    val = lambda k: f[k].parts[f[k].data[0]][0]
    n_vocab = len(f["tokenizer.ggml.tokens"].data)
    cfg = Config(
        dim=int(val("llama.embedding_length")), n_layers=int(val("llama.block_count")),
        n_heads=int(val("llama.attention.head_count")), n_kv_heads=int(val("llama.attention.head_count_kv")),
        ffn_dim=int(val("llama.feed_forward_length")), vocab_size=n_vocab,
        context_length=int(val("llama.context_length")), rope_theta=float(val("llama.rope.freq_base")),
        rms_eps=float(val("llama.attention.layer_norm_rms_epsilon")),
    )
    w = {}
    for t in rd.tensors:
        arr = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(d) for d in reversed(t.shape))
        w[t.name] = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32).reshape(shape))
    names = {"attn_norm": "attn_norm", "wq": "attn_q", "wk": "attn_k", "wv": "attn_v",
             "wo": "attn_output", "ffn_norm": "ffn_norm", "w1": "ffn_gate", "w3": "ffn_up", "w2": "ffn_down"}
    sd = {"tok_embeddings.weight": w["token_embd.weight"], "norm.weight": w["output_norm.weight"],
          "output.weight": w["output.weight"]}
    for i in range(cfg.n_layers):
        for src, dst in names.items():
            sd[f"layers.{i}.{src}.weight"] = w[f"blk.{i}.{dst}.weight"]
    m = Llama(cfg)
    m.load_state_dict(sd)
    return m.eval()


def compare(ref: np.ndarray, got: np.ndarray) -> dict:
    cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    return {"min_cosine": float(cos.min()), "max_abs_diff": float(np.abs(ref - got).max()),
            "argmax_agree": float((ref.argmax(1) == got.argmax(1)).mean())}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=Path("models/codellama-demo.gguf"))
    ap.add_argument("--work", type=Path, default=Path("build/demo-train"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--max-tokens", type=int, default=48)
    a = ap.parse_args(argv)
    torch.set_num_threads(2)
    M = ["-m", str(a.model), "--backend", "cpu"]
    out: dict = {}
    sp = spm.SentencePieceProcessor(model_file=str(a.work / "spm.model"))
    corpus = json.loads((a.work / "corpus.json").read_text())

    # 1. tokenizer agreement on held-out code
    agree, total = 0, 0
    for d in corpus["heldout"][:12]:
        for k in range(0, min(len(d["text"]), 6000), 1500):
            s = d["text"][k : k + 1500]
            ids = [int(x) for x in run(a.cli, "tokenize", "-m", str(a.model), "--", s).split()]
            total += 1
            agree += ids == [1] + sp.encode(s)
    out["tokenizer_agree"] = f"{agree}/{total}"
    print(f"tokenizer: engine == SentencePiece on {agree}/{total} held-out snippets", flush=True)

    # 2. logits
    text = corpus["heldout"][0]["text"][:400]
    ids = [1] + sp.encode(text)
    ids = ids[:128]
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "l.npy"
        run(a.cli, "logits", "-m", str(a.model), "--backend", "cpu", "--tokens", " ".join(map(str, ids)), "--out", str(npy))
        eng = np.load(npy)
    x = torch.tensor([ids])
    with torch.no_grad():
        deq = torch_from_gguf(a.model)(x)[0].numpy()
        ck = torch.load(a.work / "ckpt.pt", map_location="cpu", weights_only=False)
        fm = Llama(Config(**ck["config"]))
        fm.load_state_dict(ck["model"])
        flt = fm.eval()(x)[0].numpy()
    out["logits_vs_dequantized"] = compare(deq, eng)
    out["logits_vs_float"] = compare(flt, eng)
    print(f"logits ({len(ids)} positions): engine vs PyTorch on the GGUF weights {out['logits_vs_dequantized']}", flush=True)
    print(f"logits: engine vs PyTorch float checkpoint {out['logits_vs_float']}", flush=True)

    # 3. completions
    out["completions"] = []
    for p in COMPLETION_PROMPTS:
        gen = run(a.cli, "complete", *M, "--temperature", "0", "--max-tokens", str(a.max_tokens), "--", p)
        full = p + gen if not gen.startswith(p) else gen
        header = None
        for line in full.split("\n"):
            if line.lstrip().startswith("def "):
                header = line.strip()
                break
        ok = False
        if header:
            try:
                ast.parse(header + " pass" if header.endswith(":") else header + "\n    pass")
                ok = header.endswith(":")
            except SyntaxError:
                ok = False
        out["completions"].append({"prompt": p, "output": gen, "header": header, "valid_header": ok})
        print(f"--- complete {p!r} (valid def header: {ok})\n{gen}", flush=True)

    # 4. infill
    res = []
    for pre, suf in INFILL_CASES:
        mid = run(a.cli, "infill", *M, "--temperature", "0", "--max-tokens", str(a.max_tokens), "--prefix", pre, "--suffix", suf)
        try:
            ast.parse(pre + mid + suf)
            parses = True
        except SyntaxError:
            parses = False
        ok = parses and bool(mid.strip())
        res.append({"prefix": pre, "suffix": suf, "middle": mid, "ok": ok})
        print(f"--- infill ok={ok}: {mid!r}", flush=True)
    out["infill"] = res
    out["infill_rate"] = f"{sum(r['ok'] for r in res)}/{len(res)}"
    print(f"infill: {out['infill_rate']} parse with a non-blank middle", flush=True)

    # 5. chat
    msg = "Write a Python function that returns the sum of a list of numbers."
    out["chat"] = {"user": msg, "answer": run(a.cli, "chat", *M, "--temperature", "0", "--max-tokens", "96", "--", msg)}
    print(f"--- chat: {msg}\n{out['chat']['answer']}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
