"""Campaign budgets that hold: dollar caps, idle researchers, the deadline, the verify rate, and resume.

LLM researchers talk to a local server that speaks the OpenAI wire protocol (tests/llm_fakes.py),
through the official SDK; everything else (lab, sandbox, executor) is real.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from llm_fakes import FILE_FAULTS, FILE_FAULTS_LOGGED, Fault, ScriptedLLM, fake_llm_server


def _env() -> dict[str, str]:
    return os.environ | {"COLUMNS": "160", "OPENAI_API_KEY": "sk-test-not-a-real-key"}


ONE_TASK = ("--task", "synth-linear", "--transfer-tasks", "none")  # these tests are about budgets, not suites


def _run(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    args = args if "--resume" in args or "--task" in args else (*ONE_TASK, *args)
    return subprocess.run([sys.executable, "-m", "autow2s", "run", *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _openai(url: str) -> tuple[str, ...]:
    # The null-supervisor check is tested in test_integrity.py; here it would only double verification time.
    return ("--researchers", "openai:1", "--model", "fake-gpt", "--base-url", f"{url}/v1", "--dependence-check", "off")


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def _db(run_dir: Path, query: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "lab-state" / "lab.sqlite") as conn:
        return conn.execute(query).fetchall()


def _verification_started(run_dir: Path) -> float:
    """When the campaign's final step began: the vanilla baseline's verified run was requested."""
    rows = _db(run_dir, "SELECT v.created_at FROM verify_runs v JOIN researchers r ON r.id = v.researcher_id "
                        "WHERE r.name = 'baseline-vanilla'")
    assert len(rows) == 1, rows
    return float(rows[0][0])


def test_a_capped_researcher_stops_within_one_iteration(tmp_path: Path) -> None:
    # Each fake turn costs $1.50 at the default price; a $2 cap allows two turns.
    script = ScriptedLLM([lambda body: [("list_files", {"path": "."})]] * 20)
    with fake_llm_server(script) as url:
        result = _run(*_openai(url), "--researcher-dollars", "2", "--budget", "60", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    researcher = _state(tmp_path / "run")["researchers"]["openai-1"]
    assert researcher["state"] == "capped", researcher
    assert len(script.requests) <= 3  # the cap is checked before every turn


def test_an_idle_researcher_sleeps_instead_of_spinning(tmp_path: Path) -> None:
    script = ScriptedLLM([])  # ends every conversation at once with "done"
    started = time.monotonic()
    with fake_llm_server(script) as url:
        result = _run(*_openai(url), "--budget", "90", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started >= 90
    assert 2 <= len(script.requests) <= 6, len(script.requests)  # 2 quick ones, then 30 s, 60 s… of sleep
    assert _state(tmp_path / "run")["researchers"]["openai-1"]["iterations"] <= 6


SLOW_METHOD = "import time\n\ndef run(ctx):\n    time.sleep(240)\n    return ctx.weak_soft_labels('test')\n"


def test_nothing_runs_or_is_recorded_after_verification_starts(tmp_path: Path) -> None:
    script = ScriptedLLM([lambda body: [("write_file", {"path": "slow/method.py", "content": SLOW_METHOD})],
                          lambda body: [("run_experiment", {"method_dir": "slow", "seeds": [1]})]])
    run_dir = tmp_path / "run"
    started = time.monotonic()
    with fake_llm_server(script) as url:
        result = _run(*_openai(url), "--budget", "20", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.monotonic() - started < 200  # the 240 s experiment was cancelled, not waited for
    verification = _verification_started(run_dir)
    reports = list((run_dir / "jobs").glob("*/report.json"))
    jobs = [path for path in (run_dir / "jobs").iterdir() if path.name != "warm"]  # warm/: the sandbox pool's logs
    assert reports and len(reports) == len(jobs)  # every job ended
    assert all(path.stat().st_mtime <= verification for path in reports)
    ended = [json.loads(path.read_text()) for path in reports]
    # The 240 s experiment was stopped by the deadline: its wall limit was the time left, or it was cancelled.
    assert all(job["wall_seconds"] < 120 for job in ended)
    assert any(job["status"] == "cancelled" or job["limit_hit"] == "wall_time" for job in ended)
    transcript = run_dir / "researchers" / "openai-1" / "transcript.jsonl"
    assert transcript.stat().st_mtime <= verification


def test_the_final_step_waits_out_the_verify_rate_instead_of_skipping(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = _run("--researchers", "search:1", "--budget", "40", "--verify-rate", "1", "--seed", "3",
                  "--dependence-check", "off", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    chosen = set(_state(run_dir)["candidate_snapshots"].values())  # what the final step chose to verify
    verified = {row[0] for row in _db(run_dir, "SELECT snapshot_id FROM verify_runs WHERE status = 'done'")}
    assert chosen and chosen <= verified, result.stderr[-2000:]
    assert "could not verify" not in result.stderr


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _kill_when(run_dir: Path, args: list[str], predicate, timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
    process = subprocess.Popen([sys.executable, "-m", "autow2s", "run", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=_env())
    try:
        assert _wait_for(predicate, timeout), "the campaign never reached the point to interrupt"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(1.0)  # the lab child dies with its parent


def test_kill_9_during_preparation_verification_and_transfer_then_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    data = run_dir / "data"
    args = ["--task", "synth-linear", "--transfer-tasks", "synth-nonlinear", "--researchers", "search:1",
            "--budget", "15", "--dependence-check", "off", "--out", str(run_dir)]
    _kill_when(run_dir, args, lambda: (data / ".synth-linear.partial" / "public").is_dir())
    assert not (data / "synth-linear").exists()  # half a preparation is never taken for a whole one

    def verifying() -> bool:
        try:
            return bool(_state(run_dir).get("baseline_verify_ids"))
        except (OSError, ValueError):
            return False

    _kill_when(run_dir, ["--resume", str(run_dir)], verifying)
    assert (data / "synth-linear" / "public" / "weak" / "model.json").is_file()
    assert (data / "synth-linear" / "null" / "neg" / "weak" / "model.json").is_file()
    assert (run_dir / "transfer-data" / "synth-nonlinear" / "lab" / "partition.json").is_file()
    assert not (data / ".synth-linear.partial").exists()

    def transfer_started() -> bool:  # a transfer run finished; the campaign has not (its leaderboard is unwritten)
        try:
            return any(r[0] == "done" for r in _db(run_dir, "SELECT status FROM transfer_runs"))
        except sqlite3.Error:
            return False

    _kill_when(run_dir, ["--resume", str(run_dir)], transfer_started)
    assert _state(run_dir)["phase"] == "verifying"
    finished = {row[0]: row[1:] for row in _db(run_dir, "SELECT id, finished_at, holdout_pgr FROM transfer_runs "
                                                        "WHERE status = 'done'")}
    assert finished

    result = _run("--resume", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _state(run_dir)["phase"] == "done"
    _verification_started(run_dir)  # the vanilla baseline was verified exactly once
    runs = _db(run_dir, "SELECT id, snapshot_id, task, status, finished_at, holdout_pgr FROM transfer_runs")
    assert len({(r[1], r[2]) for r in runs}) == len(runs) and all(r[3] == "done" for r in runs)
    for run_id, before in finished.items():  # no finished transfer run was redone
        assert next(r[4:] for r in runs if r[0] == run_id) == before
    board = json.loads((run_dir / "leaderboard.json").read_text())
    assert board["transfer_tasks"] == ["synth-nonlinear"]
    assert board["vanilla"]["transfer_pgr"] is not None
    assert board["rows"][0]["transfer"]["synth-nonlinear"]["status"] == "done"


def test_an_openai_campaign_survives_every_fault_and_logs_each(tmp_path: Path) -> None:
    script = ScriptedLLM([
        *FILE_FAULTS,
        lambda b: [("read_finding", {"finding_id": "three"})],
        lambda b: Fault(529), lambda b: Fault(529), lambda b: Fault(529), lambda b: Fault(529),
        lambda b: [("list_files", {})],
        lambda b: "done for now",
    ])
    run_dir = tmp_path / "run"
    with fake_llm_server(script) as url:
        result = _run(*_openai(url), "--budget", "60", "--idle", "stop", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    researcher = _state(run_dir)["researchers"]["openai-1"]
    assert researcher["state"] != "error", researcher
    transcript = [json.loads(line) for line in (run_dir / "researchers" / "openai-1" / "transcript.jsonl").open()]
    tools = [entry["tool"] for entry in transcript if "tool" in entry]
    assert tools[-1] == "list_files"  # the call after every fault was made, in the same conversation
    log = (run_dir / "researchers" / "openai-1" / "errors.log").read_text()
    for expected in (*FILE_FAULTS_LOGGED, "finding_id must be an integer"):
        assert expected in log, (expected, log)
    assert log.count("waiting for the provider: 529") == 4
