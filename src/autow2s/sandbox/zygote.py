"""The warm worker that runs inside a long-lived sandbox: import torch and autow2s once, then fork a
fresh child for every job.

Runs as `python -m autow2s.sandbox.zygote FD` inside bubblewrap, where FD is one end of a unix
SEQPACKET socket whose other end the host's `WarmSandbox` holds. Per job the host sends
{"argv": [...], "cpu_seconds": N | null, "env": {...}} with the job's stdout and stderr pipes attached; the
worker forks, answers {"started": PID}, waits, cleans up, and answers {"exit": CODE, "cpu": S,
"left": [what it could not clean up]}; when something is left it exits, and the host starts anew.

The worker has no more rights than the jobs it forks (same sandbox, same uid): what a job could do
to it, the job could do to itself. The host, not this worker, enforces every limit.
"""

from __future__ import annotations

import _io
import atexit
import ctypes
import gc
import io
import json
import os
import platform
import resource
import runpy
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# What a typical job needs, imported once here so each forked job starts with it in memory.
PRELOAD = ("numpy", "torch", "sklearn.linear_model", "autow2s.cli", "autow2s.testbed.public_run",
           "autow2s.testbed.methods.registry")
MAX_MESSAGE = 1 << 20
SCRATCH_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")  # /dev/mqueue: POSIX message queues, listed as files
SYSV_IPC = {"shm": ("shmctl", 1), "sem": ("semctl", 1), "msg": ("msgctl", 1)}  # /proc/sysvipc file: (call, id column)
IPC_RMID = 0
_IOPRIO_GET = {"x86_64": 252, "aarch64": 31}.get(platform.machine())  # the syscall's number
PR_SET_DUMPABLE = 4
_LIBC = ctypes.CDLL(None, use_errno=True)


# What a fresh process would get: the environment before any preloaded module touched it.
_START_ENVIRON = dict(os.environ)


def _set_dumpable(value: int) -> None:
    """Non-dumpable, the worker's memory, fds and ptrace are closed to the jobs (same uid as it)."""
    _LIBC.prctl(PR_SET_DUMPABLE, value, 0, 0, 0)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional one missing costs the job an import, nothing more
            continue


def _reseed() -> None:
    """A forked child inherits the worker's random state: give it fresh entropy, as a new process has."""
    import random

    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _is_this_python(program: str) -> bool:
    """`python`/`python3` (the venv's, first on PATH) or this interpreter's own path."""
    return program in ("python", "python3") or os.path.realpath(program) == os.path.realpath(sys.executable)


def _run_in_child(argv: list[str]) -> int:
    """Run one job's argv in this (forked) process and return its exit code."""
    if argv and argv[0] in ("autow2s", str(Path(sys.executable).parent / "autow2s")):
        # `python -m autow2s`, as the console script would run it: the program, not a module this worker
        # depends on (the CLI is preloaded above, so this costs nothing).
        sys.argv = ["autow2s", *argv[1:]]
        sys.path.insert(0, str(Path(sys.executable).parent))  # as the console script has it
        return _guarded(lambda: runpy.run_module("autow2s", run_name="__main__", alter_sys=True))
    if len(argv) >= 2 and _is_this_python(argv[0]) and not argv[1].startswith("-"):
        script = os.path.abspath(argv[1])
        if not os.path.isfile(script):
            sys.stderr.write(f"{argv[0]}: can't open file {argv[1]!r}: [Errno 2] No such file or directory\n")
            return 2
        sys.argv = argv[1:]
        sys.path.insert(0, os.path.dirname(script))
        return _guarded(lambda: runpy.run_path(script, run_name="__main__"))
    try:  # anything else runs as it would in a cold sandbox: a new program in this process
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot run {argv[0]!r}: {exc.strerror}\n")
        return 127
    return 127  # not reached


def _guarded(run: Callable[[], object]) -> int:
    """Exit codes as the interpreter gives them: SystemExit's code, 1 for an uncaught exception
    (through sys.excepthook), 130 for KeyboardInterrupt."""
    try:
        run()
    except SystemExit as done:
        return _exit_code(done)
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        return 130
    except BaseException:
        sys.excepthook(*sys.exc_info())
        return 1
    return 0


def _exit_code(done: SystemExit) -> int:
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code & 0xFF
    sys.stderr.write(f"{done.code}\n")
    return 1


