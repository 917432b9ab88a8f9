#!/usr/bin/env python3
"""HumanEval (completion, greedy pass@1) and HumanEval single-line infilling (PSM and SPM)
through this engine: natively by the ``codellama`` CLI, or by the npm package in headless
Chromium.

Usage (from the repository root; the venv and its packages come from scripts/setup.sh)::

    cargo build --release -p codellama-webgpu --bin codellama
    .venv/bin/python scripts/eval/humaneval.py [--model GGUF] [--engine cli|chromium]
        [--backend gpu|cpu] [--tasks completion,infill-psm,infill-spm] [--limit N]
        [--json OUT] [--multi-line] [--timeout S] [--jobs N]
    .venv/bin/python scripts/eval/humaneval.py --self-test

``tasks.py`` says how the 164 problems become 164 completion and 2 × 1,033 infilling tasks,
``execute.py`` how a program is run. The requests (greedy, ``temperature: 0``) go to the engine
in one batch: ``codellama batch`` (one model load, one JSON request per line) or
``scripts/eval/browser.mjs`` (the package built by ``scripts/build-web.sh``, the same requests
through ``completeText`` / ``infillText`` in one page). Then every program runs in its own
interpreter, and the pass rate per task kind is printed (``--json`` writes every task's
generated text and outcome too). ``--limit N`` takes the first N problems (for quick checks).

``--expect-same-as EARLIER.json`` compares every task's text with an earlier run's ``--json``
(another engine or backend, the same model and settings): greedy decoding gives the same tokens
on every backend, so any difference is reported and makes the exit status 1.

``--self-test`` checks the harness without a model: every canonical solution, put where the
engine's text would go, must pass (164 completions and 1,033 masked lines), and a body of
``pass`` must fail every problem; exit status 1 otherwise.

Exit status: 0 when everything ran (whatever the pass rate), 1 when the engine failed, the
self-test found a fault or ``--expect-same-as`` a difference. A request the engine refuses (a prompt longer than the model's context)
counts as failed and is listed as ``error``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import execute  # noqa: E402
import tasks as T  # noqa: E402


def run_engine(args, requests: list[dict]) -> list[dict]:
    """The engine's answers, one per request, in order."""
    with tempfile.TemporaryDirectory(prefix="codellama-eval-") as d:
        req_path = pathlib.Path(d) / "requests.jsonl"
        out_path = pathlib.Path(d) / "answers.jsonl"
        req_path.write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
        if args.engine == "cli":
            cmd = [
                str(args.cli), "batch", "--model", str(args.model), "--backend", args.backend,
                "--progress", str(req_path), "-o", str(out_path),
            ]
        else:
            cmd = ["node", str(HERE / "browser.mjs"), "--model", str(args.model), str(req_path), str(out_path)]
        print(f"[eval] {len(requests)} requests: {' '.join(cmd[:2])} ...", file=sys.stderr)
        r = subprocess.run(cmd, cwd=ROOT)
        if r.returncode != 0:
            raise SystemExit(f"the engine failed (exit status {r.returncode}): {' '.join(cmd)}")
        answers = [json.loads(line) for line in out_path.read_text(encoding="utf-8").splitlines()]
    if len(answers) != len(requests):
        raise SystemExit(f"the engine answered {len(answers)} of {len(requests)} requests")
    return answers


def summarize(tasks: list[T.Task], outcomes: list[dict]) -> dict:
    summary = {}
    for kind in T.TASK_KINDS:
        rows = [o for t, o in zip(tasks, outcomes) if t.kind == kind]
        if not rows:
            continue
        passed = sum(o["passed"] for o in rows)
        summary[kind] = {
            "tasks": len(rows),
            "passed": passed,
            "pass_rate": round(passed / len(rows), 4),
            "errors": sum("error" in o for o in rows),
            "problems": len({o["problem"] for o in rows}),
        }
    return summary


