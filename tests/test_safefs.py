"""autow2s.safefs on its own: every trick a job can play on a tree the host reads and writes.

The per-site attacks, through real sandboxed jobs and the real tools, are in test_host_writes.py.
"""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from autow2s.safefs import MAX_DEPTH, SafeTree, UnsafePathError, remove_job_tree

pytestmark = pytest.mark.timeout(30)


@pytest.fixture()
def victim(tmp_path: Path) -> Path:
    """A host file outside the tree: its bytes and mode must never change."""
    path = tmp_path / "victim" / "secrets.json"
    path.parent.mkdir()
    path.write_text("precious")
    path.chmod(0o600)
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> SafeTree:
    (tmp_path / "ws").mkdir()
    return SafeTree(tmp_path / "ws")


def _untouched(victim: Path) -> None:
    assert victim.read_text() == "precious"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert sorted(p.name for p in victim.parent.iterdir()) == ["secrets.json"]


def test_a_write_replaces_a_planted_link_instead_of_writing_through_it(tree: SafeTree, victim: Path) -> None:
    (tree.root / "dangling.md").symlink_to(victim.parent / "new.pth")
    (tree.root / "existing.md").symlink_to(victim)
    (tree.root / "folder").symlink_to(victim.parent)
    os.mkfifo(tree.root / "fifo.md")
    for name in ("dangling.md", "existing.md", "folder", "fifo.md"):
        tree.write_text(name, "host text", mode=0o444)
        assert (tree.root / name).is_file() and not (tree.root / name).is_symlink()
        assert (tree.root / name).read_text() == "host text"
        assert stat.S_IMODE((tree.root / name).stat().st_mode) == 0o444
    _untouched(victim)


def test_no_link_is_followed_on_any_component(tree: SafeTree, victim: Path) -> None:
    (tree.root / "sub").symlink_to(victim.parent)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.read_text("sub/secrets.json")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.write_text("sub/secrets.json", "overwritten")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.write_text("sub/deeper/new.txt", "x")  # making parents does not go through the link either
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.chmod("sub/secrets.json", 0o777)
    (tree.root / "direct").symlink_to(victim)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.read_bytes("direct")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        tree.chmod("direct", 0o777)
    assert tree.kind("direct") == "symbolic link" and not tree.is_file("direct")
    _untouched(victim)


@pytest.mark.parametrize("path", ["/etc/passwd", "../victim/secrets.json", "a/../../x", "a\0b"])
def test_absolute_and_climbing_paths_are_refused_before_any_access(tree: SafeTree, path: str) -> None:
    with pytest.raises(UnsafePathError):
        tree.read_bytes(path)
    with pytest.raises(UnsafePathError):
        tree.write_text(path, "x")


def test_a_fifo_is_refused_at_once_and_never_read(tree: SafeTree) -> None:
    os.mkfifo(tree.root / "preds.json")
    with pytest.raises(UnsafePathError, match="FIFO, not a regular file"):
        tree.read_bytes("preds.json")  # a blocking open would hang here past the test's timeout
    assert tree.kind("preds.json") == "FIFO"


def test_reads_are_capped(tree: SafeTree) -> None:
    (tree.root / "big.txt").write_bytes(b"x" * 5000)
    assert len(tree.read_bytes("big.txt", max_bytes=5000)) == 5000
    with pytest.raises(UnsafePathError, match="over the 4,999-byte limit"):
        tree.read_bytes("big.txt", max_bytes=4999)


def test_an_exclusive_write_never_reuses_an_entry(tree: SafeTree, victim: Path) -> None:
    (tree.root / "snippet.py").symlink_to(victim)
    with pytest.raises(FileExistsError):
        tree.write_text("snippet.py", "print(1)", exclusive=True)
    tree.write_text("fresh.py", "print(1)", exclusive=True)
    assert (tree.root / "fresh.py").read_text() == "print(1)"
    _untouched(victim)


def test_walks_list_regular_files_only_and_never_leave_the_tree(tree: SafeTree, victim: Path) -> None:
    (tree.root / "method").mkdir()
    (tree.root / "method" / "method.py").write_text("def run(ctx): ...")
    (tree.root / "method" / "outside").symlink_to(victim.parent)
    (tree.root / "method" / "secret-link").symlink_to(victim)
    os.mkfifo(tree.root / "method" / "pipe")
    (tree.root / ".scratch").mkdir()
    (tree.root / ".scratch" / "x.txt").write_text("x")
    assert sorted(entry.path for entry in tree.files()) == [".scratch/x.txt", "method/method.py"]
    assert [entry.path for entry in tree.files(skip_dir=lambda name: name == ".scratch")] == ["method/method.py"]
    assert [entry.path for entry in tree.files("method")] == ["method.py"]
    assert tree.disk_bytes() < 1_000_000  # the victim's folder is not counted through the link