def _fileno(stream: io.IOBase) -> int:
    try:
        return stream.fileno()
    except (OSError, ValueError):
        return -1


def _exit_like_python(code: int) -> None:
    """End a job as the interpreter would, minus tearing down the preloaded modules (about 0.6 s
    with torch loaded): join non-daemon threads, run atexit handlers, flush and close the files the
    job left open (only its own objects: the worker's are frozen out of gc's lists), flush stdio."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_Finalize does first
    except BaseException:
        traceback.print_exc()
    atexit._run_exitfuncs()
    for obj in gc.get_objects():
        if issubclass(type(obj), _io._IOBase):  # type(), not isinstance: no __class__ lookups on odd objects
            try:
                if obj.closed:
                    continue
                if _fileno(obj) in (0, 1, 2):
                    obj.flush()  # stdio stays open until the process ends, as in CPython
                else:
                    obj.close()
            except BaseException:
                continue
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            continue
    os._exit(code)


def _carry_nice_into_the_new_autogroup() -> None:
    """setsid() gives the job a scheduling autogroup of its own, at nice 0: carry the worker's nice into it, as
    the launcher did for the sandbox's group (limits.LAUNCHER), so a niced job still yields to other sandboxes."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= 0:
        return
    for _attempt in range(10):
        try:
            with open("/proc/self/autogroup", "w") as group:
                group.write(str(nice))
            return
        except BlockingIOError:  # another group's nice changed within the last 100 ms
            time.sleep(0.11)
        except OSError:  # no autogroup scheduling here
            return


def _child(control: socket.socket, argv: list[str], out_fd: int, err_fd: int, cpu_seconds: float | None,
           env: dict[str, str]) -> int:
    """The forked job: set it up like a fresh process, run it, and return its exit code."""
    control.close()
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    try:
        os.setsid()
        _set_dumpable(1)  # the job is an ordinary process again (the worker stays closed)
        _carry_nice_into_the_new_autogroup()  # after: a closed process's /proc files are root's
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's defaults for a new interpreter
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        if cpu_seconds is not None:
            limit = int(cpu_seconds) + 2  # one second after the host's monitor, as in a cold sandbox
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
        os.environ.clear()
        os.environ.update(_START_ENVIRON)
        os.environ.update(env)  # this job's own entries (its deadline, for ctx.time_left())
        os.chdir(os.environ.get("AUTOW2S_WORKSPACE", "/workspace"))
        _reseed()
        return _run_in_child(argv)
    except BaseException:
        traceback.print_exc()
        return 1


def _remove_sysv_ipc() -> None:
    """SysV shared memory, semaphores and queues outlive the job that made them: remove them all."""
    for kind, (call, column) in SYSV_IPC.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            ident = int(line.split()[column])
            if kind == "sem":
                _LIBC.semctl(ident, 0, IPC_RMID)
            else:
                getattr(_LIBC, call)(ident, IPC_RMID, None)


def _mount_points() -> set[str]:
    points = set()
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle:
            # the mount point is field 5, with space, tab, newline and backslash written in octal
            points.add(line.split()[4].decode("unicode_escape"))
    return points


def _scratch_entries() -> list[Path]:
    """What a job may have left in /tmp, /dev/shm and /dev/mqueue: everything there except the
    sandbox's own bind mounts (the project code, when its checkout lies under /tmp) and the
    directories that lead to them, which are searched in turn."""
    mounts = _mount_points()
    leading = {str(parent) for point in mounts for parent in Path(point).parents}
    found: list[Path] = []
    stack = [Path(scratch) for scratch in SCRATCH_DIRS if Path(scratch).is_dir()]
    while stack:
        for entry in stack.pop().iterdir():
            if str(entry) in mounts:
                continue
            if str(entry) in leading and entry.is_dir() and not entry.is_symlink():
                stack.append(entry)
            else:
                found.append(entry)
    return found


def _leftovers() -> list[str]:
    """What a job left that the next one would find: processes, /tmp files, SysV IPC objects."""
    me = os.getpid()
    found = [f"pid {entry}" for entry in os.listdir("/proc") if entry.isdigit() and int(entry) not in (1, me)]
    found += [str(entry) for entry in _scratch_entries()]
    for kind in SYSV_IPC:
        try:
            found += [f"sysv {kind}"] * (len(Path(f"/proc/sysvipc/{kind}").read_text().splitlines()) - 1)
        except OSError:
            continue
    return found


