"""The sandbox as researchers use it: a real `autow2s predict` job, each limit, and the debug command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from autow2s.sandbox import Limits, MiB, SandboxConfig, SandboxUnavailableError, require_sandbox, run_sandboxed
from autow2s.sandbox import bwrap as bwrap_module
from sandbox_helpers import AUTOW2S, Prepared, autogroup_scheduling, make_workspace, prepared, run_python  # noqa: F401

pytestmark = pytest.mark.timeout(90)

PREDICT = ["autow2s", "predict", "--public", "{task_data}", "--method", "{workspace}/method", "--seed", "3",
           "--out", "{workspace}/preds.json"]


def test_predict_runs_in_the_sandbox_and_writes_predictions(prepared: Prepared, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, with_method=True)
    out: list[bytes] = []
    result = run_sandboxed(SandboxConfig(workspace=workspace, task_data=prepared.public, hidden=(prepared.lab,)),
                           PREDICT, stdout=out.append, stderr=out.append)
    assert result.ok, b"".join(out).decode()
    assert result.sandboxed and result.command[3] == "/task"
    predictions = json.loads((workspace / "preds.json").read_text())
    expected_ids = [json.loads(line)["id"] for line in (prepared.public / "test.jsonl").read_text().splitlines()]
    assert [str(i) for i in predictions["ids"]] == [str(i) for i in expected_ids]
    assert all(0.0 <= p <= 1.0 for p in predictions["predictions"])


def _limited(tmp_path: Path, **limits: object) -> SandboxConfig:
    return SandboxConfig(workspace=make_workspace(tmp_path), limits=Limits(**limits))  # type: ignore[arg-type]


def test_wall_time_limit(tmp_path: Path) -> None:
    result = run_sandboxed(_limited(tmp_path, wall_seconds=1.0), ["sleep", "30"])
    assert (result.limit_hit, result.exit_code) == ("wall_time", 137)
    assert 1.0 <= result.wall_seconds < 5
    assert "wall_time limit (1 s wall time)" in result.message


def test_cpu_time_limit_counts_every_process(tmp_path: Path) -> None:
    busy = "import os\nos.fork()\nwhile True: pass"  # two busy processes: the job total, not each, is bounded
    result = run_sandboxed(_limited(tmp_path, wall_seconds=30, cpu_seconds=1.0), ["python", "-c", busy])
    assert result.limit_hit == "cpu_time", result
    assert result.wall_seconds < 10


def test_output_limit(tmp_path: Path) -> None:
    seen: list[bytes] = []
    result = run_sandboxed(_limited(tmp_path, wall_seconds=30, output_bytes=64 * 1024),
                           ["python", "-c", "while True: print('x' * 1000)"], stdout=seen.append)
    assert result.limit_hit == "output", result
    assert sum(map(len, seen)) == 64 * 1024  # the sink got exactly the budget, no more


def test_disk_limit(tmp_path: Path) -> None:
    code = ("import os, time\nfor i in range(200):\n    open(f'f{i}', 'wb').write(os.urandom(1 << 20))\n"
            "    time.sleep(0.01)\ntime.sleep(30)")
    result = run_sandboxed(_limited(tmp_path, wall_seconds=30, disk_bytes=8 * MiB), ["python", "-c", code])
    assert result.limit_hit == "disk", result


def test_exit_code_and_streams_pass_through(tmp_path: Path) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    result = run_sandboxed(_limited(tmp_path), ["sh", "-c", "echo to-out; echo to-err >&2; exit 7"],
                           stdout=out.append, stderr=err.append)
    assert (result.exit_code, result.limit_hit, result.ok) == (7, None, False)
    assert b"".join(out) == b"to-out\n" and b"".join(err) == b"to-err\n"


def test_a_crash_is_reported_with_its_signal(tmp_path: Path) -> None:
    result = run_sandboxed(_limited(tmp_path), ["python", "-c", "import ctypes; ctypes.string_at(0)"])
    assert result.exit_code == 139 and "SIGSEGV" in result.message and result.limit_hit is None


def test_gpu_option_binds_the_nvidia_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no GPU on the test machine, stand-in device files show the passthrough works end to end."""
    devices = tmp_path / "dev"
    devices.mkdir()
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm"):
        (devices / name).write_text("")
    monkeypatch.setattr(bwrap_module, "GPU_DEVICE_GLOB", str(devices / "nvidia*"))
    code = f"import os; print(sorted(os.listdir({str(devices)!r})))"
    with_gpu = run_python(SandboxConfig(workspace=make_workspace(tmp_path), gpu=True), code)
    assert "['nvidia-uvm', 'nvidia0', 'nvidiactl']" in with_gpu.stdout, with_gpu.stderr
    without = run_python(SandboxConfig(workspace=make_workspace(tmp_path)), code)
    assert "FileNotFoundError" in without.stderr


