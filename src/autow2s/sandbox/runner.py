"""Run one command in the sandbox, stream its output, enforce its limits, and report how it ended.

Every job of every researcher goes through `run_sandboxed`, and so does `autow2s sandbox run`; the
escape tests use it too, so what they prove holds for real jobs.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from autow2s.sandbox.bwrap import build_plan, job_environment, require_sandbox, running_as_root, with_data_fds
from autow2s.sandbox.cgroup import MemoryCgroup, for_limit
from autow2s.sandbox.config import SandboxConfig
from autow2s.sandbox.limits import launcher_args, launcher_rlimits
from autow2s.sandbox.monitor import TreeSample, descendants, directory_bytes, kill_all, reaper_pids, sample_tree
from autow2s.sandbox.watch import (
    OutputBudget,
    SandboxResult,
    Sink,
    finish_result,
    give_workspace_to,
    start_pumps,
    watch_job,
    with_cgroup_memory,
)
from autow2s.testbed.job_clock import deadline_env

UNSAFE_WARNING = ("autow2s: WARNING: running a job WITHOUT a sandbox (--unsafe-no-sandbox): it can read "
                  "the lab's labels, your secrets and the network. Install bubblewrap to isolate jobs.\n")
__all__ = ["SandboxResult", "Sink", "run_sandboxed"]


def _argv(config: SandboxConfig, command: list[str],
          lifeline_fd: int) -> tuple[list[str], list[int], dict[str, str], str | None]:
    """(argv, fds to pass, environment of the spawned process, cwd)."""
    if config.unsafe_no_sandbox:
        rlimits = launcher_rlimits(config.limits, gpu=config.gpu, reaper_counts=False)
        rlimits.pop("RLIMIT_NPROC", None)  # would count all of the user's host processes
        argv = launcher_args(sys.executable, os.getuid(), os.getgid(), rlimits) + command
        return argv, [], job_environment(config), str(Path(config.workspace).resolve())
    plan = build_plan(config, command, lifeline_fd)
    argv, fds = with_data_fds(plan)
    return argv, fds, {}, None


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
        return raw[raw.rfind(")") + 2]
    except (OSError, IndexError):
        return None


def _kill(proc: subprocess.Popen[bytes], sandboxed: bool) -> None:
    """Kill the whole job. Killing the outer bwrap alone is not enough while the sandbox is still
    being set up (its PID-1 child arms die-with-parent only when setup ends), so: freeze the outer
    bwrap, kill everything below it (PID 1 of the namespace takes the rest with it), then the outer."""
    try:
        if not sandboxed:
            os.killpg(proc.pid, signal.SIGKILL)
            return
        os.kill(proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2.0
        while _state(proc.pid) not in ("T", "t", "Z", "X", None) and time.monotonic() < deadline:
            time.sleep(0.001)
        kill_all(descendants(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass



def run_sandboxed(config: SandboxConfig, command: list[str] | tuple[str, ...], *,
                  stdout: Sink | None = None, stderr: Sink | None = None,
                  cancel: threading.Event | None = None, warn: Sink | None = None) -> SandboxResult:
    """Run `command` ({workspace} and {task_data} are filled in) and wait for it to end.

    stdout/stderr receive the job's output as it comes (at most limits.output_bytes in all); warn
    receives the unsafe-mode warning (default: this process's stderr).
    """
    require_sandbox(config.unsafe_no_sandbox)
    if not command:
        raise ValueError("no command to run")
    limits = config.limits
    expanded = config.expand(list(command))
    workspace = Path(config.workspace).resolve()
    if config.unsafe_no_sandbox:
        (warn or (lambda data: (sys.stderr.write(data.decode()), sys.stderr.flush())))(UNSAFE_WARNING.encode())
    elif running_as_root():
        give_workspace_to(workspace, config.job_uid())
    disk_base = directory_bytes(workspace) if limits.disk_bytes is not None else 0
    lifeline_read, lifeline_write = os.pipe()  # the write end stays here, never inherited
    fds = [lifeline_read]
    memory = for_limit(limits.memory_bytes) if not config.unsafe_no_sandbox else None
    try:
        # The job's ctx.time_left() counts down to the wall limit enforced here (testbed/job_clock.py).
        config = replace(config, env={**config.env, **deadline_env(limits.wall_seconds)})
        argv, data_fds, env, cwd = _argv(config, expanded, lifeline_read)
        fds += data_fds
        start = time.monotonic()
        proc = subprocess.Popen(memory.wrap(argv) if memory is not None else argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, pass_fds=fds,
                                start_new_session=True)
    except BaseException:
        os.close(lifeline_write)
        if memory is not None:
            memory.remove()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    try:
        return _supervise(config, proc, start, expanded, workspace, disk_base, cancel, stdout, stderr, memory)
    finally:
        os.close(lifeline_write)
        if memory is not None:
            memory.remove()


def _supervise(config: SandboxConfig, proc: subprocess.Popen[bytes], start: float, expanded: list[str],
               workspace: Path, disk_base: int, cancel: threading.Event | None, stdout: Sink | None,
               stderr: Sink | None, memory: MemoryCgroup | None) -> SandboxResult:
    """Pump the output, sample the job, kill it at a limit or on cancel, and write the report."""
    sandboxed = not config.unsafe_no_sandbox
    assert proc.stdout is not None and proc.stderr is not None
    budget = OutputBudget(config.limits.output_bytes)
    pumps = start_pumps(proc.stdout.fileno(), proc.stderr.fileno(), stdout, stderr, budget)
    proc.stdout.close()
    proc.stderr.close()

    helpers: frozenset[int] = frozenset()
    ended: list[tuple[int, Any]] = []

    def sample() -> TreeSample:
        nonlocal helpers
        if sandboxed and not helpers:
            helpers = reaper_pids(proc.pid)
        return with_cgroup_memory(sample_tree(proc.pid, helpers, config.limits.memory_bytes), memory)

    def poll() -> bool:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            ended.append((status, usage))
        return bool(pid)

    exit_fd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None

    def wait(seconds: float) -> None:
        if exit_fd is not None:
            select.select([exit_fd], [], [], seconds)
        else:
            time.sleep(seconds)

    try:
        watch = watch_job(config.limits, start, sample, poll, wait, budget, workspace, disk_base, cancel)
        if not ended:  # watch_job stopped it: kill, then reap
            _kill(proc, sandboxed)
            _, status, usage = os.wait4(proc.pid, 0)
            ended.append((status, usage))
    except BaseException:  # KeyboardInterrupt, a Ray cancel: never leave the job behind
        _kill(proc, sandboxed)
        proc.wait()
        raise
    finally:
        if exit_fd is not None:
            os.close(exit_fd)
    status, usage = ended[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    for pump in pumps:
        pump.join(timeout=10)  # EOF once every process of the job is gone
    if not sandboxed:
        _kill(proc, sandboxed)  # stragglers left in the process group
    cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
    oom = memory is not None and memory.oom_kills() > 0
    return finish_result(config.limits, expanded, proc.returncode, watch, budget, pumps, start, cpu, sandboxed,
                         oom_killed=oom)