def _remove(entry: Path) -> None:
    """Remove one entry of /tmp or /dev/shm, restoring permissions a job took away; never follows
    a symlink, never recurses (a job can nest directories thousands deep)."""
    if not entry.is_dir() or entry.is_symlink():
        try:
            entry.unlink()
        except OSError:
            pass
        return
    directories = [str(entry)]  # in the order found: parents before their children
    index = 0
    while index < len(directories):
        current = directories[index]
        index += 1
        try:
            os.chmod(current, 0o700)
            with os.scandir(current) as children:
                for child in children:
                    if child.is_dir(follow_symlinks=False):
                        directories.append(child.path)
                    else:
                        os.unlink(child.path)
        except OSError:
            continue
    for directory in reversed(directories):
        try:
            os.rmdir(directory)
        except OSError:
            continue


def _worker_state() -> dict[str, object]:
    """What a job of the same uid can change about the worker without ptrace: rlimits, niceness,
    CPU affinity, scheduling policy. Any change after a job means a new sandbox."""
    limits = {name: resource.getrlimit(getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")}
    return {"rlimits": limits, "nice": os.getpriority(os.PRIO_PROCESS, 0), "affinity": sorted(os.sched_getaffinity(0)),
            "scheduler": os.sched_getscheduler(0),
            "ioprio": _LIBC.syscall(_IOPRIO_GET, 1, 0) if _IOPRIO_GET else None}  # (IOPRIO_WHO_PROCESS, self)


def _inside_a_sandbox() -> bool:
    """PID 2 under bubblewrap's PID 1: the only place where kill(-1) reaches just this sandbox."""
    try:
        comm = Path("/proc/1/comm").read_text().strip()
    except OSError:
        return False
    return os.getpid() == 2 and os.getppid() == 1 and comm == "bwrap"


def _clean_up(state: dict[str, object]) -> list[str]:
    """Between jobs: kill what a job left running (every process but PID 1 and this one, in one
    step), empty /tmp, /dev/shm and /dev/mqueue, remove SysV IPC objects. Returns what is left,
    including any change to the worker itself; a non-empty answer retires the sandbox."""
    if not _inside_a_sandbox():
        return ["the worker is not inside its sandbox: nothing was cleaned"]
    try:
        for _ in range(20):
            try:
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if not any(entry.isdigit() and int(entry) not in (1, os.getpid()) for entry in os.listdir("/proc")):
                break
            time.sleep(0.005)
        for entry in _scratch_entries():
            _remove(entry)
        _remove_sysv_ipc()
        left = _leftovers()
        if _worker_state() != state:
            left.append("the job changed the worker's limits or scheduling")
        return left
    except BaseException as exc:  # never leave the host without an exit report
        return [f"clean-up failed: {type(exc).__name__}: {exc}"]


def _send(control: socket.socket, message: dict[str, object]) -> None:
    control.send(json.dumps(message).encode())


def serve(control: socket.socket) -> None:
    """Serve jobs until the host hangs up. (A forked child never returns: it ends in _exit_like_python.)"""
    _set_dumpable(0)
    _preload()
    gc.collect()
    gc.freeze()  # the worker's own objects: never scanned again, in the worker or in a job
    state = _worker_state()
    _send(control, {"ready": os.getpid()})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
        except ConnectionError:
            return
        if not data:
            return  # the host closed its end: this worker is done
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(control, {"error": "a job request needs its stdout and stderr pipes"})
            continue
        request = json.loads(data)
        pid = os.fork()
        if pid == 0:
            _exit_like_python(_child(control, list(request["argv"]), fds[0], fds[1], request.get("cpu_seconds"),
                                       {str(k): str(v) for k, v in (request.get("env") or {}).items()}))
        for fd in fds:
            os.close(fd)
        _send(control, {"started": pid})
        _, status, usage = os.wait4(pid, 0)
        left = _clean_up(state)
        _send(control, {"exit": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime,
                        "left": left[:20]})
        if left:
            return  # the host replaces a sandbox that a job could not be cleaned out of


def main() -> None:
    if not _inside_a_sandbox():  # its clean-up kills every process it can signal: only inside a PID namespace
        sys.exit("autow2s.sandbox.zygote runs only as a warm sandbox's worker, inside bubblewrap")
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
