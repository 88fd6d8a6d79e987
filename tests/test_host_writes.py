"""The host-write escape suite: a sandboxed job plants a trap, then the host touches that path.

For every host-side site that reads, writes, lists, chmods, chowns or deletes inside a tree a job can
write (docs/sandbox.md, "Host-side file access"), a real job, run through the researcher's own bash
tool, plants (a) a dangling symlink, (b) a symlink to an existing victim file, (c) a symlink to a
directory, (d) a FIFO, or (e) replaces a directory the host used in an earlier call with a symlink.
Then the real tool call runs. The host must refuse or work around it, write nothing outside the
workspace, leave the victim's bytes, mode and owner unchanged, and never hang.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from autow2s.researchers.toolbox import ToolBox
from lab_helpers import LabServer, lab_data, start_lab  # noqa: F401 - fixture
from toolbox_helpers import toolbox_factory

pytestmark = pytest.mark.timeout(180)

METHOD = "def run(ctx):\n    return ctx.weak_soft_labels('test')\n"


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_lab(lab_data, tmp_path_factory.mktemp("host-writes-lab")) as server:
        yield server


@pytest.fixture()
def make_toolbox(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator:
    with toolbox_factory(lab, lab_data, tmp_path) as make:
        yield make


@dataclass
class Victim:
    """A host file and folder outside every workspace; jobs run as their own uid and cannot reach them."""

    folder: Path
    file: Path

    def state(self) -> tuple:
        info = self.file.stat()
        listing = sorted((p.name, stat.S_IMODE(p.lstat().st_mode)) for p in self.folder.iterdir())
        folder = self.folder.stat()
        return (self.file.read_bytes(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, listing,
                stat.S_IMODE(folder.st_mode), folder.st_uid)


@pytest.fixture()
def victim(tmp_path: Path) -> Victim:
    folder = tmp_path / "victim"
    folder.mkdir()
    folder.chmod(0o755)
    file = folder / "secrets.json"
    file.write_text("precious")
    file.chmod(0o600)
    return Victim(folder, file)


def bash(toolbox: ToolBox, command: str) -> str:
    reply = toolbox.call("bash", {"command": command})
    assert reply.startswith("exit 0"), reply
    return reply


def plant(toolbox: ToolBox, variant: str, path: str, victim: Victim) -> None:
    """A job makes `path` (inside /workspace) into the trap."""
    target = {"dangling": f"{victim.folder}/planted.pth", "file-link": str(victim.file),
              "dir-link": str(victim.folder)}.get(variant)
    make = f"mkfifo {path}" if variant == "fifo" else f"ln -s {target} {path}"
    bash(toolbox, f"cd /workspace && mkdir -p $(dirname {path}) && rm -rf {path} && {make} && ls -la $(dirname {path})")


@dataclass(frozen=True)
class Site:
    """A host-side site: the path a job plants its trap at, and the tool call(s) that make the host touch it.

    act(toolbox, path) -> the reply; `folder` is the directory the swap variant (e) replaces with a link
    (act is then given folder/leaf)."""

    name: str
    path: str
    act: Callable[[ToolBox, str], str]
    folder: str = "sub"
    leaf: str = "notes.md"
    setup: Callable[[ToolBox], None] = lambda toolbox: None


def _run_experiment(toolbox: ToolBox, path: str) -> str:
    return toolbox.call("run_experiment", {"method_dir": path, "seeds": [1]})


def _save_snapshot(toolbox: ToolBox, path: str) -> str:
    folder = path.rsplit("/", 1)[0]
    toolbox.call("write_file", {"path": f"{folder}/method.py", "content": METHOD})
    reply = toolbox.call("save_snapshot", {"method_dir": folder, "message": "trap"})
    if reply.startswith("error"):
        return reply
    snapshot = json.loads(reply)["snapshot_id"]
    toolbox.call("bash", {"command": "rm -rf /workspace/prior_work"})
    downloaded = toolbox.call("download_snapshot", {"snapshot_id": snapshot})
    uploaded = toolbox.call("bash", {"command": f"cat /workspace/prior_work/{snapshot}/* 2>&1; true"})
    assert "precious" not in uploaded  # the victim's bytes never went into the lab
    return downloaded


def _download_setup(toolbox: ToolBox) -> None:
    toolbox.call("write_file", {"path": "keep/method.py", "content": METHOD})
    toolbox._saved = json.loads(toolbox.call("save_snapshot", {"method_dir": "keep", "message": "kept"}))[  # type: ignore[attr-defined]
        "snapshot_id"]


def _download(toolbox: ToolBox, path: str) -> str:
    snapshot = toolbox._saved  # type: ignore[attr-defined]
    if path.startswith("prior_work/") and path != f"prior_work/{snapshot}":  # the swap variant names folder/leaf
        path = "prior_work"
    return toolbox.call("download_snapshot", {"snapshot_id": snapshot})


def _views(toolbox: ToolBox, path: str) -> str:
    toolbox.call("share_finding", {"type": "insight", "title": "a finding", "body": "import os  # body"})
    toolbox.refresh_views(force=True)
    rebuilt = ToolBox(name=toolbox.name, tasks=toolbox.tasks, workspace=toolbox.workspace, task_view=toolbox.task_view,
                      lab=toolbox.lab, executor=toolbox.executor, notebook_path=toolbox.notebook_path,
                      view_dir=toolbox.view_dir)  # a new toolbox on the same workspace (a resume, `autow2s mcp`)
    rebuilt.refresh_views(force=True)
    return toolbox.call("bash", {"command": "ls /forum /reference; cat /forum/*.md | head -5"})


SITES = [
    Site("write_file", "notes.md", lambda t, p: t.call("write_file", {"path": p, "content": "from the host"})),
    Site("edit_file", "notes.md", lambda t, p: t.call("edit_file", {"path": p, "old_text": "precious",
                                                                      "new_text": "HACKED"})),
    Site("read_file", "notes.md", lambda t, p: t.call("read_file", {"path": p})),
    Site("evaluate_predictions", "preds.json",
         lambda t, p: t.call("evaluate_predictions", {"predictions_file": p}), leaf="preds.json"),
    Site("list_files", "listed", lambda t, p: t.call("list_files", {"path": p}), leaf="inner"),
    Site("python_snippet", ".scratch", lambda t, p: t.call("python", {"code": "print(6 * 7)"}), folder=".scratch",
         leaf=""),
    Site("output_spill", ".scratch", lambda t, p: t.call("bash", {"command": "seq 1 40000"}), folder=".scratch",
         leaf=""),
    Site("run_experiment_method", "method", _run_experiment, leaf="method"),
    Site("save_snapshot", "snap/extra.py", _save_snapshot, folder="snap", leaf="extra.py"),
    Site("download_snapshot", "prior_work/SNAPSHOT", _download, folder="prior_work", leaf="", setup=_download_setup),
    Site("forum_and_reference", "forum/00001.md", _views, folder="reference", leaf="METHOD_API.md"),
    Site("job_bookkeeping", "out", lambda t, p: t.call("bash", {"command": "echo hi > /workspace/out/x; true"}),
         folder="out", leaf=""),
]
VARIANTS = ["file-link", "dangling", "dir-link", "fifo", "swapped-dir"]
CASES = [pytest.param(site, variant, id=f"{site.name}-{variant}",
                      marks=() if variant == "file-link" else pytest.mark.slow)
         for site in SITES for variant in VARIANTS]


@pytest.mark.parametrize(("site", "variant"), CASES)
def test_a_planted_trap_never_makes_the_host_touch_anything_outside(make_toolbox, victim: Victim, site: Site,
                                                                   variant: str) -> None:
    toolbox = make_toolbox(f"trap-{site.name}-{variant}".replace("_", "-")[:40])
    site.setup(toolbox)
    before = victim.state()
    path = site.path.replace("SNAPSHOT", str(getattr(toolbox, "_saved", "")))
    if variant == "swapped-dir":
        inner = f"{site.folder}/{site.leaf}".rstrip("/")
        bash(toolbox, f"mkdir -p /workspace/{site.folder} && echo precious > /workspace/{site.folder}/notes.md")
        site.act(toolbox, inner)  # the host uses the real folder once
        bash(toolbox, f"cd /workspace && rm -rf {site.folder} && ln -s {victim.folder} {site.folder}")
        reply = site.act(toolbox, inner)
    else:
        plant(toolbox, variant, path, victim)
        reply = site.act(toolbox, path)
    assert victim.state() == before, f"{site.name}/{variant} changed the victim; the tool said: {reply[:500]}"
    assert "precious" not in reply, reply[:500]
    assert "planted.pth" not in os.listdir(victim.folder)
    # the tools still work afterwards: the researcher can clean up and go on
    bash(toolbox, "cd /workspace && rm -rf notes.md preds.json listed .scratch method snap prior_work out sub forum "
                  "reference")
    assert toolbox.call("write_file", {"path": "after.md", "content": "ok"}).startswith("wrote")
    assert toolbox.call("read_file", {"path": "after.md"}) == "ok"


def test_the_three_reported_reproductions_no_longer_touch_the_victim(make_toolbox, victim: Victim) -> None:
    """Issue 24's three sites: the forum mirror, the method reference and the experiment launcher."""
    toolbox = make_toolbox("reproductions")
    bash(toolbox, f"mkdir -p /workspace/forum /workspace/reference /workspace/.scratch && "
                  f"ln -s {victim.folder}/zz.pth /workspace/forum/00001.md && "
                  f"ln -s {victim.file} /workspace/reference/METHOD_API.md && "
                  f"ln -s {victim.file} /workspace/.scratch/experiment_job.py")
    before = victim.state()
    toolbox.call("share_finding", {"type": "insight", "title": "t", "body": "import os; os.system('touch /pwned')"})
    toolbox.refresh_views(force=True)
    ToolBox(name=toolbox.name, tasks=toolbox.tasks, workspace=toolbox.workspace, task_view=toolbox.task_view,
            lab=toolbox.lab, executor=toolbox.executor, notebook_path=toolbox.notebook_path,
            view_dir=toolbox.view_dir)
    toolbox.call("write_file", {"path": "m/method.py", "content": METHOD})
    result = json.loads(toolbox.call("run_experiment", {"method_dir": "m", "seeds": [1]}))
    assert result["seeds_scored"] == 1, result
    assert victim.state() == before and not (victim.folder / "zz.pth").exists()
    # the forum mirror still works, read-only, at its own mount
    seen = toolbox.call("bash", {"command": "cat /forum/*.md; touch /forum/x && echo WROTE; "
                                            "echo x >> /reference/METHOD_API.md && echo WROTE; true"})
    assert "os.system('touch /pwned')" in seen and "WROTE" not in seen, seen
    assert "ctx.strong_model" in toolbox.call("read_file", {"path": "/reference/METHOD_API.md"})
    assert "/forum/" in toolbox.call("list_files", {})


