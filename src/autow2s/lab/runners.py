"""How a verified or transfer run executes a snapshot: in process (trusted code only) or in a sandboxed job.

The runner is behind a one-method interface (`run(snapshot_dir, view, seeds) -> predictions per seed`), so
the sandboxed executor replaces the in-process one without touching the verify service (lab/verify.py).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from autow2s.safefs import SafeTree, remove_job_tree

if TYPE_CHECKING:
    from autow2s.executor import Executor

PREDICTIONS_MAX_BYTES = 50_000_000  # one seed's predictions file, as a verify job writes it


class VerifyRunner(Protocol):
    def run(self, snapshot_dir: Path, public_dir: Path, seeds: Sequence[int]) -> list[np.ndarray]:
        """P(label = 1) on every test item, one array per seed. Sees only the public view."""
        ...


class InProcessRunner:
    """Runs the method in the server process: for trusted code only (tests of the scoring itself)."""

    def run(self, snapshot_dir: Path, public_dir: Path, seeds: Sequence[int]) -> list[np.ndarray]:
        from autow2s.testbed.methods.registry import load_method
        from autow2s.testbed.public_run import predict_public

        method = load_method(str(snapshot_dir))
        return [predict_public(public_dir, method, seed)[1] for seed in seeds]


class SandboxedRunner:
    """Each verified run is one sandboxed `autow2s predict` job, all seeds in it, through an executor.

    A snapshot's code never runs in the server. The job sees the snapshot (its workspace) and the
    public task view; the lab's data and state directories are masked even where they lie under
    something the sandbox binds. The executor decides where the job runs: LocalExecutor on the lab's
    host, RayExecutor on a cluster (`serve --executor ray`; then job_dir must be on storage every node
    mounts at the same path).
    """

    def __init__(self, hidden: Sequence[Path], *, limits: Any = None, unsafe_no_sandbox: bool = False,
                 executor: Callable[[Path], Executor] | None = None, job_dir: Path | None = None) -> None:
        from autow2s.sandbox.limits import VERIFY_JOB_LIMITS

        self.hidden = tuple(Path(p) for p in hidden)
        self.limits = limits or VERIFY_JOB_LIMITS
        self.unsafe_no_sandbox = unsafe_no_sandbox
        self._make_executor = executor or self._local_executor
        self._executor: Executor | None = None
        self._executor_lock = threading.Lock()
        self.job_dir = Path(job_dir) if job_dir is not None else None
        self._temporary_job_dir = job_dir is None

    def _local_executor(self, log_dir: Path) -> Executor:
        from autow2s.executor import LocalExecutor

        return LocalExecutor(log_dir, unsafe_no_sandbox=self.unsafe_no_sandbox)

    def executor(self) -> Executor:
        """Made on first use, so a process that only prepares the lab (serve --workers N) never starts Ray."""
        with self._executor_lock:
            if self._executor is None:
                if self.job_dir is None:
                    self.job_dir = Path(tempfile.mkdtemp(prefix="autow2s-verify-jobs-"))
                self.job_dir.mkdir(parents=True, exist_ok=True)
                os.chmod(self.job_dir, 0o755)  # jobs run as their own uid and must reach their task view
                self._executor = self._make_executor(self.job_dir / "logs")
            return self._executor

    def shutdown(self) -> None:
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown()
                self._executor = None
            if self._temporary_job_dir and self.job_dir is not None:
                remove_job_tree(self.job_dir)  # jobs wrote in it: no link followed, no chmod by path
                self.job_dir = None

    def run(self, snapshot_dir: Path, public_dir: Path, seeds: Sequence[int]) -> list[np.ndarray]:
        """All seeds in one job (torch starts once), its wall limit scaled by the number of seeds."""
        import shutil
        from dataclasses import replace

        from autow2s.executor import JobSpec

        executor = self.executor()
        assert self.job_dir is not None
        # Not tempfile.TemporaryDirectory: its clean-up chmods by path and follows links a job planted
        # (CVE-2023-6597); the job's folder is removed through autow2s.safefs instead.
        workspace = Path(tempfile.mkdtemp(prefix="job-", dir=self.job_dir))
        view_tmp = tempfile.mkdtemp(prefix="view-", dir=self.job_dir)
        try:
            shutil.copytree(snapshot_dir, workspace / "method", symlinks=False)
            task_data = neutral_copy(public_dir, Path(view_tmp))
            argv = ("autow2s", "predict", "--public", "{task_data}", "--method", "{workspace}/method",
                    *[arg for seed in seeds for arg in ("--seed", str(seed))],
                    "--out", "{workspace}/predictions-{seed}.json")
            spec = JobSpec(command=argv, workspace=workspace, task_data=task_data, hidden=self.hidden,
                           limits=replace(self.limits, wall_seconds=self.limits.wall_seconds * len(seeds)),
                           name="verify")
            result = executor.result(executor.submit(spec))
            if not result.ok:
                tail = result.stderr_tail.strip().splitlines()[-3:]
                reason = result.error or f"exit code {result.exit_code}"
                raise RuntimeError(f"seeds {', '.join(map(str, seeds))}: {reason}: {' | '.join(tail)}"[:1000])
            written = SafeTree(workspace)  # the job wrote it: a planted link or FIFO is refused, not followed
            predictions = [np.asarray(json.loads(written.read_bytes(f"predictions-{seed}.json", PREDICTIONS_MAX_BYTES))
                                      ["predictions"], dtype=np.float64) for seed in seeds]
        finally:
            remove_job_tree(workspace)
            remove_job_tree(view_tmp)
        return predictions


def neutral_copy(view: Path, parent: Path) -> Path:
    """A fresh copy of a task view at PARENT/task: the real and the null views then look alike from inside
    (mount source in /proc/self/mountinfo, inode, mtime), so a method cannot tell which one it was given."""
    import os
    import shutil

    os.chmod(parent, 0o755)  # the job runs as its own uid and must traverse to the view
    target = parent / "task"
    shutil.copytree(view, target, symlinks=False, copy_function=shutil.copyfile)
    for path in [target, *target.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    return target


def yield_cpu_to_research() -> None:
    """Give the calling thread the verify jobs' niceness (`VERIFY_JOB_LIMITS.nice`), never a better one.

    Linux keeps a nice value per thread. The lab's own verification work (each verified run's fresh
    supervisors, the paired vanilla reference) runs in process; niced, it yields to the lab's event loop and
    writer. Against researchers' sandboxes it does not: with autogroup scheduling a thread's nice only ranks it
    inside the lab's own group (benchmarks/README.md measured no clear difference there).
    """
    from autow2s.sandbox.limits import VERIFY_JOB_LIMITS

    thread = threading.get_native_id()
    try:
        now = os.getpriority(os.PRIO_PROCESS, thread)
        if now < VERIFY_JOB_LIMITS.nice:
            os.setpriority(os.PRIO_PROCESS, thread, VERIFY_JOB_LIMITS.nice)
    except OSError:  # a platform without per-thread priorities: the work still runs, at the lab's priority
        pass


def vanilla_alongside(view: Path, seeds: Sequence[int]) -> Future[list[np.ndarray]]:
    """vanilla_predictions started in a thread of its own, to run while the snapshot's sandboxed jobs run
    (they mostly wait on a subprocess): the paired reference then adds little to a run's wall time. The
    caller waits for it (`.result()`) before the view's folder goes away, also when the job fails."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vanilla-reference", initializer=yield_cpu_to_research)
    try:
        return pool.submit(vanilla_predictions, view, seeds)
    finally:
        pool.shutdown(wait=False)  # the submitted call still runs; the thread ends with it


def vanilla_predictions(view: Path, seeds: Sequence[int]) -> list[np.ndarray]:
    """Vanilla (the library's own, trusted code: run in process) on a run's view and seeds: the reference a
    verified method is compared with, on the very supervisor, seeds and items it had (lab/compare.py)."""
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.public_run import predict_public

    vanilla = load_method("vanilla")
    return [predict_public(view, vanilla, seed)[1] for seed in seeds]
