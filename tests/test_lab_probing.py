"""The probing detector, proven with the real attack client (scripts/flip_attack.py) against a real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lab_helpers import lab_data, read_labels, start_lab  # noqa: F401 - lab_data is a fixture
from pg_helpers import lab_db, pg_server  # noqa: F401 - fixtures: each lab on SQLite and on PostgreSQL

ATTACK = Path(__file__).resolve().parents[1] / "scripts" / "flip_attack.py"
UNDEFENDED = ["--score-noise-se", "0", "--score-resolution", "0", "--near-duplicate-fraction", "0",
              "--near-duplicate-min-items", "0"]


@pytest.fixture()
def lab(lab_data: Path, tmp_path: Path, lab_db):
    """A fresh lab per test with the default budgets and detector; only the noise is seeded, so each
    attack sees the same answers whichever xdist worker runs it and whatever ran before."""
    with start_lab(lab_data, tmp_path / "state", extra_args=["--noise-seed", "7"], db_url=lab_db()) as server:
        yield server


def attacker(server, name: str) -> str:
    """A researcher with the default total budget; the admin lifts only the per-minute rate, which
    bounds how fast labels leak, not how many (so the test need not wait minutes)."""
    token = server.create_researcher(name)
    response = server.admin().put("/api/v1/budgets", json={"researcher_id": server.researcher_id(name),
                                                           "task": "wide", "rate_per_minute": 100_000})
    assert response.status_code == 200, response.text
    return token


def attack(server, token: str, strategy: str, out: Path, lab_data: Path) -> tuple[dict, float]:
    result = subprocess.run([sys.executable, str(ATTACK), "--url", server.url, "--token", token, "--task", "wide",
                             "--strategy", strategy, "--seed", "3", "--out", str(out), "--max-seconds", "120"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows, dev, _ = read_labels(lab_data / "wide")
    on_dev = [(int(i), guess) for i, guess in report["guesses"].items() if rows[int(i)]["id"] in dev]
    assert len(on_dev) >= 50, report  # the attack did recover (guess) labels; we grade them
    right = sum(guess == int(bool(rows[i]["label"])) for i, guess in on_dev)
    return report, right / len(on_dev)


# The attacks are SQLite only: hundreds of evaluations each, whose DB side the near-duplicate test covers.
@pytest.mark.parametrize("lab_db", ["sqlite"], indirect=True)
def test_flip_attack_within_the_default_budget_recovers_at_most_60_percent(lab, lab_data: Path, tmp_path: Path) -> None:
    token = attacker(lab, "mallory-flip")
    report, accuracy = attack(lab, token, "flip", tmp_path / "flip.json", lab_data)
    default_total = int(0.075 * 2000)  # the default: 7.5% of the 2000 dev items
    assert report["accepted"] + report["refused"] == default_total  # it spent the whole default budget
    assert report["refused"] >= 1  # single-item flips were refused as near-duplicates...
    assert accuracy <= 0.60, (accuracy, report)  # ...and block flips on a coarsened score leak ~nothing
    audit = lab.admin().get("/api/v1/audit", params={"researcher_id": lab.researcher_id("mallory-flip"),
                                                     "limit": 10_000}).json()
    assert any(r["outcome"] == "refused_probe" and r["flags"] == "near_duplicate" for r in audit)
    assert audit[-1]["status"] == 429


@pytest.mark.parametrize("lab_db", ["sqlite"], indirect=True)
def test_boosting_attack_within_the_default_budget_recovers_at_most_60_percent(lab, lab_data: Path,
                                                                                tmp_path: Path) -> None:
    report, accuracy = attack(lab, attacker(lab, "mallory-boost"), "boost", tmp_path / "boost.json", lab_data)
    assert report["accepted"] == int(0.075 * 2000) and accuracy <= 0.60, (accuracy, report)


def test_the_attack_is_real_without_the_detector(lab_data: Path, tmp_path: Path) -> None:
    """Control: with exact scores and no near-duplicate rule, the same client reads labels perfectly."""
    with start_lab(lab_data, tmp_path / "state", extra_args=UNDEFENDED) as server:
        report, accuracy = attack(server, attacker(server, "mallory-control"), "flip", tmp_path / "c.json", lab_data)
    assert report["refused"] == 0 and accuracy == 1.0, report


def test_near_duplicates_are_refused_and_constant_answers_coarsened(lab) -> None:
    client = lab.client(lab.create_researcher("tinkerer"))
    rng = np.random.default_rng(5)
    base = rng.random(400)
    assert client.post("/api/v1/evaluate", json={"task": "mini", "predictions": base.tolist()}).status_code == 200
    for flips in (1, 7):  # mini has 400 test items: within 8 of an earlier submission is a near-duplicate
        probe = base.copy()
        probe[:flips] = 1 - probe[:flips]
        refused = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": probe.tolist()})
        assert refused.status_code == 409 and refused.json()["items_changed"] == flips
        assert refused.json()["field"] == "predictions" and "dev_accuracy" not in refused.json()
    probe = base.copy()
    probe[:8] = 1 - probe[:8]
    assert client.post("/api/v1/evaluate", json={"task": "mini", "predictions": probe.tolist()}).status_code == 200
    for constant in (0.0, 1.0):
        answer = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [constant] * 400}).json()
        assert answer["flags"] == ["degenerate"] and "coarse" in answer["note"]
        assert abs(answer["dev_accuracy"] / 0.05 - round(answer["dev_accuracy"] / 0.05)) < 1e-9
    me = client.get("/api/v1/me").json()
    assert me["budgets"]["mini"]["evaluate"]["total_left"] == 20 - 6  # refusals are charged too
