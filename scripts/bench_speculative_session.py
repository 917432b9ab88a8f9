#!/usr/bin/env python3
"""Speculative decoding through one engine, as an editor runs it: off vs drafting vs cost-aware.

Usage::

    cargo build --release -p codellama-webgpu --bin codellama
    .venv/bin/python scripts/bench_speculative_session.py [--backend gpu|cpu] [--draft 8]
        [--rounds 3] [--cases PATH] [--kinds renamed,missing_line] [--json OUT] [--model GGUF]

``scripts/bench_speculative.py`` starts a CLI process per run, so a cost-aware drafter there
learns its pass costs from nothing every time. This script sends every request of the fixed cases
(``scripts/spec_cases.py``) through one ``codellama batch`` process — one loaded model, one
engine, its cache and its measured pass costs kept from request to request, as in an editor. Per
case and round it sends a one-token request first (drafting off), which leaves the prompt in the
engine's cache, then the case three ways in a rotating order, greedy (``temperature`` 0, seed 0):
``speculative: false``, ``{maxDraft: N}`` (the grow-and-halve rule) and ``{maxDraft: N,
costAware: true}``. Each of those finds its prompt cached (the script checks that at most one
prompt token was computed), so a request's ``ms`` is its generation after the prompt. Per kind and
group (``edit``: the four edit-like kinds; ``plain``: the missing-line infills) it prints tokens
per forward pass and acceptance for both drafting settings and their speed-ups, time off / time
on, each case's fastest round counting: summed over the cases and the geometric mean of the
per-case ratios. Greedy speculative decoding is exact: a text that differs between settings or
rounds is a failure (exit 1).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from bench_speculative import (  # noqa: E402
    cli_missing, geomean, groups, load_cases, report_failures)

SETTINGS = ("off", "draft", "cost")


def requests_for(cases: list[dict], draft: int, rounds: int) -> list[tuple[str, str, dict]]:
    """(case id, setting, request) in the order sent: per round and case, the warm-up, then the
    three settings rotated by round + case index."""
    spec = {"off": False, "draft": {"maxDraft": draft}, "cost": {"maxDraft": draft, "costAware": True}}
    out = []
    for r in range(rounds):
        for i, c in enumerate(cases):
            base = {"kind": c["mode"], "maxTokens": c["max_tokens"], "temperature": 0, "seed": 0}
            if c["mode"] == "complete":
                base["prompt"] = c["prompt"]
            else:
                base.update(prefix=c["prefix"], suffix=c["suffix"])
            out.append((c["id"], "warm", {**base, "maxTokens": 1, "speculative": False}))
            k = (r + i) % len(SETTINGS)
            for s in SETTINGS[k:] + SETTINGS[:k]:
                out.append((c["id"], s, {**base, "speculative": spec[s]}))
    return out


def summarize(best: dict[str, dict[str, dict]], cases: dict[str, dict]) -> list[dict]:
    """Per kind, then per group; `best[id][setting]` is a case's fastest answer."""
    out = []
    for label, ids in groups(cases, best):
        row = {"label": label, "cases": len(ids), "ms_off": sum(best[i]["off"]["ms"] for i in ids)}
        for s in ("draft", "cost"):
            on = [best[i][s] for i in ids]
            passes = sum(a["forwardPasses"] for a in on)
            drafted = sum(a["draftedTokens"] for a in on)
            accepted = sum(a["acceptedTokens"] for a in on)
            row[s] = {
                "tokens_per_pass": sum(a["generatedTokens"] for a in on) / passes if passes else None,
                "acceptance": accepted / drafted if drafted else None,
                "ms": sum(a["ms"] for a in on),
                "speedup": row["ms_off"] / sum(a["ms"] for a in on),
                "speedup_geomean": geomean([best[i]["off"]["ms"] / best[i][s]["ms"] for i in ids]),
            }
        out.append(row)
    return out


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("cpu", "gpu"), default="gpu")
    ap.add_argument("--draft", type=int, default=8, help="maxDraft of the drafting settings (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the cases; the fastest counts")
    ap.add_argument("--cases", type=pathlib.Path, help="a JSONL of scripts/spec_cases.py (default: build it)")
    ap.add_argument("--kinds", help="comma-separated kinds to run (default: all)")
    ap.add_argument("--model", type=pathlib.Path, default=ROOT / "models/codellama-demo.gguf")
    ap.add_argument("--cli", type=pathlib.Path, default=ROOT / "target/release/codellama")
    ap.add_argument("--json", type=pathlib.Path, help="write every answer and the summary here")
    a = ap.parse_args()
    if not 1 <= a.draft <= 15 or a.rounds < 1:
        ap.error("--draft must be 1..15 and --rounds at least 1")
    if cli_missing(a.cli, "bench_speculative_session"):
        return 1
    cases = load_cases(a.cases, a.kinds)
    pythons = sorted({c.get("python", "?") for c in cases})
    print(f"{len(cases)} cases (Python {', '.join(pythons)} standard library), backend {a.backend}, "
          f"one engine: off vs maxDraft {a.draft} vs maxDraft {a.draft} cost-aware, {a.rounds} "
          f"round(s), model {a.model.name}", flush=True)

    sent = requests_for(cases, a.draft, a.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        req_path, ans_path = pathlib.Path(tmp, "requests.jsonl"), pathlib.Path(tmp, "answers.jsonl")
        req_path.write_text("".join(json.dumps(q) + "\n" for _, _, q in sent), encoding="utf-8")
        subprocess.run([str(a.cli), "batch", "--model", str(a.model), "--backend", a.backend,
                        str(req_path), "--output", str(ans_path)], check=True, cwd=ROOT)
        answers = [json.loads(l) for l in ans_path.read_text(encoding="utf-8").splitlines()]
    if len(answers) != len(sent):
        print(f"bench_speculative_session: {len(answers)} answers to {len(sent)} requests", file=sys.stderr)
        return 1

    failures: list[str] = []
    texts: dict[str, set[str]] = {}
    best: dict[str, dict[str, dict]] = {}
    for (cid, setting, _), ans in zip(sent, answers):
        if "error" in ans:
            failures.append(f"{cid} {setting}: {ans['error']}")
            continue
        if setting == "warm":
            continue
        if ans["promptTokensComputed"] > 1:
            failures.append(f"{cid} {setting}: {ans['promptTokensComputed']} prompt tokens computed "
                            "(the warm-up should have left the prompt cached)")
        texts.setdefault(cid, set()).add(ans["text"])
        b = best.setdefault(cid, {})
        if setting not in b or ans["ms"] < b[setting]["ms"]:
            b[setting] = ans
    for cid, t in texts.items():
        if len(t) > 1:
            failures.append(f"{cid}: {len(t)} different texts across settings and rounds")
    by_id = {c["id"]: c for c in cases}
    best = {i: b for i, b in best.items() if len(b) == len(SETTINGS)}
    summary = summarize(best, by_id)

    print(f"\n{'':20} {'cases':>5} | {'drafting: tok/pass':>18} {'accept':>7} {'speed-up':>8} "
          f"{'(geomean)':>9} | {'cost-aware: tok/pass':>20} {'accept':>7} {'speed-up':>8} {'(geomean)':>9}")
    for s in summary:
        d, c = s["draft"], s["cost"]
        print(f"{s['label']:20} {s['cases']:5} | {fmt(d['tokens_per_pass'], '18.2f')} "
              f"{fmt(d['acceptance'], '7.1%')} {d['speedup']:7.2f}x {fmt(d['speedup_geomean'], '8.2f')}x | "
              f"{fmt(c['tokens_per_pass'], '20.2f')} {fmt(c['acceptance'], '7.1%')} {c['speedup']:7.2f}x "
              f"{fmt(c['speedup_geomean'], '8.2f')}x")
    print("(speed-up: time with speculative false / time with drafting, after the cached prompt,\n"
          " each case's fastest round, summed over the cases; and the geometric mean of the per-case\n"
          " ratios)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"backend": a.backend, "draft": a.draft, "rounds": a.rounds,
                                      "python": pythons, "summary": summary,
                                      "answers": [{"id": i, "setting": s, **ans}
                                                  for (i, s, _), ans in zip(sent, answers)]},
                                     indent=1))
    return report_failures("bench_speculative_session", failures)


if __name__ == "__main__":
    sys.exit(main())
