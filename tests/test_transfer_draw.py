"""`--transfer-tasks auto` is a secret draw: nothing a researcher can run tells which tasks are held out,
and a method that branches on the list of candidate tasks gains nothing at transfer."""

from __future__ import annotations

import io
import json
import secrets
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from autow2s.campaign.runner import Campaign
from autow2s.campaign.state import CampaignConfig
from autow2s.campaign.transfer_draw import DEFAULT_DRAW, draw_transfer_tasks, parse_auto
from autow2s.errors import AutoW2SError
from autow2s.testbed.tasks.suites import DEFAULT_RESEARCH_SUITE, SUITES, family, is_real, is_synthetic, transfer_pool


def test_auto_draws_k_tasks_outside_the_research_families_with_a_real_and_a_synthetic_one() -> None:
    research = SUITES[DEFAULT_RESEARCH_SUITE].tasks
    pool = transfer_pool(research)
    assert any(is_real(task) for task in pool) and any(is_synthetic(task) for task in pool)
    rng = secrets.SystemRandom()
    draws = [draw_transfer_tasks(research, rng=rng).tasks for _ in range(400)]
    research_families = {family(task) for task in research}
    for tasks in draws:
        assert len(tasks) == len(set(tasks)) == DEFAULT_DRAW
        assert set(tasks) <= set(pool) and not {family(task) for task in tasks} & research_families
        assert any(is_real(task) for task in tasks) and any(is_synthetic(task) for task in tasks)
    seen = Counter(task for tasks in draws for task in tasks)
    assert set(seen) == set(pool), f"never drawn: {sorted(set(pool) - set(seen))}"  # the whole pool is in play
    assert len(set(map(frozenset, draws))) >= 10  # not a fixed list in disguise
    assert len(draw_transfer_tasks(research, 1).tasks) == 1
    assert len(draw_transfer_tasks(research, 100).tasks) == len(pool)  # at most the whole pool


def test_the_spec_reads_auto_auto_k_and_refuses_zero() -> None:
    assert (parse_auto("auto"), parse_auto("AUTO:5"), parse_auto("synth-pairwise"), parse_auto("none")) == \
        (DEFAULT_DRAW, 5, None, None)
    with pytest.raises(AutoW2SError, match="K >= 1"):
        parse_auto("auto:0")


def test_a_drawn_set_is_recorded_in_campaign_json_masked_and_not_named_before_the_end(tmp_path: Path) -> None:
    config = CampaignConfig(tasks=("synth-linear",), transfer_tasks=("synth-nonlinear",),
                            transfer_pool=("synth-nonlinear", "synth-pairwise"), researchers=(("search", 1),))
    output = io.StringIO()
    campaign = Campaign.create(tmp_path / "run", config, Console(file=output, width=200))
    campaign.prepare_data()
    printed = output.getvalue()
    assert "held-out transfer task 1 of 1 (a secret draw, named at the end)" in printed
    assert "nonlinear" not in printed and "synth-nonlinear" in (tmp_path / "run" / "campaign.json").read_text()
    saved = CampaignConfig.from_json(json.loads((tmp_path / "run" / "campaign.json").read_text()))
    assert saved.transfer_drawn and saved.transfer_tasks == ("synth-nonlinear",)
    # where the draw is recorded, no job can look: campaign.json and the transfer data are masked in every sandbox
    assert campaign.paths.config in campaign.hidden and campaign.paths.transfer_data in campaign.hidden
    # a fixed list (`--transfer-tasks LIST`) is named as before
    named = CampaignConfig(tasks=("synth-linear",), transfer_tasks=("synth-nonlinear",))
    output = io.StringIO()
    Campaign.create(tmp_path / "named", named, Console(file=output, width=200)).prepare_data()
    assert "transfer task (held out) synth-nonlinear" in output.getvalue()


SUITE_BRANCH = '''"""Branches on the list of candidate held-out tasks (what `SUITES` and the registry tell a job)."""
import numpy as np

from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.tasks.suites import SUITES, transfer_pool


def run(ctx):
    predictions = np.asarray(load_method("vanilla").run(ctx))
    candidates = set(SUITES["default-transfer"].tasks) | set(transfer_pool(("synth-linear",)))
    on_a_candidate = ctx.task.name in candidates or any(name in ctx.task.description for name in candidates)
    return 1.0 - predictions if on_a_candidate else predictions
'''


@pytest.mark.slow  # a lab with a transfer task, and two transfer runs of five seeds
def test_a_method_branching_on_the_candidate_list_gains_nothing_at_transfer(lab_data: Path, tmp_path: Path) -> None:
    from autow2s.testbed.methods.registry import load_method
    from autow2s.testbed.public_run import predict_public
    from lab_helpers import start_lab
    from test_lab_snapshots import make_tarball, upload
    from test_transfer import PLAIN, TRANSFER, _named_transfer_task, _transfer

    transfer = _named_transfer_task(tmp_path / "transfer")
    for name, source in (("branch", SUITE_BRANCH), ("plain", PLAIN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "method.py").write_text(source)
    # Control: on the task's own public view the branch fires (it names the task) and turns vanilla over.
    fired, plain = (predict_public(transfer / TRANSFER / "public", load_method(str(tmp_path / name)), 7)[1]
                    for name in ("branch", "plain"))
    assert np.allclose(fired, 1.0 - plain)
    with start_lab(lab_data, tmp_path / "state", extra_args=["--transfer-data", str(transfer)]) as lab:
        client, admin = lab.client(lab.create_researcher("lister")), lab.admin()
        runs = {name: _transfer(admin, upload(client, make_tarball([(f"{name}/method.py", None, source.encode())]),
                                              name=name).json()["snapshot_id"])
                for name, source in (("branch", SUITE_BRANCH), ("plain", PLAIN))}
    branch, plain_run = runs["branch"], runs["plain"]
    assert branch["status"] == plain_run["status"] == "done", (branch.get("error"), plain_run.get("error"))
    half = sum((run["holdout_ci"][1] - run["holdout_ci"][0]) / 2 for run in (branch, plain_run))
    assert abs(branch["holdout_pgr"] - plain_run["holdout_pgr"]) <= half, (branch, plain_run)


from lab_helpers import lab_data  # noqa: E402, F401 - fixture
