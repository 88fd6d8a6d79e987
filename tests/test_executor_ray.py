"""RayExecutor on a real Ray cluster started in the test (a head and a worker node on this machine).

One test walks the cluster through its paces, so that pytest-xdist never starts two clusters on a
small machine; each step asserts one behaviour.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autow2s.executor import JobSpec, JobStatus
from sandbox_helpers import Prepared, free_port, kill_ray_cluster, make_workspace, pids_with_token, prepared, wait_until  # noqa: F401

ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).parent / "ray")
SECRET = "sk-ant-ray-worker-DO-NOT-LEAK"


def _ray_env(temp_dir: str) -> dict[str, str]:
    # Workers inherit this environment: a secret in it must still not reach sandboxed jobs.
    # HOME: Ray keeps an auth token in ~/.ray; each test cluster gets its own, the user's stays untouched.
    return dict(os.environ, RAY_USAGE_STATS_ENABLED="0", ANTHROPIC_API_KEY=SECRET, RAY_TMPDIR=temp_dir,
                HOME=temp_dir)


def _ray_start(args: list[str], temp_dir: str) -> None:
    done = subprocess.run([RAY, "start", "--num-cpus=1", *args], env=_ray_env(temp_dir), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"ray start {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    temp_dir = tempfile.mkdtemp(prefix="aw2s-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-gpus=0", "--object-store-memory=80000000", "--disable-usage-stats"]
    try:
        _ray_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp_dir}", *common],
                   temp_dir)
        _ray_start([f"--address={address}", *common], temp_dir)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        kill_ray_cluster(temp_dir, port)
        subprocess.run(["rm", "-rf", temp_dir], check=False)


def _sleeping(token: str) -> list[int]:
    return [pid for pid in pids_with_token(token) if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _ray_worker_of(token: str) -> int:
    """The Ray worker process whose task started the sandbox running `sleep token`."""
    pid = _sleeping(token)[0]
    while Path(f"/proc/{pid}/comm").read_text().strip() in ("sleep", "bwrap"):
        pid = _parent(pid)
    return pid


@pytest.mark.timeout(400)
def test_ray_cluster_runs_sandboxed_jobs(ray_cluster: str, prepared: Prepared, tmp_path: Path) -> None:
    from autow2s.executor.ray_executor import RayExecutor

    workspace = make_workspace(tmp_path, with_method=True)
    executor = RayExecutor(tmp_path / "logs", address=ray_cluster)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2  # a head and a worker

        # A real predict job, in the sandbox, on the cluster.
        predict = executor.submit(JobSpec(
            command=("autow2s", "predict", "--public", "/task", "--method", "/workspace/method", "--out",
                     "/workspace/preds.json"), workspace=workspace, task_data=prepared.public,
            hidden=(prepared.lab,), name="predict"))
        # Two more at once: one per node, since each node has a single CPU.
        probes = [executor.submit(JobSpec(command=("sh", "-c", f"env; echo done > /workspace/probe{i}"),
                                          workspace=workspace, name=f"probe{i}")) for i in range(2)]
        result = executor.result(predict, timeout=90)
        assert result.status is JobStatus.SUCCEEDED, result.stderr_tail
        assert (workspace / "preds.json").is_file() and "4000 test predictions" in result.stdout_tail
        for probe in probes:
            probe_result = executor.result(probe, timeout=60)
            assert probe_result.ok and SECRET not in probe_result.stdout_tail  # the worker's env stays outside
            assert "ANTHROPIC_API_KEY" not in probe_result.stdout_tail
        assert executor.status(predict) is JobStatus.SUCCEEDED

        # A job that crashes its Python fails; the executor and its workers carry on.
        crash = executor.submit(JobSpec(command=("python", "-c", "import os; os.abort()"), workspace=workspace))
        crashed = executor.result(crash, timeout=60)
        assert crashed.status is JobStatus.FAILED and crashed.exit_code == 134
        assert executor.result(executor.submit(JobSpec(command=("true",), workspace=workspace)), timeout=60).ok

        # A job whose Ray worker is killed midway is reported failed, not lost, and its sandbox dies too.
        token = f"{time.monotonic_ns() % 10**6}.{os.getpid()}3"
        doomed = executor.submit(JobSpec(command=("sleep", token), workspace=workspace))
        assert wait_until(lambda: bool(_sleeping(token)), timeout=60)
        os.kill(_ray_worker_of(token), signal.SIGKILL)
        killed = executor.result(doomed, timeout=60)
        assert killed.status is JobStatus.FAILED and "worker" in (killed.error or "").lower(), killed
        assert wait_until(lambda: not _sleeping(token), timeout=10), "the sandbox outlived its Ray worker"

        # Cancelling a running job stops it.
        token = f"{time.monotonic_ns() % 10**6}.{os.getpid()}4"
        cancelled = executor.submit(JobSpec(command=("sleep", token), workspace=workspace))
        assert wait_until(lambda: bool(_sleeping(token)), timeout=60)
        executor.cancel(cancelled)
        assert executor.result(cancelled, timeout=60).status is JobStatus.CANCELLED
        assert wait_until(lambda: not _sleeping(token), timeout=10)
    finally:
        executor.shutdown()
    _lab_verifies_on_the_cluster(ray_cluster, tmp_path)


def _lab_verifies_on_the_cluster(address: str, tmp_path: Path) -> None:
    """`serve --executor ray --ray-address`: a verified run's job runs in a Ray worker of the cluster."""
    from lab_helpers import prepare_tasks, start_lab
    from test_lab_snapshots import make_tarball, upload

    token = f"0.0000{time.monotonic_ns() % 10**6}{os.getpid()}5"  # `sleep 3 TOKEN`: 3 s, findable by its TOKEN
    method = ("import subprocess\n\ndef run(ctx):\n"
              f"    subprocess.run(['sleep', '3', '{token}'])\n"
              "    student = ctx.strong_model()\n"
              "    student.fit(ctx.inputs('train_unlabel'), ctx.weak_soft_labels('train_unlabel'))\n"
              "    return student.predict_proba(ctx.inputs('test'))\n").encode()
    data = prepare_tasks(tmp_path / "data", {"mini": 400})
    args = ["--executor", "ray", "--ray-address", address, "--job-dir", str(tmp_path / "jobs"),
            "--dependence-check", "off"]
    with start_lab(data, tmp_path / "state", extra_args=args) as lab:
        client = lab.client(lab.create_researcher("on-ray"))
        snapshot = upload(client, make_tarball([("m/method.py", None, method)]), name="m").json()["snapshot_id"]
        run_id = client.post("/api/v1/verify", json={"snapshot_id": snapshot, "task": "mini"}).json()["verify_id"]
        assert wait_until(lambda: bool(_sleeping(token)), timeout=120), lab.log_tail()
        ancestry = []
        pid = _sleeping(token)[0]
        while pid > 1:
            ancestry.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            pid = _parent(pid)
        assert any(cmd.startswith(b"ray::") for cmd in ancestry), f"the job did not run in a Ray worker: {ancestry}"
        assert lab.process is not None and not any(b"serve" in cmd for cmd in ancestry)  # not under the lab
        assert wait_until(lambda: client.get(f"/api/v1/verify/{run_id}").json()["status"] in ("done", "failed"),
                          timeout=120, interval=0.5)
        run = client.get(f"/api/v1/verify/{run_id}").json()
        assert run["status"] == "done", run


@pytest.mark.timeout(120)
def test_local_ray_init_runs_a_sandboxed_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from autow2s.executor.ray_executor import RayExecutor

    temp_dir = tempfile.mkdtemp(prefix="aw2s-rl-", dir="/tmp")
    monkeypatch.setenv("HOME", temp_dir)  # Ray writes ~/.ray/auth_token: keep it out of the real home
    monkeypatch.setenv("RAY_TMPDIR", temp_dir)
    executor = None
    try:
        executor = RayExecutor(tmp_path / "logs", init_kwargs={"num_cpus": 1, "num_gpus": 0, "_temp_dir": temp_dir,
                                                               "object_store_memory": 80_000_000})
        handle = executor.submit(JobSpec(command=("sh", "-c", "echo hi > /workspace/local.txt"),
                                         workspace=make_workspace(tmp_path)))
        result = executor.result(handle, timeout=90)
        assert result.ok, result.error
        assert result.output_files == (tmp_path / "workspace" / "local.txt",)
    finally:
        if executor is not None:
            executor.shutdown()
        kill_ray_cluster(temp_dir, port=-1)
        subprocess.run(["rm", "-rf", temp_dir], check=False)
