"""Build the bubblewrap command line for one job: what it sees, what it shares, who it runs as.

A job sees a fresh root made of: the system's /usr (and its /bin, /lib symlinks), a few /etc files
the dynamic linker needs, the Python installation and the autow2s code read-only, the task data
read-only at /task, its workspace read-write at /workspace, private /tmp, /dev and /proc. Nothing
else of the host exists there: not /root, not /home, not the lab's data, not the network.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.sandbox.config import TASK_MOUNT, WORKSPACE_MOUNT, SandboxConfig
from autow2s.sandbox.limits import launcher_args, launcher_rlimits

BWRAP_ENV = "AUTOW2S_BWRAP"
GPU_DEVICE_GLOB = "/dev/nvidia*"
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC_ENTRIES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives", "fonts", "nsswitch.conf")
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install "
    "bubblewrap`; Arch: `sudo pacman -S bubblewrap`), or pass --unsafe-no-sandbox to run jobs without "
    "isolation (they can then read labels, secrets and the network)"
)


class SandboxUnavailableError(AutoW2SError):
    """bubblewrap is missing or cannot create namespaces here, so untrusted code must not run."""


@dataclass(frozen=True)
class BwrapFeatures:
    path: str
    has_size: bool
    has_disable_userns: bool


def find_bwrap() -> str | None:
    """$AUTOW2S_BWRAP if set (a path, or empty for "none"), else bwrap on PATH or in /usr/bin."""
    if BWRAP_ENV in os.environ:
        chosen = os.environ[BWRAP_ENV]
        return chosen if chosen and os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap") or next((p for p in ("/usr/bin/bwrap", "/bin/bwrap") if os.access(p, os.X_OK)), None)


@functools.lru_cache(maxsize=1)
def bwrap_features() -> BwrapFeatures:
    """Find bwrap and the options this version knows (Ubuntu 22.04 ships one without --size)."""
    path = find_bwrap()
    if path is None:
        raise SandboxUnavailableError(f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
    for needed in ("--ro-bind-data", "--perms", "--die-with-parent", "--unshare-cgroup-try"):
        if needed not in help_text:
            raise SandboxUnavailableError(f"{path} is too old (no {needed}); install bubblewrap 0.5 or newer")
    return BwrapFeatures(path=path, has_size="--size" in help_text, has_disable_userns="--disable-userns" in help_text)


def running_as_root() -> bool:
    return os.geteuid() == 0


def python_paths() -> list[Path]:
    """What the interpreter and autow2s need, found at run time (never a fixed /root or checkout path)."""
    import autow2s

    candidates = [sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix,
                  str(Path(sys.executable).parent), str(Path(autow2s.__file__).resolve().parent.parent)]
    paths: list[Path] = []
    for raw in candidates:
        for path in {Path(raw), Path(raw).resolve()}:
            if path.exists() and path not in paths:
                paths.append(path)
    return paths


def _outermost(paths: list[Path]) -> list[Path]:
    """Drop paths that lie inside another path of the list, or inside /usr (bound anyway)."""
    keep: list[Path] = []
    for path in sorted(set(paths), key=lambda p: len(p.parts)):
        if path.is_relative_to("/usr") or any(path.is_relative_to(k) for k in keep):
            continue
        keep.append(path)
    return keep


@dataclass
class BwrapPlan:
    """The argv plus the small files handed to bwrap through pipes (passwd, group, hosts)."""

    argv: list[str]
    data_files: dict[str, bytes] = field(default_factory=dict)
    uid: int = 0
    gid: int = 0


class _Builder:
    def __init__(self) -> None:
        self.args: list[str] = []
        self.made_dirs: set[Path] = {Path("/")}
        self.binds: list[tuple[Path, str]] = []  # (host source, sandbox destination)

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def make_parents(self, dest: Path) -> None:
        # bwrap copies a parent's host mode when it creates it; /root is 0700, so make them 0755 first.
        for parent in reversed(dest.parents):
            if parent not in self.made_dirs:
                self.add("--perms", "0755", "--dir", str(parent))
                self.made_dirs.add(parent)

    def bind(self, source: Path, dest: str, *, writable: bool = False, device: bool = False) -> None:
        self.make_parents(Path(dest))
        flag = "--dev-bind" if device else ("--bind" if writable else "--ro-bind")
        self.add(flag, str(source), dest)
        self.made_dirs.add(Path(dest))
        self.binds.append((source, dest))


JOB_FETCH_DIR = "/opt/autow2s-fetch"


def weight_sources() -> dict[str, Path]:
    """The fetched sources a job may read (model weights, never corpora), by name."""
    from autow2s.testbed.fetch.sources import SOURCES
    from autow2s.testbed.fetch.store import is_fetched, source_dir

    found = {name: source_dir(name).resolve() for name, source in SOURCES.items() if source.weights and is_fetched(name)}
    for path in found.values():  # a store fetched before its folders were made world-readable
        if path.stat().st_mode & 0o005 != 0o005:
            try:
                os.chmod(path, 0o755)
            except OSError:
                pass  # not ours: a job that needs the weights then says it cannot read them
    return found


def _job_env(config: SandboxConfig) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    workspace = config.workspace_path()
    threads = str(max(1, config.cpus))
    env = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": workspace,
        "USER": "researcher",
        "LOGNAME": "researcher",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "AUTOW2S_WORKSPACE": workspace,
        "AUTOW2S_CACHE_DIR": f"{workspace}/.cache/autow2s",
        "AUTOW2S_FETCH_DIR": JOB_FETCH_DIR,  # the model weights only (weight_sources)
        "XDG_CACHE_HOME": f"{workspace}/.cache",
        "MPLCONFIGDIR": f"{workspace}/.cache/matplotlib",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }
    if config.task_data is not None:
        env["AUTOW2S_TASK_DATA"] = config.task_data_path() or ""
    env.update(config.env)
    return env


def job_environment(config: SandboxConfig) -> dict[str, str]:
    """The complete environment a job gets: built from scratch, so no host secret can leak in."""
    return _job_env(config)


@dataclass(frozen=True)
class _Bind:
    source: Path
    dest: str
    writable: bool = False
    device: bool = False


def _binds(config: SandboxConfig, task_data: Path | None, workspace: Path) -> list[_Bind]:
    """Everything a sandbox of this config binds from the host, in order (the system, Python, the task, the
    workspace, read-only mounts, model weights)."""
    binds = [_Bind(host, str(host)) for host in (Path("/") / name for name in SYSTEM_DIRS)
             if host.is_dir() and not host.is_symlink()]
    binds += [_Bind(host, str(host)) for host in (Path("/etc") / name for name in ETC_ENTRIES) if host.exists()]
    binds += [_Bind(path, str(path))
              for path in _outermost(python_paths() + [Path(p).resolve() for p in config.extra_ro_binds])]
    if config.gpu:
        binds += [_Bind(Path(device), device, device=True) for device in sorted(glob.glob(GPU_DEVICE_GLOB))]
        if Path("/sys").is_dir():
            binds.append(_Bind(Path("/sys"), "/sys"))  # NVML reads the PCI tree
    if task_data is not None:
        binds.append(_Bind(task_data, TASK_MOUNT))
    binds.append(_Bind(workspace, WORKSPACE_MOUNT, writable=True))
    binds += [_Bind(Path(source).resolve(), dest) for source, dest in config.ro_mounts]
    # The fetched corpora hold the real tasks' labels: a job must never read them (autow2s.testbed.fetch).
    # Model weights hold none, and a real task's experiment needs them: those sources alone are bound, read-only,
    # into a store of the sandbox's own (JOB_FETCH_DIR), so a job loads mpnet without seeing any corpus.
    binds += [_Bind(source, f"{JOB_FETCH_DIR}/sources/{name}") for name, source in weight_sources().items()]
    return binds


def masked_hidden(config: SandboxConfig) -> set[Path]:
    """The hidden paths (resolved) a sandbox of this config has to cover: those under something it binds.

    The others are never in its view at all, so what they hold, or whether they are replaced, changes
    nothing inside it (the warm pool keys sandboxes by what this returns: sandbox/warm.py)."""
    from autow2s.testbed.fetch.store import fetch_dir

    task_data = Path(config.task_data).resolve() if config.task_data is not None else None
    sources = [bind.source for bind in _binds(config, task_data, Path(config.workspace).resolve())]
    hidden = (Path(raw).resolve() for raw in (*config.hidden, fetch_dir()))
    return {path for path in hidden if any(path == source or path.is_relative_to(source) for source in sources)}


def _mask_hidden(builder: _Builder, hidden: tuple[Path, ...]) -> None:
    """Cover every hidden path that lies under something bound with an empty dir or /dev/null."""
    for raw in hidden:
        target = Path(raw).resolve()
        for source, dest in list(builder.binds):
            if target == source or target.is_relative_to(source):
                inside = Path(dest) / target.relative_to(source)
                if target.is_dir():
                    builder.add("--tmpfs", str(inside), "--remount-ro", str(inside))
                elif target.exists():
                    builder.add("--ro-bind", "/dev/null", str(inside))


def build_plan(config: SandboxConfig, command: list[str], lifeline_fd: int = -1) -> BwrapPlan:
    """The bwrap argv that runs `command` (already expanded) under `config`; lifeline_fd is the
    read end of the parent's lifeline pipe (see limits.LAUNCHER)."""
    features = bwrap_features()
    workspace = Path(config.workspace).resolve()
    if not workspace.is_dir():
        raise AutoW2SError(f"workspace {workspace} is not a directory; create it first")
    task_data = Path(config.task_data).resolve() if config.task_data is not None else None
    if task_data is not None and not task_data.is_dir():
        raise AutoW2SError(f"task data {task_data} is not a directory; point --task-data at a public view")

    root = running_as_root()
    if root and task_data is not None and (task_data.stat().st_mode & 0o005) != 0o005:
        raise AutoW2SError(f"task data {task_data} is not readable by others, and jobs started by root run as "
                           f"their own unprivileged user; make it readable: chmod -R a+rX {task_data}")
    uid, gid = (config.job_uid(), config.job_uid()) if root else (os.getuid(), os.getgid())
    b = _Builder()
    b.add(features.path, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
          "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox")
    if root:
        # No user namespace: the launcher needs real root once, to become the job's own uid.
        b.add("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
    else:
        b.add("--unshare-user", "--uid", str(uid), "--gid", str(gid))
        if features.has_disable_userns:
            b.add("--disable-userns")

    # Private /proc, /dev and tmpfs first, so binds below them (a checkout under /tmp) land on top.
    b.add("--proc", "/proc", "--dev", "/dev", "--mqueue", "/dev/mqueue")  # the IPC namespace's own queues
    size = ["--size", str(config.limits.tmp_bytes)] if features.has_size else []
    b.add("--perms", "1777", *size, "--tmpfs", "/tmp", "--perms", "1777", *size, "--tmpfs", "/dev/shm")
    b.made_dirs.update(Path(p) for p in ("/proc", "/dev", "/dev/mqueue", "/tmp", "/dev/shm"))
    for name in SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            b.add("--symlink", os.readlink(host), str(host))
    for bind in _binds(config, task_data, workspace):
        b.bind(bind.source, bind.dest, writable=bind.writable, device=bind.device)
    from autow2s.testbed.fetch.store import fetch_dir

    _mask_hidden(b, config.hidden + (fetch_dir(),))

    data_files = {
        "/etc/passwd": f"root:x:0:0:root:/:/usr/sbin/nologin\nresearcher:x:{uid}:{gid}::{WORKSPACE_MOUNT}:/bin/sh\n",
        "/etc/group": f"root:x:0:\nresearcher:x:{gid}:\n",
        "/etc/hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
        "/etc/hostname": "sandbox\n",
    }
    for key, value in _job_env(config).items():
        b.add("--setenv", key, value)
    b.add("--chdir", WORKSPACE_MOUNT)
    rlimits = launcher_rlimits(config.limits, gpu=config.gpu, reaper_counts=not root)
    b.add(*launcher_args(sys.executable, uid, gid, rlimits, lifeline_fd))
    b.add(*command)
    return BwrapPlan(argv=b.args, data_files={k: v.encode() for k, v in data_files.items()}, uid=uid, gid=gid)


def with_data_fds(plan: BwrapPlan) -> tuple[list[str], list[int]]:
    """Insert `--ro-bind-data FD DEST` for each small file; returns argv and the fds to pass."""
    extra: list[str] = []
    fds: list[int] = []
    for dest, content in plan.data_files.items():
        read_fd, write_fd = os.pipe()
        os.write(write_fd, content)  # a few hundred bytes: fits the pipe buffer
        os.close(write_fd)
        fds.append(read_fd)
        extra += ["--perms", "0644", "--ro-bind-data", str(read_fd), dest]
    argv = list(plan.argv)
    index = argv.index("--chdir")
    return argv[:index] + extra + argv[index:], fds


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    features = bwrap_features()
    argv = [features.path, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--die-with-parent"]
    if not running_as_root():
        argv += ["--unshare-user"]
    try:
        done = subprocess.run(argv + ["true"], capture_output=True, text=True, timeout=30, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit code {done.returncode}")


def require_sandbox(unsafe_no_sandbox: bool = False) -> None:
    """Refuse to go on when jobs cannot be isolated; researchers and executors call this first."""
    if unsafe_no_sandbox:
        return
    bwrap_features()
    problem = _probe()
    if problem is not None:
        raise SandboxUnavailableError(
            f"bubblewrap cannot create a sandbox here ({problem}). Allow user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap on Ubuntu 24.04), "
            "run as root, or pass --unsafe-no-sandbox to run jobs without isolation")
