"""Warm sandboxes: a long-lived sandbox whose worker forks each job. The escape suite runs through
them too (test_sandbox_escape.py, the [warm] cases); these tests cover what is new: reuse, what a
job leaves behind, limits per job, a job that kills its worker, and the executor path."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autow2s.executor import JobSpec, LocalExecutor
from autow2s.sandbox import Limits, MiB, SandboxConfig
from autow2s.sandbox.warm import WarmPool, WarmSandbox
from sandbox_helpers import (  # noqa: F401
    AUTOW2S,
    Prepared,
    autogroup_scheduling,
    make_workspace,
    pids_with_token,
    prepared,
    wait_until,
)

pytestmark = pytest.mark.timeout(120)


def _script(workspace: Path, name: str, code: str) -> list[str]:
    (workspace / name).write_text(code)
    return ["python", f"/workspace/{name}"]


def _fresh_tmp(config: SandboxConfig) -> str:
    """What /tmp holds in a brand-new sandbox: empty, but for the directories that lead to the
    project's bind mounts when the checkout lies under /tmp (CI clones to /tmp/fresh)."""
    from autow2s.sandbox import run_sandboxed

    out: list[bytes] = []
    result = run_sandboxed(config, ["python", "-c", "import os; print('TMP', sorted(os.listdir('/tmp')))"],
                           stdout=out.append, stderr=lambda _: None)
    assert result.ok, result
    return b"".join(out).decode().strip()


def _run(pool: WarmPool, config: SandboxConfig, argv: list[str], cancel: threading.Event | None = None):  # type: ignore[no-untyped-def]
    out: list[bytes] = []
    err: list[bytes] = []
    result = pool.run(config, argv, stdout=out.append, stderr=err.append, cancel=cancel)
    return result, b"".join(out).decode(), b"".join(err).decode()


def test_jobs_share_one_sandbox_and_leave_nothing_behind(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    token = f"leftover-{time.monotonic_ns()}"
    config = SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=60))
    with WarmPool(tmp_path / "logs") as pool:
        # A daemon that escapes its job's process tree (setsid + double fork), a file in /tmp.
        first, out, err = _run(pool, config, _script(workspace, "leave.py", f"""
import os, subprocess, time
open("/tmp/left-behind", "w").write("x")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "300", "{token}"])
    os._exit(0)
time.sleep(0.2)
print("daemon started")
"""))
        assert first.ok and "daemon started" in out, err
        assert wait_until(lambda: not pids_with_token(token), timeout=5), "a job's daemon outlived the job"
        second, out, err = _run(pool, config, _script(workspace, "look.py", """
import os
print("TMP", sorted(os.listdir("/tmp")))
print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
"""))
        assert second.ok, err
        assert _fresh_tmp(config) in out  # the next job finds /tmp as a new sandbox has it
        assert len(json.loads(out.split("PIDS ")[1].strip())) == 3  # bwrap's reaper, the worker, this job
        assert pool.started == 1  # both jobs ran in the same warm sandbox


def test_limits_hold_per_job_and_the_sandbox_survives_them(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    config = SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=30, cpu_seconds=2,
                                                              output_bytes=1 * MiB))
    with WarmPool(tmp_path / "logs") as pool:
        spun, _, _ = _run(pool, config, _script(workspace, "spin.py", "while True:\n    pass\n"))
        assert spun.limit_hit == "cpu_time" and spun.exit_code == 137 and spun.wall_seconds < 10, spun
        loud, out, _ = _run(pool, config, _script(workspace, "loud.py", "while True:\n    print('x' * 1000)\n"))
        assert loud.limit_hit == "output" and len(out) <= 1 * MiB, loud
        # Each job gets its own CPU budget: after 2+ s of spinning, a short job is well inside it.
        fine, out, err = _run(pool, config, _script(workspace, "fine.py", "print(sum(range(10**6)))\n"))
        assert fine.ok and out.strip() == str(sum(range(10**6))), err
        assert pool.started == 1


