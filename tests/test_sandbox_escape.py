"""The escape suite: real attempts to break out, run through the same code path as researchers' jobs.

Every attempt prints what it tried; a test fails if any attempt got through.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autow2s.sandbox import Limits, MiB, SandboxConfig
from autow2s.sandbox.limits import NPROC_MARGIN
from sandbox_helpers import Prepared, make_workspace, pids_with_token, prepared, run_command, run_python, wait_until  # noqa: F401

pytestmark = pytest.mark.timeout(60)

SECRET_KEY = "sk-ant-test-DO-NOT-LEAK-4f1c2e"
SECRET_TOKEN = "admin-token-DO-NOT-LEAK-9b7d"


@pytest.fixture(params=[False, True], ids=["cold", "warm"])
def warm(request: pytest.FixtureRequest) -> bool:
    """Every attempt runs twice: in a fresh sandbox per job, and in a warm sandbox's forked child."""
    return bool(request.param)


def _config(workspace: Path, prepared: Prepared, **overrides) -> SandboxConfig:  # type: ignore[no-untyped-def]
    return SandboxConfig(workspace=workspace, task_data=prepared.public, hidden=(prepared.lab,), **overrides)


def test_labels_are_unreachable_by_absolute_path(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    labels = prepared.lab / "test.jsonl"
    assert "label" in labels.read_text()[:2000]  # the file is real and holds labels on the host
    ran = run_python(_config(make_workspace(tmp_path), prepared), f"""
        import os
        for path in [{str(labels)!r}, {str(prepared.lab / "train_label.jsonl")!r}, {str(prepared.root)!r}]:
            try:
                if os.path.isdir(path):
                    print("LEAKED", path, os.listdir(path))
                else:
                    print("LEAKED", path, open(path).read(80))
            except OSError as exc:
                print("DENIED", path, type(exc).__name__)
    """, warm)
    assert ran.result.exit_code == 0, ran.stderr
    assert "LEAKED" not in ran.stdout and ran.stdout.count("DENIED") == 3


def test_labels_are_masked_when_they_lie_under_the_task_data(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    """Bind the whole prepared folder: lab/ is inside it, yet the job finds it empty."""
    config = SandboxConfig(workspace=make_workspace(tmp_path), task_data=prepared.root, hidden=(prepared.lab,))
    ran = run_python(config, """
        import os
        print("PUBLIC", sorted(os.listdir("/task/public"))[:2])
        print("LAB", os.listdir("/task/lab"))
        try:
            open("/task/lab/test.jsonl").read(10); print("LEAKED")
        except OSError as exc:
            print("DENIED", type(exc).__name__)
    """, warm)
    assert "PUBLIC ['task.json', 'test.jsonl']" in ran.stdout
    assert "LAB []" in ran.stdout and "DENIED" in ran.stdout and "LEAKED" not in ran.stdout


def test_labels_are_unreachable_through_proc(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    """The parent's /proc (root, cwd, fds, environ) is not there: the job has its own PID namespace."""
    labels = prepared.lab / "test.jsonl"
    parent = os.getpid()
    ran = run_python(_config(make_workspace(tmp_path), prepared), f"""
        import glob, os
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
        print("PIDS", len(pids))
        candidates = [f"/proc/{parent}/root{labels}", f"/proc/{parent}/cwd", f"/proc/{parent}/environ"]
        for pid in pids:
            candidates += [f"/proc/{{pid}}/root{labels}", f"/proc/{{pid}}/cwd{labels}"]
            candidates += glob.glob(f"/proc/{{pid}}/fd/*")
        for path in candidates:
            try:
                data = open(path, "rb").read(200) if not os.path.isdir(path) else str(os.listdir(path)).encode()
                if b'"label"' in data or b"test.jsonl" in data:
                    print("LEAKED", path)
            except OSError:
                pass
        print("DONE")
    """, warm)
    assert "DONE" in ran.stdout, ran.stderr
    assert "LEAKED" not in ran.stdout
    assert int(ran.stdout.split("PIDS ")[1].split()[0]) <= 3  # the reaper and the job: no host processes


class _LabServer:
    """A listener standing in for the lab server on loopback; it answers with the labels."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.sendall(b"LABELS 1 0 1 1\n")

    def close(self) -> None:
        self.sock.close()


def test_network_is_unreachable(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    server = _LabServer()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as probe:  # reachable from the host
            assert probe.recv(100).startswith(b"LABELS")
        before = server.accepted
        ran = run_python(_config(make_workspace(tmp_path), prepared), f"""
            import socket
            attempts = [("lab", ("127.0.0.1", {server.port})), ("lab6", ("::1", {server.port})),
                        ("outside", ("1.1.1.1", 53)), ("outside-http", ("93.184.216.34", 80))]
            for name, address in attempts:
                try:
                    with socket.create_connection(address, timeout=2) as conn:
                        print("LEAKED", name, conn.recv(100))
                except OSError as exc:
                    print("DENIED", name, type(exc).__name__)
            try:
                socket.getaddrinfo("example.com", 443)
                print("LEAKED dns")
            except OSError as exc:
                print("DENIED dns", type(exc).__name__)
            print("IFACES", sorted(name for _, name in socket.if_nameindex()))
        """, warm)
        assert "LEAKED" not in ran.stdout, ran.stdout
        assert ran.stdout.count("DENIED") == 5, ran.stdout + ran.stderr
        assert "IFACES ['lo']" in ran.stdout  # a private loopback, and nothing else
        assert server.accepted == before
    finally:
        server.close()


def test_secrets_are_not_in_the_environment(prepared: Prepared, tmp_path: Path, warm: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET_KEY)
    monkeypatch.setenv("AUTOW2S_ADMIN_TOKEN", SECRET_TOKEN)
    ran = run_python(_config(make_workspace(tmp_path), prepared), f"""
        import glob, os
        seen = repr(dict(os.environ))
        for path in glob.glob("/proc/*/environ") + ["/proc/1/environ", "/proc/self/environ", "/proc/{os.getppid()}/environ",
                                                     "/proc/{os.getpid()}/environ"]:
            try:
                seen += repr(open(path, "rb").read())
            except OSError:
                pass
        print("KEYS", sorted(os.environ))
        print("LEAKED" if "DO-NOT-LEAK" in seen else "CLEAN")
    """, warm)
    assert "CLEAN" in ran.stdout, ran.stdout + ran.stderr
    assert SECRET_KEY not in ran.stdout + ran.stderr and SECRET_TOKEN not in ran.stdout + ran.stderr
    assert "ANTHROPIC_API_KEY" not in ran.stdout and "AUTOW2S_ADMIN_TOKEN" not in ran.stdout


def test_writes_outside_the_workspace_fail(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    import autow2s

    workspace = make_workspace(tmp_path)
    outside = tmp_path / "outside.txt"
    code_dir = Path(autow2s.__file__).resolve().parent
    targets = [outside, prepared.public / "evil.txt", code_dir / "evil.py", Path(sys.prefix) / "evil.txt",
               Path("/task/evil.txt"), Path("/evil.txt"), Path("/usr/evil.txt"), Path("/etc/passwd")]
    ran = run_python(_config(workspace, prepared), f"""
        for path in {[str(t) for t in targets]!r}:
            try:
                with open(path, "a") as handle:
                    handle.write("pwned")
                print("LEAKED", path)
            except OSError as exc:
                print("DENIED", path, type(exc).__name__)
        open("/workspace/mine.txt", "w").write("ok")
        open("/tmp/scratch.txt", "w").write("private")
        print("DONE")
    """, warm)
    assert "DONE" in ran.stdout, ran.stderr
    assert "LEAKED" not in ran.stdout and ran.stdout.count("DENIED") == len(targets)
    assert not outside.exists() and not (prepared.public / "evil.txt").exists() and not (code_dir / "evil.py").exists()
    assert (workspace / "mine.txt").read_text() == "ok"  # its own workspace is writable


def test_other_workspaces_are_invisible(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    mine = make_workspace(tmp_path, "researcher-1")
    theirs = make_workspace(tmp_path, "researcher-2")
    (theirs / "notes.md").write_text("my best method, do not copy")
    ran = run_python(_config(mine, prepared), f"""
        import os
        for path in [{str(theirs / "notes.md")!r}, {str(theirs)!r}, {str(tmp_path)!r}, "/workspace/../researcher-2"]:
            try:
                print("LEAKED", path, os.listdir(path) if os.path.isdir(path) else open(path).read())
            except OSError as exc:
                print("DENIED", path, type(exc).__name__)
    """, warm)
    assert "LEAKED" not in ran.stdout and ran.stdout.count("DENIED") == 4, ran.stdout + ran.stderr


def test_home_and_root_are_empty(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    ran = run_python(_config(make_workspace(tmp_path), prepared), """
        import os
        def walk(top):
            return sorted(os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs)
        print("HOME", os.path.exists("/home") and os.listdir("/home"))
        print("ROOT", [p for p in walk("/root") if "/.pyenv/versions/" not in p][:3])
        print("ETC", sorted(os.listdir("/etc")))
    """, warm)
    assert "HOME False" in ran.stdout and "ROOT []" in ran.stdout, ran.stdout + ran.stderr
    assert "shadow" not in ran.stdout and "ssh" not in ran.stdout


def _host_latency_probe(stop: threading.Event, worst: list[float]) -> None:
    while not stop.is_set():
        start = time.monotonic()
        subprocess.run(["true"], check=True)
        worst.append(time.monotonic() - start)
        time.sleep(0.1)


@pytest.mark.parametrize("kind", ["bash", "python"])
def test_fork_bomb_is_killed_and_the_host_stays_responsive(prepared: Prepared, tmp_path: Path, kind: str,
                                                           warm: bool) -> None:
    workspace = make_workspace(tmp_path)
    token = f"bomb-{kind}-{os.getpid()}-{time.monotonic_ns()}"
    python_bomb = (f"import os, time  # {token}\nwhile True:\n    try:\n        os.fork()\n"
                   "    except OSError:\n        time.sleep(0.01)")
    config = _config(workspace, prepared, limits=Limits(wall_seconds=30, max_processes=64, memory_bytes=1024 * MiB))
    stop, worst = threading.Event(), []
    probe = threading.Thread(target=_host_latency_probe, args=(stop, worst), daemon=True)
    probe.start()
    try:
        if kind == "bash":
            result = run_command(config, ["bash", "-c", f": {token}; bomb() {{ bomb | bomb & }}; bomb; sleep 30"],
                                 warm).result
        else:
            result = run_python(config, python_bomb, warm).result
    finally:
        stop.set()
        probe.join()
    assert result.limit_hit == "processes", result
    assert result.exit_code == 137 and result.wall_seconds < 15
    assert 0 < result.peak_tasks <= 64 + NPROC_MARGIN  # the kernel's backstop sits a margin above
    assert max(worst) < 2.0, f"the host stalled for {max(worst):.2f} s"
    assert wait_until(lambda: not pids_with_token(token), timeout=5), "bomb processes were left behind"


def test_memory_bomb_is_killed(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    config = _config(make_workspace(tmp_path), prepared, limits=Limits(wall_seconds=30, memory_bytes=256 * MiB))
    # ~800 MB/s: the kernel backstop (limit + 4 GiB of address space) is seconds away, so even a
    # monitor starved by a loaded machine names the limit before the allocation fails.
    ran = run_python(config, """
        import time
        chunks = []
        while True:
            chunks.append(b"x" * (16 * 1024 * 1024))
            time.sleep(0.02)
    """, warm)
    assert ran.result.limit_hit == "memory", ran.result
    assert ran.result.exit_code == 137
    assert ran.result.peak_memory_bytes < 1536 * MiB  # stopped near the limit, not at the machine's end


def test_forked_memory_bomb_is_killed(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    """Memory spread over many processes counts as one job."""
    config = _config(make_workspace(tmp_path), prepared, limits=Limits(wall_seconds=30, memory_bytes=256 * MiB))
    ran = run_python(config, """
        import os, time
        for _ in range(8):
            if os.fork() == 0:
                data = b"y" * (64 * 1024 * 1024)
                time.sleep(60)
        time.sleep(60)
    """, warm)
    assert ran.result.limit_hit == "memory", ran.result
    assert ran.result.wall_seconds < 20


def test_memory_no_process_maps_is_counted(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    """Pages written into a memfd and detached SysV shared memory belong to no process's mappings:
    the sandbox's memory cgroup counts them, and the job is killed for `memory`."""
    from autow2s.sandbox.cgroup import _parent

    if _parent() is None:
        pytest.skip("this host gives no writable memory cgroup (per-process sampling only)")
    config = _config(make_workspace(tmp_path), prepared, limits=Limits(wall_seconds=30, memory_bytes=256 * MiB))
    ran = run_python(config, """
        import ctypes, os, time
        libc = ctypes.CDLL(None, use_errno=True)
        libc.shmat.restype = ctypes.c_void_p
        ident = libc.shmget(0, 128 * 1024 * 1024, 0o1600)
        address = libc.shmat(ident, None, 0)
        ctypes.memset(address, 1, 128 * 1024 * 1024)
        libc.shmdt(ctypes.c_void_p(address))
        fd = os.memfd_create("hoard")
        for _ in range(64):
            os.write(fd, b"x" * (16 * 1024 * 1024))
            time.sleep(0.02)
        print("HOARDED 1.1 GiB")
    """, warm)
    assert "HOARDED" not in ran.stdout, ran
    assert ran.result.limit_hit == "memory" and ran.result.exit_code == 137, ran.result


def test_job_dies_with_its_parent(prepared: Prepared, tmp_path: Path) -> None:
    """Kill -9 the process that started a job: the job goes too, it does not linger unsupervised."""
    workspace = make_workspace(tmp_path)
    token = f"{time.monotonic_ns() % 10**6}.{os.getpid()}"
    script = (f"from pathlib import Path\nfrom autow2s.sandbox import SandboxConfig, run_sandboxed\n"
              f"run_sandboxed(SandboxConfig(workspace=Path({str(workspace)!r})), ['sleep', '{token}'])\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        assert wait_until(lambda: any(p != parent.pid for p in pids_with_token(token)), timeout=20)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not pids_with_token(token), timeout=5), "the job outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_job_cannot_gain_privileges(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    ran = run_python(_config(make_workspace(tmp_path), prepared), """
        import os
        status = open("/proc/self/status").read()
        caps = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Cap")}
        print("UID", os.getuid(), os.geteuid())
        print("CAPS", caps["CapEff"], caps["CapPrm"], caps["CapBnd"])
        print("NNP", [l for l in status.splitlines() if l.startswith("NoNewPrivs")][0].split()[1])
        try:
            os.setuid(0); print("LEAKED setuid")
        except OSError as exc:
            print("DENIED setuid", type(exc).__name__)
    """, warm)
    assert "UID 0" not in ran.stdout, ran.stdout + ran.stderr
    assert "CAPS 0000000000000000 0000000000000000 0000000000000000" in ran.stdout  # none, and none to regain
    assert "NNP 1" in ran.stdout and "DENIED setuid" in ran.stdout
    assert json.dumps(ran.result.to_json())  # the report serialises


def test_workspace_symlinks_do_not_give_host_files_away(prepared: Prepared, tmp_path: Path, warm: bool) -> None:
    """Root hands the workspace to the job's uid; a symlink in it must not hand over its target."""
    host_file = tmp_path / "host-owned.txt"
    host_file.write_text("root's")
    workspace = make_workspace(tmp_path)
    (workspace / "link").symlink_to(host_file)
    (workspace / "dirlink").symlink_to(tmp_path)
    ran = run_python(_config(workspace, prepared), """
        import os
        for path in ["/workspace/link", "/workspace/dirlink/host-owned.txt"]:
            try:
                open(path, "a").write("pwned"); print("LEAKED", path)
            except OSError as exc:
                print("DENIED", path, type(exc).__name__)
    """, warm)
    assert "LEAKED" not in ran.stdout and ran.stdout.count("DENIED") == 2, ran.stdout + ran.stderr
    assert host_file.stat().st_uid == os.geteuid() and tmp_path.stat().st_uid == os.geteuid()
    assert host_file.read_text() == "root's"
