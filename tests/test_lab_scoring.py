"""Scoring against a real `autow2s serve`: dev-only answers, budgets, the audit log, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.teachers import ceiling_probs
from lab_helpers import lab_data, read_labels, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures: each lab on SQLite and on PostgreSQL

V1_KEYS = {"evaluation_id", "task", "dev_accuracy", "dev_pgr", "n_scored", "budget_left", "rate_left", "flags", "note",
           "identical_to_evaluation", "near_duplicate_of_evaluation", "items_changed", "min_items_changed"}
ANCHOR_KEYS = {"transfer_acc", "pgr", "correct", "total", "fixed_weak_acc", "fixed_strong_acc", "evaluation_id",
               "budget_left", "warnings", "pgr_error"}


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory, lab_db):
    with start_lab(lab_data, tmp_path_factory.mktemp("scoring-state"), extra_args=["--budget-rate", "1000"],
                   db_url=lab_db()) as server:
        yield server


def _weak_and_ceiling_on_dev(task_dir: Path) -> tuple[float, float]:
    rows, dev, _ = read_labels(task_dir)
    weak = {json.loads(line)["id"]: json.loads(line)["p"]
            for line in (task_dir / "public" / "weak" / "test.jsonl").read_text().splitlines()}
    dev_rows = [r for r in rows if r["id"] in dev]
    weak_acc = np.mean([(weak[r["id"]] >= 0.5) == bool(r["label"]) for r in dev_rows])
    task = load_task_dir(task_dir / "lab")
    labels = task.labels("test")
    index = [i for i, rid in enumerate(task.split("test").ids) if rid in dev]
    cache = ArtifactCache(task_dir.parent / ".cache")
    ceiling = np.mean([((ceiling_probs(task, s, cache) >= 0.5) == labels)[index].mean() for s in range(5)])
    return float(weak_acc), float(ceiling)


def test_baselines_are_the_testbeds(lab, lab_data: Path) -> None:
    token = lab.create_researcher("baseline-reader")
    tasks = {t["name"]: t for t in lab.client(token).get("/api/v1/tasks").json()}
    weak, ceiling = _weak_and_ceiling_on_dev(lab_data / "mini")
    assert tasks["mini"]["weak_dev_acc"] == pytest.approx(weak)
    assert tasks["mini"]["ceiling_dev_acc"] == pytest.approx(ceiling)
    assert tasks["mini"]["n_dev"] == 200 and tasks["mini"]["baseline_seeds"] == [0, 1, 2, 3, 4]


def test_evaluate_scores_dev_only_and_returns_no_labels(lab, lab_data: Path) -> None:
    token = lab.create_researcher("scorer")
    client = lab.client(token)
    rows, dev, _holdout = read_labels(lab_data / "mini")
    # Right on every dev item, wrong on every holdout item: a dev-only scorer reports ~1.0.
    predictions = [float(bool(r["label"])) if r["id"] in dev else float(not r["label"]) for r in rows]
    response = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == V1_KEYS  # no distributions, no per-item correctness, no holdout
    assert body["n_scored"] == len(dev) == 200
    # Exact dev accuracy is 1.0 (holdout would pull it to 0.5); the report carries noise of
    # 1.5 standard errors (0.053 on 200 items), so 0.75 is more than four of them away.
    assert body["dev_accuracy"] > 0.75
    assert body["dev_pgr"] > 0.7
    # The stored record (admin view) has the holdout score that was never returned: all wrong.
    evaluation = lab.admin().get(f"/api/v1/evaluations/{body['evaluation_id']}").json()
    assert evaluation["dev_accuracy"] == body["dev_accuracy"] and "holdout" not in json.dumps(evaluation)


def test_anchor_endpoint_keeps_the_anchors_keys_on_dev(lab, lab_data: Path) -> None:
    token = lab.create_researcher("anchor-client")
    rows, dev, _ = read_labels(lab_data / "mini")
    labels = [int(bool(r["label"])) for r in rows]
    # The anchor's remote_evaluation client cannot set headers: it puts the token in the path.
    response = httpx.post(f"{lab.url}/r/{token}/api/evaluate-predictions",
                          json={"predictions": labels, "dataset": "mini", "split": "test",
                                "weak_model": "w", "strong_model": "s"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == ANCHOR_KEYS
    assert body["total"] == len(dev)
    assert body["transfer_acc"] > 0.75 and body["correct"] == round(body["transfer_acc"] * len(dev))
    refused = httpx.post(f"{lab.url}/r/{token}/api/evaluate-predictions",
                         json={"predictions": labels, "dataset": "mini", "split": "train_unlabel"})
    assert refused.status_code == 403
    assert refused.json()["field"] == "split" and "train_unlabel" in refused.json()["error"]


@pytest.mark.parametrize("body, status, field", [
    (b'{"task": "mini", "predictions": [0.5, ', 400, "body"),
    (json.dumps({"task": "mini", "predictions": [0.5] * 399}).encode(), 422, "predictions"),
    (b'{"task": "mini", "predictions": [' + b"0.5, " * 399 + b"NaN]}", 422, "predictions[399]"),
    (b'{"task": "mini", "predictions": [' + b"0.5, " * 399 + b"Infinity]}", 422, "predictions[399]"),
    (json.dumps({"task": "mini", "predictions": [0.5] * 399 + [1.5]}).encode(), 422, "predictions[399]"),
    (json.dumps({"task": "no-such-task", "predictions": [0.5] * 400}).encode(), 404, "task"),
    (json.dumps({"task": "mini"}).encode(), 422, "predictions"),
    (json.dumps({"task": "mini", "predictions": "0.5"}).encode(), 422, "predictions"),
    (json.dumps([1, 2]).encode(), 422, "body"),
    (b"x" * (9 * 1024 * 1024), 413, "body"),
])
def test_bad_input_gets_a_4xx_naming_the_field(lab, body: bytes, status: int, field: str) -> None:
    token = lab.create_researcher(f"bad-input-{status}-{abs(hash(body)) % 10**8}")
    response = lab.client(token).post("/api/v1/evaluate", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field
    assert field.split("[")[0] in response.json()["error"] or field == "body"


def test_tokens_are_required_and_roles_enforced(lab) -> None:
    predictions = {"task": "mini", "predictions": [0.5] * 400}
    assert httpx.post(f"{lab.url}/api/v1/evaluate", json=predictions).status_code == 401
    assert httpx.post(f"{lab.url}/api/v1/evaluate", content=b'{"task": ').status_code == 401  # the token comes first
    unknown = lab.client("aw2s_not-a-real-token-at-all").post("/api/v1/evaluate", json=predictions)
    assert unknown.status_code == 401 and unknown.json()["field"] == "Authorization"
    assert lab.admin().post("/api/v1/evaluate", json=predictions).status_code == 403  # the admin is no researcher
    token = lab.create_researcher("not-admin")
    assert lab.client(token).post("/api/v1/researchers", json={"name": "x"}).status_code == 403
    assert lab.admin().post("/api/v1/researchers", json={"name": "not-admin"}).status_code == 409


def test_budget_total_and_rate_refuse_with_429_and_every_request_is_audited(lab) -> None:
    token = lab.create_researcher("thrifty", budget_total=3, budget_rate_per_minute=2)
    researcher_id = lab.researcher_id("thrifty")
    client = lab.client(token)
    rng = np.random.default_rng(1)
    answers = [client.post("/api/v1/evaluate", json={"task": "mini", "predictions": rng.random(400).tolist()})
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].json()["rate_left"] == 0
    rate = answers[2]
    assert rate.json()["resets_at"] and 0 < rate.json()["retry_after_s"] <= 60 and "Retry-After" in rate.headers
    lab.admin().put("/api/v1/budgets", json={"researcher_id": researcher_id, "task": "mini", "rate_per_minute": 100})
    third = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": rng.random(400).tolist()})
    assert third.status_code == 200 and third.json()["budget_left"] == 0
    spent = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": rng.random(400).tolist()})
    assert spent.status_code == 429 and spent.json()["resets_at"] is None and "total budget" in spent.json()["error"]
    rows = [r for r in lab.admin().get("/api/v1/audit", params={"researcher_id": researcher_id}).json()
            if r["path"] == "/api/v1/evaluate"]
    assert [r["status"] for r in rows] == [200, 200, 429, 200, 429]
    assert [r["charged"] for r in rows] == ["evaluate", "evaluate", None, "evaluate", None]
    assert all(r["evaluation_id"] for r in rows if r["status"] == 200)


def test_budgets_survive_a_restart(lab_data: Path, tmp_path: Path) -> None:
    # SQLite only: two lab starts (~25 s) for what the module's lab already shows on PostgreSQL (budgets
    # and probing history are rows in the DB); surviving the process is the PostgreSQL server's job.
    with start_lab(lab_data, tmp_path / "state") as server:
        token = server.create_researcher("persistent", budget_total=3)
        client = server.client(token)
        first = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.2] * 200 + [0.9] * 200})
        assert first.json()["budget_left"] == 2
        server.restart()
        client = server.client(token)
        # The probing history came back: the first submission again is answered from its evaluation (free),
        # and so is one that changes a single item (a near-duplicate: the same figure, uncharged).
        again = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.2] * 200 + [0.9] * 200})
        assert again.status_code == 200 and again.json()["identical_to_evaluation"] == first.json()["evaluation_id"]
        assert again.json()["dev_accuracy"] == first.json()["dev_accuracy"] and again.json()["budget_left"] == 2
        near = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.2] * 199 + [0.9] * 201})
        assert near.status_code == 200 and near.json()["near_duplicate_of_evaluation"] == first.json()["evaluation_id"]
        assert near.json()["dev_accuracy"] == first.json()["dev_accuracy"] and near.json()["budget_left"] == 2
        second = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.9] * 200 + [0.2] * 200})
        assert second.json()["budget_left"] == 1 and second.json()["evaluation_id"] > first.json()["evaluation_id"]
        third = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.9, 0.2] * 200})
        assert third.json()["budget_left"] == 0
        assert client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [0.5] * 400}).status_code == 429


def test_tokens_never_reach_the_log(lab) -> None:
    token = lab.create_researcher("secretive")
    httpx.post(f"{lab.url}/r/{token}/api/v1/evaluate", json={"task": "mini", "predictions": [0.5] * 3})
    httpx.get(f"{lab.url}/r/{lab.admin_token}/api/v1/me")
    lab.client(token).get("/api/v1/me")
    log = lab.log_path.read_text()
    assert "/r/<redacted>/api/v1/evaluate" in log
    assert token not in log and lab.admin_token not in log
    audit = json.dumps(lab.admin().get("/api/v1/audit", params={"limit": 10000}).json())
    assert token not in audit and lab.admin_token not in audit


def test_the_served_schema_documents_the_evaluation_bodies(lab) -> None:
    """The bodies are parsed by a dependency (one pass in pydantic-core), so the schema is given explicitly:
    clients and the schemathesis fuzz read it from /openapi.json."""
    paths = httpx.get(f"{lab.url}/openapi.json").json()["paths"]
    for path, required in (("/api/v1/evaluate", {"task", "predictions"}),
                           ("/api/evaluate-predictions", {"dataset", "predictions"})):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["required"]) == required
        assert schema["properties"]["predictions"]["items"] == {"maximum": 1.0, "minimum": 0.0, "type": "number"}
