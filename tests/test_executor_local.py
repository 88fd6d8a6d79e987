"""LocalExecutor: slots, timeouts, logs, crashes, cancellation and kills, with real sandboxed jobs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from autow2s.executor import JobError, JobSpec, JobStatus, LocalExecutor
from autow2s.sandbox import Limits
from sandbox_helpers import Prepared, make_workspace, pids_with_token, prepared, wait_until  # noqa: F401

pytestmark = pytest.mark.timeout(90)

# Records when it started and ended, so a test can see whether two jobs overlapped.
STAMP = ("import json, os, sys, time\nstart = time.time()\ntime.sleep(float(sys.argv[1]))\n"
         "json.dump({'start': start, 'end': time.time(), 'gpus': os.environ.get('CUDA_VISIBLE_DEVICES')}, "
         "open(sys.argv[2], 'w'))\n")


def _stamp_job(workspace: Path, name: str, seconds: float, **kwargs: object) -> JobSpec:
    return JobSpec(command=("python", "-c", STAMP, str(seconds), f"/workspace/{name}.json"), workspace=workspace,
                   name=name, **kwargs)  # type: ignore[arg-type]


def _stamps(workspace: Path, *names: str) -> list[dict]:
    return [json.loads((workspace / f"{name}.json").read_text()) for name in names]


def test_predict_job_end_to_end(prepared: Prepared, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, with_method=True)
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        handle = executor.submit(JobSpec(
            command=("autow2s", "predict", "--public", "/task", "--method", "/workspace/method", "--out",
                     "/workspace/preds.json"), workspace=workspace, task_data=prepared.public,
            hidden=(prepared.lab,), name="predict vanilla"))
        result = executor.result(handle, timeout=60)
    assert result.status is JobStatus.SUCCEEDED, result.stderr_tail
    assert result.output_files == (workspace / "preds.json",)
    assert "test predictions written to /workspace/preds.json" in result.stdout_path.read_text()
    assert result.stdout_path.parent == tmp_path / "logs" / handle.job_id
    assert handle.job_id.startswith("predict-vanilla-")


def test_output_files_are_the_regular_files_the_job_wrote(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    (workspace / "old.txt").write_text("before")
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        handle = executor.submit(JobSpec(
            command=("sh", "-c", "mkdir -p out .cache && echo 1 > out/a.json && echo 2 > .cache/c && "
                                 "ln -s /etc/passwd preds.json"), workspace=workspace))
        result = executor.result(handle, timeout=30)
    assert result.ok, result.stderr_tail
    assert result.output_files == (workspace / "out" / "a.json",)  # not old files, caches or symlinks


def test_cpu_slots_keep_jobs_from_oversubscribing(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    with LocalExecutor(tmp_path / "logs", cpus=2, gpus=0) as executor:
        big = executor.submit(_stamp_job(workspace, "big", 0.8, cpus=2))
        small_a = executor.submit(_stamp_job(workspace, "a", 1.5))
        small_b = executor.submit(_stamp_job(workspace, "b", 1.5))
        assert executor.status(small_a) is JobStatus.QUEUED  # the 2-CPU job holds both slots
        for handle in (big, small_a, small_b):
            assert executor.result(handle, timeout=60).ok
    big_stamp, a, b = _stamps(workspace, "big", "a", "b")
    assert a["start"] >= big_stamp["end"] and b["start"] >= big_stamp["end"]  # waited for the slots
    assert a["start"] < b["end"] and b["start"] < a["end"]  # the two 1-CPU jobs shared the machine


def test_gpu_slots_hand_out_distinct_devices(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    with LocalExecutor(tmp_path / "logs", cpus=2, gpus=2) as executor:
        handles = [executor.submit(_stamp_job(workspace, name, 0.5, gpus=1)) for name in ("g1", "g2", "g3")]
        results = [executor.result(h, timeout=60) for h in handles]
        assert executor.running_slots() == (0, 0)
    assert all(r.ok for r in results), [r.error for r in results]
    g1, g2, g3 = _stamps(workspace, "g1", "g2", "g3")
    assert {g1["gpus"], g2["gpus"]} == {"0", "1"}  # the first two ran at once, on different GPUs
    assert g3["start"] >= min(g1["end"], g2["end"])  # the third waited for a GPU


def test_too_big_a_job_is_refused_with_a_reason(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path / "logs", cpus=2, gpus=0) as executor:
        with pytest.raises(JobError, match="asks for 3 CPUs but this executor has 2"):
            executor.submit(_stamp_job(tmp_path, "x", 0, cpus=3))
        with pytest.raises(JobError, match="asks for 1 GPUs"):
            executor.submit(_stamp_job(tmp_path, "x", 0, gpus=1))


def test_timeout_fails_the_job_and_says_so(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        handle = executor.submit(JobSpec(command=("sleep", "30"), workspace=make_workspace(tmp_path),
                                         limits=Limits(wall_seconds=0.5)))
        result = executor.result(handle, timeout=30)
    assert (result.status, result.limit_hit, result.exit_code) == (JobStatus.FAILED, "wall_time", 137)
    assert "wall_time" in (result.error or "")


def test_logs_are_captured_to_files(tmp_path: Path) -> None:
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        handle = executor.submit(JobSpec(command=("sh", "-c", "echo out-line; echo err-line >&2; exit 3"),
                                         workspace=make_workspace(tmp_path)))
        result = executor.result(handle, timeout=30)
    assert result.status is JobStatus.FAILED and result.exit_code == 3
    assert result.stdout_path.read_text() == "out-line\n" and result.stderr_path.read_text() == "err-line\n"
    assert json.loads((result.stdout_path.parent / "report.json").read_text())["exit_code"] == 3


def test_executor_survives_a_job_that_crashes_its_python(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        crash = executor.submit(JobSpec(command=("python", "-c", "import os; os.abort()"), workspace=workspace))
        after = executor.submit(_stamp_job(workspace, "after", 0))
        crashed, fine = executor.result(crash, timeout=30), executor.result(after, timeout=30)
    assert crashed.status is JobStatus.FAILED and crashed.exit_code == 134 and "SIGABRT" in (crashed.error or "")
    assert fine.ok


def _sleeping(token: str) -> list[int]:
    return [pid for pid in pids_with_token(token) if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"]


def test_a_job_killed_midway_is_reported_failed(tmp_path: Path) -> None:
    token = f"{time.monotonic_ns() % 10**6}.{os.getpid()}1"
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        handle = executor.submit(JobSpec(command=("sleep", token), workspace=make_workspace(tmp_path)))
        assert wait_until(lambda: _sleeping(token), timeout=20)
        os.kill(_sleeping(token)[0], signal.SIGKILL)  # the job's own process, inside the sandbox
        result = executor.result(handle, timeout=30)
    assert result.status is JobStatus.FAILED and result.exit_code == 137
    assert "SIGKILL" in (result.error or "") and result.limit_hit is None


def test_cancel_running_and_queued_jobs(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    token = f"{time.monotonic_ns() % 10**6}.{os.getpid()}2"
    with LocalExecutor(tmp_path / "logs", cpus=1) as executor:
        running = executor.submit(JobSpec(command=("sleep", token), workspace=workspace))
        queued = executor.submit(JobSpec(command=("sleep", "30"), workspace=workspace))
        assert wait_until(lambda: executor.status(running) is JobStatus.RUNNING, timeout=10)
        executor.cancel(queued)
        executor.cancel(running)
        assert executor.result(running, timeout=30).status is JobStatus.CANCELLED
        assert executor.result(queued, timeout=30).status is JobStatus.CANCELLED
    assert wait_until(lambda: not pids_with_token(token), timeout=5)