AT_EXIT_TRAP = """import atexit, os, sys

def run(ctx):
    out = sys.argv[sys.argv.index("--out") + 1]

    def trap():  # after the job wrote its predictions: swap them for {variant}
        os.unlink(out)
        {make}
    atexit.register(trap)
    return ctx.weak_soft_labels("test")
"""


@pytest.mark.parametrize("variant", ["file-link", pytest.param("fifo", marks=pytest.mark.slow)])
def test_an_experiments_output_swapped_for_a_trap_is_refused(make_toolbox, victim: Victim, variant: str) -> None:
    make = f"os.symlink({str(victim.file)!r}, out)" if variant == "file-link" else "os.mkfifo(out)"
    toolbox = make_toolbox(f"output-{variant}")
    toolbox.call("write_file", {"path": "m/method.py", "content": AT_EXIT_TRAP.format(variant=variant, make=make)})
    before = victim.state()
    result = json.loads(toolbox.call("run_experiment", {"method_dir": "m", "seeds": [1]}))
    entry = result["per_seed"][0]
    assert result["mean_dev_pgr"] is None and result["scored"].startswith("scored 0 of 1 seeds")
    assert "without readable predictions" in entry["error"]
    assert ("symbolic link" if variant == "file-link" else "FIFO") in entry["error"]
    assert victim.state() == before