def self_test(args, problems) -> int:
    tasks = T.build_tasks(problems, ["completion", "infill-psm"])
    t0 = time.time()
    res = execute.run_programs([t.program(t.reference) for t in tasks], args.timeout, args.jobs)
    bad = [(t.id, why) for t, (ok, why) in zip(tasks, res) if not ok]
    comp = [t for t in tasks if t.kind == "completion"]
    empty = execute.run_programs([t.program("    pass\n") for t in comp], args.timeout, args.jobs)
    wrongly = [t.id for t, (ok, _) in zip(comp, empty) if ok]
    print(
        f"self-test: canonical solutions pass {len(tasks) - len(bad)}/{len(tasks)} "
        f"({len(comp)} completions, {len(tasks) - len(comp)} masked lines); "
        f"a `pass` body fails {len(comp) - len(wrongly)}/{len(comp)}; {time.time() - t0:.0f} s"
    )
    for tid, why in bad:
        print(f"  canonical failed: {tid}: {why}")
    for tid in wrongly:
        print(f"  `pass` body passed: {tid}")
    return 1 if bad or wrongly else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=pathlib.Path, default=ROOT / "models/codellama-demo.gguf")
    ap.add_argument("--engine", choices=["cli", "chromium"], default="cli")
    ap.add_argument("--backend", choices=["gpu", "cpu"], default="gpu", help="cli engine: where the forward pass runs")
    ap.add_argument("--cli", type=pathlib.Path, default=ROOT / "target/release/codellama")
    ap.add_argument("--tasks", default=",".join(T.TASK_KINDS), help="comma-separated: " + ", ".join(T.TASK_KINDS))
    ap.add_argument("--limit", type=int, default=None, help="the first N problems only")
    ap.add_argument("--completion-tokens", type=int, default=512)
    ap.add_argument("--infill-tokens", type=int, default=128)
    ap.add_argument("--multi-line", action="store_true", help="infill middles end at <EOT>, not at the first line break")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per program (wall clock; CPU time too on Linux)")
    ap.add_argument("--jobs", type=int, default=None, help="programs run at once (default: CPU count)")
    ap.add_argument("--json", type=pathlib.Path, help="write every task's text and outcome here")
    ap.add_argument("--expect-same-as", type=pathlib.Path, metavar="EARLIER_JSON",
                    help="fail unless every task's text equals this earlier run's (its --json)")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()

    problems = T.load_problems()
    if args.limit is not None:
        problems = problems[: args.limit]
    if args.self_test:
        return self_test(args, problems)

    kinds = [k.strip() for k in args.tasks.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in T.TASK_KINDS]
    if unknown:
        ap.error(f"unknown task kinds {unknown}; known: {', '.join(T.TASK_KINDS)}")
    tasks = T.build_tasks(problems, kinds, args.completion_tokens, args.infill_tokens, args.multi_line)

    t0 = time.time()
    answers = run_engine(args, [t.request for t in tasks])
    gen_s = time.time() - t0
    programs = [t.program(a.get("text", "")) for t, a in zip(tasks, answers)]
    t1 = time.time()
    results = execute.run_programs(programs, args.timeout, args.jobs)
    run_s = time.time() - t1

    outcomes = []
    for t, a, (ok, why) in zip(tasks, answers, results):
        o = {"id": t.id, "kind": t.kind, "problem": t.problem["task_id"], "passed": ok and "error" not in a}
        if "error" in a:
            o["error"] = a["error"]
        else:
            o.update(text=a["text"], stop_reason=a.get("stopReason"), generated_tokens=a.get("generatedTokens"), result=why)
        outcomes.append(o)
    summary = summarize(tasks, outcomes)
    report = {
        "model": str(args.model),
        "engine": args.engine,
        "backend": args.backend if args.engine == "cli" else "webgpu",
        "multi_line": args.multi_line,
        "limit": args.limit,
        "generation_s": round(gen_s, 1),
        "execution_s": round(run_s, 1),
        "summary": summary,
    }
    for kind, s in summary.items():
        print(
            f"{kind:11} {s['passed']:5}/{s['tasks']:<5} = {100 * s['pass_rate']:5.1f} %"
            f"  ({s['problems']} problems, {s['errors']} refused)"
        )
    print(f"[generation {gen_s:.0f} s, execution {run_s:.0f} s; engine {args.engine}, model {args.model.name}]")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**report, "tasks": outcomes}, indent=1) + "\n", encoding="utf-8")
    if args.expect_same_as:
        return compare(outcomes, args.expect_same_as)
    return 0


def compare(outcomes: list[dict], earlier_path: pathlib.Path) -> int:
    """0 when every task's text (or refusal) equals the earlier run's, else 1."""
    earlier = json.loads(earlier_path.read_text(encoding="utf-8"))
    before = {t["id"]: t for t in earlier["tasks"]}
    differ = []
    for o in outcomes:
        b = before.get(o["id"])
        if b is None:
            differ.append((o["id"], "not in the earlier run"))
        elif ("error" in o) != ("error" in b) or o.get("text") != b.get("text"):
            differ.append((o["id"], f"{b.get('text', b.get('error'))!r} then, {o.get('text', o.get('error'))!r} now"))
    print(
        f"same text as {earlier_path.name} ({earlier['engine']}, {earlier['backend']}): "
        f"{len(outcomes) - len(differ)}/{len(outcomes)} tasks"
    )
    for tid, why in differ[:20]:
        print(f"  differs: {tid}: {why}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
