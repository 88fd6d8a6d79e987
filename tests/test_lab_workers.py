"""A lab served by several processes (`serve --workers 2`) on PostgreSQL enforces exactly what one does.

Budgets, rate limits, the probing history and the verify queue live in the database, so 32
concurrent clients spread over two workers get exactly their budget, every request has exactly
one audit row, a verified run is queued once and executed once, and killing one worker with
kill -9 loses nothing that was acknowledged. Lab hosts whose clocks disagree count the same rate
window (the database's clock), and labs started together on an empty database all come up.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from lab_helpers import LabServer, prepare_tasks, start_lab
from pg_helpers import fresh_databases, pg_server  # noqa: F401 - pg_server is a fixture
from test_lab_snapshots import make_tarball, upload

CLIENTS = 32
N_TEST = 400
FAKE_CLOCK = Path(__file__).resolve().parent / "fake_clock"  # sitecustomize: FAKE_CLOCK_OFFSET_S skews time.time()
HOST_OPTIONS = ["--dependence-check", "off", "--unsafe-no-sandbox"]
METHOD = b'''def run(ctx):
    student = ctx.strong_model()
    student.fit(ctx.inputs("train_unlabel"), ctx.weak_soft_labels("train_unlabel"))
    return student.predict_proba(ctx.inputs("test"))
'''


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, pg_server: str):
    root = tmp_path_factory.mktemp("workers")
    data = prepare_tasks(root / "data", {"mini": N_TEST}, cache_dir=root / "data" / ".cache")
    with fresh_databases(pg_server) as make_db, \
            start_lab(data, root / "state", db_url=make_db(),
                      extra_args=["--workers", "2", "--budget-rate", "100000", "--verify-rate", "1000",
                                  "--dependence-check", "off", "--unsafe-no-sandbox"]) as server:
        assert len(worker_pids(server)) == 2, server.log_tail()
        yield server


def worker_pids(server: LabServer) -> list[int]:
    """The uvicorn worker processes under the server (children that are not multiprocessing helpers)."""
    assert server.process is not None
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in cmdline:
            pids.append(pid)
    return pids


def spend(server: LabServer, tokens: list[str], attempts: int, *, seed: int) -> list[tuple[str, int, dict[str, Any]]]:
    """`attempts` distinct random submissions from CLIENTS threads, tokens taken in turn: (token, status, body)."""
    rng = np.random.default_rng(seed)
    bodies = [rng.random(N_TEST).round(3).tolist() for _ in range(attempts)]
    clients = {token: httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
               for token in tokens}

    def one(index: int) -> tuple[str, int, dict[str, Any]]:
        token = tokens[index % len(tokens)]
        try:
            response = clients[token].post("/api/v1/evaluate", json={"task": "mini", "predictions": bodies[index]})
        except httpx.TransportError as exc:  # a worker killed mid-request: not acknowledged
            return token, 0, {"error": type(exc).__name__}
        return token, response.status_code, response.json()

    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            return list(pool.map(one, range(attempts)))
    finally:
        for client in clients.values():
            client.close()


def audit_check(server: LabServer, researcher_id: int, results: list[tuple[str, int, dict[str, Any]]]) -> None:
    """One audit row per answered request, none lost or doubled; accepted ones point at their evaluation."""
    answered = [r for r in results if r[1] != 0]
    rows = server.db_rows(f"SELECT status, evaluation_id, charged FROM audit WHERE researcher_id = {researcher_id} "
                          "AND path = '/api/v1/evaluate'")
    assert Counter(status for status, _, _ in rows) == Counter(status for _, status, _ in answered)
    accepted_ids = [body["evaluation_id"] for _, status, body in answered if status == 200]
    audited_ids = [evaluation_id for status, evaluation_id, _ in rows if status == 200]
    assert len(set(accepted_ids)) == len(accepted_ids)  # no evaluation id handed out twice
    assert sorted(audited_ids) == sorted(accepted_ids)
    stored = {row[0] for row in server.db_rows(f"SELECT id FROM evaluations WHERE researcher_id = {researcher_id}")}
    assert stored == set(accepted_ids)
    # The spend row a budget check reads is exactly the number of charged audit rows, whatever the interleaving.
    charged = server.db_rows(f"SELECT count(*) FROM audit WHERE researcher_id = {researcher_id} "
                             "AND charged = 'evaluate'")
    spent = server.db_rows(f"SELECT used FROM budget_spend WHERE researcher_id = {researcher_id} "
                           "AND kind = 'evaluate'")
    assert spent == charged == [(len(accepted_ids),)]


def test_two_workers_score_exactly_the_budget_and_audit_every_request(lab: LabServer) -> None:
    budget = 40
    token = lab.create_researcher("spender", budget_total=budget)
    results = spend(lab, [token], 120, seed=1)
    statuses = Counter(status for _, status, _ in results)
    assert statuses[200] == budget, statuses
    assert statuses[429] == 120 - budget, statuses
    assert {body["budget_left"] for _, status, body in results if status == 429} == {0}
    audit_check(lab, lab.researcher_id("spender"), results)


def test_two_researchers_spending_together_get_their_own_budgets_and_no_more(lab: LabServer) -> None:
    budgets = {"ann": 15, "bob": 25}
    tokens = {name: lab.create_researcher(name, budget_total=total) for name, total in budgets.items()}
    results = spend(lab, list(tokens.values()), 100, seed=2)
    for name, token in tokens.items():
        accepted = sum(1 for t, status, _ in results if t == token and status == 200)
        assert accepted == budgets[name]
        audit_check(lab, lab.researcher_id(name), [r for r in results if r[0] == token])


def test_the_rate_limit_holds_across_workers(lab: LabServer) -> None:
    token = lab.create_researcher("hasty", budget_total=500)
    rid = lab.researcher_id("hasty")
    response = lab.admin().put("/api/v1/budgets", json={"researcher_id": rid, "task": "mini", "kind": "evaluate",
                                                         "rate_per_minute": 12})
    assert response.status_code == 200, response.text
    results = spend(lab, [token], 64, seed=3)
    statuses = Counter(status for _, status, _ in results)
    assert statuses[200] == 12, statuses
    assert all("rate limit" in body["error"] for _, status, body in results if status == 429)
    audit_check(lab, rid, results)


def test_a_snapshot_asked_for_on_both_workers_is_queued_charged_and_run_once(lab: LabServer) -> None:
    token = lab.create_researcher("verifier")
    client = lab.client(token)
    snapshot = upload(client, make_tarball([("student/method.py", None, METHOD)]), name="student").json()["snapshot_id"]
    clients = [httpx.Client(base_url=lab.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
               for _ in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda c: c.post("/api/v1/verify", json={"snapshot_id": snapshot, "task": "mini"}),
                                clients))
    for c in clients:
        c.close()
    assert Counter(a.status_code for a in answers) == Counter({202: 1, 200: CLIENTS - 1})
    assert len({a.json()["verify_id"] for a in answers}) == 1
    run_id = answers[0].json()["verify_id"]
    deadline = time.monotonic() + 240
    while (run := client.get(f"/api/v1/verify/{run_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    assert run["status"] == "done", run
    rid = lab.researcher_id("verifier")
    assert lab.db_rows(f"SELECT count(*) FROM audit WHERE researcher_id = {rid} AND charged = 'verify'") == [(1,)]
    [(claimed_by,)] = lab.db_rows(f"SELECT claimed_by FROM verify_runs WHERE id = {run_id}")
    assert claimed_by and claimed_by.split(":")[1].isdigit()


def test_kill_9_one_worker_mid_load_the_other_goes_on_and_nothing_acknowledged_is_lost(lab: LabServer) -> None:
    budget = 400
    token = lab.create_researcher("survivor", budget_total=budget)
    victim = worker_pids(lab)[0]
    killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
    killer.start()
    results = spend(lab, [token], 300, seed=4)
    killer.join()
    statuses = Counter(status for _, status, _ in results)
    assert statuses[200] >= 150, statuses  # the surviving worker went on serving
    assert set(statuses) <= {200, 0}, statuses  # lost connections only: no 5xx from the survivor
    audit_check(lab, lab.researcher_id("survivor"), results)
    after = spend(lab, [token], 20, seed=5)  # served afterwards, by the survivor and uvicorn's replacement
    assert Counter(status for _, status, _ in after) == Counter({200: 20})
    deadline = time.monotonic() + 60
    while len(worker_pids(lab)) < 2 or victim in worker_pids(lab):
        assert time.monotonic() < deadline, "uvicorn did not replace the killed worker"
        time.sleep(0.5)


def test_colluding_researchers_cannot_flip_labels_between_them(lab: LabServer) -> None:
    """One researcher submits to one lab process, another resubmits to a second process on the same database
    with a few items flipped: refused and flagged (not charged: an independent near-twin is no probe)."""
    with start_lab(lab.data_dir, lab.state_dir, db_url=lab.db_url,
                   extra_args=["--dependence-check", "off", "--unsafe-no-sandbox"]) as other_host:
        first = lab.client(lab.create_researcher("eve-1", budget_total=10))
        second = other_host.client(lab.create_researcher("eve-2", budget_total=10))
        predictions = np.random.default_rng(6).random(N_TEST).round(3)
        accepted = first.post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions.tolist()})
        assert accepted.status_code == 200, accepted.text
        flipped = predictions.copy()
        flipped[:3] = 1.0 - flipped[:3]
        probe = second.post("/api/v1/evaluate", json={"task": "mini", "predictions": flipped.tolist()})
        assert probe.status_code == 409, probe.text
        body = probe.json()
        assert body["earlier_evaluation_id"] == accepted.json()["evaluation_id"]
        assert body["earlier_dev_accuracy"] is None  # the other researcher's score is not handed over
        assert "every researcher" in body["error"] and body["budget_left"] == 10
        same = second.post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions.tolist()})
        assert same.status_code == 200, same.text  # the very same predictions: the earlier answer, uncharged
        answer = same.json()
        assert answer["identical_to_evaluation"] == accepted.json()["evaluation_id"]
        assert answer["dev_accuracy"] == accepted.json()["dev_accuracy"] and answer["budget_left"] == 10
        assert answer["evaluation_id"] != accepted.json()["evaluation_id"]  # a row of eve-2's own, to cite
        assert second.get(f"/api/v1/evaluations/{answer['evaluation_id']}").status_code == 200
        again = second.post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions.tolist()})
        assert again.json()["evaluation_id"] == answer["evaluation_id"]  # repeating adds no rows


def test_hosts_whose_clocks_disagree_hold_the_per_minute_limit_exactly(lab: LabServer, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two lab hosts on one PostgreSQL, one clock 40 s slow and one 40 s fast: the rate limit is the database's minute.

    With each host's own clock, the fast host saw the slow host's charges as over a minute old and let
    the researcher spend the limit again.
    """
    rate, offsets = 6, (-40.0, 40.0)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (str(FAKE_CLOCK), os.environ.get("PYTHONPATH")))))
    with ExitStack() as stack:
        hosts = []
        for index, offset in enumerate(offsets):
            monkeypatch.setenv("FAKE_CLOCK_OFFSET_S", str(offset))
            hosts.append(stack.enter_context(start_lab(lab.data_dir, tmp_path / f"host-{index}", db_url=lab.db_url,
                                                       extra_args=HOST_OPTIONS)))
        token = lab.create_researcher("skewed", budget_total=500)
        rid = lab.researcher_id("skewed")
        limited = lab.admin().put("/api/v1/budgets", json={"researcher_id": rid, "task": "mini", "kind": "evaluate",
                                                            "rate_per_minute": rate})
        assert limited.status_code == 200, limited.text
        clients = [host.client(token) for host in hosts]
        rng = np.random.default_rng(7)
        answers = []
        for attempt in range(4 * rate):  # in turn: slow host, fast host, ...
            predictions = rng.random(N_TEST).round(3).tolist()
            answers.append(clients[attempt % 2].post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions}))
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == Counter({200: rate, 429: 3 * rate}), statuses
    for answer in answers:
        if answer.status_code == 429:
            body = answer.json()
            assert "rate limit" in body["error"], body
            assert 0 < body["retry_after_s"] <= 60 and 1 <= int(answer.headers["Retry-After"]) <= 61, body
    # The hosts' clocks really were 80 s apart (each stamps its evaluations), and the audit is on one clock.
    stamped = {}
    for evaluation_id, created_at in lab.db_rows(f"SELECT id, created_at FROM evaluations WHERE researcher_id = {rid}"):
        stamped[evaluation_id] = created_at
    by_host = [[stamped[a.json()["evaluation_id"]] for i, a in enumerate(answers) if a.status_code == 200 and i % 2 == h]
               for h in (0, 1)]
    assert by_host[0] and by_host[1] and min(by_host[1]) - max(by_host[0]) > 60
    audit_times = [t for (t,) in lab.db_rows(f"SELECT created_at FROM audit WHERE researcher_id = {rid}")]
    assert len(audit_times) == len(answers) and max(audit_times) - min(audit_times) < 30
    assert abs(max(audit_times) - time.time()) < 30


