"""Starting directions and the search policy's behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autow2s.errors import AutoW2SError
from autow2s.researchers.directions import BUILTIN_DIRECTIONS, assign_directions, load_directions
from autow2s.researchers.search_policy import (
    MIN_SEEDS,
    N_DRAFTS,
    SEED_LADDER,
    Decision,
    SearchState,
    SharedRecipe,
    Trial,
    paired_gain,
    random_policy,
    search_policy,
)
from autow2s.researchers.search_researcher import recipe_from_method, recipe_key
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


def _scored(recipe: Recipe, gains_by_seed: dict[int, float], vanilla: Trial) -> Trial:
    return Trial(recipe, {seed: vanilla.seed_scores[seed] + gain for seed, gain in gains_by_seed.items()})


def test_policy_runs_vanilla_first_drafts_confirms_the_leader_then_improves_and_adopts() -> None:
    rng = np.random.default_rng(0)
    state = SearchState()
    first = search_policy(state, rng)
    assert (first.action, first.recipe, first.seeds) == ("baseline", Recipe(), SEED_LADDER[:1])
    vanilla = Trial(Recipe(), {42: 0.1})
    state.trials.append(vanilla)
    for _ in range(N_DRAFTS):  # no gain over vanilla: keep drafting
        decision = search_policy(state, rng)
        assert decision.action == "draft" and decision.seeds == (42,)
        state.trials.append(_scored(decision.recipe, {42: 0.0}, vanilla))
    lucky = _scored(Recipe(loss="logconf"), {42: 0.3}, vanilla)
    state.trials.append(lucky)
    confirm = search_policy(state, rng)  # one seed is a lead, not a finding: more seeds before anything new
    assert (confirm.action, confirm.recipe, confirm.seeds) == ("confirm", lucky.recipe, SEED_LADDER[1:MIN_SEEDS])
    vanilla.seed_scores |= {43: 0.1, 44: 0.1, 45: 0.1}
    lucky.seed_scores |= {43: 0.35, 44: 0.4, 45: 0.38}  # confirmed: promoted, so no more confirming
    assert state.best() is not None and state.best()[0] is lucky
    actions = [search_policy(state, rng).action for _ in range(100)]
    assert actions.count("improve") > 55 and {"adopt", "confirm", "baseline"}.isdisjoint(actions)
    state.forum_best = [SharedRecipe(Recipe(relabel="spread", loss="logconf"), 0.8)]
    adopted = [d for d in (search_policy(state, rng) for _ in range(100)) if d.action == "adopt"]
    assert adopted and adopted[0].recipe == Recipe(relabel="spread", loss="logconf")


def test_a_higher_mean_with_a_paired_lower_bound_at_or_below_zero_is_not_promoted() -> None:
    """Fake results: 'erratic' has the higher mean gain over vanilla (+0.2) but its per-seed gains swing
    around zero; 'steady' gains +0.1 on every seed. Only the steady one is promoted."""
    vanilla = Trial(Recipe(), {42: 0.2, 43: 0.1, 44: 0.3, 45: 0.2})
    erratic = _scored(Recipe(loss="product"), {42: 0.9, 43: -0.3, 44: 0.5, 45: -0.3}, vanilla)
    steady = _scored(Recipe(loss="logconf"), {42: 0.1, 43: 0.12, 44: 0.09, 45: 0.1}, vanilla)
    one_seed = _scored(Recipe(relabel="spread"), {42: 0.6}, vanilla)  # huge, but on one seed
    state = SearchState(trials=[vanilla, erratic, one_seed])
    gain = paired_gain(erratic, vanilla)
    assert gain is not None and gain.mean == pytest.approx(0.2) and gain.low <= 0 < gain.mean
    assert erratic.score > vanilla.score and state.best() is None  # nothing beats vanilla significantly
    assert state.leader()[0] is one_seed  # ... the one-seed lead is what gets confirmed next
    state.trials.append(steady)
    best = state.best()
    assert best is not None and best[0] is steady and best[1].low > 0
    assert steady.score < erratic.score  # promoted on its lower bound, not its mean
    worse_vanilla = Trial(Recipe(), {42: 0.0})  # no shared seeds, no pairs: nothing to compare
    assert paired_gain(Trial(Recipe(loss="logconf"), {43: 0.5}), worse_vanilla) is None


def test_random_policy_keeps_the_evidence_rules() -> None:
    rng = np.random.default_rng(1)
    state = SearchState()
    assert random_policy(state, rng).action == "baseline"
    vanilla = Trial(Recipe(), {42: 0.1})
    state.trials += [vanilla, _scored(Recipe(loss="logconf"), {42: 0.2}, vanilla)]
    assert random_policy(state, rng).action == "confirm"


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


class FakeLab:
    """The toolbox calls a search researcher makes, answered from a table: dev_pgr(recipe, task, seed), None for a
    refused seed. Evaluation ids count up from 1, as the lab's do."""

    def __init__(self, tasks: tuple[str, ...], dev_pgr) -> None:  # type: ignore[no-untyped-def]
        self.tasks, self.dev_pgr = tasks, dev_pgr
        self.files: dict[str, str] = {}
        self.calls: list[tuple[str, dict]] = []
        self.evaluations: list[tuple[Recipe, str, int, int]] = []  # (recipe, task, seed, evaluation id)

    def call(self, tool: str, args: dict) -> str:
        self.calls.append((tool, args))
        if tool == "write_file":
            self.files[args["path"]] = args["content"]
            return "ok"
        if tool == "run_experiment":
            recipe = recipe_from_method(self.files[f"{args['method_dir']}/method.py"])
            assert recipe is not None
            results = {}
            for task in self.tasks:
                per_seed = []
                for seed in args["seeds"]:
                    value = self.dev_pgr(recipe, task, seed)
                    if value is None:
                        per_seed.append({"seed": seed, "error": "the lab did not score this seed"})
                        continue
                    self.evaluations.append((recipe, task, seed, len(self.evaluations) + 1))
                    per_seed.append({"seed": seed, "evaluation_id": len(self.evaluations), "dev_pgr": value})
                scored = [p["dev_pgr"] for p in per_seed if "dev_pgr" in p]
                results[task] = {"per_seed": per_seed, "mean_dev_pgr": float(np.mean(scored)) if scored else None,
                                 "seeds_scored": len(scored), "seeds_failed": len(per_seed) - len(scored)}
            if len(self.tasks) == 1:
                return json.dumps({"task": self.tasks[0], **results[self.tasks[0]]})
            return json.dumps({"tasks": results, "mean_dev_pgr": None})
        if tool == "leaderboard":
            return "[]"
        if tool == "save_snapshot":
            return json.dumps({"snapshot_id": f"s{sum(t == 'save_snapshot' for t, _ in self.calls)}"})
        return json.dumps({"ok": True})

    def ran(self, recipe: Recipe) -> list[tuple[str, int]]:
        return [(task, seed) for r, task, seed, _ in self.evaluations if r == recipe]


