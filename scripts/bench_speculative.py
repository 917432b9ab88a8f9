#!/usr/bin/env python3
"""Speculative decoding (issue 18) on the fixed edit-like cases: drafting off vs on, same texts.

Usage::

    cargo build --release -p codellama-webgpu --bin codellama
    .venv/bin/python scripts/bench_speculative.py [--backend cpu|gpu] [--draft 8] [--cost-aware] [--repeat 3]
        [--cases PATH] [--kinds renamed,missing_line] [--json OUT] [--model GGUF] [--cli BIN]

For every case of ``scripts/spec_cases.py`` (built into ``target/spec-cases.jsonl`` first unless
``--cases`` names a file), runs the release ``codellama`` CLI greedily (``--temperature 0``,
``--seed 0``) three ways, ``--repeat`` times each (alternating the order): ``--draft 0`` and
``--draft N`` with the case's ``max_tokens``, and ``--draft 0 --max-tokens 1`` (the prompt and
the first token: no draft is possible there). It reads the CLI's ``--stats`` line on stderr and
keeps each way's fastest run. Per kind and per group (``edit``: the four edit-like kinds together;
``plain``: the missing-line infills, reported apart) it prints

- tokens per forward pass: generated tokens / forward passes, with drafting on;
- acceptance: accepted / drafted tokens;
- speed-up, time with ``--draft 0`` / time with ``--draft N``. A run's time is its generation
  time from the stats line, (computed prompt + generated tokens) / tok/s, so model loading and
  GPU start-up are left out. ``request``: the whole generation, summed over the cases, and the
  geometric mean of the per-case ratios; ``decode``: after the first token (a run's time less
  the ``--max-tokens 1`` run's), summed over the cases;
- how many cases give the same text with drafting as without. Greedy speculative decoding is
  exact, so a difference is a failure: the script exits 1 (also when a run fails, when repeats
  of one setting disagree, or when the stats lack the drafting counts with drafting on).

``--json OUT`` writes every run (case id, setting, text, stats, times) and the summary. The
whole process's wall time is recorded there too (``wall_s``) but not used.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
GROUP_ORDER = ("second_method", "repeated_call", "reindented", "renamed", "missing_line")

# The stats lines of `codellama complete|infill --stats` on stderr
# (crate/src/bin/codellama/generate.rs):
#   [29 prompt tokens (29 computed), 6 generated, 311.7 tok/s overall, stop: StopToken]
#   [speculative: 12 drafted, 9 accepted (75%), 4 forward passes, 1.50 tokens per pass]
# Each count is matched by name wherever it stands ("12 drafted" or "drafted: 12"), the last
# occurrence in stderr counting.
NUM = r"(\d+(?:\.\d+)?)"
STATS_FIELDS = {
    "prompt_tokens": [rf"{NUM} prompt tokens"],
    "prompt_computed": [rf"\({NUM} computed\)"],
    "generated": [rf"{NUM} generated"],
    "tok_s": [rf"{NUM} tok/s"],
    "drafted": [rf"{NUM} drafted", r"drafted(?:[ _]tokens)?\s*[:=]\s*" + NUM],
    "accepted": [rf"{NUM} accepted", r"accepted(?:[ _]tokens)?\s*[:=]\s*" + NUM],
    "forward_passes": [rf"{NUM} forward[ _]passes", r"forward[ _]passes\s*[:=]\s*" + NUM],
}


class BenchError(Exception):
    pass


def parse_stats(stderr: str) -> dict:
    """The counts of the CLI's bracketed stats lines in its stderr."""
    lines = [l.strip() for l in stderr.splitlines() if l.strip().startswith("[")]
    if not any("generated" in l and "tok/s" in l for l in lines):
        raise BenchError(f"no stats line in the CLI's stderr:\n{stderr[-2000:]}")
    out: dict = {}
    for key, pats in STATS_FIELDS.items():
        for line in reversed(lines):
            m = next((m for m in (re.search(p, line) for p in pats) if m), None)
            if m:
                out[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
                break
    out["trimmed"] = any(l.startswith("[trimmed to") for l in lines)
    return out


def cli_args(case: dict, draft: int, max_tokens: int, a) -> list[str]:
    common = ["--model", str(a.model), "--backend", a.backend, "--temperature", "0", "--seed", "0",
              "--max-tokens", str(max_tokens), "--draft", str(draft), "--stats"]
    if draft > 0 and a.cost_aware:
        common.append("--draft-cost-aware")
    if case["mode"] == "complete":
        return [str(a.cli), "complete", *common, "--", case["prompt"]]
    return [str(a.cli), "infill", *common, "--prefix", case["prefix"], "--suffix", case["suffix"]]


def run_once(case: dict, setting: str, draft: int, max_tokens: int, a) -> dict:
    argv = cli_args(case, draft, max_tokens, a)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, timeout=a.timeout, cwd=ROOT)
    wall = time.perf_counter() - t0
    stderr = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        raise BenchError(f"{case['id']} --draft {draft}: exit {p.returncode}:\n{stderr[-2000:]}")
    stats = parse_stats(stderr)
    text = p.stdout.decode("utf-8", "replace")
    text = text[:-1] if text.endswith("\n") else text  # the newline the CLI prints at the end
    if stats.get("tok_s", 0) > 0:
        gen_s = (stats.get("prompt_computed", 0) + stats["generated"]) / stats["tok_s"]
    else:
        gen_s = wall
    return {"id": case["id"], "setting": setting, "draft": draft, "max_tokens": max_tokens,
            "text": text, "stats": stats, "gen_s": gen_s, "wall_s": wall}


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def groups(cases: dict[str, dict], measured) -> list[tuple[str, list[str]]]:
    """(label, case ids) per kind in GROUP_ORDER, then per group (`edit`, `plain`): the ids in
    `measured` only, labels without any left out."""
    kinds = [k for k in GROUP_ORDER if any(c["kind"] == k for c in cases.values())]
    labels = [(k, lambda c, k=k: c["kind"] == k) for k in kinds]
    labels += [(f"group {g}", lambda c, g=g: c["group"] == g) for g in ("edit", "plain")]
    out = []
    for label, pick in labels:
        ids = [i for i, c in cases.items() if pick(c) and i in measured]
        if ids:
            out.append((label, ids))
    return out


