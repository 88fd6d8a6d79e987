"""What the campaign verifies at the end: the best of every researcher's experiments, by a lower confidence bound.

The unit tests rank recorded experiments; the campaign test runs an LLM researcher (a local server
speaking the OpenAI wire protocol, through the official SDK) that never saves a snapshot itself, and
finds its best method verified on the leaderboard.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autow2s.campaign.selection import DEFAULT_SEED_SD, choose, rank_candidates
from autow2s.researchers.experiment_log import ExperimentLog, ExperimentResult

TASKS = ("synth-linear", "rt-sentiment")


def _result(researcher: str, sha: str, pgrs: dict[str, list[float]], quick: bool = False,
            first_id: int = 1) -> ExperimentResult:
    tasks = {}
    for offset, (task, values) in enumerate(pgrs.items()):
        ids = [first_id + 100 * offset + i for i in range(len(values))]
        tasks[task] = {"seeds": list(range(len(values))), "dev_pgrs": values, "evaluation_ids": ids}
    return ExperimentResult(researcher, f"{sha}-dir", sha, quick, tasks)


def test_a_higher_lower_bound_beats_a_higher_mean_with_a_wide_interval() -> None:
    steady = _result("search-1", "steady", {"synth-linear": [0.30, 0.33, 0.31, 0.29, 0.32],
                                            "rt-sentiment": [0.28, 0.30, 0.27, 0.31, 0.29]})
    lucky = _result("claude-2", "lucky", {"synth-linear": [0.47], "rt-sentiment": [0.43]}, first_id=1000)
    noisy = _result("openai-3", "noisy", {"synth-linear": [0.9, -0.2, 0.8], "rt-sentiment": [0.7, -0.1, 0.5]},
                    first_id=2000)
    ranked = rank_candidates([steady, lucky, noisy], TASKS)
    by_sha = {c.method_sha: c for c in ranked}
    assert by_sha["lucky"].research_pgr > by_sha["noisy"].research_pgr > by_sha["steady"].research_pgr
    assert ranked[0].method_sha == "steady"  # the highest lower bound, not the highest mean
    assert by_sha["steady"].lower_bound > by_sha["lucky"].lower_bound
    assert by_sha["lucky"].lower_bound < by_sha["lucky"].research_pgr - 0.1  # one seed borrows the campaign's spread
    assert [c.method_sha for c in choose([steady, lucky, noisy], TASKS, 2)] == [c.method_sha for c in ranked[:2]]
    assert by_sha["noisy"].lower_bound > by_sha["lucky"].lower_bound  # three wild seeds still beat one lucky one
    assert "95% lower bound" in by_sha["steady"].describe() and "5/5 seeds" in by_sha["steady"].describe()


def test_quick_partial_and_repeated_runs_do_not_count_twice() -> None:
    full = _result("search-1", "m", {"synth-linear": [0.2, 0.3], "rt-sentiment": [0.1, 0.2]})
    again = _result("search-1", "m", {"synth-linear": [0.2, 0.3], "rt-sentiment": [0.1, 0.2]})  # same evaluations
    quick = _result("search-1", "q", {"synth-linear": [0.9], "rt-sentiment": [0.9]}, quick=True, first_id=50)
    partial = ExperimentResult("search-1", "p-dir", "p", False,
                               {"synth-linear": {"seeds": [1], "dev_pgrs": [0.9], "evaluation_ids": [70]}})
    refused = _result("search-1", "r", {"synth-linear": [0.9, None], "rt-sentiment": [0.9, 0.9]},  # type: ignore[list-item]
                      first_id=80)
    ranked = rank_candidates([full, again, quick, partial, refused], TASKS)
    assert [c.method_sha for c in ranked] == ["m"] and ranked[0].seeds == {"synth-linear": 2, "rt-sentiment": 2}
    # with no method run twice, the spread is the documented default
    single = rank_candidates([_result("a", "x", {"synth-linear": [0.5], "rt-sentiment": [0.5]})], TASKS)[0]
    assert single.lower_bound == pytest.approx(0.5 - 1.645 * (DEFAULT_SEED_SD ** 2 * 2) ** 0.5 / 2)


def test_the_log_keeps_the_method_that_ran_and_survives_a_torn_line(tmp_path: Path) -> None:
    log = ExperimentLog(tmp_path / "claude-1", "claude-1")
    digest = log.store_method(b"packed bytes")
    assert log.store_method(b"packed bytes") == digest and log.method(digest) == b"packed bytes"
    log.append(_result("claude-1", digest, {"synth-linear": [0.1]}))
    with (tmp_path / "claude-1" / "experiments.jsonl").open("a") as handle:
        handle.write('{"researcher": "claude-1", "method_')  # a kill -9 mid-write
    assert [r.method_sha for r in log.results()] == [digest]


@pytest.mark.slow  # a whole campaign with an LLM researcher
def test_an_llm_researchers_best_experiment_is_verified_without_it_saving_a_snapshot(tmp_path: Path) -> None:
    from llm_fakes import ScriptedLLM, fake_llm_server

    method = ("from autow2s.testbed.methods.composed import Recipe, run_recipe\n\n"
              "def run(ctx):\n    return run_recipe(ctx, Recipe(loss='logconf'))\n")
    script = ScriptedLLM([
        lambda body: [("write_file", {"path": "mine/method.py", "content": method})],
        lambda body: [("run_experiment", {"method_dir": "mine", "seeds": [1, 2]})],
        lambda body: "done",
    ])
    run_dir = tmp_path / "run"
    env = os.environ | {"COLUMNS": "160", "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    with fake_llm_server(script) as url:
        done = subprocess.run([sys.executable, "-m", "autow2s", "run", "--task", "synth-linear", "--transfer-tasks",
                               "none", "--researchers", "openai:1", "--model", "fake-gpt", "--base-url", f"{url}/v1",
                               "--dependence-check", "off", "--budget", "60", "--idle", "stop", "--out",
                               str(run_dir)], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "researchers" / "openai-1" / "experiments.jsonl")
               .read_text().splitlines()]
    assert records and records[0]["method_dir"] == "mine"
    board = json.loads((run_dir / "leaderboard.json").read_text())
    mine = [row for row in board["rows"] + board["supervisor_free"] if row["researcher"] == "openai-1"]
    assert mine, board  # verified although the researcher never called save_snapshot or request_verification
    assert "lower bound" in done.stderr + done.stdout
