"""The CLI as a user runs it: real subprocesses, tables, JSON, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.prepare import prepare_task
from testbed_helpers import features_rows, small_task, write_task_dir


def autow2s(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "autow2s", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small task on disk (prepare's lab view is an ordinary task directory)."""
    out = tmp_path_factory.mktemp("prepared")
    return prepare_task(small_task(), out, cache=ArtifactCache(out / "cache"))["lab"]


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_experiment_on_a_task_dir_prints_a_row_and_writes_json(task_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = autow2s("experiment", "--task", str(task_dir), "--method", "vanilla", "--seeds", "42,43",
                     "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "vanilla" in result.stdout and "PGR" in result.stdout
    data = json.loads(out.read_text())
    assert {"task", "method", "seeds", "weak_acc", "ceiling_acc", "transfer_acc", "pgr", "pgr_ci",
            "seconds"} <= set(data)
    assert data["seeds"] == [42, 43] and data["method"] == "vanilla"
    assert f"{data['transfer_acc']:.3f}" in result.stdout


def test_method_directory_is_run_through_the_contract(task_dir: Path, tmp_path: Path) -> None:
    method = tmp_path / "my_method"
    method.mkdir()
    (method / "method.py").write_text(
        '"""Sharpened weak labels."""\n'
        "def run(ctx):\n"
        "    soft = ctx.weak_soft_labels('train_unlabel')\n"
        "    student = ctx.strong_model(epochs=5)\n"
        "    student.fit(ctx.inputs('train_unlabel'), (soft > 0.5).astype(float))\n"
        "    ctx.log(note='done')\n"
        "    return student.predict_proba(ctx.inputs('test'))\n"
    )
    result = autow2s("experiment", "--task", str(task_dir), "--method", str(method), "--seeds", "1")
    assert result.returncode == 0, result.stderr
    assert "my_method" in result.stdout


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("return np.full(3, 0.5)", "shape (3,); expected (600,)"),
        ("p = np.full(600, 0.5); p[10] = np.nan; return p", "1 NaN/inf predictions"),
        ("raise ValueError('boom')", "raised ValueError: boom (at method.py:3, seed 1)"),
    ],
)
def test_bad_method_output_is_one_line(task_dir: Path, tmp_path: Path, body: str, fragment: str) -> None:
    method = tmp_path / "bad"
    method.mkdir()
    (method / "method.py").write_text(f"import numpy as np\ndef run(ctx):\n    {body}\n")
    _assert_one_line_error(autow2s("experiment", "--task", str(task_dir), "--method", str(method), "--seeds", "1"),
                           fragment)


def test_unknown_names_and_malformed_files_exit_2(tmp_path: Path) -> None:
    _assert_one_line_error(autow2s("experiment", "--task", "no-such-task"), "unknown task 'no-such-task'",
                           "synth-linear")
    _assert_one_line_error(autow2s("experiment", "--method", "no-such-method", "--seeds", "1"),
                           "unknown method 'no-such-method'")
    bad = write_task_dir(tmp_path / "bad", "features", {
        "train_label": features_rows(4), "train_unlabel": features_rows(4, start=10),
        "test": [*features_rows(2, start=20), '{"id": 99, "strong_features": [1, 2, 3]}']})
    _assert_one_line_error(autow2s("experiment", "--task", str(bad), "--seeds", "1"),
                           f"{bad / 'test.jsonl'}:3:", "missing field 'weak_features'")
    _assert_one_line_error(autow2s("experiment", "--seeds", "a,b"), "--seeds must be comma-separated integers")


def test_listing_commands_and_baselines_table(task_dir: Path) -> None:
    tasks = autow2s("tasks")
    assert tasks.returncode == 0 and "synth-pairwise" in tasks.stdout
    methods = autow2s("methods")
    assert methods.returncode == 0 and "knn-relabel" in methods.stdout
    table = autow2s("baselines", "--task", str(task_dir), "--seeds", "1")
    assert table.returncode == 0, table.stderr
    for name in ("vanilla", "logconf", "ue-direction", "ensemble"):
        assert name in table.stdout


