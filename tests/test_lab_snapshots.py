"""Snapshots: tarball uploads into the lab's bare git repository, with lineage; hostile archives refused."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from lab_helpers import lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures: each lab on SQLite and on PostgreSQL

METHOD = b'"""Vanilla, as a snapshot."""\n\ndef run(ctx):\n    return ctx.weak_soft_labels("test")\n'


def make_tarball(members: list[tuple[str, bytes | None, bytes]], *, mode: str = "w:gz") -> bytes:
    """members: (name, tar type or None for a regular file, content or link target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, kind, content in members:
            info = tarfile.TarInfo(name)
            if kind is None:
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                info.type = kind
                info.linkname = content.decode()
                archive.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory, lab_db):
    with start_lab(lab_data, tmp_path_factory.mktemp("snapshot-state"), db_url=lab_db()) as server:
        yield server


def upload(client, data: bytes, name: str = "vanilla", message: str = "first", parent: str | None = None):
    params = {"name": name, "message": message, **({"parent_id": parent} if parent else {})}
    return client.post("/api/v1/snapshots", params=params, content=data,
                       headers={"content-type": "application/gzip"})


def test_upload_download_and_lineage_live_in_git(lab) -> None:
    token = lab.create_researcher("coder")
    client = lab.client(token)
    first = upload(client, make_tarball([("vanilla/method.py", None, METHOD), ("vanilla/README", None, b"notes")]))
    assert first.status_code == 201, first.text
    root = first.json()["snapshot_id"]
    child = upload(client, make_tarball([("method.py", None, METHOD + b"# tweak\n")]), message="tweak", parent=root)
    assert child.status_code == 201, child.text
    child_id = child.json()["snapshot_id"]
    grandchild = upload(client, make_tarball([("method.py", None, METHOD + b"# more\n")]), message="more",
                        parent=child_id).json()["snapshot_id"]

    lineage = client.get(f"/api/v1/snapshots/{child_id}/lineage").json()
    assert [a["snapshot_id"] for a in lineage["ancestors"]] == [root]
    assert [d["snapshot_id"] for d in lineage["descendants"]] == [grandchild]
    assert lineage["ancestors"][0]["researcher"] == "coder"

    # The lab's repository holds real commits: author, parent and message as uploaded.
    repo = lab.state_dir / "snapshots.git"
    log = subprocess.run(["git", f"--git-dir={repo}", "log", "--format=%H %P|%an|%s", grandchild],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert log == [f"{grandchild} {child_id}|coder|more", f"{child_id} {root}|coder|tweak", f"{root} |coder|first"]

    download = client.get(f"/api/v1/snapshots/{root}/tarball")
    assert download.status_code == 200 and download.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(download.content)) as archive:
        names = sorted(archive.getnames())
        content = archive.extractfile("vanilla/method.py").read()
    assert "vanilla/README" in names and content == METHOD
    other = lab.client(lab.create_researcher("reader"))
    assert other.get(f"/api/v1/snapshots/{root}").json()["name"] == "vanilla"


@pytest.mark.parametrize("members, needle", [
    ([("../evil.py", None, b"x"), ("method.py", None, METHOD)], "traversal"),
    ([("/etc/evil.py", None, b"x"), ("method.py", None, METHOD)], "absolute"),
    ([("method.py", None, METHOD), ("link", tarfile.SYMTYPE, b"/etc/passwd")], "symlink"),
    ([("method.py", None, METHOD), ("hard", tarfile.LNKTYPE, b"method.py")], "link"),
    ([("method.py", None, METHOD), ("tty", tarfile.CHRTYPE, b"")], "device"),
    ([("method.py", None, METHOD), ("fifo", tarfile.FIFOTYPE, b"")], "FIFO"),
    ([("notes.txt", None, b"no method here")], "method.py"),
    ([("method.py", None, METHOD), (".git/config", None, b"x")], ".git"),
])
def test_hostile_archives_are_refused(lab, members, needle: str) -> None:
    client = lab.client(lab.create_researcher(f"attacker-{abs(hash(str(members))) % 10**8}"))
    response = upload(client, make_tarball(members))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "body" and needle in response.json()["error"]


def test_size_limits_and_garbage(lab) -> None:
    client = lab.client(lab.create_researcher("bulky"))
    too_big = upload(client, b"\0" * (3 * 1024 * 1024))
    assert too_big.status_code == 413 and too_big.json()["field"] == "body"
    garbage = upload(client, b"this is not a tarball")
    assert garbage.status_code == 422 and "tar" in garbage.json()["error"]
    bad_parent = upload(client, make_tarball([("method.py", None, METHOD)]), parent="0" * 40)
    assert bad_parent.status_code == 404 and bad_parent.json()["field"] == "parent_id"
    bad_name = client.post("/api/v1/snapshots", params={"name": "../x", "message": "m"}, content=b"x")
    assert bad_name.status_code == 422 and bad_name.json()["field"] == "name"
    assert client.get(f"/api/v1/snapshots/{'f' * 40}").status_code == 404


def test_awkward_names_and_messages_are_4xx(lab) -> None:
    client = lab.client(lab.create_researcher("awkward"))
    clash = make_tarball([("method.py", None, METHOD), ("a", None, b"file"), ("a/b", None, b"under a file")])
    assert upload(client, clash).status_code == 422
    long_name = make_tarball([("method.py", None, METHOD), ("x" * 300, None, b"")])
    assert upload(client, long_name).status_code == 422
    assert upload(client, make_tarball([("method.py", None, METHOD)]), message="nul\x00byte").json()["field"] == "message"
