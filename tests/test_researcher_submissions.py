"""Submissions through the researcher's tools against a real lab and a real sandbox.

Deterministic methods are not punished (identical seeds are scored once, charged once, never
flagged), a near-duplicate seed is answered from the earlier figure and does not sink the other
seeds, a second verification request returns the first run, and lab_status shows a researcher its
own standing and nothing of anyone else's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from autow2s.researchers.lab_client import LabError
from lab_helpers import LabServer, lab_data, start_lab  # noqa: F401 - fixture
from toolbox_helpers import toolbox_factory

DETERMINISTIC = """def run(ctx):
    return ctx.weak_soft_labels("test")  # the same on every seed
"""

SEED_TWO_PROBES = """def run(ctx):
    predictions = ctx.weak_soft_labels("test")
    if ctx.seed == 2:  # two flipped items: a near-duplicate of seed 1, the flip attack's signature
        predictions[:2] = 1 - predictions[:2]
    return predictions
"""


@pytest.fixture(scope="module")
def lab(lab_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_lab(lab_data, tmp_path_factory.mktemp("submissions-lab")) as server:
        yield server


@pytest.fixture()
def make_toolbox(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator:
    with toolbox_factory(lab, lab_data, tmp_path) as make:
        yield make


def _charged(lab: LabServer, name: str, kind: str) -> int:
    rows = lab.admin().get("/api/v1/audit", params={"researcher_id": lab.researcher_id(name)}).json()
    return sum(1 for row in rows if row["charged"] == kind)


def test_a_deterministic_method_on_three_seeds_is_scored_once_charged_once_not_flagged(
        make_toolbox, lab: LabServer) -> None:
    toolbox = make_toolbox("steady")
    toolbox.call("write_file", {"path": "m/method.py", "content": DETERMINISTIC})
    result = json.loads(toolbox.call("run_experiment", {"method_dir": "m", "seeds": [1, 2, 3]}))
    per_seed = result["per_seed"]
    assert [s.get("error") for s in per_seed] == [None, None, None], per_seed
    assert len({s["evaluation_id"] for s in per_seed}) == 1
    assert all(s["flags"] == [] for s in per_seed)
    assert len({s["dev_accuracy"] for s in per_seed}) == 1  # the earlier answer, not fresh noise
    assert "identical to your evaluation" in per_seed[1]["note"] and "not charged" in per_seed[2]["note"]
    assert result["seeds_scored"] == 3 and all(s["metrics"] == [] and "stderr_tail" in s for s in per_seed)
    assert _charged(lab, "steady", "evaluate") == 1
    status = toolbox.lab.my_status("mini")
    assert status["evaluations_total"] == 1
    assert status["budgets"]["evaluate"]["left"] == status["budgets"]["evaluate"]["total"] - 1
    assert status["evaluations_recent"][0]["flags"] == []
    # A near-duplicate (an ablation that changes one prediction) is answered with the earlier figure: free, unflagged.
    toolbox.call("python", {"code": "import json\nrows = [json.loads(l) for l in open('/task/weak/test.jsonl')]\n"
                                    "p = [r['p'] for r in rows]\np[0] = 1 - p[0]\n"
                                    "json.dump({'predictions': p}, open('/workspace/near.json', 'w'))"})
    near = toolbox.call("evaluate_predictions", {"predictions_file": "near.json"})
    assert not near.startswith("error:") and "near-duplicate" in near and "not charged" in near, near
    assert _charged(lab, "steady", "evaluate") == 1


def test_a_near_duplicate_seed_is_answered_from_the_earlier_figure_and_the_logs_kept(make_toolbox) -> None:
    toolbox = make_toolbox("prober")
    toolbox.call("write_file", {"path": "m/method.py",
                                "content": "def run(ctx):\n    ctx.log(seed=ctx.seed, note='hello')\n"
                                           + SEED_TWO_PROBES.split("\n", 1)[1]})
    text = toolbox.call("run_experiment", {"method_dir": "m", "seeds": [1, 2, 3]})
    assert not text.startswith("error:"), text
    result = json.loads(text)
    first, second, third = result["per_seed"]
    assert first["dev_pgr"] is not None and first["metrics"] == [{"seed": 1, "note": "hello"}]
    # Seed 2 is a near-duplicate of seed 1 (two items flipped): answered with seed 1's figure, free, and said so.
    assert second["evaluation_id"] == first["evaluation_id"] and "near-duplicate" in second["note"], second
    assert third["evaluation_id"] == first["evaluation_id"]  # seed 3 repeats seed 1: answered free
    assert (result["seeds_scored"], result["seeds_failed"]) == (3, 0)


def test_a_failing_seed_reports_its_stderr_and_the_call_goes_on(make_toolbox) -> None:
    toolbox = make_toolbox("crasher")
    toolbox.call("write_file", {"path": "m/method.py",
                                "content": "import sys\n\ndef run(ctx):\n    print('loading', file=sys.stderr)\n"
                                           "    raise ValueError('shape mismatch in my code')\n"})
    result = json.loads(toolbox.call("run_experiment", {"method_dir": "m", "seeds": [5]}))
    seed = result["per_seed"][0]
    assert "shape mismatch in my code" in seed["stderr_tail"] and "loading" in seed["stderr_tail"]
    assert seed["error"].startswith("exit 1") and result["mean_dev_pgr"] is None


def test_a_second_verification_request_returns_the_first_run(make_toolbox, lab: LabServer) -> None:
    toolbox = make_toolbox("verifier")
    toolbox.call("write_file", {"path": "m/method.py", "content": DETERMINISTIC})
    snapshot = json.loads(toolbox.call("save_snapshot", {"method_dir": "m", "message": "weak copy"}))["snapshot_id"]
    first = json.loads(toolbox.call("request_verification", {"snapshot_id": snapshot}))
    second = json.loads(toolbox.call("request_verification", {"snapshot_id": snapshot}))
    assert second["verify_id"] == first["verify_id"] and second["seeds"] == first["seeds"]
    assert "already has verified run" in second["note"] and "nothing was charged" in second["note"]
    assert _charged(lab, "verifier", "verify") == 1
    status = json.loads(toolbox.call("lab_status", {}))
    assert [v["verify_id"] for v in status["verifications"]] == [first["verify_id"]]
    assert status["budgets"]["verify"]["left"] == status["budgets"]["verify"]["total"] - 1


def test_lab_status_shows_only_the_callers_own_rows(make_toolbox, lab: LabServer) -> None:
    busy, quiet = make_toolbox("busy"), make_toolbox("quiet")
    busy.call("write_file", {"path": "m/method.py", "content": DETERMINISTIC})
    busy.call("run_experiment", {"method_dir": "m", "seeds": [1]})
    mine = busy.lab.my_status("mini")
    theirs = quiet.lab.my_status("mini")
    assert mine["evaluations_total"] == 1 and theirs["evaluations_total"] == 0
    assert theirs["evaluations_recent"] == [] and theirs["verifications"] == []
    assert theirs["researcher"] == "quiet"
    assert not {"holdout_correct", "dev_correct", "pred_bits"} & set(json.dumps(mine).replace('"', " ").split())
    with pytest.raises(LabError) as unknown:
        quiet.lab.my_status("held-out-task")
    assert unknown.value.status == 404 and "wide" not in str(unknown.value) and "mini" not in str(unknown.value)
    admin = lab.admin().get("/api/v1/me/status", params={"task": "mini"})
    assert admin.status_code == 403


def test_two_research_tasks_are_run_scored_and_verified_per_task(make_toolbox, lab: LabServer,
                                                                   lab_data: Path) -> None:
    from autow2s.campaign.researchers import ResearcherStatus, normalise_verifications, on_event
    from autow2s.researchers.directions import BUILTIN_DIRECTIONS
    from autow2s.researchers.prompts import system_prompt

    toolbox = make_toolbox("suite", tasks=("mini", "wide"))
    status = ResearcherStatus("suite", "search", "d")
    toolbox.on_event = on_event(status, lambda: None)
    toolbox.call("write_file", {"path": "m/method.py", "content": DETERMINISTIC})
    unknown = toolbox.call("run_experiment", {"method_dir": "m", "tasks": ["held-out"]})
    assert unknown.startswith("error:") and "the research tasks are mini, wide" in unknown
    result = json.loads(toolbox.call("run_experiment", {"method_dir": "m", "quick": True}))  # /task/<name>/ each
    assert set(result["tasks"]) == {"mini", "wide"} and result["missing_tasks"] == [], result
    means = [result["tasks"][task]["mean_dev_pgr"] for task in ("mini", "wide")]
    assert None not in means and result["mean_dev_pgr"] == pytest.approx(sum(means) / 2)
    assert status.best_dev_pgr == result["mean_dev_pgr"]
    # evaluate_predictions must be told which task; the weak labels on wide repeat the experiment's (free).
    rows = [json.loads(line) for line in (lab_data / "wide" / "public" / "weak" / "test.jsonl").open()]
    (toolbox.workspace / "wide.json").write_text(json.dumps({"predictions": [row["p"] for row in rows]}))
    missing = toolbox.call("evaluate_predictions", {"predictions_file": "wide.json"})
    assert missing.startswith("error:") and "several research tasks (mini, wide)" in missing
    scored = json.loads(toolbox.call("evaluate_predictions", {"predictions_file": "wide.json", "task": "wide"}))
    assert scored["evaluation_id"] == result["tasks"]["wide"]["per_seed"][0]["evaluation_id"]
    assert set(json.loads(toolbox.call("lab_status", {}))) == {"mini", "wide"}
    # One verification request: one verified run per research task, recorded per task.
    snapshot = json.loads(toolbox.call("save_snapshot", {"method_dir": "m", "message": "weak copy"}))["snapshot_id"]
    asked = json.loads(toolbox.call("request_verification", {"snapshot_id": snapshot}))
    ids = {task: reply["verify_id"] for task, reply in asked["verifications"].items()}
    assert set(ids) == {"mini", "wide"} and len(set(ids.values())) == 2
    assert status.to_json()["verifications"] == {snapshot: ids}
    assert normalise_verifications({"abc": 7, snapshot: ids}, "mini") == {"abc": {"mini": 7}, snapshot: ids}
    prompt = system_prompt(toolbox.tasks, BUILTIN_DIRECTIONS[0])
    assert "/task/mini/" in prompt and "/task/wide/" in prompt and "held-out tasks you never see" in prompt
