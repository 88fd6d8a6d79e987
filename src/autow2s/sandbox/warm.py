"""Warm sandboxes: one long-lived bubblewrap sandbox per researcher whose worker has torch and
autow2s imported already, and forks a fresh child for each job.

A cold job pays a new interpreter and a torch import (about 1.4 s) before it does anything; a warm
job pays a fork. Isolation from the host is the same bubblewrap sandbox as a cold job's: same
mounts, no network, no secrets, same rlimits. The host still watches every job and enforces every
limit itself, kills whatever a job leaves running when it ends, and the worker empties /tmp between
jobs. What a warm sandbox shares between jobs is only that one researcher's own state.

Jobs that need a GPU, and every job in --unsafe-no-sandbox mode, run cold.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.sandbox.bwrap import build_plan, masked_hidden, require_sandbox, running_as_root, with_data_fds
from autow2s.sandbox.cgroup import MemoryCgroup, for_limit
from autow2s.sandbox.config import SandboxConfig
from autow2s.sandbox.limits import Limits
from autow2s.sandbox.monitor import TreeSample, descendants, directory_bytes, kill_all, reaper_pids, sample_tree
from autow2s.sandbox.watch import (
    OutputBudget,
    Pump,
    SandboxResult,
    Sink,
    finish_result,
    give_workspace_to,
    start_pumps,
    watch_job,
    with_cgroup_memory,
)
from autow2s.testbed.job_clock import deadline_env

START_TIMEOUT_SECONDS = 180.0  # the worker imports torch once; a loaded machine can take a while
EXIT_REPORT_TIMEOUT_SECONDS = 10.0
IDLE_SECONDS = 300.0  # an idle warm sandbox is closed after this long
MAX_JOBS_PER_SANDBOX = 500  # then it is replaced by a fresh one
MAX_MESSAGE = 1 << 16
WORKER_LOG_BYTES = 1 << 20  # what the worker itself may write to its log (its jobs' output goes elsewhere)


class WarmSandboxError(AutoW2SError):
    """A warm sandbox could not start or has died; the job can still run in a cold one."""


def _host_pid(root_pid: int, namespace_pid: int) -> int | None:
    """The host pid of the process that is `namespace_pid` inside the sandbox below root_pid."""
    for pid in descendants(root_pid):
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("NSpid:"):
                        if int(line.split()[-1]) == namespace_pid:
                            return pid
                        break
        except (OSError, ValueError):
            continue
    return None


def config_key(config: SandboxConfig, *, identities: bool = True) -> str:
    """Two jobs may share a warm sandbox only when their whole sandbox config is the same.

    A sandbox binds and masks what existed when it started: a workspace, task data or hidden path under
    something it binds that was replaced (or appeared) since then makes another sandbox. identities=False gives the config's
    family: the same paths whatever they hold now. A sandbox whose family matches a new one's but whose
    key does not can never be used again (the files it masked were replaced for good)."""
    def identity(path: str | Path) -> tuple[str, int, int] | str:
        return _identity(Path(path)) if identities else str(Path(path).resolve())

    try:
        masked = masked_hidden(config) if identities else set()
    except OSError:  # a bind source could not be read: count every hidden path with what it holds, as masked
        masked = {Path(path).resolve() for path in config.hidden}
    fields = {name: getattr(config, name) for name in config.__dataclass_fields__}
    fields["env"] = sorted(dict(config.env).items())
    # Each job brings its own wall limit (WarmSandbox.run): a researcher's limit shrinks to the campaign's time
    # left with every job, and keying on it started a new sandbox for every job near the end of a campaign.
    fields["limits"] = sorted((name, value) for name, value in asdict(config.limits).items() if name != "wall_seconds")
    fields["workspace"] = identity(config.workspace)
    fields["task_data"] = identity(config.task_data) if config.task_data is not None else None
    # Only a hidden path the sandbox covers counts with what it holds now: one outside everything it binds (a
    # campaign's state.json, rewritten by rename every second) is never in its view, whatever it holds.
    fields["hidden"] = tuple(identity(path) if Path(path).resolve() in masked else str(Path(path).resolve())
                             for path in config.hidden)
    fields["ro_mounts"] = tuple((identity(source), dest) for source, dest in config.ro_mounts)
    return repr(sorted(fields.items()))


def _identity(path: Path) -> tuple[str, int, int]:
    resolved = path.resolve()
    try:
        info = resolved.stat()
    except OSError:
        return str(resolved), -1, -1
    return str(resolved), info.st_dev, info.st_ino


class WarmSandbox:
    """One sandbox running the warm worker (autow2s.sandbox.zygote); one job at a time."""

    def __init__(self, config: SandboxConfig, log_path: Path) -> None:
        if config.unsafe_no_sandbox or config.gpu:
            raise WarmSandboxError("warm sandboxes are for CPU jobs inside bubblewrap")
        require_sandbox()
        self.config = config
        self.key = config_key(config)
        self.family = config_key(config, identities=False)
        self.log_path = log_path
        self.jobs_run = 0
        self.last_used = time.monotonic()
        self.busy = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._lifeline_write: int | None = None
        self._helpers: frozenset[int] = frozenset()
        self._worker_pid: int | None = None
        self._spawned = threading.Event()
        self._spawn_error: BaseException | None = None
        self._log_pump: Pump | None = None
        self._memory: MemoryCgroup | None = None
        self._close_lock = threading.Lock()
        # bwrap's die-with-parent follows the thread that started it: this one lives as long as the sandbox.
        self._keeper = threading.Thread(target=self._keep, name="warm-sandbox", daemon=True)
        self._keeper.start()
        self._spawned.wait()
        if self._spawn_error is not None:
            raise WarmSandboxError(f"could not start a warm sandbox: {self._spawn_error}") from self._spawn_error
        try:
            self._await_ready()
        except BaseException:
            self.close()
            raise

    # -- life cycle ------------------------------------------------------------------------
    def _keep(self) -> None:
        try:
            self._spawn()
        except BaseException as exc:
            self._spawn_error = exc
            return
        finally:
            self._spawned.set()
        assert self._proc is not None
        self._proc.wait()

    def _spawn(self) -> None:
        limits = self.config.limits
        # The worker itself counts against RLIMIT_NPROC; RLIMIT_CPU is set per job, in the job's child.
        launch = replace(self.config, limits=replace(
            limits, cpu_seconds=None,
            max_processes=limits.max_processes + 1 if limits.max_processes is not None else None))
        host_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lifeline_read, lifeline_write = os.pipe()
        fds = [lifeline_read, worker_end.fileno()]
        try:
            if running_as_root():
                give_workspace_to(Path(self.config.workspace).resolve(), self.config.job_uid())
            plan = build_plan(launch, [sys.executable, "-P", "-m", "autow2s.sandbox.zygote", str(worker_end.fileno())],
                              lifeline_read)
            argv, data_fds = with_data_fds(plan)
            fds += data_fds
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._memory = for_limit(limits.memory_bytes)
            if self._memory is not None:
                argv = self._memory.wrap(argv)
            # env={}: bwrap passes its own environment on; the job's comes only from --setenv. The
            # worker's output goes through a pipe, capped, never as a host file it could write to.
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, env={}, pass_fds=fds, start_new_session=True)
            assert self._proc.stdout is not None
            self._log_pump = Pump(os.dup(self._proc.stdout.fileno()), self._append_log, OutputBudget(WORKER_LOG_BYTES))
            self._proc.stdout.close()
            self._log_pump.start()
        except BaseException:
            os.close(lifeline_write)
            host_end.close()
            if self._memory is not None:
                self._memory.remove()
            raise
        finally:
            for fd in fds:
                if fd != worker_end.fileno():
                    os.close(fd)
            worker_end.close()
        self._control, self._lifeline_write = host_end, lifeline_write

    def _await_ready(self) -> None:
        message = self._receive(START_TIMEOUT_SECONDS)
        if message is None or "ready" not in message:
            raise WarmSandboxError(f"the warm sandbox's worker did not start ({self._log_tail()})")
        assert self._proc is not None
        self._helpers = reaper_pids(self._proc.pid)
        self._worker_pid = _host_pid(self._proc.pid, int(str(message["ready"])))
        if self._worker_pid is None:
            raise WarmSandboxError("cannot find the warm sandbox's worker among its processes")

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._control is not None

    def close(self) -> None:
        """End the sandbox: closing the socket ends the worker; kill in case it does not."""
        with self._close_lock:
            if self._control is not None:
                self._control.close()
                self._control = None
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self._kill_all()
                    self._proc.wait()
            if self._lifeline_write is not None:
                os.close(self._lifeline_write)
                self._lifeline_write = None
        if self._log_pump is not None:
            self._log_pump.join(timeout=5)
        self._keeper.join(timeout=5)
        if self._memory is not None and (self._proc is None or self._proc.poll() is not None):
            self._memory.remove()

    def _kill_all(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            return  # the sandbox is gone, its namespace with it; its pid may be someone else's now
        kill_all([*descendants(self._proc.pid), self._proc.pid])

    def _append_log(self, data: bytes) -> None:
        with open(self.log_path, "ab") as log:
            log.write(data)

    def _log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip()
        except OSError:
            return "no log"
        return f"log {self.log_path}: {text[-600:]}" if text else "its log is empty"

    # -- messages --------------------------------------------------------------------------
    def _receive(self, timeout: float) -> dict[str, object] | None:
        """The worker's next message, or None when none came in time or the worker is gone."""
        control = self._control
        if control is None:
            return None
        try:
            ready, _, _ = select.select([control], [], [], timeout)
            if not ready:
                return None
            data = control.recv(MAX_MESSAGE)
        except (OSError, ValueError):  # closed under us (the sandbox is being closed)
            return None
        if not data:  # the worker ended
            control.close()
            self._control = None
            return None
        try:
            message = json.loads(data)
        except ValueError:
            raise WarmSandboxError("the warm sandbox's worker sent a malformed message") from None
        if not isinstance(message, dict):
            raise WarmSandboxError("the warm sandbox's worker sent a malformed message")
        return message

    # -- jobs ------------------------------------------------------------------------------
    def _job_pids(self) -> list[int]:
        assert self._proc is not None
        skip = self._helpers | {self._worker_pid}
        return [pid for pid in descendants(self._proc.pid) if pid not in skip]

    def _kill_job(self) -> None:
        """Kill every process of the sandbox but bubblewrap's and the worker: that is the job."""
        assert self._proc is not None
        for _ in range(50):
            if self._proc.poll() is not None:
                return  # the sandbox ended, and every process in it
            pids = self._job_pids()
            if not pids:
                return
            kill_all(pids)
            time.sleep(0.001)

    def run(self, command: list[str] | tuple[str, ...], *, stdout: Sink | None = None, stderr: Sink | None = None,
            cancel: threading.Event | None = None, wall_seconds: float | None = None) -> SandboxResult:
        """Run one job in this sandbox and report how it ended, as `run_sandboxed` does.

        wall_seconds: this job's wall limit (default: the sandbox config's); the other limits are the sandbox's.
        WarmSandboxError: the job could not be started here (it can run cold instead). Any other
        failure kills the job and closes this sandbox before it propagates.
        """
        if not self.alive:
            raise WarmSandboxError("this warm sandbox has ended")
        assert self._proc is not None and self._control is not None
        config, limits = self.config, self.config.limits
        if wall_seconds is not None:
            limits = replace(limits, wall_seconds=wall_seconds)
        expanded = config.expand(list(command))
        workspace = Path(config.workspace).resolve()
        if running_as_root():
            give_workspace_to(workspace, config.job_uid())
        disk_base = directory_bytes(workspace) if limits.disk_bytes is not None else 0
        budget = OutputBudget(limits.output_bytes)
        pumps: list[Pump] = []
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            try:
                pumps = start_pumps(out_read, err_read, stdout, stderr, budget)
                request = json.dumps({"argv": expanded, "cpu_seconds": limits.cpu_seconds,
                                      "env": deadline_env(limits.wall_seconds)}).encode()
                socket.send_fds(self._control, [request], [out_write, err_write])
            finally:
                for fd in (out_read, out_write, err_read, err_write):
                    os.close(fd)
            start = time.monotonic()
            self.jobs_run += 1
            # Wait until the job's process exists, so that a kill from here on cannot miss it.
            started = self._receive(EXIT_REPORT_TIMEOUT_SECONDS)
            if started is None or "started" not in started:
                raise WarmSandboxError(f"the warm sandbox's worker did not start the job ({self._log_tail()})")
        except (OSError, WarmSandboxError) as exc:
            self._abandon(pumps)
            if isinstance(exc, WarmSandboxError):
                raise
            raise WarmSandboxError(f"cannot reach the worker: {exc}") from exc
        try:
            return self._supervise(limits, expanded, workspace, disk_base, budget, pumps, start, cancel, stderr)
        except BaseException:
            self._abandon(pumps)
            raise

    def _abandon(self, pumps: list[Pump]) -> None:
        """Something went wrong around a job: kill it, close the sandbox, collect the output."""
        try:
            if self._proc is not None:
                self._kill_job()
        finally:
            self.close()
            for pump in pumps:
                pump.join(timeout=10)

    def _supervise(self, limits: Limits, expanded: list[str], workspace: Path, disk_base: int, budget: OutputBudget,
                   pumps: list[Pump], start: float, cancel: threading.Event | None, stderr: Sink | None) -> SandboxResult:
        assert self._proc is not None
        root = self._proc.pid
        helpers, ignored = self._helpers, frozenset({self._worker_pid}) if self._worker_pid else frozenset()
        cpu_base = sample_tree(root, helpers, None, ignored).cpu_seconds
        memory = self._memory
        held_base = memory.held_bytes() if memory is not None else 0  # the idle worker's own
        oom_base = memory.oom_kills() if memory is not None else 0
        exit_report: list[dict[str, object]] = []

        def sample() -> TreeSample:
            now = sample_tree(root, helpers, limits.memory_bytes, ignored)
            now = with_cgroup_memory(now, memory, held_base)
            return replace(now, cpu_seconds=max(0.0, now.cpu_seconds - cpu_base))

        def ended() -> bool:
            while not exit_report:
                message = self._receive(0)
                if message is None:
                    return not self.alive
                if "exit" in message:
                    exit_report.append(message)
            return True

        def wait(seconds: float) -> None:
            control = self._control
            try:
                if control is not None:
                    select.select([control], [], [], seconds)
            except (OSError, ValueError):  # closed under us: ended() will say so
                pass

        try:
            watch = watch_job(limits, start, sample, ended, wait, budget, workspace, disk_base, cancel)
        finally:
            self._kill_job()  # nothing of a job outlives it, whatever it or the worker says
        deadline = time.monotonic() + EXIT_REPORT_TIMEOUT_SECONDS
        while not exit_report and self.alive and time.monotonic() < deadline:
            message = self._receive(max(0.0, deadline - time.monotonic()))
            if message is not None and "exit" in message:
                exit_report.append(message)
        if not exit_report:  # the worker died or hung: this sandbox is done for
            if stderr is not None:
                stderr(b"autow2s: the warm sandbox's worker ended during this job; the next job gets a new one\n")
            self.close()
        elif exit_report[0].get("left"):  # the worker could not clean up after the job: start afresh
            self.close()
        for pump in pumps:
            pump.join(timeout=10)
        self.last_used = time.monotonic()
        returncode = int(str(exit_report[0]["exit"])) if exit_report else -signal.SIGKILL
        cpu = float(str(exit_report[0].get("cpu", 0.0))) if exit_report else 0.0
        oom = memory is not None and memory.oom_kills() > oom_base
        return finish_result(limits, expanded, returncode, watch, budget, pumps, start, cpu, sandboxed=True,
                             oom_killed=oom)


