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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autow2s.sandbox.bwrap import build_plan, job_environment, require_sandbox, running_as_root, with_data_fds
from autow2s.sandbox.cgroup import MemoryCgroup, for_limit
from autow2s.sandbox.config import SandboxConfig
from autow2s.sandbox.limits import (
    CPU_TIME,
    DISK,
    KILLED_EXIT_CODE,
    MEMORY,
    OUTPUT,
    PROCESSES,
    WALL_TIME,
    Limits,
    MiB,
    launcher_args,
    launcher_rlimits,
)
from autow2s.sandbox.monitor import TreeSample, descendants, directory_bytes, kill_all, reaper_pids, sample_tree

Sink = Callable[[bytes], None]
# Between samples: often at first (bombs go off early), then less (each sample reads all of /proc).
# The job's exit itself wakes the monitor at once (pidfd).
POLL_SECONDS = 0.1
SLOW_POLL_SECONDS = 0.25
SLOW_POLL_AFTER_SECONDS = 5.0
DISK_POLL_SECONDS = 1.0
UNSAFE_WARNING = ("autow2s: WARNING: running a job WITHOUT a sandbox (--unsafe-no-sandbox): it can read "
                  "the lab's labels, your secrets and the network. Install bubblewrap to isolate jobs.\n")


@dataclass(frozen=True)
class SandboxResult:
    """How a job ended. exit_code is the command's (128 + N when signal N ended it), or 137 when
    the sandbox killed it; limit_hit then names the limit."""

    command: tuple[str, ...]
    exit_code: int
    limit_hit: str | None
    cancelled: bool
    wall_seconds: float
    cpu_seconds: float
    peak_memory_bytes: int
    peak_tasks: int
    stdout_bytes: int
    stderr_bytes: int
    sandboxed: bool
    message: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit_hit is None and not self.cancelled

    def to_json(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__} | {"command": list(self.command)}


class _Pump(threading.Thread):
    """Copy one pipe to a sink, counting bytes; past the shared budget, stop copying and flag it."""

    def __init__(self, fd: int, sink: Sink | None, budget: _Budget) -> None:
        super().__init__(daemon=True)
        self.fd, self.sink, self.budget, self.count = fd, sink, budget, 0

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.count += len(chunk)
            allowed = self.budget.take(len(chunk))
            if self.sink is not None and allowed:
                self.sink(chunk[:allowed])
        os.close(self.fd)


class _Budget:
    def __init__(self, limit: int | None) -> None:
        self.left = limit
        self.exceeded = False
        self.lock = threading.Lock()

    def take(self, n: int) -> int:
        with self.lock:
            if self.left is None:
                return n
            allowed = min(n, self.left)
            self.left -= allowed
            if allowed < n:
                self.exceeded = True
            return allowed


def _give_workspace_to(workspace: Path, uid: int) -> None:
    """Root runs jobs as their own uid, so the workspace must be theirs to write.

    fwalk and dir_fd-relative, no-follow chown: a job still running in the same workspace cannot
    swap a directory for a symlink and have root chown host files.
    """
    info = os.lstat(workspace)
    if info.st_uid != uid:
        os.chown(workspace, uid, uid, follow_symlinks=False)
    if info.st_mode & 0o711 != 0o711:
        # bwrap enters the workspace before it drops to the job's uid, with no capabilities left:
        # the owner's rwx and traverse-only for others (a mkdtemp dir is 0700) let it chdir there.
        os.chmod(workspace, (info.st_mode & 0o7777) | 0o711)
    for _, dirs, files, dir_fd in os.fwalk(workspace, follow_symlinks=False):
        for name in (*dirs, *files):
            try:
                if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_uid != uid:
                    os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue


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


def _limit_reason(limits: Limits, sample: TreeSample) -> str | None:
    if limits.max_processes is not None and sample.tasks >= limits.max_processes:
        return PROCESSES
    if limits.memory_bytes is not None and sample.memory_bytes > limits.memory_bytes:
        return MEMORY
    if limits.cpu_seconds is not None and sample.cpu_seconds > limits.cpu_seconds:
        return CPU_TIME
    return None


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


def _message(exit_code: int, limit_hit: str | None, cancelled: bool, limits: Limits, peak: TreeSample) -> str:
    if cancelled:
        return "cancelled"
    if limit_hit is not None:
        return (f"killed: hit the {limit_hit} limit ({limits.describe(limit_hit)}); peak "
                f"{peak.memory_bytes / MiB:.0f} MiB, {peak.tasks} tasks, {peak.cpu_seconds:.1f} s CPU")
    if exit_code > 128:
        try:
            return f"exit code {exit_code} (killed by {signal.Signals(exit_code - 128).name})"
        except ValueError:
            pass
    return f"exit code {exit_code}"


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
        _give_workspace_to(workspace, config.job_uid())
    disk_base = directory_bytes(workspace) if limits.disk_bytes is not None else 0
    lifeline_read, lifeline_write = os.pipe()  # the write end stays here, never inherited
    fds = [lifeline_read]
    memory = for_limit(limits.memory_bytes) if not config.unsafe_no_sandbox else None
    try:
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
    budget = _Budget(config.limits.output_bytes)
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