VERIFY_TRAP = """import atexit, os, sys

def run(ctx):
    out = sys.argv[sys.argv.index("--out") + 1].replace("{{seed}}", str(ctx.seed))
    os.makedirs("/workspace/trap", exist_ok=True)
    if not os.path.lexists("/workspace/trap/link"):
        os.symlink({victim!r}, "/workspace/trap/link")
    os.chmod("/workspace/trap", 0o500)

    def trap():
        if os.path.lexists(out):
            os.unlink(out)
        {make}
    atexit.register(trap)
    return ctx.weak_soft_labels("test")
"""


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["file-link", "fifo"])
def test_a_verify_jobs_predictions_swapped_for_a_trap_fail_the_run_and_its_folder_is_removed(
        tmp_path: Path, victim: Victim, variant: str) -> None:
    import subprocess

    from autow2s.lab.runners import SandboxedRunner
    from sandbox_helpers import AUTOW2S

    public = tmp_path / "prep"
    subprocess.run([AUTOW2S, "prepare", "synth-linear", "--out", str(public)], check=True, capture_output=True,
                   timeout=300)
    public.chmod(0o755)
    make = f"os.symlink({str(victim.file)!r}, out)" if variant == "file-link" else "os.mkfifo(out)"
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "method.py").write_text(VERIFY_TRAP.format(victim=str(victim.file), make=make))
    runner = SandboxedRunner(hidden=(public / "lab",), job_dir=tmp_path / "jobs")
    before = victim.state()
    try:
        with pytest.raises(Exception, match=r"symbolic link|FIFO") as raised:
            runner.run(snapshot, public / "public", [1])
    finally:
        runner.shutdown()
    assert victim.state() == before, raised.value
    assert not any(p.name.startswith("job-") for p in (tmp_path / "jobs").iterdir())  # removed, trap and all