def test_cancel_stops_a_warm_job(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    with WarmPool(tmp_path / "logs") as pool:
        result, _, _ = _run(pool, SandboxConfig(workspace=workspace),
                            _script(workspace, "sleep.py", "import time\ntime.sleep(60)\n"), cancel)
        assert result.cancelled and result.exit_code == 137 and result.wall_seconds < 10


def test_a_job_that_kills_its_worker_fails_and_the_next_job_gets_a_new_sandbox(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    config = SandboxConfig(workspace=workspace)
    with WarmPool(tmp_path / "logs") as pool:
        killed, _, err = _run(pool, config, _script(workspace, "kill.py", "import os\nos.kill(os.getppid(), 9)\n"))
        assert not killed.ok and killed.exit_code == 137
        assert "worker ended during this job" in err
        after, out, err = _run(pool, config, _script(workspace, "ok.py", "print('still working')\n"))
        assert after.ok and "still working" in out, err
        assert pool.started == 2


def test_warm_predict_matches_cold_and_fresh_randomness_per_job(prepared: Prepared, tmp_path: Path) -> None:
    """Same seed, same predictions as a cold job; unseeded randomness differs from job to job."""
    workspace = make_workspace(tmp_path, with_method=True)
    config = SandboxConfig(workspace=workspace, task_data=prepared.public, hidden=(prepared.lab,))
    predict = ["autow2s", "predict", "--public", "{task_data}", "--method", "{workspace}/method", "--seed", "3",
               "--out"]
    from autow2s.sandbox import run_sandboxed

    cold = run_sandboxed(config, predict + ["{workspace}/cold.json"], stdout=lambda _: None, stderr=lambda _: None)
    assert cold.ok, cold
    with WarmPool(tmp_path / "logs") as pool:
        warm, _, err = _run(pool, config, predict + ["{workspace}/warm.json"])
        assert warm.ok, err
        draws = []
        for n in range(2):
            ran, out, err = _run(pool, config, _script(workspace, f"draw{n}.py",
                                                       "import random, numpy, torch\n"
                                                       "print(random.random(), numpy.random.rand(), torch.rand(1).item())\n"))
            assert ran.ok, err
            draws.append(out.split())
    assert json.loads((workspace / "warm.json").read_text()) == json.loads((workspace / "cold.json").read_text())
    assert all(a != b for a, b in zip(*draws)), draws


def test_executor_runs_warm_jobs_in_one_sandbox_and_closes_it(prepared: Prepared, tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, with_method=True)
    executor = LocalExecutor(tmp_path / "logs", cpus=1)
    try:
        results = []
        for seed in (0, 1, 2):
            spec = JobSpec(command=("autow2s", "predict", "--public", "{task_data}", "--method", "{workspace}/method",
                                    "--seed", str(seed), "--out", f"{{workspace}}/p{seed}.json"),
                           workspace=workspace, task_data=prepared.public, hidden=(prepared.lab,), warm=True)
            results.append(executor.result(executor.submit(spec), timeout=90))
        assert all(r.ok for r in results), [r.stderr_tail for r in results]
        assert [workspace / f"p{s}.json" in r.output_files for s, r in zip((0, 1, 2), results)] == [True] * 3
        assert executor.warm_pool.started == 1
        assert pids_with_token(str(workspace))  # the warm sandbox is up between jobs
    finally:
        executor.shutdown()
    assert wait_until(lambda: not pids_with_token(str(workspace)), timeout=10), "shutdown left the sandbox running"


def test_unsafe_mode_runs_warm_jobs_cold(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    with LocalExecutor(tmp_path / "logs", cpus=1, unsafe_no_sandbox=True) as executor:
        result = executor.result(executor.submit(JobSpec(command=("true",), workspace=workspace, warm=True)))
        assert result.ok and executor.warm_pool.started == 0
        assert "WITHOUT a sandbox" in result.stderr_tail


def test_a_warm_sandbox_dies_with_its_parent(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    script = ("from pathlib import Path\nimport sys, time\nfrom autow2s.sandbox import SandboxConfig\n"
              "from autow2s.sandbox.warm import WarmSandbox\n"
              f"box = WarmSandbox(SandboxConfig(workspace=Path({str(workspace)!r})), Path({str(tmp_path / 'w.log')!r}))\n"
              "print('ready', flush=True)\ntime.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == b"ready"
        assert pids_with_token(str(workspace))
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not pids_with_token(str(workspace)), timeout=10), "the sandbox outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_a_worker_that_cannot_start_says_why(tmp_path: Path) -> None:
    from autow2s.sandbox.warm import WarmSandboxError

    with pytest.raises(WarmSandboxError, match="CPU jobs"):
        WarmSandbox(SandboxConfig(workspace=make_workspace(tmp_path), gpu=True), tmp_path / "w.log")


def test_a_job_cannot_reach_into_its_worker(tmp_path: Path) -> None:
    """The worker is non-dumpable: no ptrace, no pidfd_getfd of its socket or log, no /proc/PID/fd."""
    workspace = make_workspace(tmp_path)
    with WarmPool(tmp_path / "logs") as pool:
        ran, out, err = _run(pool, SandboxConfig(workspace=workspace), _script(workspace, "reach.py", """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
worker = os.getppid()
PTRACE_SEIZE, SYS_pidfd_open, SYS_pidfd_getfd = 0x4206, 434, 438
print("ptrace", libc.ptrace(PTRACE_SEIZE, worker, 0, 0))
pidfd = libc.syscall(SYS_pidfd_open, worker, 0)
for fd in range(0, 12):
    got = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
    if got >= 0:
        print("LEAKED fd", fd)
for fd in range(0, 12):
    try:
        with open(f"/proc/{worker}/fd/{fd}", "ab") as handle:
            handle.write(b"x")
        print("LEAKED open", fd)
    except OSError:
        pass
try:
    os.listdir(f"/proc/{worker}/fd"); print("LEAKED listdir")
except OSError:
    pass
print("DONE")
"""))
        assert ran.ok and "DONE" in out, err
        assert "LEAKED" not in out and "ptrace -1" in out, out
        assert not any(p.stat().st_size for p in (tmp_path / "logs").glob("*.log"))


def test_sysv_ipc_and_locked_tmp_dirs_do_not_outlive_a_job(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    config = SandboxConfig(workspace=workspace)
    with WarmPool(tmp_path / "logs") as pool:
        first, out, err = _run(pool, config, _script(workspace, "hoard.py", """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
ident = libc.shmget(0, 64 * 1024 * 1024, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
print("shm", ident)
os.makedirs("/tmp/keep/inner")
os.chmod("/tmp/keep", 0)
"""))
        assert first.ok and "shm -1" not in out, out + err
        second, out, err = _run(pool, config, _script(workspace, "look.py", """
import os
print("SHM", len(open("/proc/sysvipc/shm").read().splitlines()) - 1)
print("TMP", sorted(os.listdir("/tmp")))
"""))
        assert second.ok, err
        assert "SHM 0" in out and _fresh_tmp(config) in out, out


def test_jobs_in_the_worker_behave_like_a_fresh_python(prepared: Prepared, tmp_path: Path) -> None:
    """Files left open are flushed, atexit runs, SIGPIPE is ignored, autow2s does not import from the workspace."""
    workspace = make_workspace(tmp_path, with_method=True)
    (workspace / "shadow.py").write_text("raise SystemExit('imported from the workspace')\n")
    config = SandboxConfig(workspace=workspace, task_data=prepared.public, hidden=(prepared.lab,))
    with WarmPool(tmp_path / "logs") as pool:
        ran, out, err = _run(pool, config, _script(workspace, "exits.py", """
import atexit, os, signal
left_open = open("/workspace/left-open.txt", "w")
left_open.write("flushed at exit")
atexit.register(lambda: print("atexit ran", flush=True))
print("SIGPIPE", signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN)
print("SIGINT", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""))
        assert ran.ok, err
        assert "SIGPIPE True" in out and "SIGINT True" in out and "atexit ran" in out, out
        assert (workspace / "left-open.txt").read_text() == "flushed at exit"
        (workspace / "method" / "method.py").write_text(
            "import sys\n\ndef run(ctx):\n    assert '/workspace' not in sys.path[:1], sys.path\n"
            "    return ctx.weak_soft_labels('test')\n")
        ran, out, err = _run(pool, config, ["autow2s", "predict", "--public", "{task_data}", "--method",
                                            "{workspace}/method", "--out", "{workspace}/p.json"])
        assert ran.ok, err


def test_a_warm_worker_does_not_take_a_cold_jobs_process_slot(prepared: Prepared, tmp_path: Path) -> None:
    """As root, processes count per uid: with the workspace's worker up, a cold fork bomb of the
    same workspace must still be killed for `processes`, not left stuck below the limit."""
    from autow2s.sandbox import run_sandboxed

    workspace = make_workspace(tmp_path)
    config = SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=30, max_processes=64))
    with WarmPool(tmp_path / "logs") as pool:
        assert _run(pool, config, ["true"])[0].ok  # the warm worker is up and idle
        bomb = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)"
        result = run_sandboxed(config, ["python", "-c", bomb], stdout=lambda _: None, stderr=lambda _: None)
        assert result.limit_hit == "processes" and result.wall_seconds < 15, result


def test_idle_sandboxes_are_closed_without_another_job(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    with WarmPool(tmp_path / "logs", idle_seconds=1.0) as pool:
        assert _run(pool, SandboxConfig(workspace=workspace), ["true"])[0].ok
        assert pids_with_token(str(workspace))
        assert wait_until(lambda: not pids_with_token(str(workspace)), timeout=10), "an idle sandbox stayed up"


def test_a_job_that_changes_its_worker_retires_the_sandbox(tmp_path: Path) -> None:
    """A job may lower its worker's rlimits or priority (same uid) or leave a POSIX message queue:
    the next job must not inherit any of it."""
    workspace = make_workspace(tmp_path)
    config = SandboxConfig(workspace=workspace)
    with WarmPool(tmp_path / "logs") as pool:
        first, out, err = _run(pool, config, _script(workspace, "tamper.py", """
import ctypes, os, resource
worker = os.getppid()
resource.prlimit(worker, resource.RLIMIT_FSIZE, (4096, 4096))
os.setpriority(os.PRIO_PROCESS, worker, 19)
libc = ctypes.CDLL(None, use_errno=True)
libc.mq_open.restype = ctypes.c_int
queue = libc.mq_open(b"/persist", os.O_CREAT | os.O_RDWR, 0o600, None)
print("queue", queue, os.listdir("/dev/mqueue"))
"""))
        assert first.ok and "'persist'" in out, out + err
        second, out, err = _run(pool, config, _script(workspace, "check.py", """
import os, resource
open("/workspace/big.bin", "wb").write(b"x" * 10000)
print("FSIZE", resource.getrlimit(resource.RLIMIT_FSIZE), "NICE", os.getpriority(os.PRIO_PROCESS, 0))
print("QUEUES", os.listdir("/dev/mqueue"))
"""))
        assert second.ok, err
        assert "FSIZE (4096" not in out and "NICE 0" in out and "QUEUES []" in out, out
        assert pool.started == 2  # the tampered sandbox was retired


def test_clean_up_survives_hostile_tmp_trees(tmp_path: Path) -> None:
    """A symlink to /usr and a very deep tree in /tmp: removed, nothing outside touched, sandbox kept."""
    workspace = make_workspace(tmp_path)
    (workspace / "mine").mkdir()
    config = SandboxConfig(workspace=workspace)
    with WarmPool(tmp_path / "logs") as pool:
        first, _, err = _run(pool, config, _script(workspace, "trees.py", """
import os
for name in os.listdir("/tmp"):  # directories leading to the project's bind mounts, if any
    try:
        open(os.path.join("/tmp", name, "junk"), "w").write("x")
    except OSError:
        pass
os.makedirs("/tmp/d")
os.symlink("/usr", "/tmp/d/usr")
os.symlink("/workspace/mine", "/tmp/d/mine")
path = "/tmp/deep"
os.makedirs(path)
for _ in range(1500):
    path = os.path.join(path, "d")
    os.mkdir(path)
"""))
        assert first.ok, err
        second, out, err = _run(pool, config, _script(workspace, "look.py", (
            "import os\nprint('TMP', sorted(os.listdir('/tmp')))\n"
            "print('JUNK', [n for n in os.listdir('/tmp') if os.path.exists(os.path.join('/tmp', n, 'junk'))])\n")))
        assert second.ok and _fresh_tmp(config) in out and "JUNK []" in out, out + err
        assert pool.started == 1
        assert (workspace / "mine").stat().st_mode & 0o777 == 0o755  # the link's target kept its mode


def test_a_hidden_path_replaced_on_the_host_gets_a_new_sandbox(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    secret = workspace / "lab-secret.txt"
    secret.write_text("v1")
    read = "try:\n    print('READ', open('/workspace/lab-secret.txt').read())\nexcept OSError:\n    print('DENIED')\n"
    with WarmPool(tmp_path / "logs") as pool:
        config = SandboxConfig(workspace=workspace, hidden=(secret,))
        ran, out, _ = _run(pool, config, _script(workspace, "read.py", read))
        assert ran.ok and "READ" not in out
        replacement = workspace / "new.txt"
        replacement.write_text("SECRET-v2")
        replacement.rename(secret)  # a new inode at the hidden path
        ran, out, _ = _run(pool, config, ["python", "/workspace/read.py"])
        assert ran.ok and "SECRET-v2" not in out, out
        assert pool.started == 2


def test_a_sandbox_whose_hidden_file_was_replaced_is_closed_at_once(tmp_path: Path) -> None:
    """It can never be used again; left to idle it held its memory for idle_seconds, and a campaign that
    rewrites a masked state file often piled up a hundred of them (OOM in a 15-minute campaign)."""
    workspace = make_workspace(tmp_path)
    state = workspace / "state.json"
    state.write_text("{}")
    config = SandboxConfig(workspace=workspace, hidden=(state,))
    with WarmPool(tmp_path / "logs") as pool:  # the default idle_seconds: only the replacement may close it
        assert _run(pool, config, ["true"])[0].ok
        one_sandbox = len(pids_with_token(str(workspace)))
        assert one_sandbox > 0
        for round_ in range(4):
            fresh = workspace / "state.tmp"
            fresh.write_text(json.dumps({"round": round_}))
            fresh.rename(state)  # what the campaign's atomic saves do
            assert _run(pool, config, ["true"])[0].ok
        assert pool.started == 5
        assert wait_until(lambda: len(pids_with_token(str(workspace))) <= one_sandbox, timeout=20), \
            "superseded sandboxes are still running"
        other = make_workspace(tmp_path / "other")  # another config's idle sandbox is left alone
        assert _run(pool, SandboxConfig(workspace=other), ["true"])[0].ok
        fresh = workspace / "state.tmp"
        fresh.write_text("{}")
        fresh.rename(state)
        assert _run(pool, config, ["true"])[0].ok
        assert pids_with_token(str(other)), "a sandbox of another config was closed"


def test_a_niced_warm_job_keeps_its_nice_in_its_own_scheduling_group(tmp_path: Path) -> None:
    """Each warm job starts a session (setsid), hence a scheduling autogroup of its own at nice 0; the worker
    carries its nice into it, so a niced job still yields the CPU to other sandboxes, as a cold one does."""
    if not autogroup_scheduling():
        pytest.skip("this kernel does not schedule by autogroup")
    config = SandboxConfig(workspace=make_workspace(tmp_path), limits=Limits(wall_seconds=30, nice=10))
    look = ["python", "-c", "import os; print(os.nice(0), open('/proc/self/autogroup').read())"]
    with WarmPool(tmp_path / "logs") as pool:
        for _ in range(2):
            ran, out, _ = _run(pool, config, look)
            assert ran.ok and out.startswith("10 ") and out.rstrip().endswith("nice 10"), out
        assert pool.started == 1


def test_jobs_with_different_wall_limits_share_a_sandbox_and_each_gets_its_own(tmp_path: Path) -> None:
    """A researcher's wall limit shrinks to the campaign's time left with every job; that must not start a new
    sandbox per job, and each job is still held to its own limit, not the sandbox's first one."""
    from autow2s.sandbox.limits import WALL_TIME

    workspace = make_workspace(tmp_path)
    sleep = ["python", "-c", "import sys, time; time.sleep(float(sys.argv[1])); print('DONE')"]
    with WarmPool(tmp_path / "logs") as pool:
        ran, out, _ = _run(pool, SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=60)), [*sleep, "3"])
        assert ran.ok and "DONE" in out
        ran, out, _ = _run(pool, SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=2)), [*sleep, "20"])
        assert ran.limit_hit == WALL_TIME and ran.wall_seconds < 10 and "DONE" not in out, (ran, out)
        ran, out, _ = _run(pool, SandboxConfig(workspace=workspace, limits=Limits(wall_seconds=30)), [*sleep, "3"])
        assert ran.ok and "DONE" in out
        assert pool.started == 1


def test_a_hidden_file_outside_everything_bound_can_be_replaced_without_a_new_sandbox(tmp_path: Path) -> None:
    """A campaign's state.json sits beside the workspaces, outside every bind, and is rewritten by rename every
    second: it never reaches a sandbox, so replacing it must not cost the next job a fresh sandbox (it did: warm
    sandboxes were never reused during a campaign). The job still cannot read it, before or after."""
    workspace = make_workspace(tmp_path)
    state = tmp_path / "state.json"
    state.write_text("SECRET-v1")
    read = f"try:\n    print('READ', open({str(state)!r}).read())\nexcept OSError:\n    print('DENIED')\n"
    config = SandboxConfig(workspace=workspace, hidden=(state,))
    with WarmPool(tmp_path / "logs") as pool:
        ran, out, _ = _run(pool, config, _script(workspace, "read.py", read))
        assert ran.ok and "DENIED" in out and "SECRET" not in out, out
        for round_ in range(3):
            fresh = tmp_path / "state.tmp"
            fresh.write_text(f"SECRET-v{round_ + 2}")
            fresh.rename(state)  # what the campaign's atomic saves do
            ran, out, _ = _run(pool, config, ["python", "/workspace/read.py"])
            assert ran.ok and "DENIED" in out and "SECRET" not in out, out
        assert pool.started == 1


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_ctx_time_left_counts_down_to_the_jobs_wall_limit(tmp_path: Path, warm: bool) -> None:
    """A method paces itself by ctx.time_left(): inside a job it must see the sandbox's wall limit (here
    45 s), not the method's own 600 s budget."""
    from sandbox_helpers import run_python

    config = SandboxConfig(workspace=make_workspace(tmp_path), limits=Limits(wall_seconds=45))
    ran = run_python(config, """
        from autow2s.testbed.job_clock import job_seconds_left
        print("LEFT", job_seconds_left())
    """, warm=warm)
    assert ran.result.ok, (ran.result, ran.stderr)
    left = float(ran.stdout.split("LEFT")[1])
    assert 30 < left <= 45