def summarize(best: dict[str, dict[str, dict]], cases: dict) -> list[dict]:
    """One summary per kind, then per group; `best[id][setting]` is a case's fastest run."""
    out = []
    for label, ids in groups(cases, best):
        off = [best[i]["off"] for i in ids]
        on = [best[i]["on"] for i in ids]
        first = [best[i]["first"] for i in ids]
        passes = sum(r["stats"].get("forward_passes", 0) for r in on)
        drafted = sum(r["stats"].get("drafted", 0) for r in on)
        accepted = sum(r["stats"].get("accepted", 0) for r in on)
        gen = sum(r["stats"]["generated"] for r in on)
        # Decoding after the first token: the request's time less the prompt and first token's.
        dec_off = [max(r["gen_s"] - f["gen_s"], 1e-9) for r, f in zip(off, first)]
        dec_on = [max(r["gen_s"] - f["gen_s"], 1e-9) for r, f in zip(on, first)]
        t_off, t_on = sum(r["gen_s"] for r in off), sum(r["gen_s"] for r in on)
        out.append({
            "label": label,
            "cases": len(ids),
            "generated": gen,
            "forward_passes": passes,
            "tokens_per_pass": gen / passes if passes else None,
            "drafted": drafted,
            "accepted": accepted,
            "acceptance": accepted / drafted if drafted else None,
            "request_s_off": t_off,
            "request_s_on": t_on,
            "speedup_request": t_off / t_on if t_on else None,
            "speedup_request_geomean": geomean([a["gen_s"] / b["gen_s"] for a, b in zip(off, on)]),
            "decode_s_off": sum(dec_off),
            "decode_s_on": sum(dec_on),
            "speedup_decode": sum(dec_off) / sum(dec_on),
            "identical": sum(a["text"] == b["text"] for a, b in zip(off, on)),
        })
    return out


def load_cases(path: pathlib.Path | None, kinds: str | None) -> list[dict]:
    """The cases of the JSONL `path` (None: built by scripts/spec_cases.py into
    target/spec-cases.jsonl), only those of the comma-separated `kinds` when given."""
    if path is None:
        path = ROOT / "target/spec-cases.jsonl"
        subprocess.run([sys.executable, str(ROOT / "scripts/spec_cases.py"), "--out", str(path)],
                       check=True)
    cases = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()]
    if kinds:
        wanted = set(kinds.split(","))
        cases = [c for c in cases if c["kind"] in wanted]
    return cases


def cli_missing(cli: pathlib.Path, name: str) -> bool:
    """Says so on stderr when the release CLI is not built."""
    if cli.is_file():
        return False
    print(f"{name}: {cli} is missing (cargo build --release -p codellama-webgpu --bin codellama)",
          file=sys.stderr)
    return True


def report_failures(name: str, failures: list[str]) -> int:
    """The exit status: 1 after listing the failures (first lines) on stderr, else 0."""
    if not failures:
        return 0
    print(f"\n{name}: {len(failures)} failure(s):", file=sys.stderr)
    for f in failures:
        print(f"  {f.splitlines()[0]}", file=sys.stderr)
    return 1


