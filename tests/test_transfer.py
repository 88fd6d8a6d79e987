"""Transfer tasks: researchers can never see them, a transfer job cannot tell which one it runs on, and
`autow2s transfer` runs a finished campaign on more.

The campaign tests reuse the session's finished campaign (tests/web_helpers.py: research on synth-linear,
synth-nonlinear held out for transfer), so they cost a lab start each, not a campaign.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from autow2s.campaign.runner import Campaign
from autow2s.executor import LocalExecutor
from autow2s.researchers.lab_client import LabClient
from autow2s.researchers.tool_specs import TOOL_NAMES
from autow2s.researchers.toolbox import ToolBox
from lab_helpers import lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from test_lab_snapshots import make_tarball, upload
from web_helpers import campaign_run, copy_run, start_dashboard  # noqa: F401 - fixtures

TRANSFER = "synth-nonlinear"
UNKNOWN = "no-such-task"
VANILLA = "import numpy as np\n\ndef run(ctx):\n    return ctx.weak_soft_labels('test')\n"


def _db(run_dir: Path, query: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "lab-state" / "lab.sqlite") as conn:
        return conn.execute(query).fetchall()


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


def _same_as_unknown(client: httpx.Client, method: str, path: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    """A request naming the transfer task is answered exactly as one naming a task that does not exist."""
    def ask(task: str) -> tuple[int, str]:
        replaced = json.loads(json.dumps(kwargs).replace("@TASK@", task))
        response = client.request(method, path, **replaced)
        # An error is compared word for word; an accepted request (a finding tagged with any task) by its status.
        return response.status_code, response.text.replace(task, "@TASK@") if response.status_code >= 400 else ""

    assert ask(TRANSFER) == ask(UNKNOWN), (method, path)


def test_no_researcher_endpoint_or_tool_names_or_serves_a_transfer_task(campaign_run: Path, tmp_path: Path) -> None:
    run = copy_run(campaign_run, tmp_path / "run")
    assert _db(run, "SELECT count(*) FROM transfer_runs WHERE status = 'done'")[0][0] >= 2  # best + vanilla
    token = json.loads((run / "secrets.json").read_text())["researchers"]["search-1"]
    snapshot = _db(run, "SELECT id FROM snapshots LIMIT 1")[0][0]
    ids = {"evaluation_id": "1", "verify_id": "1", "finding_id": "1", "snapshot_id": snapshot, "transfer_id": "1"}
    with start_dashboard(run) as lab, httpx.Client(base_url=lab.url, timeout=60,
                                                   headers={"Authorization": f"Bearer {token}"}) as client:
        # Every endpoint of the API, as the schema lists it (as schemathesis would walk it).
        schema = client.get("/openapi.json").json()
        seen = [client.get("/openapi.json").text]
        for path, operations in schema["paths"].items():
            for method in operations:
                url = _fill(path, ids)
                if path.startswith("/api/v1/admin/"):
                    assert client.request(method, url, json={}).status_code in (403, 422), path
                    continue
                if method == "get":
                    params = {"task": "synth-linear"} if any(p["name"] == "task" for p in
                                                             operations[method].get("parameters", [])) else {}
                    response = client.get(url, params=params)
                    seen.append(response.text)
                    if params:
                        _same_as_unknown(client, "GET", url, params={"task": "@TASK@"})
        for path, body in (("/api/v1/evaluate", {"task": "@TASK@", "predictions": [0.5] * 10}),
                           ("/api/evaluate-predictions", {"task": "@TASK@", "predictions": [0.5] * 10}),
                           ("/api/v1/verify", {"task": "@TASK@", "snapshot_id": snapshot}),
                           ("/api/v1/findings", {"type": "insight", "title": "t", "body": "b", "task": "@TASK@"})):
            _same_as_unknown(client, "POST", path, json=body)
        assert all(TRANSFER not in text for text in seen)

        # Every tool, called as a researcher's policy calls it.
        campaign = Campaign.resume(run)
        campaign.prepare_data()
        workspace = run / "workspaces" / "search-1"
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "m").mkdir()
        (workspace / "m" / "method.py").write_text(VANILLA)
        (workspace / "p.json").write_text(json.dumps({"predictions": [0.5] * 10}))
        toolbox = ToolBox(name="search-1", tasks=campaign.task_names, workspace=workspace,
                          task_view=campaign.task_view, lab=LabClient(lab.url, token),
                          executor=LocalExecutor(run / "jobs"), notebook_path=tmp_path / "notebook.md",
                          hidden=campaign.hidden)
        peek = (f"ls -la /task {run} {run}/transfer-data; cat {run}/leaderboard.json {run}/lab.log {run}/state.json "
                f"{run}/campaign.json; grep -rl {TRANSFER} {run} 2>/dev/null | grep -v '^{run}/workspaces' | head")
        calls = {
            "bash": {"command": peek},
            "python": {"code": f"import os; print(os.listdir('/task'), os.listdir('{run}/transfer-data'))"},
            "read_file": {"path": "m/method.py"}, "write_file": {"path": "n.txt", "content": "x"},
            "edit_file": {"path": "n.txt", "old_text": "x", "new_text": "y"}, "list_files": {},
            "run_experiment": {"method_dir": "m", "seeds": [1], "quick": True},
            "evaluate_predictions": {"predictions_file": "p.json", "task": TRANSFER},
            "share_finding": {"type": "insight", "title": "probe", "body": "where do methods go next?"},
            "search_findings": {"query": TRANSFER}, "read_finding": {"finding_id": 1},
            "comment": {"finding_id": 1, "body": "ok"}, "vote": {"finding_id": 1, "value": 1},
            "leaderboard": {"task": TRANSFER}, "save_snapshot": {"method_dir": "m", "message": "probe"},
            "download_snapshot": {"snapshot_id": snapshot}, "request_verification": {"snapshot_id": snapshot},
            "lab_status": {}, "wait": {"timeout_s": 1}, "notebook": {"action": "read"},
        }
        assert set(calls) == set(TOOL_NAMES)
        for tool, args in calls.items():
            text = toolbox.call(tool, args)
            mentioned = text.replace(f"{TRANSFER!r}", "").replace(f"{TRANSFER}\"", "")  # its own argument, echoed
            if tool in ("evaluate_predictions", "leaderboard", "search_findings"):
                mentioned = mentioned.replace(TRANSFER, "")
            assert TRANSFER not in mentioned, (tool, text[:2000])
            if tool in ("evaluate_predictions", "leaderboard"):  # a transfer task is just an unknown task
                assert text.startswith("error:"), (tool, text)
        toolbox.executor.shutdown()


def test_autow2s_transfer_adds_tasks_to_a_finished_run_without_redoing_any(campaign_run: Path, tmp_path: Path) -> None:
    run = copy_run(campaign_run, tmp_path / "run")
    before = {row[0]: row[1:] for row in _db(run, "SELECT id, snapshot_id, task, finished_at FROM transfer_runs")}
    researchers = json.loads((run / "state.json").read_text())["researchers"]
    env = os.environ | {"COLUMNS": "100"}
    result = subprocess.run([sys.executable, "-m", "autow2s", "transfer", str(run), "--tasks", "synth-pairwise",
                             "--top", "1"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    after = {row[0]: row[1:] for row in _db(run, "SELECT id, snapshot_id, task, finished_at FROM transfer_runs")}
    assert all(after[run_id] == row for run_id, row in before.items())  # the campaign's own runs were reused
    assert json.loads((run / "state.json").read_text())["researchers"] == researchers  # their records kept whole
    added = [row for run_id, row in after.items() if run_id not in before]
    assert {task for _, task, _ in added} == {"synth-pairwise"} and len(added) == 2  # the best method and vanilla
    board = json.loads((run / "leaderboard.json").read_text())
    assert board["rows"][0]["transfer"]["synth-pairwise"]["status"] == "done"
    assert board["vanilla"]["transfer"]["synth-pairwise"]["pgr"] is not None
    assert "transfer" in result.stdout and "vs van." in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100

    refused = subprocess.run([sys.executable, "-m", "autow2s", "transfer", str(run), "--tasks", "synth-linear"],
                             capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 2 and "also a research task" in refused.stderr, refused.stderr


def test_the_printed_leaderboard_with_transfer_columns_fits_80_columns(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import io

    from rich.console import Console

    import autow2s.cli as cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=80, no_color=True))
    row = {"method": "c043-logconf-bootstrap-temperature-confident-x3", "researcher": "search-12", "dev_pgr": 0.91,
           "holdout_pgr": -0.123, "holdout_ci": [-0.5, 0.25], "supervisor_check": "passed",
           "null_supervisor_pgr": -0.052, "transfer_pgr": -0.456, "transfer_beats_vanilla": {"k": 2, "n": 3, "of": 3},
           "vs_vanilla": {"research": {"difference": 0.214, "ci": [0.05, 0.38], "verdict": "better"},
                          "transfer_better": 1, "transfer_worse": 1, "transfer_compared": 3}}
    cli._print_leaderboard({"task": "synth-linear, rt-sentiment", "tasks": ["synth-linear", "rt-sentiment"],
                            "transfer_tasks": ["synth-pairwise", "synth-nonlinear", "tweet-neutral"],
                            "vanilla": {"holdout_pgr": 0.2, "transfer_pgr": 0.1}, "rows": [row] * 3})
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80, out.getvalue()
    table = "\n".join(lines)
    for figure in ("-0.123", "-0.052", "-0.456", "+0.21↑", "1↑1↓/3"):  # every figure whole, none cut by an ellipsis
        assert figure in table, table


# -- a transfer task's view names nothing ----------------------------------------------------------------------
BRANCH = '''"""Tuned for one held-out task: when it can tell it runs on synth-nonlinear, it does something drastic
(its predictions turned over), so any way the task shows itself would show in the transfer PGR."""
import json
import os

import numpy as np

from autow2s.testbed.methods.registry import load_method


def _names_it(ctx):
    seen = [ctx.task.name, ctx.task.description]
    path = os.path.join(os.environ.get("AUTOW2S_TASK_DATA", "/nonexistent"), "task.json")
    if os.path.exists(path):
        seen.append(open(path).read())
    return any("nonlinear" in text for text in seen)


def run(ctx):
    predictions = np.asarray(load_method("vanilla").run(ctx))
    return 1.0 - predictions if _names_it(ctx) else predictions
'''
PLAIN = "from autow2s.testbed.methods.registry import load_method\n\ndef run(ctx):\n    return load_method('vanilla').run(ctx)\n"
SNOOP = '''"""Looks everywhere a job can for the name of the task it runs on, and says where it found it."""
import json
import os

WORDS = ("synth-nonlinear", "nonlinear", "xor")


def run(ctx):
    data = os.environ["AUTOW2S_TASK_DATA"]
    seen = {"environment": json.dumps(dict(os.environ)), "mounts": open("/proc/self/mountinfo").read(),
            "argv": open("/proc/self/cmdline").read(), "task.json": open(os.path.join(data, "task.json")).read(),
            "ids": open(os.path.join(data, "test.jsonl")).readline()[:60]
                   + open(os.path.join(data, "train_unlabel.jsonl")).readline()[:60],
            "files": " ".join(sorted(os.listdir(data)) + sorted(os.listdir(os.path.join(data, "weak")))),
            "weak model": open(os.path.join(data, "weak", "model.json")).read(),
            "ctx.task": repr(ctx.task), "hostname": open("/etc/hostname").read()}
    found = [where for where, text in seen.items() if any(word in text.lower() for word in WORDS)]
    raise RuntimeError("LEAK: the task is named in " + ", ".join(found) if found else "nothing here names the task")
'''


def _named_transfer_task(out: Path) -> Path:
    """A small synth-nonlinear whose every id, and its task.json, name it: what a neutral view must hide."""
    from autow2s.testbed.prepare import prepare_task
    from autow2s.testbed.tasks.dataset import Split, Task
    from autow2s.testbed.tasks.registry import PRESETS, TASKS
    from autow2s.testbed.tasks.synthetic import generate

    config = PRESETS[TRANSFER].with_overrides(n_train_label=300, n_train_unlabel=1000, n_test=1000, data_seed=4)
    task = generate(TRANSFER, config, TASKS[TRANSFER].description)
    splits = {name: Split(ids=[f"{TRANSFER}-{rid}" for rid in split.ids], labels=split.labels, strong=split.strong,
                          weak=split.weak) for name, split in task.splits.items()}
    prepare_task(Task(meta=task.meta, splits=splits), out / TRANSFER)
    return out


def _transfer(admin: httpx.Client, snapshot_id: str) -> dict:
    import time

    queued = admin.post("/api/v1/admin/transfer", json={"snapshot_id": snapshot_id, "task": TRANSFER})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 600
    while (run := admin.get(f"/api/v1/admin/transfer/{queued.json()['transfer_id']}").json())["status"] not in (
            "done", "failed"):
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    return run


@pytest.mark.slow  # a lab with a transfer task, and three transfer runs of five seeds
def test_a_transfer_job_cannot_tell_which_task_it_runs_on(lab_data: Path, tmp_path: Path) -> None:
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.public_run import predict_public

    transfer = _named_transfer_task(tmp_path / "transfer")
    public = transfer / TRANSFER / "public"
    assert TRANSFER in (public / "task.json").read_text() and TRANSFER in (public / "test.jsonl").read_text()[:100]
    # Control: on the public view itself (the name in task.json and ctx) the branch fires and turns vanilla over.
    for name, source in (("branch", BRANCH), ("plain", PLAIN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "method.py").write_text(source)
    fired, plain = (predict_public(public, load_method(str(tmp_path / name)), 7)[1] for name in ("branch", "plain"))
    assert np.allclose(fired, 1.0 - plain)

    with start_lab(lab_data, tmp_path / "state", extra_args=["--transfer-data", str(transfer)]) as lab:
        client, admin = lab.client(lab.create_researcher("tuner")), lab.admin()
        snapshots = {name: upload(client, make_tarball([(f"{name}/method.py", None, source.encode())]),
                                  name=name).json()["snapshot_id"]
                     for name, source in (("snoop", SNOOP), ("branch", BRANCH), ("plain", PLAIN))}
        runs = {name: _transfer(admin, snapshot) for name, snapshot in snapshots.items()}
    snoop = runs["snoop"]
    assert snoop["status"] == "failed" and "nothing here names the task" in snoop["error"], snoop["error"]
    assert "nonlinear" not in snoop["error"].lower()  # nor does the error text the lab keeps
    branch, plain_run = runs["branch"], runs["plain"]
    assert branch["status"] == plain_run["status"] == "done", (branch["error"], plain_run["error"])
    # The branch gains (or loses) nothing: its transfer PGR is the plain method's, within their intervals.
    half = sum((run["holdout_ci"][1] - run["holdout_ci"][0]) / 2 for run in (branch, plain_run))
    # (Had it fired, its accuracy would be one minus vanilla's: a PGR far outside both intervals.)
    assert abs(branch["holdout_pgr"] - plain_run["holdout_pgr"]) <= half, (branch, plain_run)
