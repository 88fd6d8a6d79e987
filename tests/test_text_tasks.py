"""arith-verify and code-verify: computed labels, the anchor's jsonl format, and a full experiment row."""

from __future__ import annotations

import re

import numpy as np
import pytest

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.tasks.registry import TASKS
from autow2s.testbed.tasks.text import code_verify
from autow2s.testbed.tasks.text.arith_verify import ArithConfig, generate
from autow2s.testbed.tasks.text.code_exec import execute_all


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOW2S_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_arith_labels_are_the_arithmetic_truth():
    task = generate(ArithConfig(n_train_label=50, n_train_unlabel=50, n_test=200))
    split = task.split("test")
    for row, label in zip(split.rows, split.labels):
        a, b = (int(x) for x in re.findall(r"\d+", row["question"])[:2])
        subtract = any(word in row["question"] for word in ("gives away", "loses", "sells", "hands out"))
        truth = a - b if subtract else a + b
        proposed = int(row["choice"].rsplit(" ", 1)[-1].rstrip("."))
        assert label == int(proposed == truth)
        assert "label" not in row
    assert 0.35 < split.labels.mean() < 0.65
    assert generate(ArithConfig(n_test=30)).fingerprint() == generate(ArithConfig(n_test=30)).fingerprint()


def test_text_tasks_are_registered():
    assert {"arith-verify", "code-verify"} <= set(TASKS)


@pytest.mark.parametrize("isolation", ["sandbox", "subprocess"])
def test_code_execution_tells_pass_fail_and_timeout(cache_dir, monkeypatch, isolation):
    """Both runners agree; the sandboxed one is the sandbox layer's, injected (as the CLI does), and used."""
    import json

    from autow2s.sandbox import SandboxUnavailableError, require_sandbox
    from autow2s.sandbox.code_runner import install
    from autow2s.testbed.tasks.text import code_exec

    if isolation == "sandbox":
        try:
            require_sandbox()
        except SandboxUnavailableError as exc:
            pytest.skip(f"no sandbox here: {exc}")
    monkeypatch.setattr(code_exec, "_isolated_runner", None)
    install()
    monkeypatch.setenv(code_exec.EXEC_ENV, isolation)
    outcomes = execute_all(["assert 1 + 1 == 2\n", "assert 1 + 1 == 3\n", "while True:\n    pass\n"], timeout_s=1.5)
    assert outcomes == ["passed", "failed", "timeout"]
    cached = list((cache_dir / "code-exec").rglob("*.json"))
    assert cached, "outcomes must be cached"
    assert {json.loads(path.read_text())["runner"] for path in cached} == {isolation}


def test_code_verify_labels_come_from_execution_and_timeouts_are_dropped(cache_dir, monkeypatch):
    task = code_verify.build_code_verify(code_verify.CodeVerifyConfig(n_problems=6))
    rows = [row for split in task.splits.values() for row in split.rows]
    labels = np.concatenate([split.labels for split in task.splits.values()])
    canonical = [label for row, label in zip(rows, labels) if row["id"].endswith("-0")]
    assert canonical and all(canonical), "every canonical HumanEval solution passes its tests"
    assert 0 < labels.mean() < 1
    assert all("def " in row["choice"] and '"""' not in row["choice"] for row in rows)
    problems = {row["subset"]: name for name, split in task.splits.items() for row in split.rows}
    for name, split in task.splits.items():
        assert all(problems[row["subset"]] == name for row in split.rows), "a problem must live in one split"

    real, seen = code_verify.execute_all, {}

    def every_other_times_out(programs, **kwargs):
        outcomes = ["timeout" if i % 2 else o for i, o in enumerate(real(programs, **kwargs))]
        seen.update(programs=len(programs), kept=sum(o != "timeout" for o in outcomes))
        return outcomes

    monkeypatch.setattr(code_verify, "execute_all", every_other_times_out)
    fewer = code_verify.build_code_verify(code_verify.CodeVerifyConfig(n_problems=6, balance=False))
    assert sum(len(s) for s in fewer.splits.values()) == seen["kept"] < seen["programs"]


def test_renamed_candidates_keep_behaviour_and_change_every_local_name(cache_dir):
    problem = code_verify.read_humaneval()[0]
    rng = np.random.default_rng(0)
    found = code_verify.candidates(problem, rng, n_mutants=1, renamings=3)
    canonical = next(shown for kind, shown, _ in found if kind == "canonical")
    renamed = [(shown, program) for kind, shown, program in found if kind == "canonical-renamed"]
    assert len(renamed) == 2 and all(shown != canonical for shown, _ in renamed)
    assert code_verify.execute_all([program for _, program in renamed], timeout_s=3.0) == ["passed", "passed"]


def test_text_tasks_round_trip_through_the_anchor_jsonl_format(tmp_path):
    task = generate(ArithConfig(n_train_label=20, n_train_unlabel=30, n_test=25))
    out = code_verify.write_task_dir(task, tmp_path / "arith")
    loaded = load_task_dir(out)
    assert loaded.kind == "binary"
    for name in task.splits:
        assert loaded.split(name).rows == task.split(name).rows
        np.testing.assert_array_equal(loaded.labels(name), task.labels(name))


def test_arith_verify_gives_a_full_experiment_row_offline(cache_dir):
    task = generate(ArithConfig(n_train_label=150, n_train_unlabel=300, n_test=150))
    settings = ExperimentSettings(strong="encoder", weak="tfidf", n_boot=100)
    result = run_experiment(task, load_method("vanilla"), [42], cache=ArtifactCache(cache_dir), settings=settings)
    for value in (result.weak_acc, result.ceiling_acc, result.transfer_acc):
        assert 0.3 < value <= 1.0
    assert result.note == "" or "no PGR" in result.note
    again = run_experiment(task, load_method("vanilla"), [42], cache=ArtifactCache(cache_dir), settings=settings)
    assert again.transfer_acc == result.transfer_acc and again.weak_acc == result.weak_acc