def fmt(v, spec: str) -> str:
    width = int(spec.split(".")[0] or 0) if spec[0].isdigit() else 0
    return "-".rjust(width) if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("cpu", "gpu"), default="gpu")
    ap.add_argument("--draft", type=int, default=8, help="--draft of the drafting runs (default 8)")
    ap.add_argument("--cost-aware", action="store_true",
                    help="the drafting runs with --draft-cost-aware (each run a new process: its pass "
                         "costs are measured from nothing, as a fresh engine's)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case and setting; the fastest counts")
    ap.add_argument("--cases", type=pathlib.Path, help="a JSONL of scripts/spec_cases.py (default: build it)")
    ap.add_argument("--kinds", help="comma-separated kinds to run (default: all)")
    ap.add_argument("--model", type=pathlib.Path, default=ROOT / "models/codellama-demo.gguf")
    ap.add_argument("--cli", type=pathlib.Path, default=ROOT / "target/release/codellama")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per CLI run")
    ap.add_argument("--json", type=pathlib.Path, help="write every run and the summary here")
    a = ap.parse_args()
    if a.draft < 1:
        ap.error("--draft must be at least 1 (the comparison is against --draft 0)")
    if cli_missing(a.cli, "bench_speculative"):
        return 1
    cases = {c["id"]: c for c in load_cases(a.cases, a.kinds)}
    pythons = sorted({c.get("python", "?") for c in cases.values()})
    print(f"{len(cases)} cases (Python {', '.join(pythons)} standard library), backend {a.backend}, "
          f"--draft 0 vs --draft {a.draft}{' --draft-cost-aware' if a.cost_aware else ''}, "
          f"{a.repeat} run(s) each, model {a.model.name}")

    runs: list[dict] = []
    best: dict[str, dict[str, dict]] = {}
    failures: list[str] = []
    for n, (cid, case) in enumerate(cases.items(), 1):
        settings = {"off": (0, case["max_tokens"]), "on": (a.draft, case["max_tokens"]),
                    "first": (0, 1)}  # the prompt and the first token only: no draft is possible
        fastest: dict[str, dict] = {}
        for rep in range(a.repeat):
            order = ("first", "off", "on") if rep % 2 == 0 else ("on", "off", "first")
            for setting in order:
                draft, max_tokens = settings[setting]
                try:
                    r = run_once(case, setting, draft, max_tokens, a)
                except (BenchError, subprocess.TimeoutExpired) as e:
                    failures.append(str(e))
                    print(f"FAIL {e}", file=sys.stderr)
                    continue
                runs.append(r)
                if setting not in fastest or r["gen_s"] < fastest[setting]["gen_s"]:
                    fastest[setting] = r
        for setting in ("off", "on"):
            if len({r["text"] for r in runs if r["id"] == cid and r["setting"] == setting}) > 1:
                failures.append(f"{cid}: --draft {settings[setting][0]} gave different texts in its repeats")
        if len(fastest) < 3:
            continue
        off, on = fastest["off"], fastest["on"]
        if off["text"] != on["text"]:
            failures.append(f"{cid}: the text with --draft {a.draft} differs from the text with --draft 0")
        if not {"drafted", "accepted", "forward_passes"} <= on["stats"].keys():
            failures.append(f"{cid}: the --stats line has no drafted/accepted/forward-pass counts")
        best[cid] = fastest
        st = on["stats"]
        first_s = fastest["first"]["gen_s"]
        print(f"[{n}/{len(cases)}] {cid:46} {st['generated']:3} tok, {st.get('forward_passes', '?'):>3} passes, "
              f"{st.get('accepted', '?'):>3}/{st.get('drafted', '?'):<3} accepted, "
              f"request {off['gen_s'] * 1e3:6.1f} -> {on['gen_s'] * 1e3:6.1f} ms "
              f"(first token {first_s * 1e3:6.1f} ms), "
              + ("same text" if off["text"] == on["text"] else "DIFFERENT TEXT")
              + (" (prompt trimmed)" if st.get("trimmed") else ""), flush=True)

    summary = summarize(best, cases)
    print(f"\n{'':20} {'cases':>5} {'tok/pass':>8} {'accept':>7} {'request':>8} {'(geomean)':>9} "
          f"{'decode':>7} {'identical':>9}")
    for s in summary:
        print(f"{s['label']:20} {s['cases']:5} {fmt(s['tokens_per_pass'], '8.2f')} "
              f"{fmt(s['acceptance'], '7.1%')} {fmt(s['speedup_request'], '7.2f')}x "
              f"{fmt(s['speedup_request_geomean'], '8.2f')}x {fmt(s['speedup_decode'], '6.2f')}x "
              f"{s['identical']:5}/{s['cases']}")
    print("(speed-ups, --draft 0 time / --draft N time: request = the whole generation, prompt included,\n"
          " summed over the cases, and the geometric mean of the per-case ratios; decode = after the\n"
          " first token: request time less the time of a --max-tokens 1 run, summed over the cases)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"backend": a.backend, "draft": a.draft, "repeat": a.repeat,
                                      "python": pythons, "summary": summary, "runs": runs}, indent=1))
    return report_failures("bench_speculative", failures)


if __name__ == "__main__":
    sys.exit(main())
