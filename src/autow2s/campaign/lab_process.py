"""Start the lab server (`autow2s serve`) as a child process on loopback, dying with its parent."""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from autow2s.errors import AutoW2SError

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL if the campaign process dies, even by kill -9."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def new_admin_token() -> str:
    return "admin-" + secrets.token_urlsafe(32)


@dataclass
class LabProcess:
    data_dir: Path
    state_dir: Path
    admin_token: str
    log_path: Path
    port: int = 0
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, on_wait: Callable[[float], None] | None = None) -> LabProcess:
        """Start `autow2s serve` and wait until it answers; on_wait(seconds waited) is called about once a second
        meanwhile (a lab's first start computes every task's baselines: tens of seconds)."""
        env = dict(os.environ) | {"AUTOW2S_ADMIN_TOKEN": self.admin_token, "PYTHONUNBUFFERED": "1"}
        for _attempt in range(3):
            self.port = free_port()
            args = [sys.executable, "-m", "autow2s", "serve", "--data", str(self.data_dir), "--port", str(self.port),
                    "--state", str(self.state_dir), "--log-level", "warning", *self.extra_args]
            log = self.log_path.open("ab")
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            preexec_fn=_die_with_parent)
            log.close()
            if self._wait_ready(on_wait):
                return self
            self.stop()
        raise AutoW2SError(f"the lab server did not start; see {self.log_path}")

    def _wait_ready(self, on_wait: Callable[[float], None] | None = None) -> bool:
        started = time.monotonic()
        deadline = started + READY_TIMEOUT_S
        told = 0
        while time.monotonic() < deadline:
            if on_wait is not None and time.monotonic() - started >= told + 1:
                told = int(time.monotonic() - started)
                on_wait(time.monotonic() - started)
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
