"""A whole campaign whose LLM provider stalls past the deadline still verifies what was found.

`autow2s run` in a subprocess, with one OpenAI-protocol researcher on a local fake (tests/llm_fakes.py)
whose second answer never comes in time. The campaign waits for every researcher before it verifies,
so a request nobody can abandon used to hold it for the client's whole timeout (600 s) and then past
the join grace ("did not stop … nothing was verified").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm_fakes import ScriptedLLM, Stall, fake_llm_server

BUDGET_S = 20


@pytest.mark.slow
def test_a_provider_stalled_past_the_deadline_does_not_stop_verification(tmp_path: Path) -> None:
    script = ScriptedLLM([lambda b: [("list_files", {})], lambda b: Stall(seconds=600)])
    run_dir = tmp_path / "run"
    env = os.environ | {"COLUMNS": "160", "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    with fake_llm_server(script) as url:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "autow2s", "run", "--task", "synth-linear", "--transfer-tasks", "none",
             "--researchers", "openai:1", "--model", "fake-gpt", "--base-url", f"{url}/v1",
             "--dependence-check", "off", "--budget", str(BUDGET_S), "--out", str(run_dir)],
            capture_output=True, text=True, timeout=400, env=env)
        took = time.monotonic() - started
        stalled = len(script.requests) >= 2
    assert result.returncode == 0, result.stderr[-3000:]
    assert stalled, "the researcher never reached the stalling turn"
    assert "did not stop" not in result.stderr
    board = json.loads((run_dir / "leaderboard.json").read_text())
    assert board["vanilla"]["holdout_pgr"] is not None, board  # the final step verified
    state = json.loads((run_dir / "state.json").read_text())
    assert state["researchers"]["openai-1"]["state"] == "stopped", state["researchers"]
    assert took < 300, f"the campaign took {took:.0f} s"