def test_two_labs_started_together_on_an_empty_database_both_come_up(lab: LabServer, tmp_path: Path,
                                                                      pg_server: str) -> None:
    """Both compute the task's baselines (a cold cache makes that take seconds, so they overlap); the second
    INSERT used to hit the (task, fingerprint) key and that lab failed to start. Now both serve the stored row."""
    with fresh_databases(pg_server) as make_db:
        db_url = make_db()
        starting = [start_lab(lab.data_dir, tmp_path / f"lab-{i}", db_url=db_url, cache_dir=tmp_path / f"cold-{i}",
                              extra_args=HOST_OPTIONS) for i in range(2)]
        with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
            servers = list(pool.map(lambda context: stack.enter_context(context), starting))
            rows = servers[0].db_rows("SELECT task, weak_dev_acc, ceiling_dev_acc FROM baselines")
            assert [row[0] for row in rows] == ["mini"], rows
            token = servers[0].create_researcher("both")
            predictions = np.random.default_rng(8).random(N_TEST).round(3).tolist()
            first = servers[0].client(token).post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions})
            again = servers[1].client(token).post("/api/v1/evaluate", json={"task": "mini", "predictions": predictions})
            assert first.status_code == 200 and again.status_code == 200, (first.text, again.text)
            assert again.json()["identical_to_evaluation"] == first.json()["evaluation_id"]
            assert again.json()["dev_pgr"] == first.json()["dev_pgr"]  # the same baselines on both
            computed = sum("baselines computed" in server.log_tail(100_000) for server in servers)
            assert computed == 2, "the labs did not overlap: this test did not race them"
