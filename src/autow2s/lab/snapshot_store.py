"""Method snapshots in one bare git repository: each upload is a commit whose parent is the
parent snapshot, so lineage is git history as well as a table.

Uploads are tarballs from untrusted researchers: only regular files and directories with
relative, non-escaping names are accepted, within size and file-count limits, and they are
written out by hand (never tarfile.extractall).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from autow2s.lab.errors import APIError

if TYPE_CHECKING:
    from autow2s.lab.settings import LabSettings


def _reject(message: str) -> APIError:
    return APIError(422, f"body: {message}", field="body", outcome="bad_snapshot")


def _clean_name(name: str) -> PurePosixPath:
    if not name or "\x00" in name:
        raise _reject("a member has an empty name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or name.startswith("\\"):
        raise _reject(f"member {name!r} has an absolute path; archive the method directory with relative paths")
    parts = [p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", ".")]
    if any(part == ".." for part in parts):
        raise _reject(f"member {name!r} escapes the archive with '..'; path traversal is refused")
    if any(part == ".git" for part in parts):
        raise _reject(f"member {name!r} is inside a .git directory; send the method's files only")
    if not parts:
        return PurePosixPath(".")
    return PurePosixPath(*parts)


def read_method_tarball(data: bytes, *, max_files: int, max_unpacked: int) -> dict[str, bytes]:
    """Validate an uploaded tarball and return {relative path: content}, rooted at method.py's folder."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise _reject(f"not a readable tar archive (.tar, .tar.gz, .tar.bz2 or .tar.xz): {exc}") from None
    files: dict[PurePosixPath, bytes] = {}
    total = 0
    try:
        with archive:
            for count, member in enumerate(archive, start=1):
                if count > max_files:
                    raise _reject(f"more than {max_files} members; a method snapshot holds code only")
                path = _clean_name(member.name)
                if member.issym() or member.islnk():
                    raise _reject(f"member {member.name!r} is a link; symlinks and hard links are refused")
                if member.isdev() or member.isfifo() or member.ischr() or member.isblk():
                    raise _reject(f"member {member.name!r} is a device or FIFO; only regular files are accepted")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise _reject(f"member {member.name!r} is not a regular file")
                total += member.size
                if total > max_unpacked:
                    raise _reject(f"the unpacked files exceed {max_unpacked} bytes")
                handle = archive.extractfile(member)
                files[path] = handle.read() if handle is not None else b""
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:
        raise _reject(f"the tar archive is corrupt: {exc}") from None
    return _root_at_method(files)


def _root_at_method(files: dict[PurePosixPath, bytes]) -> dict[str, bytes]:
    if PurePosixPath("method.py") not in files:
        tops = {p.parts[0] for p in files}
        if len(tops) == 1 and all(len(p.parts) > 1 for p in files):
            top = next(iter(tops))
            files = {PurePosixPath(*p.parts[1:]): content for p, content in files.items()}
            if PurePosixPath("method.py") not in files:
                raise _reject(f"no method.py in {top}/; a method directory holds method.py defining run(ctx)")
        else:
            raise _reject("no method.py at the top of the archive; a method directory holds method.py defining run(ctx)")
    return {str(p): content for p, content in files.items()}


class SnapshotStore:
    def __init__(self, repo: Path, settings: LabSettings) -> None:
        self.repo = repo
        self.settings = settings

    def _env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.repo), "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_COMMITTER_NAME": "autow2s lab",
               "GIT_COMMITTER_EMAIL": "lab@autow2s.invalid"}
        env.update(extra)
        return env

    def _git(self, *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> bytes:
        result = subprocess.run(["git", f"--git-dir={self.repo}", *args], input=stdin, capture_output=True,
                                env=env or self._env(), timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"git {args[0]} failed: {result.stderr.decode(errors='replace').strip()[:500]}")
        return result.stdout

    def init(self) -> None:
        if not (self.repo / "HEAD").is_file():
            self.repo.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "init", "--bare", "-q", str(self.repo)], check=True, env=self._env(), timeout=60)

    def commit(self, files: dict[str, bytes], *, author_name: str, author_email: str, parent: str | None,
               message: str) -> str:
        """Write the files as a tree and commit it with the parent snapshot as the commit's parent."""
        with tempfile.TemporaryDirectory(prefix="autow2s-snapshot-") as tmp:
            work = Path(tmp) / "work"
            for name, content in files.items():
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            env = self._env(GIT_INDEX_FILE=str(Path(tmp) / "index"), GIT_AUTHOR_NAME=author_name,
                            GIT_AUTHOR_EMAIL=author_email)
            self._git(f"--work-tree={work}", "add", "-A", ".", env=env)
            tree = self._git("write-tree", env=env).decode().strip()
            parents = ["-p", parent] if parent else []
            commit = self._git("commit-tree", tree, *parents, "-F", "-", env=env, stdin=message.encode()).decode().strip()
        self._git("update-ref", f"refs/snapshots/{commit}", commit)
        return commit

    def tarball(self, snapshot_id: str, prefix: str) -> bytes:
        return self._git("archive", "--format=tar.gz", f"--prefix={prefix}/", snapshot_id)

    def checkout(self, snapshot_id: str, dest_parent: Path, name: str = "method") -> Path:
        """The snapshot's files under dest_parent/name (for the verify runner)."""
        data = self._git("archive", "--format=tar", snapshot_id)
        files = read_method_tarball(data, max_files=self.settings.max_snapshot_files,
                                    max_unpacked=self.settings.max_snapshot_unpacked_bytes)
        target = dest_parent / name
        for rel, content in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        return target
