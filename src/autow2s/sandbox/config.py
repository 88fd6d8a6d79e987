"""What one sandboxed job is given: its workspace, the task data, limits, GPUs and environment."""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autow2s.sandbox.limits import Limits

# Where the job sees its two directories, whatever their host paths: host layout stays private.
WORKSPACE_MOUNT = "/workspace"
TASK_MOUNT = "/task"

# Root starts jobs under a dedicated uid (the kernel enforces RLIMIT_NPROC only for non-root users).
SANDBOX_UID_BASE = 1_900_000_000
SANDBOX_UID_SPAN = 10_000_000


# A read-only mount's sandbox path must be a fresh top-level directory: not a system path, not the
# workspace or task data, and nothing a job can shape (bwrap makes it in the sandbox's own tmpfs root).
RESERVED_MOUNTS = frozenset({"/", WORKSPACE_MOUNT, TASK_MOUNT, "/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin",
                             "/etc", "/proc", "/dev", "/tmp", "/sys", "/opt", "/root", "/home", "/var", "/run"})


def check_mount_point(dest: str) -> None:
    """Refuse a read-only mount at a path that is not a new top-level directory of the sandbox."""
    path = Path(dest)
    if not path.is_absolute() or len(path.parts) != 2 or dest in RESERVED_MOUNTS or ".." in path.parts:
        raise ValueError(f"read-only mount point {dest!r}: use a new top-level path such as /forum")


@dataclass(frozen=True)
class SandboxConfig:
    """One job's sandbox.

    hidden: host paths that must not be visible even if they lie under something bound (the lab's
    data dir and DB, other workspaces); they are masked with an empty directory or file.
    extra_ro_binds: more host paths to show read-only at the same path (a model cache, say).
    ro_mounts: (host directory, sandbox path) pairs shown read-only at a path of their own outside
        /workspace and /task: what the host writes for a researcher (the forum mirror, the method
        reference) lives in host folders the job cannot write, never in the workspace.
    uid: the host uid a job started by root runs as; by default one derived from the workspace.
    """

    workspace: Path
    task_data: Path | None = None
    limits: Limits = field(default_factory=Limits)
    gpu: bool = False
    cpus: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    hidden: tuple[Path, ...] = ()
    extra_ro_binds: tuple[Path, ...] = ()
    ro_mounts: tuple[tuple[Path, str], ...] = ()
    uid: int | None = None
    unsafe_no_sandbox: bool = False

    def __post_init__(self) -> None:
        for _, dest in self.ro_mounts:
            check_mount_point(dest)

    def job_uid(self) -> int:
        """The uid a root-started job runs as: stable per workspace, far above real users' uids."""
        if self.uid is not None:
            return self.uid
        digest = zlib.crc32(str(Path(self.workspace).resolve()).encode())
        return SANDBOX_UID_BASE + digest % SANDBOX_UID_SPAN

    def workspace_path(self) -> str:
        """The workspace as the job sees it."""
        return str(Path(self.workspace).resolve()) if self.unsafe_no_sandbox else WORKSPACE_MOUNT

    def task_data_path(self) -> str | None:
        """The task data as the job sees it."""
        if self.task_data is None:
            return None
        return str(Path(self.task_data).resolve()) if self.unsafe_no_sandbox else TASK_MOUNT

    def expand(self, command: list[str] | tuple[str, ...]) -> list[str]:
        """Fill `{workspace}` and `{task_data}` in a command with the paths the job sees."""
        values = {"workspace": self.workspace_path(), "task_data": self.task_data_path() or ""}
        out = []
        for arg in command:
            for key, value in values.items():
                arg = arg.replace("{" + key + "}", value)
            out.append(arg)
        return out
