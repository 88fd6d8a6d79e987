"""RayExecutor: the same sandboxed jobs, as Ray tasks that ask for num_cpus and num_gpus.

Ray schedules; each task runs `run_job` on its node, inside bubblewrap. Workspaces, task data and
the log dir must be at the same paths on every node (a shared filesystem), as for any Ray job that
reads files. Ray is imported only when an executor is made, never at `autow2s` import time.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from autow2s.executor.base import Executor, JobError, JobHandle, JobResult, JobSpec, JobStatus
from autow2s.executor.job import run_job
from autow2s.executor.local import new_job_id
from autow2s.sandbox.bwrap import require_sandbox
from autow2s.sandbox.watch import output_tail


def _run_on_worker(spec: JobSpec, job_id: str, log_dir: str, unsafe_no_sandbox: bool) -> JobResult:
    """The body of the Ray task: the GPUs Ray gave this task become the job's CUDA_VISIBLE_DEVICES."""
    import ray

    gpu_ids = tuple(str(g) for g in ray.get_gpu_ids()) if spec.gpus else ()
    return run_job(spec, job_id, Path(log_dir), unsafe_no_sandbox=unsafe_no_sandbox, gpu_ids=gpu_ids)


class RayExecutor(Executor):
    """Jobs as Ray tasks.

    address=None starts a private local Ray (`ray.init(address="local")`, so a cluster that happens
    to run on this machine is never joined by accident); "auto" joins the cluster `ray start` made
    here; anything else is a cluster address (`--ray-address`: 10.0.0.5:6379 or ray://head:10001).
    """

    def __init__(self, log_dir: Path, address: str | None = None, unsafe_no_sandbox: bool = False,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        require_sandbox(unsafe_no_sandbox)
        try:
            import ray
        except ImportError:
            raise JobError("RayExecutor needs Ray: pip install 'autow2s[cluster]'") from None
        self._ray = ray
        self.log_dir = Path(log_dir).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.unsafe_no_sandbox = unsafe_no_sandbox
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            kwargs: dict[str, Any] = {"log_to_driver": False} | dict(init_kwargs or {})
            if address is None:
                kwargs.setdefault("include_dashboard", False)
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address=address or "local", **kwargs)
        self._task = ray.remote(_run_on_worker)
        self._refs: dict[str, Any] = {}
        self._cancelled: set[str] = set()
        self._results: dict[str, JobResult] = {}

    def submit(self, spec: JobSpec) -> JobHandle:
        handle = JobHandle(job_id=new_job_id(spec.name), name=spec.name)
        options = {"num_cpus": spec.cpus, "num_gpus": spec.gpus, "max_retries": 0, "retry_exceptions": False,
                   "name": handle.job_id}
        self._refs[handle.job_id] = self._task.options(**options).remote(
            spec, handle.job_id, str(self.log_dir), self.unsafe_no_sandbox)
        return handle

    def _ref(self, handle: JobHandle) -> Any:
        try:
            return self._refs[handle.job_id]
        except KeyError:
            raise JobError(f"no job {handle.job_id!r} in this executor; handles belong to the executor that made them") from None

    def status(self, handle: JobHandle) -> JobStatus:
        """Ray does not tell a queued task from a running one here: both read RUNNING."""
        ready, _ = self._ray.wait([self._ref(handle)], timeout=0)
        if not ready:
            return JobStatus.RUNNING
        return self.result(handle).status

    def _failed(self, handle: JobHandle, status: JobStatus, error: str) -> JobResult:
        job_dir = self.log_dir / handle.job_id
        return JobResult(job_id=handle.job_id, status=status, exit_code=None, error=error,
                         stdout_path=job_dir / "stdout.log", stderr_path=job_dir / "stderr.log",
                         stdout_tail=output_tail(job_dir / "stdout.log"), stderr_tail=output_tail(job_dir / "stderr.log"))

    def result(self, handle: JobHandle, timeout: float | None = None) -> JobResult:
        if handle.job_id in self._results:
            return self._results[handle.job_id]
        ray = self._ray
        try:
            result: JobResult = ray.get(self._ref(handle), timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            raise TimeoutError(f"job {handle.job_id} is still running after {timeout} s") from None
        except ray.exceptions.TaskCancelledError:
            result = self._failed(handle, JobStatus.CANCELLED, "cancelled")
        except ray.exceptions.RayError as exc:  # the worker or its node died: the job failed, it is not lost
            if handle.job_id in self._cancelled:
                result = self._failed(handle, JobStatus.CANCELLED, "cancelled")
            else:
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                result = self._failed(handle, JobStatus.FAILED,
                                      f"the Ray worker running the job died ({type(exc).__name__}): {first_line}")
        if handle.job_id in self._cancelled and result.status is JobStatus.FAILED:
            # Ray may kill the job's processes before its worker, so the task can still return: a
            # job that failed because we cancelled it was cancelled.
            result = dataclasses.replace(result, status=JobStatus.CANCELLED, error="cancelled")
        self._results[handle.job_id] = result
        return result

    def cancel(self, handle: JobHandle) -> None:
        """Kill the task's worker; bubblewrap's die-with-parent takes the job down with it."""
        ref = self._ref(handle)
        self._cancelled.add(handle.job_id)
        try:
            self._ray.cancel(ref, force=True)
        except Exception:  # already finished: nothing to cancel
            pass

    def shutdown(self) -> None:
        for job_id, ref in list(self._refs.items()):
            ready, _ = self._ray.wait([ref], timeout=0)
            if not ready:
                self.cancel(JobHandle(job_id))
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
