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
    return report, graded(report, lab_data)


def graded(report: dict, lab_data: Path, top: float = 1.0) -> float:
    """The share of the attack's dev guesses that are right; with top < 1, of its most confident `top` share of
    them, by the confidence it reports (the guesses an attacker would act on)."""
    rows, dev, _ = read_labels(lab_data / "wide")
    on_dev = [(int(i), guess) for i, guess in report["guesses"].items() if rows[int(i)]["id"] in dev]
    assert len(on_dev) >= 50, report  # the attack did recover (guess) labels; we grade them
    if top < 1.0:
        on_dev.sort(key=lambda pair: -report["confidence"][str(pair[0])])
        on_dev = on_dev[: int(len(on_dev) * top)]
    right = sum(guess == int(bool(rows[i]["label"])) for i, guess in on_dev)
    return right / len(on_dev)


def audit_of(server, name: str) -> list[dict]:
    return server.admin().get("/api/v1/audit", params={"researcher_id": server.researcher_id(name),
                                                       "limit": 10_000}).json()


# The attacks are SQLite only: hundreds of evaluations each, whose DB side the near-duplicate test covers.
@pytest.mark.parametrize("lab_db", ["sqlite"], indirect=True)
def test_flip_attack_within_the_default_budget_recovers_at_most_60_percent(lab, lab_data: Path, tmp_path: Path) -> None:
    token = attacker(lab, "mallory-flip")
    report, accuracy = attack(lab, token, "flip", tmp_path / "flip.json", lab_data)
    default_total = int(0.075 * 2000)  # the default: 7.5% of the 2000 dev items
    assert report["accepted"] == default_total  # it spent the whole default budget...
    assert report["refused"] >= 1  # ...after its single flips were answered with the base's own figure, free...
    assert accuracy <= 0.60, (accuracy, report)  # ...and block flips on a coarsened score leak ~nothing
    audit = audit_of(lab, "mallory-flip")
    near = [r for r in audit if r["outcome"] == "near_duplicate"]
    assert near and all(r["charged"] is None and r["status"] == 200 for r in near)
    assert sum(r["charged"] == "evaluate" for r in audit) == default_total
    assert audit[-1]["status"] == 429


@pytest.mark.parametrize("lab_db", ["sqlite"], indirect=True)
def test_patient_group_testing_recovers_at_most_60_percent_of_its_most_confident_tenth(lab, lab_data: Path,
                                                                                      tmp_path: Path) -> None:
    """Groups of exactly the smallest change the lab scores, never a near-duplicate: it trips no flag and spends
    the whole budget, and even the tenth of its guesses it is surest of are barely better than a coin."""
    report, accuracy = attack(lab, attacker(lab, "mallory-group"), "group", tmp_path / "group.json", lab_data)
    top_accuracy = graded(report, lab_data, top=0.1)
    assert report["accepted"] == int(0.075 * 2000) and report["refused"] == 0, report
    assert top_accuracy <= 0.60 and accuracy <= 0.60, (top_accuracy, accuracy, report)
    assert not [r for r in audit_of(lab, "mallory-group") if r["flags"] or r["outcome"] == "near_duplicate"]


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


def test_a_single_flip_is_answered_with_the_old_figure_free_and_constant_answers_coarsened(lab) -> None:
    client = lab.client(lab.create_researcher("tinkerer"))
    rng = np.random.default_rng(5)
    base = rng.random(400)
    first = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": base.tolist()}).json()
    for flips in (1, 7):  # mini has 400 test items: within 8 of an earlier submission is a near-duplicate
        probe = base.copy()
        probe[:flips] = 1 - probe[:flips]
        answer = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": probe.tolist()})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        # No information: the very figure the researcher already had, under the same evaluation, uncharged.
        assert body["dev_accuracy"] == first["dev_accuracy"] and body["evaluation_id"] == first["evaluation_id"]
        assert body["near_duplicate_of_evaluation"] == first["evaluation_id"] and body["items_changed"] == flips
        assert body["min_items_changed"] == 8 and body["budget_left"] == first["budget_left"]
        assert body["flags"] == [] and f"evaluation {first['evaluation_id']}'s figure" in body["note"]
    probe = base.copy()
    probe[:8] = 1 - probe[:8]
    fresh = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": probe.tolist()}).json()
    assert fresh["evaluation_id"] != first["evaluation_id"] and fresh["near_duplicate_of_evaluation"] is None
    for constant in (0.0, 1.0):
        answer = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": [constant] * 400}).json()
        assert answer["flags"] == ["degenerate"] and "coarse" in answer["note"]
        assert abs(answer["dev_accuracy"] / 0.05 - round(answer["dev_accuracy"] / 0.05)) < 1e-9
    me = client.get("/api/v1/me").json()
    assert me["budgets"]["mini"]["evaluate"]["total_left"] == 20 - 4  # the near-duplicates cost nothing
    audit = audit_of(lab, "tinkerer")
    assert [r["outcome"] for r in audit if r["outcome"] == "near_duplicate"] == ["near_duplicate"] * 2
    assert not any(r["flags"] for r in audit if r["outcome"] == "near_duplicate")


def test_honest_ablations_are_free_and_unflagged_and_probing_many_bases_is_flagged(lab) -> None:
    """The issue's case: ablations of one method (another kNN metric, another k) change a few of 400 predictions.
    They are answered with the original's figure, free and unflagged, and the reply says so. Near-duplicates of
    five different evaluations in a few minutes are what a prober sends: flagged, and still told nothing new."""
    client = lab.client(lab.create_researcher("ablator"))
    rng = np.random.default_rng(11)
    original = rng.random(400)
    scored = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": original.tolist()}).json()
    for changed in ([3, 50, 120], [7, 8, 9, 200, 300]):  # cosine kNN graph; k = 100 instead of 50
        ablation = original.copy()
        ablation[changed] = 1 - ablation[changed]
        answer = client.post("/api/v1/evaluate", json={"task": "mini", "predictions": ablation.tolist()}).json()
        assert answer["near_duplicate_of_evaluation"] == scored["evaluation_id"] and answer["flags"] == []
        assert answer["dev_accuracy"] == scored["dev_accuracy"] and answer["budget_left"] == scored["budget_left"]
        assert "near-duplicate" in answer["note"] and "not charged" in answer["note"]

    prober = lab.client(lab.create_researcher("many-bases"))
    bases = [rng.random(400) for _ in range(5)]
    figures = [prober.post("/api/v1/evaluate", json={"task": "mini", "predictions": b.tolist()}).json() for b in bases]
    answers = []
    for base, figure in zip(bases, figures):
        flipped = base.copy()
        flipped[0] = 1 - flipped[0]
        answers.append(prober.post("/api/v1/evaluate", json={"task": "mini", "predictions": flipped.tolist()}).json())
        assert answers[-1]["dev_accuracy"] == figure["dev_accuracy"]  # still nothing new, still free
    assert [a["flags"] for a in answers] == [[]] * 4 + [["probing_pattern"]]
    assert "5 different evaluations" in answers[-1]["note"] and answers[-1]["budget_left"] == figures[-1]["budget_left"]
    flagged = [r for r in audit_of(lab, "many-bases") if "probing_pattern" in r["flags"]]
    assert len(flagged) == 1 and flagged[0]["charged"] is None
    assert not any(r["flags"] for r in audit_of(lab, "ablator"))
