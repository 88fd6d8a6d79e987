"""The executor interface: submit a job, get a handle; ask its status, wait for its result, cancel it.

A job is one sandboxed command. Local and Ray executors run the very same `run_job`, so a job
behaves the same on a laptop and on a cluster.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.sandbox.limits import Limits


class JobError(AutoW2SError):
    """A job was asked for something the executor cannot give (an unknown handle, too many CPUs)."""


class JobStatus(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobSpec:
    """What to run and what it may use. command runs inside the sandbox, where the workspace is
    /workspace and the task data /task (or write `{workspace}` and `{task_data}`).

    warm: run in the workspace's warm sandbox (torch already imported, a fork per job) where the
    executor keeps one; CPU jobs only, and an executor without warm sandboxes runs it cold.
    ro_mounts: host directories shown read-only at their own top-level sandbox paths (SandboxConfig).
    """

    command: tuple[str, ...]
    workspace: Path
    task_data: Path | None = None
    cpus: int = 1
    gpus: int = 0
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    hidden: tuple[Path, ...] = ()
    name: str = "job"
    warm: bool = False
    ro_mounts: tuple[tuple[Path, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.command:
            raise JobError("a job needs a command")
        if self.cpus < 1 or self.gpus < 0:
            raise JobError(f"a job needs cpus >= 1 and gpus >= 0, got cpus={self.cpus}, gpus={self.gpus}")


@dataclass(frozen=True)
class JobHandle:
    job_id: str
    name: str = "job"


@dataclass(frozen=True)
class JobResult:
    """How a job ended. A job that crashed, hit a limit or lost its worker is FAILED, with `error`
    saying why; logs stay on disk at stdout_path/stderr_path, and their tails travel here."""

    job_id: str
    status: JobStatus
    exit_code: int | None
    limit_hit: str | None = None
    error: str | None = None
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    output_files: tuple[Path, ...] = ()
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_memory_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.SUCCEEDED


class Executor(ABC):
    """Runs sandboxed jobs. Implementations: LocalExecutor (this machine), RayExecutor (a cluster)."""

    @abstractmethod
    def submit(self, spec: JobSpec) -> JobHandle:
        """Queue a job; returns at once."""

    @abstractmethod
    def status(self, handle: JobHandle) -> JobStatus:
        """Where the job is now (does not block)."""

    @abstractmethod
    def result(self, handle: JobHandle, timeout: float | None = None) -> JobResult:
        """Wait for the job to end (TimeoutError after `timeout` seconds) and report how it ended."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> None:
        """Stop a queued or running job; its result then says CANCELLED."""

    @abstractmethod
    def shutdown(self) -> None:
        """Cancel what is left and release the workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