class WarmPool:
    """Warm sandboxes keyed by their config: a researcher's jobs reuse that researcher's sandbox."""

    def __init__(self, log_dir: Path, idle_seconds: float = IDLE_SECONDS,
                 max_jobs: int = MAX_JOBS_PER_SANDBOX) -> None:
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be positive, got {idle_seconds}")
        self.log_dir = Path(log_dir)
        self.idle_seconds = idle_seconds
        self.max_jobs = max_jobs
        self._lock = threading.Lock()
        self._sandboxes: list[WarmSandbox] = []
        self._closed = False
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None
        self.started = 0

    def _sweep(self) -> None:
        """Close idle sandboxes even when no job comes along (each holds a few hundred MiB)."""
        while not self._stop.wait(min(30.0, self.idle_seconds / 2)):
            try:
                self._close_stale()
            except Exception:  # a sandbox that fails to close must not stop the sweeping
                continue

    def _checkout(self, config: SandboxConfig) -> WarmSandbox:
        key, family = config_key(config), config_key(config, identities=False)
        self._close_stale()
        with self._lock:
            if self._closed:
                raise WarmSandboxError("this pool of warm sandboxes has been closed")
            found = next((box for box in self._sandboxes if box.key == key and not box.busy and box.alive), None)
            if found is not None:
                found.busy = True
                return found
            # Idle sandboxes of this config whose masked files were replaced since (a campaign rewrites its
            # state.json by rename many times a minute) would wait out idle_seconds holding a few hundred MiB
            # each: a 15-minute campaign piled up a hundred of them and the machine ran out of memory.
            superseded = [box for box in self._sandboxes if box.family == family and box.key != key and not box.busy]
            for box in superseded:
                self._sandboxes.remove(box)
            self.started += 1
            number = self.started
        for box in superseded:
            box.close()
        sandbox = WarmSandbox(config, self.log_dir / f"warm-sandbox-{number}.log")
        sandbox.busy = True
        with self._lock:
            if not self._closed:
                self._sandboxes.append(sandbox)
                if self._janitor is None:
                    self._janitor = threading.Thread(target=self._sweep, name="warm-pool-janitor", daemon=True)
                    self._janitor.start()
                return sandbox
        sandbox.close()  # the pool closed while this one started
        raise WarmSandboxError("this pool of warm sandboxes has been closed")

    def _close_stale(self) -> None:
        """Close sandboxes that died, idled too long or ran their share of jobs (outside the lock:
        closing one can take seconds)."""
        now = time.monotonic()
        with self._lock:
            stale = [box for box in self._sandboxes if not box.busy and (
                not box.alive or now - box.last_used > self.idle_seconds or box.jobs_run >= self.max_jobs)]
            for box in stale:
                self._sandboxes.remove(box)
        for box in stale:
            box.close()

    def run(self, config: SandboxConfig, command: list[str] | tuple[str, ...], *, stdout: Sink | None = None,
            stderr: Sink | None = None, cancel: threading.Event | None = None) -> SandboxResult:
        sandbox = self._checkout(config)
        try:
            return sandbox.run(command, stdout=stdout, stderr=stderr, cancel=cancel,
                               wall_seconds=config.limits.wall_seconds)
        finally:
            with self._lock:
                sandbox.busy = False
            self._close_stale()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sandboxes, self._sandboxes = self._sandboxes, []
        self._stop.set()
        for sandbox in sandboxes:
            sandbox.close()
        if self._janitor is not None:
            self._janitor.join(timeout=10)

    def __enter__(self) -> WarmPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
