"""Where sandboxed jobs are queued and run: one interface, a local pool and a Ray cluster behind it.

`RayExecutor` is loaded on first use, so importing this package never imports Ray.
"""

from typing import Any

from autow2s.executor.base import Executor, JobError, JobHandle, JobResult, JobSpec, JobStatus
from autow2s.executor.local import LocalExecutor

__all__ = ["Executor", "JobError", "JobHandle", "JobResult", "JobSpec", "JobStatus", "LocalExecutor", "RayExecutor"]


def __getattr__(name: str) -> Any:
    if name == "RayExecutor":
        from autow2s.executor.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(name)
