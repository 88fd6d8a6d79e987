"""Recipes: validated, rendered into runnable method directories, and able to beat their parts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from autow2s.errors import AutoW2SError
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.experiment import ExperimentSettings, run_experiment
from autow2s.testbed.methods.composed import Recipe, render_method
from autow2s.testbed.methods.registry import load_method
from testbed_helpers import small_task

SETTINGS = ExperimentSettings(n_boot=100)


def test_recipe_validation_names_the_field() -> None:
    with pytest.raises(AutoW2SError, match="loss='hinge'"):
        Recipe(loss="hinge")
    with pytest.raises(AutoW2SError, match=r"unknown recipe fields \['colour'\]"):
        Recipe.from_dict({"colour": "red"})
    with pytest.raises(AutoW2SError, match="confident_margin"):
        Recipe(confident_margin=0.7)


def test_rendered_method_dir_runs_and_matches_the_registered_composition(tmp_path: Path) -> None:
    recipe = Recipe(relabel="knn", loss="logconf", aux_coef=0.75, members=2, hparams={"epochs": 10})
    method_dir = tmp_path / "knn_logconf"
    method_dir.mkdir()
    (method_dir / "method.py").write_text(render_method(recipe))
    task, cache = small_task(), ArtifactCache(tmp_path / "cache")
    from_dir = run_experiment(task, load_method(str(method_dir)), [3], cache=cache, settings=SETTINGS)
    assert from_dir.method == "knn_logconf"
    registered = replace(load_method("composed"), params=recipe.to_dict())  # the search's own path to a recipe
    in_process = run_experiment(task, registered, [3], cache=cache, settings=SETTINGS)
    assert in_process.transfer_acc == from_dir.transfer_acc and in_process.pgr == from_dir.pgr
    assert "knn relabelling" in load_method(str(method_dir)).description


def test_default_recipe_is_vanilla(tmp_path: Path) -> None:
    task, cache = small_task(), ArtifactCache(tmp_path)
    vanilla = run_experiment(task, load_method("vanilla"), [5], cache=cache, settings=SETTINGS)
    composed = run_experiment(task, load_method("composed"), [5], cache=cache, settings=SETTINGS)
    assert composed.transfer_acc == vanilla.transfer_acc


@pytest.mark.parametrize("relabel", ["spread", "self-train", "co-train"])
def test_each_semi_supervised_family_runs_as_a_recipe_step(relabel: str, tmp_path: Path) -> None:
    recipe = Recipe(relabel=relabel, loss="logconf", members=2, member_resample="none", weight_decay=1e-2,
                    patience=3, relabel_rounds=1)
    method = replace(load_method("composed"), params=recipe.to_dict())
    result = run_experiment(small_task(), method, [3], cache=ArtifactCache(tmp_path), settings=SETTINGS)
    assert 0.5 < result.transfer_acc <= 1.0


def test_regularisation_fields_reach_the_student_and_unused_fields_do_not_tell_recipes_apart() -> None:
    assert Recipe(weight_decay=0.05, patience=2, hparams={"weight_decay": 1.0, "epochs": 9}).student_hparams() == {
        "weight_decay": 0.05, "patience": 2, "epochs": 9}  # the explicit field beats the one in hparams
    assert Recipe(early_stopping=False).student_hparams() == {"val_frac": 0.0}  # no validation slice
    # spread_k cannot matter without spreading, nor patience without early stopping
    assert Recipe(spread_k=64).canonical() == Recipe()
    assert Recipe(early_stopping=False, patience=3).canonical() == Recipe(early_stopping=False)
    assert Recipe(relabel="spread", spread_k=64).canonical() != Recipe(relabel="spread")
    with pytest.raises(AutoW2SError, match=r"spread_alpha=1\.0"):
        Recipe(relabel="spread", spread_alpha=1.0)
    with pytest.raises(AutoW2SError, match="spread_metric='manhattan'"):
        Recipe(spread_metric="manhattan")
    with pytest.raises(AutoW2SError, match="patience=0"):
        Recipe(patience=0)
