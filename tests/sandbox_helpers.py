"""Helpers for the sandbox and executor tests: a prepared task, and running code in the sandbox."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from autow2s.sandbox import SandboxConfig, SandboxResult, run_sandboxed

AUTOW2S = str(Path(sys.executable).parent / "autow2s")

# A method that reads no labels and trains nothing: fast, and enough to prove the job path works.
FAST_METHOD = "def run(ctx):\n    return ctx.weak_soft_labels('test')\n"


def autogroup_scheduling() -> bool:
    """Whether the kernel schedules by autogroup: each session (each sandbox) a group, ranked by the group's nice."""
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    return enabled.is_file() and enabled.read_text().strip() == "1"


@dataclass(frozen=True)
class Prepared:
    root: Path
    lab: Path
    public: Path


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """`autow2s prepare synth-linear`: lab/ holds the labels the sandbox must never reach.

    Made once per test run and shared by the xdist workers (under a file lock).
    """
    shared = tmp_path_factory.getbasetemp().parent
    root = shared / "sandbox-prepared-synth-linear"
    with open(shared / "sandbox-prepared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "public" / "weak" / "model.json").is_file():
            root.mkdir(parents=True, exist_ok=True)
            subprocess.run([AUTOW2S, "prepare", "synth-linear", "--out", str(root)], check=True,
                           capture_output=True, timeout=120)
    root.chmod(0o755)  # jobs run as their own user: the public view must be readable by others
    return Prepared(root=root, lab=root / "lab", public=root / "public")


def make_workspace(parent: Path, name: str = "workspace", with_method: bool = False) -> Path:
    workspace = parent / name
    workspace.mkdir(parents=True, exist_ok=True)
    if with_method:
        (workspace / "method").mkdir(exist_ok=True)
        (workspace / "method" / "method.py").write_text(FAST_METHOD)
    return workspace


@dataclass(frozen=True)
class Ran:
    result: SandboxResult
    stdout: str
    stderr: str


def run_command(config: SandboxConfig, argv: list[str], warm: bool = False) -> Ran:
    """Run argv in the sandbox, the way a job runs, and collect what it printed.

    warm: in a warm sandbox (a fresh pool, closed afterwards), the way researchers' experiments run.
    """
    out: list[bytes] = []
    err: list[bytes] = []
    if warm:
        from autow2s.sandbox.warm import WarmPool

        pool = WarmPool(Path(config.workspace).parent / f"warm-logs-{time.monotonic_ns()}")
        try:
            result = pool.run(config, argv, stdout=out.append, stderr=err.append)
        finally:
            pool.close()
    else:
        result = run_sandboxed(config, argv, stdout=out.append, stderr=err.append)
    return Ran(result, b"".join(out).decode(errors="replace"), b"".join(err).decode(errors="replace"))


def run_python(config: SandboxConfig, code: str, warm: bool = False) -> Ran:
    """Run a Python snippet in the sandbox. Warm, it is a script file in the workspace, which the
    warm worker runs in its forked child with torch already imported (`python -c` would exec)."""
    code = textwrap.dedent(code)
    if not warm:
        return run_command(config, ["python", "-c", code])
    name = f".snippet-{time.monotonic_ns()}.py"
    (Path(config.workspace) / name).write_text(code)
    return run_command(config, ["python", f"/workspace/{name}"], warm=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pids_with_token(token: str) -> list[int]:
    """Host processes whose command line contains `token` (to find a job's leftovers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if token.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def process_tree(roots: set[int]) -> set[int]:
    """The given processes and all their descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def kill_ray_cluster(temp_dir: str, port: int) -> None:
    """Stop the test's own Ray cluster by PID: every process naming its temp dir or GCS port, and
    their children. (`ray stop --force` would kill every Ray process on the machine, not just ours.)"""
    import signal

    def ours() -> set[int]:
        return set(pids_with_token(temp_dir)) | set(pids_with_token(f":{port}\x00"))

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in process_tree(ours()):
            if pid != os.getpid():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if wait_until(lambda: not (ours() - {os.getpid()}), timeout=5):
            return