# -- the guard: no new host-side file access into a job-writable tree without autow2s.safefs --------------

import ast  # noqa: E402

SRC = Path(__file__).resolve().parent.parent / "src" / "autow2s"
# Modules that run on the host (the sandbox's own insides, and the testbed that jobs import, are not).
HOST_SIDE = ("researchers", "campaign", "executor", "lab", "report", "rundir", "sandbox", "cli.py")
RUNS_IN_THE_SANDBOX = {"sandbox/zygote.py", "researchers/experiment_job.py"}
# What names a tree a job can write: a workspace, a verify job's folder, and the folders inside them.
TAINTED_NAMES = ("workspace", "scratch", "prior_work", "method_dir", "job_workspace")
TAINTED_STRINGS = (".scratch", ".runs", "prior_work", "/workspace")
PATH_METHODS = {"write_text", "write_bytes", "read_text", "read_bytes", "open", "mkdir", "rmdir", "unlink", "chmod",
                "lchmod", "chown", "rename", "replace", "symlink_to", "touch", "iterdir", "glob", "rglob", "exists",
                "is_file", "is_dir", "is_symlink", "stat", "lstat", "resolve", "readlink", "hardlink_to"}
FILE_FUNCTIONS = {"open", "os.open", "os.walk", "os.fwalk", "os.scandir", "os.listdir", "os.chmod", "os.chown",
                  "os.lchown", "os.remove", "os.unlink", "os.rename", "os.replace", "os.makedirs", "os.mkdir",
                  "os.rmdir", "os.stat", "os.lstat", "os.symlink", "os.link", "os.mkfifo", "shutil.rmtree",
                  "shutil.copytree", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.move", "glob.glob",
                  "tempfile.TemporaryDirectory", "tarfile.open"}
