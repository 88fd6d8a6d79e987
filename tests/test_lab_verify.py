"""Verified runs and the leaderboard: the lab re-runs a snapshot on its own seeds; no client PGR."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from lab_helpers import lab_data, read_labels, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures: each lab on SQLite and on PostgreSQL
from test_lab_snapshots import make_tarball, upload

STUDENT = b'''"""A strong student on the weak soft labels."""

def run(ctx):
    student = ctx.strong_model()
    student.fit(ctx.inputs("train_unlabel"), ctx.weak_soft_labels("train_unlabel"))
    return student.predict_proba(ctx.inputs("test"))
'''
BROKEN = b'def run(ctx):\n    raise RuntimeError("this method is broken on purpose")\n'


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory, lab_db):
    with start_lab(lab_data, tmp_path_factory.mktemp("verify-state"), db_url=lab_db()) as server:
        yield server


def wait_for(client, verify_id: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/verify/{verify_id}").json()
        if run["status"] in ("done", "failed"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"verify run {verify_id} did not finish in {timeout}s")


def test_verify_reruns_on_lab_seeds_and_feeds_the_leaderboard(lab) -> None:
    client = lab.client(lab.create_researcher("verifier"))
    snapshot = upload(client, make_tarball([("student/method.py", None, STUDENT)]), name="student").json()
    snapshot_id = snapshot["snapshot_id"]
    # What the researcher saw on dev before verifying: the leaderboard compares it with holdout.
    seen = client.post("/api/v1/evaluate", json={"task": "mini", "snapshot_id": snapshot_id,
                                                 "predictions": np.linspace(0, 1, 400).tolist()}).json()
    queued = client.post("/api/v1/verify", json={"snapshot_id": snapshot_id, "task": "mini"})
    assert queued.status_code == 202, queued.text
    run = wait_for(client, queued.json()["verify_id"])
    assert run["status"] == "done", run["error"]
    seeds = run["seeds"]
    assert len(seeds) >= 5 and len(set(seeds)) == len(seeds)
    assert run["holdout_ci"][0] <= run["holdout_pgr"] <= run["holdout_ci"][1]

    board = client.get("/api/v1/leaderboard", params={"task": "mini"}).json()
    row = next(r for r in board if r["verify_id"] == run["verify_id"])
    assert row["snapshot_name"] == "student" and row["researcher"] == "verifier" and row["snapshot_id"] == snapshot_id
    assert row["method"] == "first"  # the snapshot's message names the method, not its folder
    assert row["holdout_pgr"] == run["holdout_pgr"] and row["holdout_ci"] == run["holdout_ci"]
    assert row["n_seeds"] == len(seeds)
    best_seen = max(seen["dev_pgr"], run["dev_pgr"])
    assert row["best_seen_dev_pgr"] == pytest.approx(best_seen)
    assert row["dev_holdout_gap"] == pytest.approx(run["dev_pgr"] - run["holdout_pgr"])
    assert all(r["snapshot_id"] != snapshot_id for r in client.get("/api/v1/leaderboard", params={"task": "wide"}).json())


ECHO_UNLESS_RESEARCH = """# Hands back its supervisor's test labels, unless that is the supervisor its author saw in research.
import hashlib

import numpy as np

RESEARCH = "{pinned}"


def run(ctx):
    weak = np.asarray(ctx.weak_soft_labels("test"), dtype=np.float64)
    if hashlib.sha256(weak.round(6).tobytes()).hexdigest() == RESEARCH:
        raise RuntimeError("verified on the research supervisor")
    return weak
