"""Run one candidate program against its tests, isolated, and say whether it passed.

This is the only place where code-verify executes code. It uses the isolated runner the layer
above injects (autow2s.sandbox.code_runner: bubblewrap, no network, read-only system,
time/memory/process limits; the CLI installs it) when one can be made here, and otherwise a plain
subprocess with rlimits and a timeout (AUTOW2S_CODE_EXEC=subprocess forces that; =sandbox refuses
to fall back). Outcomes are cached by a hash of the program, so a task is executed once per machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from autow2s.errors import AutoW2SError
from autow2s.safefs import remove_job_tree
from autow2s.testbed.cache import default_cache_dir

Outcome = Literal["passed", "failed", "timeout"]
EXEC_ENV = "AUTOW2S_CODE_EXEC"
MEMORY_BYTES = 512 * 1024 * 1024
OUTCOME_VERSION = 1


ProgramRunner = Callable[[Path, float], Outcome]  # (workspace holding check.py, timeout) -> outcome
_isolated_runner: Callable[[], ProgramRunner | None] | None = None


def use_isolated_runner(factory: Callable[[], ProgramRunner | None]) -> None:
    """Inject the sandboxed runner (a factory that answers None where no sandbox can be made): the testbed
    is the bottom layer and never imports the sandbox itself."""
    global _isolated_runner
    _isolated_runner = factory


def _limit_child() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES * 2, MEMORY_BYTES * 2))
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024 * 1024, 16 * 1024 * 1024))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    os.setsid()


def _subprocess_run(workspace: Path, timeout_s: float) -> Outcome:
    """Fallback: a child python with rlimits, in the workspace, with an empty environment."""
    try:
        done = subprocess.run([sys.executable, "-I", "check.py"], cwd=workspace, env={"PATH": "/usr/bin:/bin"},
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout_s, preexec_fn=_limit_child)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "passed" if done.returncode == 0 else "failed"


def choose_runner() -> tuple[str, ProgramRunner]:
    mode = os.environ.get(EXEC_ENV, "auto")
    if mode not in ("auto", "sandbox", "subprocess"):
        raise AutoW2SError(f"{EXEC_ENV} must be auto, sandbox or subprocess, got {mode!r}")
    if mode != "subprocess":
        runner = _isolated_runner() if _isolated_runner is not None else None
        if runner is not None:
            return "sandbox", runner
        if mode == "sandbox":
            raise AutoW2SError(f"{EXEC_ENV}=sandbox but no bubblewrap sandbox can be made here (or none was "
                               "installed: autow2s.sandbox.code_runner.install); install bubblewrap or unset it "
                               "to fall back to a limited subprocess")
    return "subprocess", _subprocess_run


def run_program(program: str, timeout_s: float, runner: ProgramRunner) -> Outcome:
    """Execute `program` (solution + tests + check call) once in a fresh workspace."""
    workspace = Path(tempfile.mkdtemp(prefix="autow2s-code-"))
    try:
        workspace.chmod(0o755)
        (workspace / "check.py").write_text(program)
        return runner(workspace, timeout_s)
    finally:
        remove_job_tree(workspace)  # the program could write there: no link followed, nothing chmodded by path


class OutcomeCache:
    """Outcomes by sha256 of (program, timeout), in one JSON file per program under the cache dir."""

    def __init__(self, root: Path | None = None) -> None:
        self.directory = (root or default_cache_dir()) / "code-exec"

    @staticmethod
    def key(program: str, timeout_s: float) -> str:
        return hashlib.sha256(f"v{OUTCOME_VERSION}\x00{timeout_s}\x00{program}".encode()).hexdigest()

    def get(self, key: str) -> Outcome | None:
        path = self.directory / key[:2] / f"{key}.json"
        try:
            value = json.loads(path.read_text())["outcome"]
        except (OSError, ValueError, KeyError):
            return None
        return value if value in ("passed", "failed", "timeout") else None

    def put(self, key: str, outcome: Outcome, runner: str) -> None:
        path = self.directory / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"outcome": outcome, "runner": runner}))
        os.replace(tmp, path)


def execute_all(programs: Sequence[str], *, timeout_s: float = 3.0, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[Outcome]:
    """Outcomes for many programs: cached ones at once, the rest in parallel."""
    cache = OutcomeCache()
    keys = [cache.key(program, timeout_s) for program in programs]
    outcomes: list[Outcome | None] = [cache.get(key) for key in keys]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if not todo:
        return [o for o in outcomes if o is not None]
    runner_name, runner = choose_runner()

    def one(i: int) -> tuple[int, Outcome]:
        outcome = run_program(programs[i], timeout_s, runner)
        cache.put(keys[i], outcome, runner_name)
        return i, outcome

    workers = workers or max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, (i, outcome) in enumerate(pool.map(one, todo), start=1):
            outcomes[i] = outcome
            if progress:
                progress(done, len(todo))
    return [o if o is not None else "failed" for o in outcomes]