# Each reviewed use, and why it is safe. A new entry needs the same review.
REVIEWED = {
    ("campaign/runner.py", "toolbox"): "makes the workspace root itself, before any job runs in it",
    ("campaign/verify.py", "_baseline_snapshot"): "writes vanilla's method.py in a temporary folder of the host's own",
    ("campaign/attach.py", "_others"): "lists workspaces/, the parent of every workspace, which no job sees",
    ("sandbox/bwrap.py", "build_plan"): "checks that the workspace root is a directory; the root is the host's",
    ("sandbox/bwrap.py", "masked_hidden"): "resolves the workspace root, as build_plan does, only to compare paths; "
                                           "opens nothing inside it",
    ("sandbox/config.py", "job_uid"): "resolves the root's path to derive a uid; nothing below the root",
    ("sandbox/config.py", "workspace_path"): "the root's path, as the job sees it without a sandbox",
    ("sandbox/warm.py", "run"): "resolves the root's path for the sandbox key; nothing below the root",
    ("sandbox/warm.py", "_spawn"): "resolves the root's path to chown it (through safefs) and bind it",
    ("sandbox/runner.py", "run_sandboxed"): "resolves the root's path; nothing below the root",
    ("sandbox/runner.py", "_argv"): "resolves the root's path for a job without a sandbox; nothing below the root",
    ("sandbox/watch.py", "give_workspace_to"): "lstat/chown/chmod of the root itself (no follow); below it: safefs",
    ("executor/job.py", "run_job"): "resolves the root's path; the files below it are listed through safefs",
    ("lab/runners.py", "run"): "copies the snapshot into a folder made this instant, before the job exists",
}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _mentions_a_job_tree(node: ast.AST, tainted: set[str]) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and (child.id in tainted or any(n in child.id.lower() for n in TAINTED_NAMES)):
            return True
        if isinstance(child, ast.Attribute) and any(n in child.attr.lower() for n in TAINTED_NAMES):
            return True
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and \
                any(s in child.value for s in TAINTED_STRINGS):
            return True
    return False


def unguarded_file_access() -> list[str]:
    """Host-side calls that touch a path derived from a job-writable tree without going through safefs."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC))
        if not rel.startswith(HOST_SIDE) or rel in RUNS_IN_THE_SANDBOX:
            continue
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            tainted: set[str] = set()
            for node in ast.walk(function):  # taint flows through assignments: folder = workspace / "forum"
                if isinstance(node, ast.Assign) and _mentions_a_job_tree(node.value, tainted):
                    tainted |= {t.id for t in node.targets if isinstance(t, ast.Name)}
                if isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name) and \
                        _mentions_a_job_tree(node.context_expr, tainted):
                    tainted.add(node.optional_vars.id)
            for node in ast.walk(function):
                if not isinstance(node, ast.Call):
                    continue
                name = _dotted(node.func)
                hit = False
                if isinstance(node.func, ast.Attribute) and node.func.attr in PATH_METHODS and \
                        name not in FILE_FUNCTIONS and _mentions_a_job_tree(node.func.value, tainted):
                    hit = not name.startswith(("self.files.", "tree.", "written."))
                elif name in FILE_FUNCTIONS:
                    hit = any(_mentions_a_job_tree(arg, tainted) for arg in [*node.args, *[k.value for k in node.keywords]])
                if hit and (rel, function.name) in REVIEWED:
                    reviewed_hits.add((rel, function.name))
                elif hit:
                    found.append(f"{rel}:{node.lineno} in {function.name}(): {ast.unparse(node)[:120]}")
    return found


reviewed_hits: set[tuple[str, str]] = set()


def test_no_host_side_file_access_into_a_job_tree_bypasses_safefs() -> None:
    found = unguarded_file_access()
    assert not found, ("host-side file access to a tree a job can write, not through autow2s.safefs (use SafeTree, "
                       "or review the call and add it to REVIEWED with the reason it is safe):\n" + "\n".join(found))
    stale = set(REVIEWED) - reviewed_hits
    assert not stale, f"REVIEWED entries that no longer match any call (remove them): {sorted(stale)}"


def test_the_guard_catches_the_reported_pattern(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check itself fails on the code issue 24 reported (campaign/researchers.py's old mirror_forum)."""
    fake = tmp_path / "src" / "autow2s"
    (fake / "campaign").mkdir(parents=True)
    (fake / "campaign" / "researchers.py").write_text(
        "def mirror_forum(lab, task, workspace):\n"
        "    folder = workspace / 'forum'\n"
        "    path = folder / '00042.md'\n"
        "    if not path.exists():\n"
        "        path.write_text('body')\n")
    monkeypatch.setattr(__import__(__name__), "SRC", fake)
    found = unguarded_file_access()
    assert len(found) == 2 and all("mirror_forum" in line for line in found), found