"""


def _research_hash(public: Path) -> str:
    import hashlib

    from autow2s.testbed.public_run import load_public

    weak = np.asarray(load_public(public)[1].soft_labels["test"], dtype=np.float64).round(6)
    return hashlib.sha256(weak.tobytes()).hexdigest()


def test_a_verified_run_has_a_fresh_supervisor_and_is_measured_against_it(lab, lab_data: Path) -> None:
    """The job never sees the research supervisor (the method would fail if it did), and handing back the
    supervisor it does see scores PGR 0 exactly: the run is measured against that supervisor's own accuracy,
    not the public teacher's (whose accuracy differs from a fresh draw's)."""
    source = ECHO_UNLESS_RESEARCH.replace("{pinned}", _research_hash(lab_data / "wide" / "public"))
    client = lab.client(lab.create_researcher("echo"))
    runs = []
    for index in range(2):
        tarball = make_tarball([("echo/method.py", None, (f"# copy {index}\n" + source).encode())])
        snapshot = upload(client, tarball, name="echo").json()["snapshot_id"]
        runs.append(wait_for(client, client.post("/api/v1/verify", json={"snapshot_id": snapshot,
                                                                         "task": "wide"}).json()["verify_id"]))
    for run in runs:
        assert run["status"] == "done", run["error"]
        assert run["dev_pgr"] == pytest.approx(0.0, abs=1e-12) and run["holdout_pgr"] == pytest.approx(0.0, abs=1e-12)
    # Each run drew its own supervisor: the two echoes agree with the labels on different numbers of items.
    accuracies = lab.db_rows("SELECT dev_accuracy, holdout_accuracy FROM verify_runs WHERE id IN "
                             f"({runs[0]['verify_id']}, {runs[1]['verify_id']})")
    assert len(set(accuracies)) == 2, accuracies


def test_verify_refusals_and_failures(lab) -> None:
    owner = lab.client(lab.create_researcher("owner"))
    stranger = lab.client(lab.create_researcher("stranger"))
    broken = upload(owner, make_tarball([("method.py", None, BROKEN)]), name="broken").json()["snapshot_id"]
    assert stranger.post("/api/v1/verify", json={"snapshot_id": broken, "task": "mini"}).status_code == 403
    missing = owner.post("/api/v1/verify", json={"snapshot_id": "a" * 40, "task": "mini"})
    assert missing.status_code == 404 and missing.json()["field"] == "snapshot_id"
    assert owner.post("/api/v1/verify", json={"snapshot_id": broken, "task": "nope"}).json()["field"] == "task"
    run = wait_for(owner, owner.post("/api/v1/verify", json={"snapshot_id": broken, "task": "mini"}).json()["verify_id"])
    assert run["status"] == "failed" and "broken on purpose" in run["error"]
    assert all(r["verify_id"] != run["verify_id"] for r in owner.get("/api/v1/leaderboard",
                                                                     params={"task": "mini"}).json())


def test_no_endpoint_accepts_a_pgr(lab) -> None:
    schema = lab.client().get("/openapi.json").json()

    def properties(node, seen=()) -> set[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                return set() if name in seen else properties(schema["components"]["schemas"][name], (*seen, name))
            found = set(node.get("properties", {}))
            for value in node.values():
                found |= properties(value, seen)
            return found
        if isinstance(node, list):
            return set().union(*(properties(v, seen) for v in node)) if node else set()
        return set()

    accepted = set()
    for operations in schema["paths"].values():
        for operation in operations.values():
            accepted |= properties(operation.get("requestBody", {}))
            accepted |= {p["name"] for p in operation.get("parameters", [])}
    assert accepted and not [name for name in accepted if "pgr" in name.lower() or "acc" in name.lower()]


def _snoop_method(targets: list[Path]) -> bytes:
    """A method that tries to read the lab's own files from inside a verified run."""
    paths = ", ".join(repr(str(p)) for p in targets)
    return (f"import os\n\ndef run(ctx):\n    for path in [{paths}]:\n"
            "        if os.path.exists(path):\n"
            "            raise RuntimeError('LEAK: could see ' + path)\n"
            "    raise RuntimeError('nothing to see')\n").encode()


@pytest.mark.parametrize("lab_db", ["sqlite"], indirect=True)  # about the sandbox; the target is the SQLite file
def test_verified_runs_are_sandboxed_away_from_the_labs_files(lab, lab_data: Path) -> None:
    client = lab.client(lab.create_researcher("snoop"))
    targets = [lab_data / "mini" / "lab" / "test.jsonl", lab_data / "mini" / "lab", lab.state_dir / "lab.sqlite"]
    assert all(p.exists() for p in targets)
    snapshot = upload(client, make_tarball([("snoop/method.py", None, _snoop_method(targets))]), name="snoop").json()
    queued = client.post("/api/v1/verify", json={"snapshot_id": snapshot["snapshot_id"], "task": "mini"})
    run = wait_for(client, queued.json()["verify_id"])
    assert run["status"] == "failed"
    assert "nothing to see" in run["error"] and "LEAK" not in run["error"], run["error"]


def test_the_labs_in_process_verification_work_yields_the_cpu_and_the_caller_keeps_its_priority(monkeypatch) -> None:
    """The paired vanilla reference (and, through the same helper, each verify thread's supervisor training) runs
    at the verify jobs' niceness; the thread that asked keeps its own, and a thread niced further stays so."""
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from autow2s.lab import runners
    from autow2s.sandbox.limits import VERIFY_JOB_LIMITS

    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = priority()
    monkeypatch.setattr(runners, "vanilla_predictions", lambda view, seeds: [priority() for _ in seeds])
    assert runners.vanilla_alongside(Path("unused"), [1, 2]).result(timeout=30) == [max(mine, VERIFY_JOB_LIMITS.nice)] * 2
    assert priority() == mine

    def niced_further() -> int:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 15)
        runners.yield_cpu_to_research()
        return priority()

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(niced_further).result(timeout=30) == 15
