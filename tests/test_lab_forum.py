"""The forum: findings, comments, votes, sorting and full-text search; results cite the lab's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lab_helpers import lab_data, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures: each lab on SQLite and on PostgreSQL


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory, lab_db):
    with start_lab(lab_data, tmp_path_factory.mktemp("forum-state"), db_url=lab_db()) as server:
        yield server


def post(client, **finding):
    return client.post("/api/v1/findings", json={"type": "insight", "title": "t", **finding})


def test_results_cite_own_records_and_show_the_labs_figure(lab) -> None:
    ada = lab.client(lab.create_researcher("ada-forum"))
    bob = lab.client(lab.create_researcher("bob-forum"))
    evaluation = ada.post("/api/v1/evaluate", json={"task": "mini", "predictions": np.linspace(0, 1, 400).tolist()})
    evaluation_id = evaluation.json()["evaluation_id"]
    uncited = post(ada, type="result", title="PGR 0.99!", body="trust me, PGR 0.99")
    assert uncited.status_code == 422 and uncited.json()["field"] == "evaluation_id"
    stolen = post(bob, type="result", title="mine", evaluation_id=evaluation_id)
    assert stolen.status_code == 422 and "not one of your evaluations" in stolen.json()["error"]
    result = post(ada, type="result", title="linspace beats chance", body="PGR 0.99 (says the body)",
                  tags=["baseline", "linspace"], evaluation_id=evaluation_id)
    assert result.status_code == 201, result.text
    figure = result.json()["figure"]
    assert figure == {"source": "evaluation", "evaluation_id": evaluation_id, "task": "mini",
                      "dev_accuracy": evaluation.json()["dev_accuracy"], "dev_pgr": evaluation.json()["dev_pgr"]}
    assert result.json()["task"] == "mini" and result.json()["author"] == "ada-forum"


def test_comments_votes_sorting_and_search(lab) -> None:
    alice = lab.client(lab.create_researcher("alice-forum"))
    carol = lab.client(lab.create_researcher("carol-forum"))
    first = post(alice, title="Confident-only filtering helps", body="Dropping low-confidence weak labels "
                 "raises transfer on synthetic tasks.", tags=["confidence"], type="hypothesis").json()
    second = post(alice, title="Smoothing is a wash", body="Label smoothing changed nothing measurable.",
                  tags=["smoothing"]).json()
    third = post(carol, title="Critic runs fail", body="The critic loop crashed on pairwise tasks.",
                 type="error", tags=["critic", "pairwise"]).json()
    assert post(alice, title="x" * 201).status_code == 422
    assert post(alice, body="y" * 10_001).json()["field"] == "body"
    assert post(alice, type="rumour").json()["field"] == "type"
    assert post(alice, tags=["Not A Tag"]).json()["field"].startswith("tags")

    assert carol.post(f"/api/v1/findings/{second['id']}/vote", json={"value": 1}).json()["score"] == 1
    assert alice.post(f"/api/v1/findings/{second['id']}/vote", json={"value": 1}).json()["score"] == 2
    assert alice.post(f"/api/v1/findings/{second['id']}/vote", json={"value": 1}).json()["score"] == 2  # one vote each
    assert carol.post(f"/api/v1/findings/{third['id']}/vote", json={"value": -1}).json()["score"] == -1
    assert carol.post(f"/api/v1/findings/{first['id']}/vote", json={"value": 2}).status_code == 422
    for text in ("Which threshold?", "0.8 worked for me"):
        assert carol.post(f"/api/v1/findings/{first['id']}/comments", json={"body": text}).status_code == 201
    assert carol.post("/api/v1/findings/999999/comments", json={"body": "?"}).status_code == 404

    ids = lambda rows: [r["id"] for r in rows if r["id"] in {first["id"], second["id"], third["id"]}]  # noqa: E731
    assert ids(alice.get("/api/v1/findings", params={"sort": "new"}).json()) == [third["id"], second["id"], first["id"]]
    assert ids(alice.get("/api/v1/findings", params={"sort": "top"}).json())[0] == second["id"]
    assert ids(alice.get("/api/v1/findings", params={"sort": "top"}).json())[-1] == third["id"]
    assert ids(alice.get("/api/v1/findings", params={"sort": "discussed"}).json())[0] == first["id"]
    detail = alice.get(f"/api/v1/findings/{first['id']}").json()
    assert [c["body"] for c in detail["comments"]] == ["Which threshold?", "0.8 worked for me"]
    assert detail["n_comments"] == 2

    hits = alice.get("/api/v1/findings", params={"q": "confidence filtering"}).json()
    assert [h["id"] for h in hits] == [first["id"]]
    assert [h["id"] for h in alice.get("/api/v1/findings", params={"q": "crashed"}).json()] == [third["id"]]
    assert [h["id"] for h in alice.get("/api/v1/findings", params={"tag": "pairwise"}).json()] == [third["id"]]
    assert [h["id"] for h in alice.get("/api/v1/findings", params={"type": "error"}).json()] == [third["id"]]
    assert ids(alice.get("/api/v1/findings", params={"author": "carol-forum"}).json()) == [third["id"]]
    for hostile in ('"unbalanced', "NEAR(a b", "title:x OR *", "'; DROP TABLE findings; --", "ü∂ƒ"):
        response = alice.get("/api/v1/findings", params={"q": hostile})
        assert response.status_code == 200, (hostile, response.text)
