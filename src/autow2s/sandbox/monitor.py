"""Sample a job's process tree from the host's /proc: task count, memory and CPU time.

The host sees every process of the job's PID namespace, so a parent that polls a few times a
second can name the limit a job hit and kill it, instead of leaving it stuck at a kernel wall.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class TreeSample:
    tasks: int  # processes and threads, the job's own (bubblewrap's helpers excluded)
    memory_bytes: int  # anonymous + shared memory, proportional share (PSS)
    cpu_seconds: float  # user + system, live processes plus everything they reaped


def _read_stat(pid: int) -> tuple[str, int, list[str]] | None:
    """(comm, ppid, fields after comm) of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read().decode(errors="replace")
    except OSError:
        return None
    close = raw.rfind(")")
    comm = raw[raw.find("(") + 1:close]
    fields = raw[close + 2:].split()
    return comm, int(fields[1]), fields


def _statm(pid: int) -> tuple[int, int]:
    """(resident, anonymous resident) bytes of one process; cheap (one tiny file)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            parts = handle.read().split()
        resident, shared = int(parts[1]), int(parts[2])
        return resident * PAGE_SIZE, max(0, resident - shared) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0, 0


def _pss_memory(pid: int) -> int:
    """PSS of anonymous and shmem pages (so forked children do not count shared pages twice).

    Exact but costs about a millisecond for a torch process, so it is read only near the limit.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            text = handle.read().decode()
    except OSError:
        return _statm(pid)[1]
    total = 0
    found = False
    for line in text.splitlines():
        if line.startswith(("Pss_Anon:", "Pss_Shmem:")):
            total += int(line.split()[1]) * 1024
            found = True
    return total if found else _statm(pid)[1]


def descendants(root_pid: int) -> dict[int, tuple[str, list[str]]]:
    """All live processes below root_pid (root excluded), with their comm and stat fields."""
    table: dict[int, tuple[str, int, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: dict[int, tuple[str, list[str]]] = {}
    stack = list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        comm, _, fields = table[pid]
        found[pid] = (comm, fields)
        stack.extend(children.get(pid, []))
    return found


def sample_tree(root_pid: int, helper_pids: frozenset[int] = frozenset(),
                memory_limit: int | None = None, ignored_pids: frozenset[int] = frozenset()) -> TreeSample:
    """One sample of the job below root_pid; helper_pids (bubblewrap's reaper) count for CPU only,
    ignored_pids (a warm sandbox's worker) not at all, though their children do.

    Memory is the anonymous resident size; once the job's total resident size (an upper bound of
    PSS) passes memory_limit, it is the exact PSS, so forked copies are not counted twice.
    """
    tasks = 0
    ticks = 0
    resident = 0
    anonymous = 0
    job_pids = []
    for pid, (_, fields) in descendants(root_pid).items():
        if pid in ignored_pids:
            continue
        # fields[11:15] = utime stime cutime cstime; fields[17] = num_threads (stat fields 14-17, 20)
        ticks += sum(int(value) for value in fields[11:15])
        if pid in helper_pids:
            continue
        job_pids.append(pid)
        tasks += int(fields[17])
        total, anon = _statm(pid)
        resident += total
        anonymous += anon
    memory = anonymous
    if memory_limit is not None and resident > memory_limit:
        memory = sum(_pss_memory(pid) for pid in job_pids)
    return TreeSample(tasks=tasks, memory_bytes=memory, cpu_seconds=ticks / CLOCK_TICKS)


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL each process; those already gone are skipped."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def reaper_pids(root_pid: int) -> frozenset[int]:
    """bubblewrap's PID-1 reaper: a direct child of the outer bwrap, which no job process can be."""
    found = set()
    for pid, (comm, fields) in descendants(root_pid).items():
        if comm == "bwrap" and int(fields[1]) == root_pid:
            found.add(pid)
    return frozenset(found)


def directory_bytes(path: Path) -> int:
    """Disk usage of a tree (allocated blocks), through autow2s.safefs: no link followed, even one swapped in
    mid-walk; vanished entries count 0."""
    from autow2s.safefs import SafeTree

    return SafeTree(path).disk_bytes()
