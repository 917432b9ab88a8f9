"""Runs a HumanEval program against its tests: a fresh interpreter per program.

Each program is written into its own temporary directory and run there by
``python -I`` (isolated: no user site, no environment variables, the
directory not on ``sys.path`` except the script's own) with stdin closed, a
wall-clock timeout, and on Linux a CPU-time and address-space limit. It passes
when the interpreter exits with status 0 (``check`` raises ``AssertionError``
on a wrong answer). Generated code is untrusted: this is process isolation,
not a sandbox; run evaluations of unknown models in a container.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import tempfile

MEMORY_LIMIT = 2 << 30  # bytes of address space per program


def _limits(timeout: float):
    def apply():
        try:
            import resource

            cpu = int(timeout) + 1
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
        except (ImportError, ValueError, OSError):
            pass

    return apply if os.name == "posix" else None


def run_program(program: str, timeout: float = 5.0) -> tuple[bool, str]:
    """(passed, why): ``why`` is ``passed``, ``timed out`` or the last line of stderr."""
    with tempfile.TemporaryDirectory(prefix="codellama-eval-") as d:
        path = os.path.join(d, "program.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        try:
            r = subprocess.run(
                [sys.executable, "-I", path],
                cwd=d,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                preexec_fn=_limits(timeout),
            )
        except subprocess.TimeoutExpired:
            return False, "timed out"
    if r.returncode == 0:
        return True, "passed"
    err = r.stderr.decode("utf-8", "replace").strip().splitlines()
    return False, (err[-1] if err else f"exit status {r.returncode}")[:300]


def run_programs(programs: list[str], timeout: float = 5.0, jobs: int | None = None):
    """``run_program`` over a list, ``jobs`` at a time (default: the CPU count); results in order."""
    jobs = jobs or os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda p: run_program(p, timeout), programs))
