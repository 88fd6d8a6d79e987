"""Resource limits of one sandboxed job, and the tiny launcher that applies them inside the sandbox.

The limits are enforced twice: the kernel (rlimits set by the launcher) bounds what a runaway job
can reach between two samples, and the parent's monitor kills the job and names the limit it hit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB

WALL_TIME = "wall_time"
CPU_TIME = "cpu_time"
MEMORY = "memory"
PROCESSES = "processes"
OUTPUT = "output"
DISK = "disk"
LIMIT_NAMES = (WALL_TIME, CPU_TIME, MEMORY, PROCESSES, OUTPUT, DISK)

NPROC_MARGIN = 8

# The exit code `autow2s sandbox run` uses when a limit killed the job (128 + SIGKILL, as shells do).
KILLED_EXIT_CODE = 137


@dataclass(frozen=True)
class Limits:
    """What one job may use. `None` turns a limit off (the wall time cannot be turned off).

    memory_bytes counts the job's anonymous and shared memory (PSS), summed over its processes;
    max_processes counts processes and threads; output_bytes is stdout plus stderr; disk_bytes is
    how much the workspace may grow, and also caps any single file the job writes.
    """

    wall_seconds: float = 3600.0
    cpu_seconds: float | None = None
    memory_bytes: int | None = 8 * GiB
    max_processes: int | None = 512
    output_bytes: int | None = 64 * MiB
    disk_bytes: int | None = 4 * GiB
    tmp_bytes: int = 256 * MiB  # each of /tmp and /dev/shm (RAM-backed, on top of memory_bytes)
    # Kernel backstop on address space, beyond memory_bytes; GPU jobs turn it off (CUDA maps tens of GiB).
    address_space_slack_bytes: int | None = 4 * GiB
    # Scheduling niceness (0-19) the job starts with, for the process and its autogroup: a verified run yields the
    # CPU to researchers' experiments. The process cannot lower its nice again (no CAP_SYS_NICE in the sandbox); its
    # autogroup's can go back to 0 without privilege, which speeds up that job and changes no score.
    nice: int = 0

    def __post_init__(self) -> None:
        if not self.wall_seconds > 0:
            raise ValueError(f"wall_seconds must be positive, got {self.wall_seconds}")
        for name in ("cpu_seconds", "memory_bytes", "output_bytes", "disk_bytes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        if not 0 <= self.nice <= 19:
            raise ValueError(f"nice must be between 0 and 19, got {self.nice}")
        if self.max_processes is not None and self.max_processes < 4:
            raise ValueError(f"max_processes must be at least 4 (the shell and its helpers), got {self.max_processes}")

    def with_overrides(self, **changes: Any) -> Limits:
        """A copy with some limits changed; `None` values in `changes` are ignored."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    def describe(self, name: str) -> str:
        """One line saying what the named limit was, for reports."""
        value = {
            WALL_TIME: f"{self.wall_seconds:g} s wall time",
            CPU_TIME: f"{self.cpu_seconds:g} s CPU time" if self.cpu_seconds else "CPU time",
            MEMORY: f"{(self.memory_bytes or 0) / MiB:.0f} MiB memory",
            PROCESSES: f"{self.max_processes} processes and threads",
            OUTPUT: f"{(self.output_bytes or 0) / MiB:.1f} MiB of stdout and stderr",
            DISK: f"{(self.disk_bytes or 0) / MiB:.0f} MiB of workspace growth or file size",
        }
        return value.get(name, name)


# The limits of the two kinds of job the lab and the campaign run, declared here once. A researcher's
# experiment (campaign/runner.py) and one seed of a verified or transfer run (lab/verify.py, which scales
# the wall time by the number of seeds). Inside a job, ctx.time_left() counts down to its wall limit.
RESEARCH_JOB_LIMITS = Limits(wall_seconds=300, memory_bytes=3 * GiB)
# Verified and transfer runs (the lab's) run at nice 10: during research they take the CPU researchers leave.
VERIFY_JOB_LIMITS = Limits(wall_seconds=600, memory_bytes=4 * GiB, nice=10)


def launcher_rlimits(limits: Limits, gpu: bool, reaper_counts: bool) -> dict[str, int]:
    """The kernel rlimits the launcher sets: per-process backstops to the monitor's job-wide limits.

    reaper_counts: in an unprivileged user namespace bubblewrap's reaper runs as the job's user
    and so counts against RLIMIT_NPROC.
    """
    rlimits: dict[str, int] = {"RLIMIT_CORE": 0}
    if limits.max_processes is not None:
        # A margin above the monitor's limit: the kernel counts every process of the uid (a warm
        # sandbox's idle worker included), and the monitor must be the one to name the limit.
        rlimits["RLIMIT_NPROC"] = limits.max_processes + NPROC_MARGIN + (1 if reaper_counts else 0)
    if limits.cpu_seconds is not None:
        # One second later than the monitor, so the monitor names the limit first.
        rlimits["RLIMIT_CPU"] = int(limits.cpu_seconds) + 2
    if limits.disk_bytes is not None:
        rlimits["RLIMIT_FSIZE"] = limits.disk_bytes
    if limits.memory_bytes is not None and limits.address_space_slack_bytes is not None and not gpu:
        rlimits["RLIMIT_AS"] = limits.memory_bytes + limits.address_space_slack_bytes
    if limits.nice:
        rlimits["NICE"] = limits.nice  # not an rlimit: the launcher calls os.nice and sets its autogroup's nice
    return rlimits


# Runs inside the sandbox as `python -I -S -c LAUNCHER UID GID RLIMITS LIFELINE -- CMD...`: check the
# parent is still alive, set the rlimits, drop to the job's uid when started as root, exec CMD.
# LIFELINE is the read end of a pipe whose write end only the parent holds: readable means EOF,
# i.e. the parent died while the sandbox was being built (before die-with-parent was armed).
# Stdlib only; no site, no autow2s.
LAUNCHER = r"""
import os, resource, select, sys, time
uid, gid, spec, lifeline = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
if lifeline >= 0:
    if select.select([lifeline], [], [], 0)[0]:
        sys.exit(137)
    os.close(lifeline)
for item in filter(None, spec.split(",")):
    name, value = item.split("=")
    if name == "NICE":
        os.nice(int(value))
        # Autogroup scheduling ranks sessions first, and the sandbox is a session: the group's nice counts. The
        # kernel refuses (EAGAIN) a change within 100 ms of anyone else's; without autogroup there is no file.
        for _attempt in range(10):
            try:
                with open("/proc/self/autogroup", "w") as group:
                    group.write(value)
                break
            except BlockingIOError:
                time.sleep(0.11)
            except OSError:
                break
        continue
    resource.setrlimit(getattr(resource, name), (int(value), int(value)))
if os.getuid() == 0 and uid != 0:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: nothing can regain a capability
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
argv = sys.argv[6:]
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"sandbox: cannot run {argv[0]!r}: {exc.strerror}\n")
    sys.exit(127)
"""


def launcher_args(python: str, uid: int, gid: int, rlimits: dict[str, int], lifeline_fd: int = -1) -> list[str]:
    spec = ",".join(f"{name}={value}" for name, value in rlimits.items())
    return [python, "-I", "-S", "-c", LAUNCHER, str(uid), str(gid), spec, str(lifeline_fd), "--"]
