"""Run one job to its end: sandbox, log files, the files it wrote, and a JobResult.

Both executors call `run_job`, the local one in a thread and the Ray one inside a Ray task.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from autow2s.executor.base import JobResult, JobSpec, JobStatus
from autow2s.rundir.layout import JOB_REPORT_FILE
from autow2s.safefs import SafeTree
from autow2s.sandbox.config import SandboxConfig
from autow2s.sandbox.runner import run_sandboxed
from autow2s.sandbox.warm import WarmPool, WarmSandboxError
from autow2s.sandbox.watch import SandboxResult, Sink, output_tail

MAX_LISTED_OUTPUTS = 100_000


def _snapshot(workspace: Path) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of every regular file in the workspace, outside dot-directories (caches).

    Walked through autow2s.safefs: symlinks are neither listed nor followed (a job could point
    "preds.json" at a host file for the lab to read, or swap a folder for a link mid-walk), and
    whoever reads an output file reads it through safefs too.
    """
    entries = SafeTree(workspace).files(skip_dir=lambda name: name.startswith("."), max_entries=MAX_LISTED_OUTPUTS)
    return {str(workspace / entry.path): (entry.info.st_mtime_ns, entry.info.st_size) for entry in entries}


def _run(spec: JobSpec, config: SandboxConfig, warm_pool: WarmPool | None, cancel: threading.Event | None,
         out: Sink, err: Sink) -> SandboxResult:
    """In the workspace's warm sandbox when the job asks for one and can have one, else cold."""
    if spec.warm and warm_pool is not None and not config.unsafe_no_sandbox and not config.gpu:
        try:
            return warm_pool.run(config, spec.command, stdout=out, stderr=err, cancel=cancel)
        except WarmSandboxError as exc:
            err(f"autow2s: {exc}; running this job in a cold sandbox instead\n".encode())
    return run_sandboxed(config, spec.command, stdout=out, stderr=err, cancel=cancel, warn=err)


def run_job(spec: JobSpec, job_id: str, log_dir: Path, *, unsafe_no_sandbox: bool = False,
            gpu_ids: tuple[str, ...] = (), cancel: threading.Event | None = None,
            warm_pool: WarmPool | None = None) -> JobResult:
    """Run `spec` in the sandbox with logs under log_dir/job_id; never raises for a job's failure."""
    job_dir = Path(log_dir) / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = job_dir / "stdout.log", job_dir / "stderr.log"
    workspace = Path(spec.workspace).resolve()
    env = dict(spec.env)
    if spec.gpus > 0:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu_ids)
    config = SandboxConfig(workspace=workspace, task_data=spec.task_data, limits=spec.limits, gpu=spec.gpus > 0,
                           cpus=spec.cpus, env=env, hidden=spec.hidden, ro_mounts=spec.ro_mounts,
                           unsafe_no_sandbox=unsafe_no_sandbox)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        def write_out(data: bytes) -> None:
            out.write(data)
            out.flush()

        def write_err(data: bytes) -> None:
            err.write(data)
            err.flush()

        try:
            before = _snapshot(workspace)
            sandbox = _run(spec, config, warm_pool, cancel, write_out, write_err)
        except Exception as exc:  # a job that cannot start is a failed job, with the reason
            err.write(f"autow2s: the job could not start: {exc}\n".encode())
            err.flush()
            return JobResult(job_id=job_id, status=JobStatus.FAILED, exit_code=None,
                             error=f"could not start: {exc}", stdout_path=stdout_path, stderr_path=stderr_path,
                             stderr_tail=output_tail(stderr_path))
    after = _snapshot(workspace)
    outputs = tuple(sorted(Path(p) for p, stamp in after.items() if before.get(p) != stamp))
    if sandbox.cancelled:
        status = JobStatus.CANCELLED
    elif sandbox.ok:
        status = JobStatus.SUCCEEDED
    else:
        status = JobStatus.FAILED
    result = JobResult(
        job_id=job_id, status=status, exit_code=sandbox.exit_code, limit_hit=sandbox.limit_hit,
        error=None if status is JobStatus.SUCCEEDED else sandbox.message,
        stdout_path=stdout_path, stderr_path=stderr_path, stdout_tail=output_tail(stdout_path),
        stderr_tail=output_tail(stderr_path), output_files=outputs, wall_seconds=sandbox.wall_seconds,
        cpu_seconds=sandbox.cpu_seconds, peak_memory_bytes=sandbox.peak_memory_bytes)
    (job_dir / JOB_REPORT_FILE).write_text(json.dumps(sandbox.to_json() | {"status": status.value}, indent=2) + "\n")
    return result
