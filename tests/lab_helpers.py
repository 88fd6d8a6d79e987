"""A real `autow2s serve` on a free loopback port, in a subprocess, for tests that need the lab.

Reusable by other suites (campaign, dashboard):

    data = prepare_tasks(tmp_path / "data", {"mini": 400})
    with start_lab(data, tmp_path / "state") as lab:
        token = lab.create_researcher("ada")
        lab.client(token).post("/api/v1/evaluate", json={...})

The server is stopped (SIGTERM, then SIGKILL) when the block exits, even on failure.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

READY_TIMEOUT_S = 240.0  # a lab computes its tasks' baselines before it answers (code-verify: ~95 s on 2 busy cores)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across xdist workers (each is its own process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_tasks(data_dir: Path, sizes: dict[str, int], *, cache_dir: Path | None = None) -> Path:
    """Small synthetic tasks written by the real `prepare` (name -> number of test items).

    Idempotent: an already prepared task is left as it is, so session fixtures can share it.
    """
    from autow2s.testbed.cache import ArtifactCache
    from autow2s.testbed.prepare import prepare_task
    from autow2s.testbed.tasks.synthetic import SynthConfig, generate

    for offset, (name, n_test) in enumerate(sorted(sizes.items())):
        out = data_dir / name
        if (out / "lab" / "partition.json").is_file() and (out / "public" / "weak" / "model.json").is_file():
            continue
        task = generate(name, SynthConfig(n_train_label=300, n_train_unlabel=1000, n_test=n_test, data_seed=offset))
        prepare_task(task, out, cache=ArtifactCache(cache_dir) if cache_dir else None)
    return data_dir


@dataclass
class LabServer:
    url: str
    port: int
    admin_token: str
    data_dir: Path
    state_dir: Path
    log_path: Path
    args: list[str]
    env: dict[str, str]
    db_url: str = ""  # what the lab was given with --db; empty: its default SQLite file in the state folder
    process: subprocess.Popen[bytes] | None = None
    _clients: list[httpx.Client] = field(default_factory=list)

    # process control
    def launch(self, timeout: float = READY_TIMEOUT_S) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`autow2s serve` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"`autow2s serve` was not ready in {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: no shutdown handlers, no flushing; what was committed is all that survives."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.launch()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    # API helpers
    def client(self, token: str | None = None, timeout: float = 30.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._clients.append(client)
        return client

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def create_researcher(self, name: str, **budget: Any) -> str:
        response = self.admin().post("/api/v1/researchers", json={"name": name, **budget})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def db_rows(self, query: str) -> list[tuple[Any, ...]]:
        """Read the lab's DB directly, whichever database it is (SQL both SQLite and PostgreSQL accept)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.db_url or f"sqlite:///{self.state_dir / 'lab.sqlite'}")
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(query))]
        finally:
            engine.dispose()

    def researcher_id(self, name: str) -> int:
        rows = self.admin().get("/api/v1/researchers").json()
        return next(int(r["id"]) for r in rows if r["name"] == name)


@contextmanager
def start_lab(data_dir: Path, state_dir: Path, *, extra_args: Sequence[str] = (), cache_dir: Path | None = None,
              admin_token: str | None = None, timeout: float = READY_TIMEOUT_S,
              db_url: str | None = None) -> Iterator[LabServer]:
    """Start `autow2s serve` on a free loopback port; yields once /api/v1/health answers.

    db_url: `--db` (tests/pg_helpers.py's lab_db fixture gives a fresh PostgreSQL database); None is
    SQLite in the state folder.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token or "admin-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_")}
    env["AUTOW2S_ADMIN_TOKEN"] = token
    if cache_dir is None and (data_dir / ".cache").is_dir():
        cache_dir = data_dir / ".cache"  # where prepare_tasks(cache_dir=DATA/.cache) put the weak teachers
    if cache_dir is not None:
        env["AUTOW2S_CACHE_DIR"] = str(cache_dir)
    elif os.environ.get("AUTOW2S_CACHE_DIR"):
        env["AUTOW2S_CACHE_DIR"] = os.environ["AUTOW2S_CACHE_DIR"]
    env["PYTHONUNBUFFERED"] = "1"
    def make(port: int) -> LabServer:
        args = [sys.executable, "-m", "autow2s.cli", "serve", "--data", str(data_dir), "--port", str(port),
                "--state", str(state_dir), *(["--db", db_url] if db_url else []), *extra_args]
        return LabServer(url=f"http://127.0.0.1:{port}", port=port, admin_token=token, data_dir=data_dir,
                         state_dir=state_dir, log_path=state_dir / "server.log", args=args, env=env,
                         db_url=db_url or f"sqlite:///{state_dir / 'lab.sqlite'}")

    with serve_on_free_port(make, "the lab", timeout) as server:
        yield server


@contextmanager
def serve_on_free_port(make: Callable[[int], LabServer], what: str,
                       timeout: float = READY_TIMEOUT_S) -> Iterator[LabServer]:
    """Launch make(port) on a free loopback port, retrying a port taken before bind(); stop it after."""
    last_error: Exception | None = None
    for _attempt in range(3):
        server = make(free_port())
        try:
            server.launch(timeout)
        except RuntimeError as exc:
            last_error = exc
            if "address already in use" in str(exc).lower():
                continue
            raise
        try:
            yield server
        finally:
            server.stop()
        return
    raise RuntimeError(f"could not start {what}: {last_error}")


# pytest fixtures (import them into a test module to use them) ------------------------------------

import pytest  # noqa: E402

SMALL_TASKS = {"mini": 400, "wide": 4000}
CACHE_NAME = ".cache"


def _cache_baseline_models(data_dir: Path) -> None:
    """Train, into DATA/.cache, the ceiling students a lab trains for its baselines on its first start."""
    from autow2s.lab.settings import LabSettings
    from autow2s.lab.tasks import compute_baselines, load_lab_task
    from autow2s.testbed.cache import ArtifactCache

    seeds = LabSettings.baseline_seeds
    for name in SMALL_TASKS:
        compute_baselines(*load_lab_task(data_dir / name, seeds), seeds, ArtifactCache(data_dir / CACHE_NAME))


def shared_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The session's temporary folder that every xdist worker shares (each worker's own basetemp is below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if hasattr(request.config, "workerinput") else base


@pytest.fixture(scope="session")
def lab_data(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Two prepared synthetic tasks: `mini` (400 test items) and `wide` (4000, 2000 of them dev).

    Prepared once for all xdist workers (read-only by convention), with the ceiling students every lab's
    baselines need already in their artifact cache, DATA/.cache, which every server started on them shares:
    so each lab only reads its baselines' models back.
    """
    shared = shared_tmp(tmp_path_factory, request)
    root = shared / "lab-data"
    with file_lock(shared / "lab-data.lock"):
        if not (root / ".baselines-cached").is_file():
            prepare_tasks(root, SMALL_TASKS, cache_dir=root / CACHE_NAME)
            _cache_baseline_models(root)
            (root / ".baselines-cached").touch()
    return root


def read_labels(task_dir: Path) -> tuple[list[dict[str, Any]], set[str], set[str]]:
    """The lab view's test rows and its dev and holdout ids (tests compare the lab's numbers with them)."""
    import json

    rows = [json.loads(line) for line in (task_dir / "lab" / "test.jsonl").read_text().splitlines() if line.strip()]
    partition = json.loads((task_dir / "lab" / "partition.json").read_text())
    return rows, set(partition["dev"]), set(partition["holdout"])
