"""The sandboxed runner code-verify executes candidate programs with, injected into the testbed.

The testbed sits below the sandbox, so it cannot import it; `install()` hands it this runner. The
CLI installs it before any command runs, so tasks prepared by `autow2s prepare`, a campaign or the
lab are labelled by programs that ran isolated.
"""

from __future__ import annotations

import sys
from pathlib import Path

from autow2s.sandbox.bwrap import require_sandbox
from autow2s.sandbox.config import SandboxConfig
from autow2s.sandbox.limits import WALL_TIME, Limits, MiB
from autow2s.sandbox.runner import run_sandboxed
from autow2s.testbed.tasks.text.code_exec import MEMORY_BYTES, Outcome, ProgramRunner, use_isolated_runner


def sandboxed_program_runner() -> ProgramRunner | None:
    """A runner over run_sandboxed, or None when no sandbox can be made on this machine."""
    try:
        require_sandbox()
    except Exception:  # noqa: BLE001 - bubblewrap missing, or no user namespaces: the caller falls back
        return None

    def run(workspace: Path, timeout_s: float) -> Outcome:
        limits = Limits(wall_seconds=timeout_s, memory_bytes=MEMORY_BYTES, max_processes=16,
                        output_bytes=MiB, disk_bytes=16 * MiB)
        result = run_sandboxed(SandboxConfig(workspace=workspace, limits=limits),
                               [sys.executable, "-I", "{workspace}/check.py"], stdout=lambda _: None,
                               stderr=lambda _: None)
        if result.limit_hit == WALL_TIME:
            return "timeout"
        return "passed" if result.ok else "failed"

    return run


def install() -> None:
    """Make code-verify run candidate programs in the sandbox wherever one can be made."""
    use_isolated_runner(sandboxed_program_runner)