def test_remove_tree_deletes_links_not_their_targets_and_reopens_locked_folders(tree: SafeTree, victim: Path) -> None:
    trap = tree.root / "job" / "trap"
    trap.mkdir(parents=True)
    (trap / "link").symlink_to(victim)
    (trap / "folder-link").symlink_to(victim.parent)
    os.mkfifo(trap / "pipe")
    (trap / "deep" / "deeper").mkdir(parents=True)
    (trap / "deep" / "deeper" / "file").write_text("x")
    (trap / "deep" / "deeper").chmod(0)
    trap.chmod(0o500)
    tree.remove_tree("job")
    assert not (tree.root / "job").exists()
    _untouched(victim)


def test_remove_tree_on_a_link_removes_only_the_link(tree: SafeTree, victim: Path) -> None:
    (tree.root / "prior_work").symlink_to(victim.parent)
    tree.remove_tree("prior_work")
    assert not (tree.root / "prior_work").is_symlink()
    _untouched(victim)


@pytest.fixture()
def request_cleanup():  # type: ignore[no-untyped-def]
    made: list[Path] = []
    yield made.append
    for path in made:
        remove_job_tree(path)


def _as_nobody(action) -> int:  # type: ignore[no-untyped-def]
    """Run action() in a child process as uid/gid 65534; its exit status (0: no exception)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            action()
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged owner's case is staged by root dropping to uid 65534")
def test_a_locked_folder_with_a_link_does_not_make_the_clean_up_chmod_the_target(request_cleanup) -> None:  # type: ignore[no-untyped-def]
    """CVE-2023-6597: tempfile.TemporaryDirectory's clean-up chmods the *target* of a link in a folder it
    cannot empty. A job running as the host's own (non-root) user can stage that; remove_job_tree cannot be
    made to. The control shows the attack is real against TemporaryDirectory here."""
    base = Path(tempfile.mkdtemp(prefix="autow2s-safefs-"))  # pytest's tmp_path is root's own (0700)
    base.chmod(0o755)
    os.chown(base, 65534, 65534)
    request_cleanup(base)

    def stage(name: str) -> Path:
        folder = base / name
        victim = base / f"{name}-victim"

        def make() -> None:
            victim.write_text("precious")
            victim.chmod(0o600)
            (folder / "trap").mkdir(parents=True)
            (folder / "trap" / "link").symlink_to(victim)
            (folder / "trap").chmod(0o500)
        assert _as_nobody(make) == 0
        return victim

    control_victim = stage("control")

    def clean_up_with_tempfile() -> None:
        holder = tempfile.TemporaryDirectory(dir=base)
        os.rmdir(holder.name)
        os.rename(base / "control", holder.name)
        holder.cleanup()
    _as_nobody(clean_up_with_tempfile)
    assert stat.S_IMODE(control_victim.stat().st_mode) == 0o700  # the attack works on TemporaryDirectory

    victim = stage("job")
    assert _as_nobody(lambda: remove_job_tree(base / "job")) == 0
    assert not (base / "job").exists()
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600 and victim.read_text() == "precious"


def test_a_job_swapping_a_folder_for_a_link_mid_write_never_reaches_the_victim(tree: SafeTree, victim: Path) -> None:
    """The check-to-use race that `resolve()` then `open()` had: a thread flips .scratch between a real folder
    and a link to the victim's folder while the host writes, reads and lists there a few thousand times."""
    stop = threading.Event()
    scratch = tree.root / ".scratch"

    def flip() -> None:
        while not stop.is_set():
            try:
                if scratch.is_symlink():
                    scratch.unlink()
                    scratch.mkdir()
                else:
                    os.rename(scratch, tree.root / f"old-{threading.get_ident()}-{os.urandom(4).hex()}")
                    scratch.symlink_to(victim.parent)
            except OSError:
                pass

    scratch.mkdir()
    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        for index in range(2000):
            for attempt in (lambda: tree.write_text(".scratch/secrets.json", "overwritten"),
                            lambda: tree.read_text(".scratch/secrets.json"),
                            lambda: tree.files(".scratch"),
                            lambda: tree.chmod(".scratch/secrets.json", 0o666),
                            lambda: tree.unlink(".scratch/secrets.json")):
                try:
                    result = attempt()
                except (OSError, UnsafePathError):
                    continue
                assert result != "precious", f"read the victim through the link on round {index}"
    finally:
        stop.set()
        flipper.join()
    _untouched(victim)


def test_very_deep_trees_are_walked_without_recursion(tree: SafeTree) -> None:
    path = tree.root
    for _ in range(60):
        path = path / "d"
    path.mkdir(parents=True)
    (path / "leaf.txt").write_text("x")
    assert [entry.path.count("/") for entry in tree.files()] == [60]
    tree.remove_tree("d")
    assert not (tree.root / "d").exists()
    assert MAX_DEPTH >= 256