def test_prepare_then_predict_on_the_public_view(tmp_path: Path) -> None:
    out = tmp_path / "prep"
    assert autow2s("prepare", "synth-pairwise", "--out", str(out)).returncode == 0
    partition = json.loads((out / "lab" / "partition.json").read_text())
    assert len(partition["dev"]) == len(partition["holdout"]) == 2000
    assert not set(partition["dev"]) & set(partition["holdout"])
    preds = tmp_path / "preds.json"
    result = autow2s("predict", "--public", str(out / "public"), "--method", "vanilla", "--out", str(preds))
    assert result.returncode == 0, result.stderr
    data = json.loads(preds.read_text())
    public_ids = [json.loads(line)["id"] for line in (out / "public" / "test.jsonl").read_text().splitlines()]
    assert len(data["predictions"]) == 4000 and data["ids"] == public_ids


def test_help_pages_and_the_lab_import_no_torch() -> None:
    """`autow2s --help`, the light commands' help and the lab server start without torch (about 2 s)."""
    code = ("import sys\nfrom typer.testing import CliRunner\nimport autow2s.cli\n"
            "assert 'torch' not in sys.modules, 'import autow2s.cli loaded torch'\n"
            "for args in ([], ['serve'], ['sandbox'], ['sandbox', 'run'], ['report'], ['mcp'], ['run']):\n"
            "    result = CliRunner().invoke(autow2s.cli.app, [*args, '--help'])\n"
            "    assert result.exit_code == 0, (args, result.output)\n"
            "    assert 'torch' not in sys.modules, f'autow2s {\" \".join(args)} --help loaded torch'\n"
            # the lab server itself (`serve` starts in ~3 s, not ~6): torch loads only when a model trains
            "import autow2s.lab.app, autow2s.testbed.models.registry as r\n"
            "assert {'encoder', 'tfidf', 'hf-lm', 'mlp'} <= set(r.BACKENDS)\n"
            "assert 'torch' not in sys.modules, 'the lab app or the model registry loaded torch'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_resume_refuses_a_flag_it_would_ignore(tmp_path: Path) -> None:
    """--resume reuses campaign.json; a --budget given with it must fail loudly, not be silently dropped."""
    _assert_one_line_error(autow2s("run", "--resume", str(tmp_path), "--budget", "60"),
                           "--budget cannot be changed on resume")
    _assert_one_line_error(autow2s("run", "--resume", str(tmp_path), "--unsafe-no-sandbox"),
                           "--unsafe-no-sandbox cannot be changed on resume")


def test_run_takes_its_defaults_from_the_campaign_config() -> None:
    """Campaign settings are declared once (CampaignConfig): every `run` option that sets a config field
    defaults to that field's value, so the CLI and a programmatic campaign cannot drift apart."""
    import dataclasses

    import typer.main

    from autow2s.campaign.state import CampaignConfig, parse_researchers
    from autow2s.cli import app
    from autow2s.testbed.tasks.suites import expand_tasks

    defaults = CampaignConfig()
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = {param.name: param.default for param in command.params}
    spelled_for_the_cli = {"researchers", "dependence_check", "transfer_tasks"}  # checked below / resolved at run
    same_name = {f.name for f in dataclasses.fields(CampaignConfig)} & set(options) - spelled_for_the_cli
    assert len(same_name) >= 12
    assert {name: options[name] for name in same_name} == {name: getattr(defaults, name) for name in same_name}
    assert (options["budget"], options["lab"]) == (defaults.budget_s, defaults.lab_url)
    assert parse_researchers(options["researchers"]) == defaults.researchers
    assert expand_tasks(options["task"]) == defaults.tasks
    assert (options["dependence_check"] == "on") == defaults.dependence_check
