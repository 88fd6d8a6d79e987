"""Watching one running job, cold or warm: its output pumps and their shared budget, the sampling loop
that stops it at a limit, and the report of how it ended.

The cold runner (runner.py) and the warm pool (warm.py) both go through these, so a limit means the
same thing whichever way a job ran.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from autow2s.sandbox.cgroup import MemoryCgroup
from autow2s.sandbox.limits import CPU_TIME, DISK, KILLED_EXIT_CODE, MEMORY, OUTPUT, PROCESSES, WALL_TIME, Limits, MiB
from autow2s.sandbox.monitor import TreeSample, directory_bytes

TAIL_BYTES = 4096  # how much of a job's stdout/stderr a result carries

Sink = Callable[[bytes], None]
# Between samples: often at first (bombs go off early), then less (each sample reads all of /proc).
# The job's exit itself wakes the monitor at once (pidfd).
POLL_SECONDS = 0.1
SLOW_POLL_SECONDS = 0.25
SLOW_POLL_AFTER_SECONDS = 5.0
DISK_POLL_SECONDS = 1.0


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


class Pump(threading.Thread):
    """Copy one pipe to a sink, counting bytes; past the shared budget, stop copying and flag it."""

    def __init__(self, fd: int, sink: Sink | None, budget: OutputBudget) -> None:
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


class OutputBudget:
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


def give_workspace_to(workspace: Path, uid: int) -> None:
    """Root runs jobs as their own uid, so the workspace must be theirs to write.

    A walk through autow2s.safefs and a dir_fd-relative, no-follow chown: a job still running in the
    same workspace cannot swap a directory for a symlink and have root chown host files.
    """
    from autow2s.safefs import SafeTree

    info = os.lstat(workspace)
    if info.st_uid != uid:
        os.chown(workspace, uid, uid, follow_symlinks=False)
    if info.st_mode & 0o711 != 0o711:
        # bwrap enters the workspace before it drops to the job's uid, with no capabilities left:
        # the owner's rwx and traverse-only for others (a mkdtemp dir is 0700) let it chdir there.
        os.chmod(workspace, (info.st_mode & 0o7777) | 0o711)
    for dir_fd, _, name, entry in SafeTree(workspace).walk_entries():
        if entry.st_uid != uid:
            try:
                os.chown(name, uid, uid, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue


def limit_reason(limits: Limits, sample: TreeSample) -> str | None:
    if limits.max_processes is not None and sample.tasks >= limits.max_processes:
        return PROCESSES
    if limits.memory_bytes is not None and sample.memory_bytes > limits.memory_bytes:
        return MEMORY
    if limits.cpu_seconds is not None and sample.cpu_seconds > limits.cpu_seconds:
        return CPU_TIME
    return None


def result_message(exit_code: int, limit_hit: str | None, cancelled: bool, limits: Limits, peak: TreeSample) -> str:
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


@dataclass(frozen=True)
class Watched:
    """What watching a job found: the limit it hit (or None), whether it was cancelled, and its peak."""

    reason: str | None
    cancelled: bool
    peak: TreeSample


def start_pumps(stdout_fd: int, stderr_fd: int, stdout: Sink | None, stderr: Sink | None,
                budget: OutputBudget) -> list[Pump]:
    """Copy the job's two pipes (duplicated here; the caller closes its own fds) to the sinks."""
    pumps = [Pump(os.dup(stdout_fd), stdout, budget), Pump(os.dup(stderr_fd), stderr, budget)]
    for pump in pumps:
        pump.start()
    return pumps


def watch_job(limits: Limits, start: float, sample: Callable[[], TreeSample], ended: Callable[[], bool],
              wait: Callable[[float], None], budget: OutputBudget, workspace: Path, disk_base: int,
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
            reason = limit_reason(limits, current)
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


def finish_result(limits: Limits, expanded: list[str], returncode: int, watch: Watched, budget: OutputBudget,
                  pumps: list[Pump], start: float, cpu_seconds: float, sandboxed: bool,
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
        message=result_message(exit_code, reason, cancelled, limits, peak))


def output_tail(path: Path, size: int = TAIL_BYTES) -> str:
    """The last `size` bytes of a job's output file, decoded; empty when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""

