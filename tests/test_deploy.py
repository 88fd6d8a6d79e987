"""docs/deploy.md followed step by step on loopback: one lab, two campaigns joining it, and a resume.

Every `deploy-step` block of the doc runs as written, in bash, with the loopback values below in
place of the doc's settings. The lab runs on a fresh PostgreSQL database (tests/pg_helpers.py) when
PostgreSQL is installed or AUTOW2S_TEST_PG_URL names a server, and on SQLite otherwise. The steps
that cannot run here as written are in NOT_RUN, with what the test does instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lab_helpers import READY_TIMEOUT_S, free_port
from pg_helpers import PG_URL_ENV, fresh_databases, pg_server, postgres_installed  # noqa: F401 - pg_server: a fixture

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
STEP = re.compile(r"<!-- deploy-step: ([a-z-]+) -->\n```bash\n(.*?)```", re.S)
ORDER = ["settings", "database", "admin-token", "prepare", "serve", "firewall", "campaign", "resume", "leaderboard",
         "backup", "upgrade", "ray-cluster", "ray-campaign", "ray-lab"]
NOT_RUN = {
    "settings": "the test sets the same variables to loopback values (settings() below)",
    "database": "needs sudo; the test makes a fresh database on its own PostgreSQL (tests/pg_helpers.py)",
    "firewall": "needs root",
    "backup": "names the doc's database; the test's has a random name",
    "ray-cluster": "a Ray cluster costs more than this test may; tests/test_executor_ray.py runs one",
    "ray-campaign": "checked to be the campaign step plus --executor ray --ray-address",
    "ray-lab": "checked to be the serve step plus --executor ray --ray-address --job-dir",
}
CAMPAIGN_TIMEOUT_S = 400.0


def doc_steps() -> dict[str, str]:
    text = DOC.read_text()
    steps = STEP.findall(text)
    assert [name for name, _ in steps] == ORDER, "docs/deploy.md's steps changed: update ORDER and NOT_RUN here"
    assert text.count("```bash") == len(steps), "every bash block of docs/deploy.md is a deploy-step"
    return dict(steps)


def settings(tmp: Path, lab_db: str) -> dict[str, str]:
    """The doc's variables, for a loopback deployment with the smallest campaigns that still verify runs."""
    return {"LAB_HOST": "127.0.0.1", "LAB_PORT": str(free_port()), "LAB_DB": lab_db, "DATA": str(tmp / "lab-data"),
            "LAB_STATE": str(tmp / "lab-state"), "TOKEN_FILE": str(tmp / "etc" / "admin-token"),
            "TASK": "synth-linear", "INSTANCE_SEED": str(secrets.randbelow(2**31)), "RESEARCHERS": "search:1",
            "BUDGET": "15", "LAB_OPTIONS": "--verify-workers 2 --dependence-check off",
            "RUN": str(tmp / "campaign-a"), "RAY_ADDRESS": "127.0.0.1:1",
            "JOB_DIR": str(tmp / "verify-jobs")}


