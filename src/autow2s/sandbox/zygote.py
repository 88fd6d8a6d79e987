"""The warm worker that runs inside a long-lived sandbox: import torch and autow2s once, then fork a
fresh child for every job.

Runs as `python -m autow2s.sandbox.zygote FD` inside bubblewrap, where FD is one end of a unix
SEQPACKET socket whose other end the host's `WarmSandbox` holds. Per job the host sends
{"argv": [...], "cpu_seconds": N | null} with the job's stdout and stderr pipes attached; the
worker forks, answers {"started": PID}, waits, cleans up, and answers {"exit": CODE, "cpu": S}.

The worker has no more rights than the jobs it forks (same sandbox, same uid): what a job could do
to it, the job could do to itself. The host, not this worker, enforces every limit.
"""

from __future__ import annotations

import json
import os
import resource
import runpy
import shutil
import signal
import socket
import sys
import traceback
from pathlib import Path

# What a typical job needs, imported once here so each forked job starts with it in memory.
PRELOAD = ("numpy", "torch", "sklearn.linear_model", "autow2s.cli", "autow2s.testbed.public_run",
           "autow2s.testbed.methods.registry")
PYTHON_NAMES = {"python", "python3", Path(sys.executable).name}
MAX_MESSAGE = 1 << 20
SCRATCH_DIRS = ("/tmp", "/dev/shm")


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


def _run_in_child(argv: list[str]) -> int:
    """Run one job's argv in this (forked) process and return its exit code."""
    if argv and argv[0] in ("autow2s", str(Path(sys.executable).parent / "autow2s")):
        from autow2s.cli import app

        sys.argv = ["autow2s", *argv[1:]]
        try:
            app(args=argv[1:], prog_name="autow2s")
        except SystemExit as done:
            return _exit_code(done)
        return 0
    if len(argv) >= 2 and Path(argv[0]).name in PYTHON_NAMES and not argv[1].startswith("-"):
        script = os.path.abspath(argv[1])
        sys.argv = argv[1:]
        sys.path[0] = os.path.dirname(script)
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as done:
            return _exit_code(done)
        except BaseException:
            traceback.print_exc()
            return 1
        return 0
    try:  # anything else runs as it would in a cold sandbox: a new program in this process
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot run {argv[0]!r}: {exc.strerror}\n")
        return 127
    return 127  # not reached


def _exit_code(done: SystemExit) -> int:
    if done.code is None:
        return 0
    if isinstance(done.code, int):
        return done.code & 0xFF
    sys.stderr.write(f"{done.code}\n")
    return 1


def _child(control: socket.socket, argv: list[str], out_fd: int, err_fd: int, cpu_seconds: float | None) -> None:
    """The forked job: never returns."""
    code = 1
    try:
        control.close()
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if cpu_seconds is not None:
            limit = int(cpu_seconds) + 2  # one second after the host's monitor, as in a cold sandbox
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
        os.chdir(os.environ.get("AUTOW2S_WORKSPACE", "/workspace"))
        _reseed()
        code = _run_in_child(argv)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _other_pids() -> list[int]:
    """Every process of this sandbox's PID namespace except bubblewrap's PID 1 and this worker."""
    me = os.getpid()
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit() and int(entry) not in (1, me)]


def _clean_up() -> None:
    """Between jobs: kill what a job left running, and empty the sandbox's private /tmp and /dev/shm."""
    for _ in range(100):
        left = _other_pids()
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
    for scratch in SCRATCH_DIRS:
        for entry in Path(scratch).iterdir() if Path(scratch).is_dir() else ():
            try:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
            except OSError:
                continue


def _send(control: socket.socket, message: dict[str, object]) -> None:
    control.send(json.dumps(message).encode())


def serve(control: socket.socket) -> None:
    _preload()
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
            _child(control, list(request["argv"]), fds[0], fds[1], request.get("cpu_seconds"))
        for fd in fds:
            os.close(fd)
        _send(control, {"started": pid})
        _, status, usage = os.wait4(pid, 0)
        _clean_up()
        _send(control, {"exit": os.waitstatus_to_exitcode(status), "cpu": usage.ru_utime + usage.ru_stime})


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    control = socket.socket(fileno=int(sys.argv[1]))
    serve(control)


if __name__ == "__main__":
    main()
