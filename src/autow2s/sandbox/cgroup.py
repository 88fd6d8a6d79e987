"""A memory cgroup per sandbox, where the host lets us make one.

The monitor's per-process sampling cannot see memory that no process maps: pages written into a
memfd, SysV shared memory left detached. A memory cgroup counts every page the sandbox's
processes charge, those included, and the kernel enforces a cap. Both cgroup v1 (a writable
`memory` hierarchy, e.g. as root in a container) and v2 (a delegated subtree with the memory
controller enabled) work; elsewhere `create` returns None and sampling alone applies.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
DISABLE_ENV = "AUTOW2S_NO_CGROUP"  # set to 1 to never use cgroups (sampling only)
# The kernel's cap sits above the monitor's limit, so the monitor usually names it first; page
# cache (reclaimable, e.g. torch's libraries read at import) also counts against the cap.
CAP_SLACK_BYTES = 512 * 1024 * 1024
# Enters the cgroup, then becomes bwrap: everything the sandbox forks is born inside.
_ENTER = 'echo $$ > "$1" 2>/dev/null; shift; exec "$@"'


@dataclass(frozen=True)
class _Parent:
    path: Path
    version: int  # 1 or 2


def _own_cgroup_lines() -> list[tuple[str, str, str]]:
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return []
    return [tuple(line.split(":", 2)) for line in text.splitlines() if line.count(":") >= 2]  # type: ignore[misc]


def _writable_dir(path: Path) -> bool:
    probe = path / f"autow2s-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    ok = (probe / "cgroup.procs").exists()
    try:
        probe.rmdir()
    except OSError:
        pass
    return ok


@functools.lru_cache(maxsize=1)
def _parent() -> _Parent | None:
    """Where this process may make memory cgroups, found once."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    for _, controllers, path in _own_cgroup_lines():
        if "memory" in controllers.split(","):
            base = CGROUP_ROOT / "memory" / path.lstrip("/")
            if (base / "memory.limit_in_bytes").exists() and _writable_dir(base):
                return _Parent(base, 1)
    for hierarchy, controllers, path in _own_cgroup_lines():
        if hierarchy == "0" and controllers == "":
            base = CGROUP_ROOT / path.lstrip("/")
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            if "memory" in enabled and _writable_dir(base):
                return _Parent(base, 2)
    return None


STALE_SECONDS = 60.0


def _remove_stale(parent: Path) -> None:
    """Remove our cgroups left by processes that were killed before they could (rmdir fails on any
    cgroup that still has processes, so a live sandbox's is safe; young ones may be starting)."""
    now = time.time()
    for path in parent.glob("autow2s-*"):
        try:
            if now - path.stat().st_mtime > STALE_SECONDS:
                path.rmdir()
        except OSError:
            continue


class MemoryCgroup:
    """One sandbox's memory cgroup: its cap, what its processes hold, how often the kernel killed."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    @classmethod
    def create(cls, cap_bytes: int) -> MemoryCgroup | None:
        parent = _parent()
        if parent is None:
            return None
        _remove_stale(parent.path)
        path = parent.path / f"autow2s-{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir()
            if parent.version == 1:
                (path / "memory.limit_in_bytes").write_text(str(cap_bytes))
            else:
                (path / "memory.max").write_text(str(cap_bytes))
                if (path / "memory.swap.max").exists():
                    (path / "memory.swap.max").write_text("0")
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return cls(path, parent.version)

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run from inside this cgroup (the shell enters it, then execs argv)."""
        return ["/bin/sh", "-c", _ENTER, "sh", str(self.path / "cgroup.procs"), *argv]

    def _stat(self) -> dict[str, int]:
        try:
            lines = (self.path / "memory.stat").read_text().splitlines()
        except OSError:
            return {}
        out = {}
        for line in lines:
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
        return out

    def held_bytes(self) -> int:
        """RAM the sandbox holds that it cannot give back: anonymous memory plus shmem (tmpfs,
        memfd, SysV and POSIX shared memory), not reclaimable page cache."""
        stat = self._stat()
        if self.version == 1:
            return stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_shmem", stat.get("shmem", 0))
        return stat.get("anon", 0) + stat.get("shmem", 0)

    def oom_kills(self) -> int:
        """How many processes the kernel killed for this cgroup's cap so far."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def remove(self, wait_seconds: float = 2.0) -> None:
        """Delete the cgroup once its processes are gone (they go with the sandbox)."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() >= deadline:
                    return  # left behind, empty soon; the next run's parent listing shows it
                time.sleep(0.02)


def for_limit(memory_bytes: int | None) -> MemoryCgroup | None:
    """A cgroup capped a margin above the monitor's memory limit, or None (no limit, or no cgroups here)."""
    if memory_bytes is None:
        return None
    return MemoryCgroup.create(memory_bytes + CAP_SLACK_BYTES)