def test_read_only_binds_under_tmp_stay_visible(tmp_path: Path) -> None:
    """The job's private /tmp must not hide a checkout or model cache that lives under the host's /tmp."""
    models = tmp_path / "models"
    models.mkdir(mode=0o755)
    (models / "weights.txt").write_text("w")
    config = SandboxConfig(workspace=make_workspace(tmp_path), extra_ro_binds=(models,))
    ran = run_python(config, f"print(open({str(models / 'weights.txt')!r}).read()); open('/tmp/x', 'w')")
    assert ran.result.ok and ran.stdout == "w\n", ran.stderr


def test_cli_prints_output_and_exits_with_the_command_code(tmp_path: Path) -> None:
    done = subprocess.run([AUTOW2S, "sandbox", "run", "--workspace", str(make_workspace(tmp_path)), "--",
                           "sh", "-c", "echo hello from $AUTOW2S_WORKSPACE; exit 5"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 5 and done.stdout == "hello from /workspace\n", done.stderr


def test_cli_exits_137_and_names_the_limit(tmp_path: Path, prepared: Prepared) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run([AUTOW2S, "sandbox", "run", "--workspace", str(make_workspace(tmp_path)),
                           "--task-data", str(prepared.public), "--memory-mb", "200", "--json", str(report), "--",
                           "python", "-c", "import time\nx = []\nwhile True: x.append(b'z' * (8 << 20)); time.sleep(0.01)"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 137, done.stderr
    assert "memory" in done.stderr
    assert json.loads(report.read_text())["limit_hit"] == "memory"


def test_missing_bubblewrap_refuses_and_unsafe_warns(tmp_path: Path) -> None:
    env = dict(os.environ, AUTOW2S_BWRAP="")  # as if bubblewrap were not installed
    command = [AUTOW2S, "sandbox", "run", "--workspace", str(make_workspace(tmp_path))]
    refused = subprocess.run(command + ["--", "echo", "ran"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "ran" not in refused.stdout
    assert "bubblewrap" in refused.stderr and "--unsafe-no-sandbox" in refused.stderr
    unsafe = subprocess.run(command + ["--unsafe-no-sandbox", "--", "echo", "ran"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert unsafe.returncode == 0 and unsafe.stdout == "ran\n"
    assert "WITHOUT a sandbox" in unsafe.stderr


def test_require_sandbox_raises_without_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOW2S_BWRAP", "/nonexistent/bwrap")
    bwrap_module.bwrap_features.cache_clear()
    bwrap_module._probe.cache_clear()
    try:
        with pytest.raises(SandboxUnavailableError, match="apt-get install bubblewrap"):
            require_sandbox()
        require_sandbox(unsafe_no_sandbox=True)  # the explicit override goes through
    finally:
        monkeypatch.delenv("AUTOW2S_BWRAP")
        bwrap_module.bwrap_features.cache_clear()
        bwrap_module._probe.cache_clear()


def test_unreadable_task_data_gets_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root-started jobs switch to their own user")
    private = tmp_path / "private-task"
    private.mkdir(mode=0o700)
    with pytest.raises(Exception, match="chmod -R a\\+rX"):
        run_sandboxed(SandboxConfig(workspace=make_workspace(tmp_path), task_data=private), ["true"])


def test_a_niced_job_keeps_its_niceness_and_cannot_lower_it(tmp_path: Path) -> None:
    """Verified runs start at nice 10 so that researchers' experiments get the CPU first (VERIFY_JOB_LIMITS)."""
    from autow2s.sandbox.limits import VERIFY_JOB_LIMITS

    assert VERIFY_JOB_LIMITS.nice == 10
    code = ("import os\nprint('NICE', os.nice(0))\ntry:\n    os.nice(-10)\n    print('LOWERED', os.nice(0))\n"
            "except PermissionError:\n    print('REFUSED')\n"
            "print('GROUP', open('/proc/self/autogroup').read() if os.path.exists('/proc/self/autogroup') else '-')\n")
    # With autogroup scheduling (bwrap's --new-session makes each sandbox a group of its own), a process's nice only
    # ranks it inside its group; the group's nice is what gives researchers' sandboxes the CPU first.
    autogroup = autogroup_scheduling()
    for unsafe in (False, True):
        config = SandboxConfig(workspace=make_workspace(tmp_path, f"ws-{unsafe}"), limits=Limits(wall_seconds=30, nice=10),
                               unsafe_no_sandbox=unsafe)
        lines: list[bytes] = []
        result = run_sandboxed(config, ["python3", "-c", code], stdout=lines.append, stderr=lines.append)
        text = b"".join(lines).decode()
        assert result.exit_code == 0 and "NICE 10" in text, text
        if autogroup and not unsafe:
            assert "nice 10" in text.split("GROUP", 1)[1], text
        if not unsafe or os.geteuid() != 0:  # only root outside a sandbox may lower it again
            assert "REFUSED" in text, text
    with pytest.raises(ValueError, match="nice must be between 0 and 19"):
        Limits(nice=-5)
