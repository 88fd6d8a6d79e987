"""The run directory module: the ledger, the dashboard and the report read back what the campaign wrote."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from autow2s.researchers.accounting import DEFAULT_PRICES, Ledger, Usage
from autow2s.rundir import JobKills, RunDir, RunState, read_run_view, spent_per_researcher


def test_a_resumed_ledger_and_the_dashboard_count_the_same_dollars_and_skip_a_torn_line(tmp_path: Path) -> None:
    paths = RunDir(tmp_path)
    ledger = Ledger(prices=dict(DEFAULT_PRICES), journal=paths.spend)
    ledger.charge("claude-1", "claude-opus-5-5", Usage(input_tokens=1_000_000))
    ledger.charge("claude-2", "claude-opus-5-5", Usage(output_tokens=100_000))
    with paths.spend.open("a") as handle:
        handle.write('{"researcher": "claude-1", "dollars": 9')  # a kill mid-write
    resumed = Ledger(prices=dict(DEFAULT_PRICES), journal=paths.spend)
    assert resumed.spent == ledger.spent == {"claude-1": 4.0, "claude-2": 2.0}
    assert resumed.usage["claude-1"].input_tokens == 1_000_000
    assert spent_per_researcher(paths.spend) == ledger.spent


def test_the_view_reads_a_running_campaign_and_tolerates_missing_or_torn_files(tmp_path: Path) -> None:
    paths = RunDir(tmp_path)
    assert read_run_view(tmp_path) is None  # not a run directory
    paths.config.write_text(json.dumps({"tasks": ["synth-linear"], "transfer_tasks": ["synth-xor"], "budget_s": 60,
                                        "max_dollars": 5.0, "eval_budget": None, "eval_rate": 90}))
    view = read_run_view(tmp_path)
    assert view is not None and (view.phase, view.task, view.running, view.eval_rate) == ("starting", "synth-linear",
                                                                                          False, 90)
    RunState(phase="researching", elapsed_s=12.0,
             researchers={"search-1": {"kind": "search", "experiments": 3}, "baseline-vanilla": {"verify_id": 1}}
             ).save(paths.state)
    view = read_run_view(tmp_path)
    assert view is not None and view.running and view.transfer_tasks == ("synth-xor",)
    assert list(view.researchers) == ["search-1"]  # an entry without a kind is no researcher
    paths.state.write_text('{"phase": "verif')  # half-written
    view = read_run_view(tmp_path)
    assert view is not None and view.phase == "starting" and view.campaign_cap == 5.0


def test_job_kills_lists_limit_kills_once_their_report_exists(tmp_path: Path) -> None:
    paths = RunDir(tmp_path)
    (paths.jobs / "search-1-7").mkdir(parents=True)
    kills = JobKills()
    assert kills.kills(tmp_path, ["search-1"]) == []  # running: no report yet
    (paths.jobs / "search-1-7" / "report.json").write_text(json.dumps(
        {"limit_hit": "wall", "message": "killed after 300 s", "wall_seconds": 300.2, "peak_memory_bytes": 1}))
    (paths.jobs / "search-1-8").mkdir()
    (paths.jobs / "search-1-8" / "report.json").write_text(json.dumps({"limit_hit": None}))
    found = kills.kills(tmp_path, ["search-1", "search-10"])
    assert [(k.job_id, k.researcher, k.limit) for k in found] == [("search-1-7", "search-1", "wall")]
    assert found[0].finished_at <= time.time()


def test_the_secrets_file_is_private(tmp_path: Path) -> None:
    paths = RunDir(tmp_path)
    paths.save_secrets({"admin_token": "admin-x"})
    assert os.stat(paths.secrets).st_mode & 0o077 == 0
    assert paths.load_secrets() == {"admin_token": "admin-x"}