@dataclass(frozen=True)
class Watched:
    """What watching a job found: the limit it hit (or None), whether it was cancelled, and its peak."""

    reason: str | None
    cancelled: bool
    peak: TreeSample


def start_pumps(stdout_fd: int, stderr_fd: int, stdout: Sink | None, stderr: Sink | None,
                budget: _Budget) -> list[_Pump]:
    """Copy the job's two pipes (duplicated here; the caller closes its own fds) to the sinks."""
    pumps = [_Pump(os.dup(stdout_fd), stdout, budget), _Pump(os.dup(stderr_fd), stderr, budget)]
    for pump in pumps:
        pump.start()
    return pumps


def watch_job(limits: Limits, start: float, sample: Callable[[], TreeSample], ended: Callable[[], bool],
              wait: Callable[[float], None], budget: _Budget, workspace: Path, disk_base: int,
              cancel: threading.Event | None) -> Watched:
    """Sample a running job until `ended()` says it is over, or until it must be stopped: at a
    limit, or on cancel. Stopping it is the caller's part (the way differs for a cold and a warm
    sandbox). `wait(seconds)` sleeps, returning early when the job ends."""
    peak = TreeSample(tasks=0, memory_bytes=0, cpu_seconds=0.0)
    next_disk_check = start + DISK_POLL_SECONDS
    while not ended():
        now = time.monotonic()
        current = sample()
        peak = TreeSample(max(peak.tasks, current.tasks), max(peak.memory_bytes, current.memory_bytes),
                          max(peak.cpu_seconds, current.cpu_seconds))
        if cancel is not None and cancel.is_set():
            return Watched(None, True, peak)
        reason = None
        if now - start > limits.wall_seconds:
            reason = WALL_TIME
        elif budget.exceeded:
            reason = OUTPUT
        else:
            reason = _limit_reason(limits, current)
        if reason is None and limits.disk_bytes is not None and now >= next_disk_check:
            next_disk_check = now + DISK_POLL_SECONDS
            if directory_bytes(workspace) - disk_base > limits.disk_bytes:
                reason = DISK
        if reason is not None:
            return Watched(reason, False, peak)
        wait(POLL_SECONDS if now - start < SLOW_POLL_AFTER_SECONDS else SLOW_POLL_SECONDS)
    return Watched(None, False, peak)


def with_cgroup_memory(sample: TreeSample, memory: MemoryCgroup | None, base_bytes: int = 0) -> TreeSample:
    """The sample's memory, or the cgroup's (less base_bytes) where that is more: the cgroup also
    sees memory no process maps (memfd pages, detached SysV shared memory, /tmp files)."""
    if memory is None:
        return sample
    held = memory.held_bytes() - base_bytes
    return replace(sample, memory_bytes=held) if held > sample.memory_bytes else sample


def finish_result(limits: Limits, expanded: list[str], returncode: int, watch: Watched, budget: _Budget,
                  pumps: list[_Pump], start: float, cpu_seconds: float, sandboxed: bool,
                  oom_killed: bool = False) -> SandboxResult:
    """The report of a job that has ended: which limit (if any) ended it, and what it used.
    oom_killed: the kernel killed a process of the job at its memory cgroup's cap."""
    wall = time.monotonic() - start
    reason, cancelled = watch.reason, watch.cancelled
    exit_code = returncode if returncode >= 0 else 128 - returncode
    if reason is None and oom_killed and not cancelled:
        reason = MEMORY  # the kernel's cap fired before the monitor's next sample
    if reason is None and budget.exceeded:
        reason = OUTPUT  # the job ended in the same instant it overflowed
    if reason is None and not cancelled and exit_code == 128 + signal.SIGXCPU:
        reason = CPU_TIME  # the kernel's per-process backstop fired first
    if reason is None and not cancelled and exit_code == 128 + signal.SIGXFSZ:
        reason = DISK
    if reason is not None or cancelled:
        exit_code = KILLED_EXIT_CODE
    peak = watch.peak
    return SandboxResult(
        command=tuple(expanded), exit_code=exit_code, limit_hit=reason, cancelled=cancelled,
        wall_seconds=wall, cpu_seconds=max(cpu_seconds, peak.cpu_seconds), peak_memory_bytes=peak.memory_bytes,
        peak_tasks=peak.tasks, stdout_bytes=pumps[0].count, stderr_bytes=pumps[1].count, sandboxed=sandboxed,
        message=_message(exit_code, reason, cancelled, limits, peak))