def _scripted(decisions: list[Decision]):  # type: ignore[no-untyped-def]
    return lambda state, rng: decisions.pop(0)


LUCKY, STEADY = Recipe(loss="product"), Recipe(relabel="spread", loss="logconf")


def _lab_pgr(recipe: Recipe, task: str, seed: int) -> float | None:
    """Vanilla 0.2 (0.3 on task b); LUCKY wins its screening seed and loses the others; STEADY gains ~0.1 on every
    seed; seed 44 of LUCKY on task b is refused."""
    base = 0.2 + (0.1 if task == "b" else 0.0) + 0.01 * (seed - 42)
    if recipe == LUCKY:
        return None if (task, seed) == ("b", 44) else base + (0.6 if seed == 42 else -0.1)
    return base + (0.1 + 0.005 * (seed % 3) if recipe == STEADY else 0.0)


def test_the_researcher_pairs_every_run_with_vanilla_and_promotes_only_a_confirmed_gain(tmp_path: Path) -> None:
    from autow2s.researchers.search_researcher import SearchResearcher

    decisions = [Decision("baseline", Recipe(), "vanilla"), Decision("draft", LUCKY, "try"),
                 Decision("confirm", LUCKY, "confirm", (43, 44, 45)), Decision("draft", STEADY, "try"),
                 Decision("confirm", STEADY, "confirm", (43, 44, 45))]
    lab = FakeLab(("a", "b"), _lab_pgr)
    researcher = SearchResearcher(toolbox=lab, direction=BUILTIN_DIRECTIONS[0], seed=0,
                                  trials_path=tmp_path / "trials.jsonl", policy=_scripted(decisions))
    entries = [researcher.step() for _ in range(5)]
    # vanilla ran once per (task, seed) it was needed on: 42 first, 43 and 45 with LUCKY's confirmation (LUCKY
    # failed seed 44: nothing to pair), 44 with STEADY's
    assert sorted(lab.ran(Recipe())) == sorted((t, s) for t in ("a", "b") for s in (42, 43, 44, 45))
    lucky = entries[2]
    assert lucky["score"] > 0.2 and lucky["seeds_failed"] == 1  # seed 44 missed task b: failed, not scored
    assert lucky["paired"]["seeds"] == [42, 43, 45] and lucky["paired"]["gain_mean"] > 0
    assert lucky["paired"]["gain_low"] <= 0 and not lucky["promoted"] and "snapshot_id" not in lucky
    steady = entries[4]
    assert steady["promoted"] and steady["snapshot_id"] == "s1" and steady["paired"]["gain_low"] > 0
    assert steady["score"] < entries[1]["score"]  # LUCKY's one-seed mean was higher; it was never promoted
    paired = steady["paired"]
    assert paired["seeds"] == [42, 43, 44, 45]
    assert paired["recipe_dev_pgr"] == pytest.approx([np.mean([_lab_pgr(STEADY, t, s) for t in "ab"])
                                                      for s in (42, 43, 44, 45)])
    assert paired["vanilla_dev_pgr"] == pytest.approx([np.mean([_lab_pgr(Recipe(), t, s) for t in "ab"])
                                                       for s in (42, 43, 44, 45)])
    ids = {(recipe_key(r), t, s): i for r, t, s, i in lab.evaluations}
    assert [row["evaluation_id"] for row in paired["vanilla_evaluation_ids"]] == [
        ids[(recipe_key(Recipe()), t, s)] for s in (42, 43, 44, 45) for t in ("a", "b")]
    assert [row["evaluation_id"] for row in paired["recipe_evaluation_ids"]] == [
        ids[(recipe_key(STEADY), t, s)] for s in (42, 43, 44, 45) for t in ("a", "b")]
    assert [t for t, _ in lab.calls].count("request_verification") == 1
    shared = [args for tool, args in lab.calls if tool == "share_finding"]
    results = [args for args in shared if args["type"] == "result"]
    assert len(results) == 1 and "paired gain over vanilla" in results[0]["body"]
    assert results[0]["evaluation_id"] == ids[(recipe_key(STEADY), "a", 42)]
    # what it learnt short of a promotion is shared too, once each: a one-seed lead, or no measurable gain
    assert {args["type"] for args in shared} <= {"result", "hypothesis", "insight"}
    assert len({(args["type"], args["title"]) for args in shared}) == len(shared)
    lines = [json.loads(line) for line in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert [e["action"] for e in lines] == ["baseline", "draft", "baseline", "confirm", "draft", "baseline", "confirm"]
    assert [r["seed"] for r in lines[5]["runs"] if r["task"] == "a"] == [44]
    # Resume: the same state from trials.jsonl, nothing re-run, nothing published twice.
    resumed = SearchResearcher(toolbox=lab, direction=BUILTIN_DIRECTIONS[0], seed=0,
                               trials_path=tmp_path / "trials.jsonl",
                               policy=_scripted([Decision("confirm", STEADY, "more", (46, 47))]))
    assert resumed.steps == 5 and resumed.published == {recipe_key(STEADY)} and resumed.best_snapshot == "s1"
    assert [t.seed_scores for t in resumed.state.trials] == [t.seed_scores for t in researcher.state.trials]
    resumed.step()
    assert [t for t, _ in lab.calls].count("save_snapshot") == 1
    assert resumed.wrap_up() is not None  # names the promoted recipe's own snapshot, from trials.jsonl
    assert "Promoted and sent to verification: snapshot s1." in lab.calls[-1][1]["body"]


def test_a_research_task_with_no_score_fails_the_seed_and_the_first_task_gets_the_finding(tmp_path: Path) -> None:
    from autow2s.researchers.search_researcher import SearchResearcher

    def dev_pgr(recipe: Recipe, task: str, seed: int) -> float | None:
        return None if task == "b" and recipe.loss == "logconf" else 0.3

    lab = FakeLab(("a", "b"), dev_pgr)
    researcher = SearchResearcher(toolbox=lab, direction=BUILTIN_DIRECTIONS[0], seed=0,
                                  trials_path=tmp_path / "trials.jsonl", policy=_scripted([
                                      Decision("baseline", Recipe(), "vanilla"),
                                      Decision("draft", Recipe(loss="logconf"), "try")]))
    researcher.step()
    failed = researcher.step()
    assert (failed["score"], failed["per_task"], failed["seeds_failed"]) == (-1.0, {"a": None, "b": None}, 1)
    assert "paired" not in failed and researcher.state.gains() == []
    assert [args for tool, args in lab.calls if tool == "leaderboard"] == [{"task": "a"}, {"task": "b"}]


def test_the_wrap_up_says_once_what_was_tried_negative_results_included(tmp_path: Path) -> None:
    from autow2s.researchers.search_researcher import SearchResearcher

    def researcher(decisions: list[Decision], lab: FakeLab) -> SearchResearcher:
        return SearchResearcher(toolbox=lab, direction=BUILTIN_DIRECTIONS[0], seed=0,
                                trials_path=tmp_path / "trials.jsonl", policy=_scripted(decisions))

    lab = FakeLab(("a", "b"), _lab_pgr)
    first = researcher([Decision("baseline", Recipe(), "vanilla"), Decision("draft", LUCKY, "try"),
                        Decision("confirm", LUCKY, "confirm", (43, 44, 45))], lab)
    for _ in range(3):
        first.step()
    refused = FakeLab(("a", "b"), _lab_pgr)
    refused.call = lambda tool, args: "error: share_finding: the lab is away"  # type: ignore[method-assign]
    first.toolbox = refused
    assert first.wrap_up() is None and not (tmp_path / "wrap_up.json").exists()  # refused: tried again later
    first.toolbox = lab
    title = first.wrap_up()
    assert title == "wrap-up: no measurable gain over vanilla in 1 recipe(s)"
    (shared,) = [args for tool, args in lab.calls if tool == "share_finding" and "wrap-up" in args["tags"]]
    assert shared["type"] == "insight" and shared["title"] == title
    ids = {(recipe_key(r), t, s): i for r, t, s, i in lab.evaluations}
    assert shared["evaluation_id"] == ids[(recipe_key(LUCKY), "a", 42)]  # the first task's run of what it reports
    gain = first.state.gains()[0][1]
    assert f"paired gain {gain.mean:+.3f}, 95% CI [{gain.low:+.3f}, {gain.high:+.3f}], 3 seed(s)" in shared["body"]
    assert "no gain is claimed" in shared["body"]
    assert first.wrap_up() is None  # said once
    resumed = researcher([], lab)  # a resumed campaign's researcher does not say it again
    assert resumed.wrap_up() is None
    assert sum(tool == "share_finding" and "wrap-up" in args["tags"] for tool, args in lab.calls) == 1
    went_on = researcher([Decision("confirm", LUCKY, "more", (46,))], lab)  # ... unless its research went on
    went_on.step()
    assert went_on.wrap_up() is not None and went_on.wrap_up() is None
    assert sum(tool == "share_finding" and "wrap-up" in args["tags"] for tool, args in lab.calls) == 2

    (tmp_path / "wrap_up.json").unlink()
    (tmp_path / "trials.jsonl").unlink()
    only_vanilla = researcher([Decision("baseline", Recipe(), "vanilla")], FakeLab(("a",), _lab_pgr))
    assert only_vanilla.wrap_up() is None  # nothing scored: nothing to say
    only_vanilla.step()
    assert only_vanilla.wrap_up() == "wrap-up: only vanilla ran before research ended"