def _lab_db(request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    """A fresh PostgreSQL database when PostgreSQL is at hand, else SQLite (said in the test's output)."""
    if not (os.environ.get(PG_URL_ENV) or postgres_installed()):
        print("docs/deploy.md on SQLite: PostgreSQL is not installed")
        yield f"sqlite:///{tmp / 'lab.sqlite'}"
        return
    with fresh_databases(request.getfixturevalue("pg_server")) as make:
        yield make()


@pytest.fixture
def deploy_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _lab_db(request, tmp_path)


def shell_env(values: dict[str, str], **override: str) -> dict[str, str]:
    """A clean environment: the doc's variables, this venv's `autow2s` and `python` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_") or k == "AUTOW2S_CACHE_DIR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | values | override | {"PYTHONUNBUFFERED": "1", "COLUMNS": "160"}


def run_step(script: str, env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"step failed ({done.returncode}):\n{script}\n{done.stderr[-4000:]}"
    return done.stdout


def start_step(script: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the step's whole process group (bash and what it started); SIGKILL what is left after 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@contextmanager
def serving(script: str, env: dict[str, str], log: Path) -> Iterator[str]:
    process = start_step(script, env, log)
    url = f"http://{env['LAB_HOST']}:{env['LAB_PORT']}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the lab exited:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"the lab was not ready:\n{log.read_text()[-4000:]}"
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        stop(process)


def wait_finished(process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        process.wait(timeout=CAMPAIGN_TIMEOUT_S)
    finally:
        stop(process)
    assert process.returncode == 0, f"the campaign failed:\n{log.read_text()[-4000:]}"


def files_with_labels(root: Path) -> list[str]:
    """Files under root that hold labels: a lab/ or null/ view, a partition or instance seed, or a jsonl row
    with a label (the lab's views write `label`; the public view never does)."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if {"lab", "null"} & set(relative.parts[:-1]) or path.name in ("partition.json", "instance.json"):
            found.append(str(relative))
        elif path.suffix == ".jsonl" and any('"label"' in line and "label" in json.loads(line)
                                             for line in path.read_text(errors="replace").splitlines()
                                             if line.startswith("{")):
            found.append(str(relative))
    return found


def trials(run: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in (run / "researchers").glob("*/trials.jsonl"))


def lab_ids(run: Path) -> tuple[str, dict[str, str]]:
    """A campaign's id in the lab and its researchers' tokens, as its run directory keeps them."""
    kept = json.loads((run / "secrets.json").read_text())
    assert "admin_token" not in kept, "a campaign on a shared lab keeps no admin token"
    return kept["lab_campaign_id"], kept["researchers"]


@pytest.mark.slow
def test_deploy_md_one_lab_two_campaigns_and_a_resume(tmp_path: Path, deploy_db: str) -> None:
    started = time.monotonic()
    steps = doc_steps()
    documented = set(re.findall(r"^export (\w+)=", steps["settings"], re.M))
    values = settings(tmp_path, deploy_db)
    assert set(values) == documented, "the test sets exactly the doc's settings"
    used = {name for name in ORDER if name not in NOT_RUN for name in re.findall(r"\$\{?(\w+)", steps[name])}
    assert used <= documented | {"AUTOW2S_ADMIN_TOKEN"}, f"undocumented variables: {used - documented}"
    assert _one_line(steps["ray-campaign"]) == _one_line(steps["campaign"]) + \
        ' --executor ray --ray-address "$RAY_ADDRESS"'
    assert _one_line(steps["ray-lab"]) == _one_line(steps["serve"]) + \
        ' --executor ray --ray-address "$RAY_ADDRESS" --job-dir "$JOB_DIR"'
    for command, flags in (("run", ("--executor", "--ray-address")), ("serve", ("--executor", "--ray-address",
                                                                               "--job-dir"))):
        shown = subprocess.run([sys.executable, "-m", "autow2s", command, "--help"], capture_output=True, text=True,
                               env=shell_env({})).stdout
        assert all(flag in shown for flag in flags), (command, shown)

    env = shell_env(values)
    run_step(steps["admin-token"], env)
    token_file = Path(values["TOKEN_FILE"])
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"
    admin_token = token_file.read_text().strip()
    run_step(steps["prepare"], env)
    run_a, run_b = tmp_path / "campaign-a", tmp_path / "campaign-b"
    with serving(steps["serve"], env, tmp_path / "lab.log") as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
        # Two campaigns join at once; B is killed mid-research and resumed once A has finished.
        first = start_step(steps["campaign"], shell_env(values, RUN=str(run_a)), tmp_path / "a.log")
        second = start_step(steps["campaign"], shell_env(values, RUN=str(run_b)), tmp_path / "b.log")
        try:
            deadline = time.monotonic() + CAMPAIGN_TIMEOUT_S
            while trials(run_b) < 1 and second.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert trials(run_b) >= 1, f"campaign B made no progress:\n{(tmp_path / 'b.log').read_text()[-4000:]}"
            stop(second, signal.SIGKILL)
            assert json.loads((run_b / "state.json").read_text())["phase"] in ("researching", "verifying")
            wait_finished(first, tmp_path / "a.log")
        finally:
            stop(first)
            stop(second)

        id_a, tokens_a = lab_ids(run_a)
        id_b, tokens_b = lab_ids(run_b)
        assert id_a != id_b and id_a.startswith("campaign-a-") and id_b.startswith("campaign-b-")
        before = admin.get("/api/v1/researchers").json()
        board_before = admin.get("/api/v1/leaderboard", params={"task": values["TASK"]}).json()
        last_audit = max(entry["id"] for entry in admin.get("/api/v1/audit", params={"limit": 10000}).json())

        run_step(steps["resume"], shell_env(values, RUN=str(run_b)), timeout=CAMPAIGN_TIMEOUT_S)

        id_b_again, tokens_b_again = lab_ids(run_b)
        assert id_b_again == id_b and tokens_b_again.items() >= tokens_b.items()  # the same names and tokens
        after = admin.get("/api/v1/researchers").json()
        board = admin.get("/api/v1/leaderboard", params={"task": values["TASK"]}).json()
        audit = admin.get("/api/v1/audit", params={"after_id": last_audit, "limit": 10000}).json()
        printed = run_step(steps["leaderboard"], env)
    upgraded = run_step(steps["upgrade"], env)  # the lab is stopped first, as the doc says

    # Distinct lab names and tokens: each campaign's researchers under its own id.
    names = [row["name"] for row in after]
    assert sorted(names) == sorted(f"{cid}.{local}" for cid in (id_a, id_b)
                                   for local in ("search-1", "baseline-vanilla")), names
    assert not set(tokens_a.values()) & set(tokens_b_again.values())
    # The resume registered only B's researchers (its vanilla baseline, verified at the end) and touched
    # none of A's: every request it made was B's or the admin's, and A's verified runs are as they were.
    assert before == after[: len(before)] and all(r["name"].startswith(id_b + ".") for r in after[len(before):])
    ids_b = {row["id"] for row in after if row["name"].startswith(id_b + ".")}
    assert audit and {entry["researcher_id"] for entry in audit} <= ids_b | {None}
    assert _rows_of(id_a, board_before) and _rows_of(id_a, board) == _rows_of(id_a, board_before)
    # One leaderboard shows both campaigns' verified runs; each leaderboard.json shows its own, locally named.
    for cid, run in ((id_a, run_a), (id_b, run_b)):
        verified = {row["snapshot_id"] for row in board if row["researcher"] == f"{cid}.search-1"}
        assert verified, f"no verified run of {cid}.search-1 on the lab's leaderboard"
        assert f"{cid}.search-1" in printed and f"{cid}.baseline-vanilla" in printed
        own = json.loads((run / "leaderboard.json").read_text())
        assert {row["researcher"] for row in own["rows"] + own["supervisor_free"]} == {"search-1"}
        assert {row["snapshot"] for row in own["rows"] + own["supervisor_free"]} <= verified
        assert own["vanilla"]["researcher"] == "baseline-vanilla"
        assert own["vanilla"]["snapshot"] in {r["snapshot_id"] for r in board if r["researcher"].startswith(cid)}
    assert "nothing to do" in upgraded, upgraded
    # Labels stay on the lab's host: the campaigns prepared their tasks' public view only.
    for run in (run_a, run_b):
        assert (run / "data" / values["TASK"] / "public" / "test.jsonl").is_file()
        assert files_with_labels(run) == [], f"{run} holds labels"
    assert files_with_labels(Path(values["DATA"])), "the check finds the lab's own labels"
    print(f"docs/deploy.md on {values['LAB_DB'].split(':')[0]}: {time.monotonic() - started:.0f} s")


def _rows_of(campaign_id: str, board: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A campaign's verified runs as the lab shows them, without the rank (which others' runs change)."""
    return sorted(({k: v for k, v in row.items() if k != "rank"} for row in board
                   if row["researcher"].startswith(campaign_id + ".")), key=lambda row: row["verify_id"])


def _one_line(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def test_lab_names_are_stable_per_campaign_and_plain_on_an_own_lab_or_an_older_run(tmp_path: Path) -> None:
    from autow2s.campaign.shared_lab import lab_names, secrets_to_save

    kept: dict[str, Any] = {"admin_token": "admin-x"}
    names = lab_names(True, tmp_path / "my run", kept)
    assert names.lab("search-1").startswith("my-run-") and names.lab("search-1").endswith(".search-1")
    assert lab_names(True, tmp_path / "my run", kept) == names  # a resume reads the same id back
    assert names.local(names.lab("baseline-vanilla")) == "baseline-vanilla"
    assert names.local("other-run-0a1b2c.search-1") is None
    assert "admin_token" not in secrets_to_save(True, kept) and "admin_token" in secrets_to_save(False, kept)
    assert lab_names(False, tmp_path, {}).lab("search-1") == "search-1"  # the campaign's own lab
    older = {"researchers": {"search-1": "aw2s_x"}}  # joined a shared lab before names had ids
    assert lab_names(True, tmp_path, older).lab("search-2") == "search-2"


def test_a_campaign_reads_only_its_own_rows_of_a_shared_lab_under_its_own_names() -> None:
    from autow2s.campaign.shared_lab import own_overview

    def row(researcher: str, snapshot: str) -> dict[str, Any]:
        return {"researcher": researcher, "snapshot_id": snapshot, "is_vanilla": researcher == "baseline-vanilla"}

    overview = {"rows": [row("a-1.search-1", "s1"), row("b-2.search-1", "s2"), row("b-2.baseline-vanilla", "v2"),
                         row("a-1.baseline-vanilla", "v1")], "vanilla": None}
    kept = {"lab_campaign_id": "a-1", "researchers": {"search-1": "t1", "baseline-vanilla": "t2"}}
    mine = own_overview(overview, True, kept)
    assert [(r["researcher"], r["snapshot_id"], r["is_vanilla"]) for r in mine["rows"]] == [
        ("search-1", "s1", False), ("baseline-vanilla", "v1", True)]
    assert mine["vanilla"]["snapshot_id"] == "v1"
    assert own_overview(overview, False, kept) is overview  # the campaign's own lab: every row is its own


def test_a_campaign_on_a_shared_lab_prepares_its_tasks_without_labels(tmp_path: Path) -> None:
    """Issue 29: with --lab every campaign host used to write RUN/data/TASK/lab/ (labels, partition, instance
    seed) and null/; docs/deploy.md says labels stay on the lab's host. Its own lab still gets both views."""
    from autow2s.campaign.runner import Campaign
    from autow2s.campaign.state import CampaignConfig

    views = {}
    for shared in (True, False):
        config = CampaignConfig(tasks=("synth-linear",), researchers=(("search", 1),), instance_seed=1234,
                                lab_url="http://127.0.0.1:9" if shared else None)
        campaign = Campaign.create(tmp_path / f"run-shared-{shared}", config)
        name = campaign._prepare("synth-linear", campaign.paths.data)
        views[shared] = campaign.paths.data / name
        assert (views[shared] / "public" / "weak" / "model.json").is_file()
    assert files_with_labels(tmp_path / "run-shared-True") == []
    own = files_with_labels(tmp_path / "run-shared-False")
    assert any(path.endswith("lab/test.jsonl") for path in own) and any("/null/" in path for path in own)
    # The public view is the same either way: what the shared lab's own public view is for this instance.
    for path in sorted((views[False] / "public").rglob("*")):
        if path.is_file():
            twin = views[True] / "public" / path.relative_to(views[False] / "public")
            assert twin.read_bytes() == path.read_bytes(), path
