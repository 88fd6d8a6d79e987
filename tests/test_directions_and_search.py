"""Starting directions and the search policy's behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autow2s.errors import AutoW2SError
from autow2s.researchers.directions import BUILTIN_DIRECTIONS, assign_directions, load_directions
from autow2s.researchers.search_policy import N_DRAFTS, SearchState, Trial, search_policy
from autow2s.researchers.search_researcher import recipe_from_method
from autow2s.researchers.search_space import SPACE, mutate, sample
from autow2s.testbed.methods.composed import Recipe, render_method


def test_the_anchor_nine_directions_and_spread_assignment() -> None:
    assert len(BUILTIN_DIRECTIONS) >= 9
    names = [d.name for d in assign_directions(9, load_directions())]
    assert len(set(names)) == 9  # nine researchers, nine different starts
    assert assign_directions(11, load_directions())[9].name == names[0]


def test_user_directions_file(tmp_path: Path) -> None:
    path = tmp_path / "dirs.json"
    path.write_text(json.dumps([{"name": "mine", "prompt": "try X", "bias": {"loss": ["logconf"]}}]))
    (direction,) = load_directions(path)
    assert direction.name == "mine" and direction.bias == {"loss": ["logconf"]}
    path.write_text(json.dumps([{"name": "no prompt"}]))
    with pytest.raises(AutoW2SError, match="needs string fields 'name' and 'prompt'"):
        load_directions(path)
    path.write_text("{oops")
    with pytest.raises(AutoW2SError, match="cannot read directions"):
        load_directions(path)


def test_bias_steers_sampling() -> None:
    rng = np.random.default_rng(0)
    biased = [sample(rng, {"loss": ["logconf"]}).loss for _ in range(200)]
    plain = [sample(rng).loss for _ in range(200)]
    assert biased.count("logconf") > 150 > plain.count("logconf")


def test_policy_drafts_then_improves_the_best_and_adopts_better_shared_recipes() -> None:
    rng = np.random.default_rng(0)
    state = SearchState()
    for _ in range(N_DRAFTS):
        decision = search_policy(state, rng)
        assert decision.action == "draft"
        state.trials.append(Trial(decision.recipe, 0.1))
    state.trials.append(Trial(Recipe(loss="logconf"), 0.5))
    actions = [search_policy(state, rng).action for _ in range(100)]
    assert actions.count("improve") > 60 and "adopt" not in actions
    state.forum_best = [Trial(Recipe(relabel="knn", loss="logconf"), 0.8)]
    adopted = [d for d in (search_policy(state, rng) for _ in range(100)) if d.action == "adopt"]
    assert adopted and adopted[0].recipe == Recipe(relabel="knn", loss="logconf")


def test_mutation_changes_something_and_recipes_round_trip() -> None:
    base = Recipe()
    pinned = {field: [getattr(base, field)] for field in SPACE}  # directions that favour exactly the base
    for seed in range(20):
        rng = np.random.default_rng(seed)
        for _ in range(50):
            assert mutate(base, rng) != base
            assert mutate(base, rng, bias=pinned) != base
    recipe = sample(rng)
    assert recipe_from_method(render_method(recipe)) == recipe
    assert recipe_from_method("def run(ctx): pass") is None
    assert set(SPACE) <= set(Recipe().to_dict())


def test_search_over_research_tasks_scores_the_mean_and_fails_a_trial_missing_a_task(tmp_path: Path) -> None:
    from autow2s.researchers.search_researcher import SearchResearcher

    state = SearchState(trials=[Trial(Recipe(loss="logconf"), 0.5, failed_seeds=1), Trial(Recipe(), 0.5)])
    assert state.best().recipe == Recipe()  # a tie goes to fewer failed seeds (then to the earlier trial)

    class Tools:  # the toolbox calls a search researcher makes, answered from a script
        tasks = ("a", "b")

        def __init__(self, summaries: list[dict]) -> None:
            self.summaries, self.calls = summaries, []

        def call(self, tool: str, args: dict) -> str:
            self.calls.append((tool, args))
            if tool == "run_experiment":
                return json.dumps(self.summaries.pop(0))
            return json.dumps({"leaderboard": [], "save_snapshot": {"snapshot_id": "s1"}}.get(tool, {"ok": True}))

    def task(mean: float | None) -> dict:
        return {"per_seed": [{"evaluation_id": 3}] if mean is not None else [{"error": "x"}], "mean_dev_pgr": mean,
                "seeds_scored": int(mean is not None), "seeds_failed": int(mean is None)}

    tools = Tools([{"tasks": {"a": task(0.2), "b": task(0.4)}, "mean_dev_pgr": 0.3, "missing_tasks": []},
                   {"tasks": {"a": task(0.9), "b": task(None)}, "mean_dev_pgr": None, "missing_tasks": ["b"]}])
    researcher = SearchResearcher(toolbox=tools, direction=BUILTIN_DIRECTIONS[0], seed=0,
                                  trials_path=tmp_path / "trials.jsonl")
    first, second = researcher.step(), researcher.step()
    assert (first["score"], first["per_task"], first["snapshot_id"]) == (pytest.approx(0.3), {"a": 0.2, "b": 0.4}, "s1")
    assert (second["score"], second["per_task"], second["seeds_failed"]) == (-1.0, {"a": 0.9, "b": None}, 1)
    assert [args for tool, args in tools.calls if tool == "leaderboard"] == [{"task": "a"}, {"task": "b"}]
    assert sum(tool == "request_verification" for tool, _ in tools.calls) == 1
    (shared,) = [args for tool, args in tools.calls if tool == "share_finding"]
    assert "0.300 (mean over tasks; a 0.200, b 0.400)" in shared["body"] and shared["evaluation_id"] == 3
    resumed = SearchResearcher(toolbox=tools, direction=BUILTIN_DIRECTIONS[0], seed=0,
                               trials_path=tmp_path / "trials.jsonl")
    assert [t.score for t in resumed.state.trials] == [pytest.approx(0.3), -1.0]
