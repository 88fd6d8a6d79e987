"""LocalExecutor: sandboxed jobs on this machine, started only when their CPUs and GPUs are free.

Parallel researchers share one executor, so the machine is never oversubscribed: a job waits in
line (first come, first served) until the slots it asked for are free.
"""

from __future__ import annotations

import glob
import os
import re
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from autow2s.executor.base import Executor, JobError, JobHandle, JobResult, JobSpec, JobStatus
from autow2s.executor.job import run_job
from autow2s.sandbox.bwrap import require_sandbox
from autow2s.sandbox.warm import WarmPool


def count_gpus() -> int:
    """NVIDIA GPUs visible on this machine, from their device nodes (no CUDA import)."""
    return len(glob.glob("/dev/nvidia[0-9]*"))


def new_job_id(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "job"
    return f"{slug}-{uuid.uuid4().hex[:10]}"


@dataclass
class _LocalJob:
    spec: JobSpec
    status: JobStatus = JobStatus.QUEUED
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: JobResult | None = None
    gpu_ids: tuple[str, ...] = ()
    thread: threading.Thread | None = None


class LocalExecutor(Executor):
    """A pool of sandboxed processes with CPU and GPU slot accounting; logs go under log_dir.

    Jobs with `warm=True` run in a warm sandbox per workspace (see autow2s.sandbox.warm), which
    this executor keeps until it is idle for a while or the executor shuts down.
    """

    def __init__(self, log_dir: Path, cpus: int | None = None, gpus: int | None = None,
                 unsafe_no_sandbox: bool = False) -> None:
        require_sandbox(unsafe_no_sandbox)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.total_cpus = cpus if cpus is not None else (os.cpu_count() or 1)
        self.total_gpus = gpus if gpus is not None else count_gpus()
        self.unsafe_no_sandbox = unsafe_no_sandbox
        self._free_cpus = self.total_cpus
        self._free_gpus: list[str] = [str(i) for i in range(self.total_gpus)]
        self._lock = threading.Lock()
        self._queue: deque[str] = deque()
        self._jobs: dict[str, _LocalJob] = {}
        self._closed = False
        self.warm_pool = WarmPool(self.log_dir / "warm")

    def submit(self, spec: JobSpec) -> JobHandle:
        if spec.cpus > self.total_cpus:
            raise JobError(f"job {spec.name!r} asks for {spec.cpus} CPUs but this executor has {self.total_cpus}; "
                           "ask for fewer or start the executor with more")
        if spec.gpus > self.total_gpus:
            raise JobError(f"job {spec.name!r} asks for {spec.gpus} GPUs but this executor has {self.total_gpus}; "
                           "ask for fewer, or run where GPUs are (RayExecutor on a GPU cluster)")
        handle = JobHandle(job_id=new_job_id(spec.name), name=spec.name)
        with self._lock:
            if self._closed:
                raise JobError("this executor has been shut down; create a new one")
            self._jobs[handle.job_id] = _LocalJob(spec=spec)
            self._queue.append(handle.job_id)
            self._dispatch()
        return handle

    def _dispatch(self) -> None:
        """Start queued jobs in order while the one at the head fits (call with the lock held)."""
        while self._queue:
            job_id = self._queue[0]
            job = self._jobs[job_id]
            if job.spec.cpus > self._free_cpus or job.spec.gpus > len(self._free_gpus):
                return
            self._queue.popleft()
            self._free_cpus -= job.spec.cpus
            job.gpu_ids = tuple(self._free_gpus[:job.spec.gpus])
            del self._free_gpus[:job.spec.gpus]
            job.status = JobStatus.RUNNING
            # The thread that starts a job waits for it: bwrap's die-with-parent follows that thread.
            job.thread = threading.Thread(target=self._run, args=(job_id, job), name=f"job-{job_id}", daemon=True)
            job.thread.start()

    def _run(self, job_id: str, job: _LocalJob) -> None:
        try:
            result = run_job(job.spec, job_id, self.log_dir, unsafe_no_sandbox=self.unsafe_no_sandbox,
                             gpu_ids=job.gpu_ids, cancel=job.cancel, warm_pool=self.warm_pool)
        except BaseException as exc:  # never lose a job: whatever happened, it ends with a result
            result = JobResult(job_id=job_id, status=JobStatus.FAILED, exit_code=None,
                               error=f"the executor failed to run the job: {type(exc).__name__}: {exc}")
        with self._lock:
            job.result, job.status = result, result.status
            self._free_cpus += job.spec.cpus
            self._free_gpus.extend(job.gpu_ids)
            job.done.set()
            self._dispatch()

    def _job(self, handle: JobHandle) -> _LocalJob:
        try:
            return self._jobs[handle.job_id]
        except KeyError:
            raise JobError(f"no job {handle.job_id!r} in this executor; handles belong to the executor that made them") from None

    def status(self, handle: JobHandle) -> JobStatus:
        return self._job(handle).status

    def result(self, handle: JobHandle, timeout: float | None = None) -> JobResult:
        job = self._job(handle)
        if not job.done.wait(timeout):
            raise TimeoutError(f"job {handle.job_id} is still {job.status.value} after {timeout} s")
        assert job.result is not None
        return job.result

    def cancel(self, handle: JobHandle) -> None:
        job = self._job(handle)
        with self._lock:
            if job.status is JobStatus.QUEUED:
                self._queue.remove(handle.job_id)
                job.result = JobResult(job_id=handle.job_id, status=JobStatus.CANCELLED, exit_code=None,
                                       error="cancelled before it started")
                job.status = JobStatus.CANCELLED
                job.done.set()
                return
        job.cancel.set()  # the sandbox kills it within one monitor tick

    def running_slots(self) -> tuple[int, int]:
        """(CPUs, GPUs) in use now."""
        with self._lock:
            return self.total_cpus - self._free_cpus, self.total_gpus - len(self._free_gpus)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            handles = [JobHandle(job_id) for job_id, job in self._jobs.items() if not job.status.finished]
        for handle in handles:
            self.cancel(handle)
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout=30)
        self.warm_pool.close()
