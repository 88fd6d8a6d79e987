"""The offline search researcher: the one-page policy, driven through the same tools as an LLM.

Mechanics only: write each candidate as a method dir, run it on the seeds the policy names (and
vanilla on any of them it has not run on, so every gain is paired), remember the per-seed scores,
share and snapshot a recipe once the policy's rule promotes it, and read verified recipes from the
leaderboard so good ideas spread.

A seed's score is the mean dev PGR over the research tasks; a seed with no score on some task counts
as failed. Each step appends to trials.jsonl what the campaign needs to choose by a lower confidence
bound: "runs" (task, seed, dev_pgr, evaluation_id of this step), and for a recipe other than vanilla
"paired" (its seeds, the recipe's and vanilla's per-seed dev PGR on them, the gain's mean and 95%
t-interval, and both sides' evaluation ids), "promoted" (whether it is the researcher's best after
this step), and "snapshot_id" when it was published. "score" (mean dev PGR over the recipe's scored
seeds so far), "per_task" (the same, per task) and "seeds_failed" are cumulative over the recipe's
steps. See search_policy for the promotion rule.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.researchers.directions import Direction
from autow2s.researchers.experiments import task_results
from autow2s.researchers.search_policy import (
    MIN_LEAD,
    MIN_SEEDS,
    Decision,
    PairedGain,
    SearchState,
    SharedRecipe,
    Trial,
    paired_gain,
    search_policy,
)
from autow2s.researchers.toolbox import ToolBox
from autow2s.testbed.methods.composed import Recipe, render_method

READ_FORUM_EVERY = 3
MAX_RECIPE_CHARS = 20_000
VANILLA = Recipe()


def recipe_key(recipe: Recipe) -> str:
    """Recipes hold a dict (hparams), so they key our tables by their canonical JSON."""
    return json.dumps(recipe.canonical().to_dict(), sort_keys=True)


def recipe_from_method(source: str) -> Recipe | None:
    """Recover the recipe of a rendered method.py without executing it (the dict literal in it).

    ast.literal_eval evaluates literals only; the size cap keeps a hostile snapshot from nesting it to a crash.
    """
    marker = "RECIPE = Recipe.from_dict("
    start = source.find(marker)
    end = source.find("\n})", start)
    if start < 0 or end < 0 or end - start > MAX_RECIPE_CHARS:
        return None
    try:
        data = ast.literal_eval(source[start + len(marker): end + 2])
        return Recipe.from_dict(data) if isinstance(data, dict) else None
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError, AutoW2SError):
        return None


@dataclass
class SearchResearcher:
    toolbox: ToolBox
    direction: Direction
    seed: int
    trials_path: Path
    policy: Callable[[SearchState, np.random.Generator], Decision] = search_policy
    state: SearchState = field(init=False)
    rng: np.random.Generator = field(init=False)
    steps: int = field(init=False, default=0)
    best_snapshot: str | None = field(init=False, default=None)
    # recipe key -> (task, seed) -> (dev_pgr, evaluation_id); a failed run has no entry
    runs: dict[str, dict[tuple[str, int], tuple[float, int]]] = field(init=False, default_factory=dict)
    method_dirs: dict[str, str] = field(init=False, default_factory=dict)  # recipe key -> its latest method dir
    published: set[str] = field(init=False, default_factory=set)  # recipe keys
    snapshots: dict[str, str] = field(init=False, default_factory=dict)  # recipe key -> its snapshot id
    noted: set[tuple[str, str]] = field(init=False, default_factory=set)  # (recipe key, finding type) shared

    def __post_init__(self) -> None:
        self.state = SearchState(bias=dict(self.direction.bias))
        self.rng = np.random.default_rng(self.seed)
        self._resume()

    def _resume(self) -> None:
        """Runs already made (and scored) are reloaded, never re-run."""
        if not self.trials_path.exists():
            return
        for line in self.trials_path.read_text().splitlines():
            entry = json.loads(line)
            recipe = Recipe.from_dict(entry["recipe"]).canonical()
            runs = entry.get("runs")
            if runs is None:  # written before per-seed runs were recorded: seed 42 only, per-task means
                per_task = entry.get("per_task") or {self.toolbox.tasks[0]: entry["score"] if entry["score"] > -1 else None}
                runs = [{"task": task, "seed": 42, "dev_pgr": per_task.get(task), "evaluation_id": -1}
                        for task in self.toolbox.tasks]
            self._record(recipe, runs, entry.get("method_dir", ""))
            if entry.get("snapshot_id"):
                self.best_snapshot = entry["snapshot_id"]
                self.published.add(recipe_key(recipe))
                self.snapshots[recipe_key(recipe)] = entry["snapshot_id"]
            if entry.get("noted"):
                self.noted.add((recipe_key(recipe), str(entry["noted"])))
            self.steps = max(self.steps, int(entry.get("step", self.steps)) + 1)
        self.rng = np.random.default_rng([self.seed, self.steps])

    def _trial(self, recipe: Recipe) -> Trial:
        trial = self.state.find(recipe)
        if trial is None:
            trial = Trial(recipe)
            self.state.trials.append(trial)
        return trial

    def _record(self, recipe: Recipe, runs: list[dict[str, Any]], method_dir: str) -> None:
        """Fold one step's runs into the recipe's trial: a seed scores when every research task scored it."""
        scored = self.runs.setdefault(recipe_key(recipe), {})
        seeds = list(dict.fromkeys(int(r["seed"]) for r in runs))
        for run in runs:
            if run.get("dev_pgr") is not None:
                scored[(str(run["task"]), int(run["seed"]))] = (float(run["dev_pgr"]), int(run["evaluation_id"]))
        trial = self._trial(recipe)
        for seed in seeds:
            per_task = [scored.get((task, seed)) for task in self.toolbox.tasks]
            if all(result is not None for result in per_task):
                trial.seed_scores[seed] = float(np.mean([result[0] for result in per_task if result is not None]))
            else:
                trial.failed_seeds += 1
        if method_dir:
            self.method_dirs[recipe_key(recipe)] = method_dir

    def _run(self, recipe: Recipe, seeds: tuple[int, ...], method_dir: str, why: str) -> list[dict[str, Any]]:
        self.toolbox.call("write_file", {"path": f"{method_dir}/method.py", "content": render_method(recipe, why)})
        raw = self.toolbox.call("run_experiment", {"method_dir": method_dir, "seeds": list(seeds)})
        try:
            summary = json.loads(raw)
        except json.JSONDecodeError:
            summary = {}
        results = task_results(summary)
        runs: list[dict[str, Any]] = []
        for task in self.toolbox.tasks:
            by_seed = {int(s["seed"]): s for s in results.get(task, {}).get("per_seed", []) if "seed" in s}
            for seed in seeds:
                run = by_seed.get(seed, {})
                scored = run.get("dev_pgr") is not None and "evaluation_id" in run
                runs.append({"task": task, "seed": seed, "dev_pgr": run.get("dev_pgr") if scored else None,
                             "evaluation_id": run.get("evaluation_id") if scored else None})
        self._record(recipe, runs, method_dir)
        return runs

    def step(self) -> dict[str, Any]:
        """One research step: decide, run (and vanilla on the same seeds), record, and publish a promoted recipe."""
        if self.steps % READ_FORUM_EVERY == 0:
            self._read_leaderboard()
        decision = self.policy(self.state, self.rng)
        recipe = decision.recipe.canonical()
        trial = self._trial(recipe)
        seeds = tuple(s for s in decision.seeds if s not in trial.seed_scores)
        method_dir = f"candidates/c{self.steps:03d}-{recipe.slug() if recipe != VANILLA else 'vanilla'}"
        runs = self._run(recipe, seeds, method_dir, decision.why) if seeds else []
        vanilla = self._trial(VANILLA)
        # vanilla on the seeds this recipe scored and vanilla has not: nothing to pair with a failed seed
        missing = tuple(s for s in seeds if s in trial.seed_scores and s not in vanilla.seed_scores
                        and recipe != VANILLA)
        if missing:
            vanilla_runs = self._run(VANILLA, missing, f"candidates/c{self.steps:03d}-vanilla",
                                     "vanilla: the strong student on weak soft labels")
            self._write(self._entry(VANILLA, "baseline", "vanilla on the same seeds, for the paired gain",
                                    vanilla_runs))
        entry = self._entry(recipe, decision.action, decision.why, runs)
        best = self.state.best()
        if best is not None and recipe_key(best[0].recipe) not in self.published:
            entry |= self._publish(best[0].recipe, decision, best[1])
        elif recipe != VANILLA and (noted := self._note(recipe, trial, vanilla)):
            entry["noted"] = noted
        self._write(entry)
        self.steps += 1
        return entry

    def _write(self, entry: dict[str, Any]) -> None:
        with self.trials_path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")

    def _entry(self, recipe: Recipe, action: str, why: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
        trial = self._trial(recipe)
        scored = self.runs.get(recipe_key(recipe), {})
        per_task: dict[str, float | None] = {}
        for task in self.toolbox.tasks:  # over the seeds that scored on every task, like the score
            values = [pgr for (where, seed), (pgr, _) in scored.items() if where == task and seed in trial.seed_scores]
            per_task[task] = float(np.mean(values)) if values else None
        entry: dict[str, Any] = {"step": self.steps, "action": action, "why": why, "recipe": recipe.to_dict(),
                                 "method_dir": self.method_dirs.get(recipe_key(recipe), ""), "runs": runs, "score": trial.score,
                                 "per_task": per_task, "seeds_failed": trial.failed_seeds}
        vanilla = self.state.vanilla()
        gain = paired_gain(trial, vanilla) if vanilla is not None and recipe != VANILLA else None
        if gain is not None and vanilla is not None:
            best = self.state.best()
            entry["paired"] = self._paired(recipe, trial, vanilla, gain)
            entry["promoted"] = best is not None and best[0] is trial
        return entry

    def _paired(self, recipe: Recipe, trial: Trial, vanilla: Trial, gain: PairedGain) -> dict[str, Any]:
        """Everything a lower-confidence-bound choice needs, on the seeds both sides scored."""
        def evaluation_ids(of: Recipe) -> list[dict[str, Any]]:
            return [{"task": task, "seed": seed, "evaluation_id": self.runs[recipe_key(of)][(task, seed)][1]}
                    for seed in gain.seeds for task in self.toolbox.tasks]

        return {"seeds": list(gain.seeds), "recipe_dev_pgr": [trial.seed_scores[s] for s in gain.seeds],
                "vanilla_dev_pgr": [vanilla.seed_scores[s] for s in gain.seeds], "gain_mean": gain.mean,
                "gain_low": gain.low if np.isfinite(gain.low) else None,
                "gain_high": gain.high if np.isfinite(gain.high) else None, "confidence": 0.95,
                "recipe_evaluation_ids": evaluation_ids(recipe), "vanilla_evaluation_ids": evaluation_ids(VANILLA)}

    def _evaluation_ids(self, recipe: Recipe) -> list[int]:
        """The recipe's scored runs on the first research task: a finding cites one, so it lands on the forum's task."""
        return [v[1] for (task, _), v in sorted(self.runs.get(recipe_key(recipe), {}).items())
                if task == self.toolbox.tasks[0]]

    def _publish(self, recipe: Recipe, decision: Decision, gain: PairedGain) -> dict[str, Any]:
        """Snapshot, share and ask to verify a recipe the policy promoted."""
        self.published.add(recipe_key(recipe))
        method_dir = self.method_dirs[recipe_key(recipe)]
        snapshot = json.loads(self.toolbox.call("save_snapshot", {
            "method_dir": method_dir, "message": f"{decision.action}: {recipe.describe()}",
            **({"parent_id": self.best_snapshot} if self.best_snapshot else {})}) or "{}")
        snapshot_id = snapshot.get("snapshot_id")
        trial = self._trial(recipe)
        ids = self._evaluation_ids(recipe)
        if ids:
            seeds = ", ".join(str(s) for s in gain.seeds)
            self.toolbox.call("share_finding", {
                "type": "result", "title": recipe.describe()[:200],
                "body": f"{decision.why}. Dev PGR {trial.score:.3f} (mean over research tasks and seeds "
                        f"{seeds}); paired gain over vanilla on the same seeds {gain.mean:+.3f}, 95% CI "
                        f"[{gain.low:+.3f}, {gain.high:+.3f}]. "
                        f"Recipe:\n{json.dumps(recipe.to_dict(), sort_keys=True)}\nSnapshot {snapshot_id}.",
                "tags": ["search", self.direction.name[:40]], "evaluation_id": ids[0]})
        if snapshot_id:
            self.best_snapshot = snapshot_id
            self.snapshots[recipe_key(recipe)] = snapshot_id
            self.toolbox.call("request_verification", {"snapshot_id": snapshot_id})
        return {"snapshot_id": snapshot_id}

    def _note(self, recipe: Recipe, trial: Trial, vanilla: Trial) -> str | None:
        """Share what a step taught short of a promotion: a one-seed lead worth confirming (a hypothesis), or a
        recipe confirmed on MIN_SEEDS paired seeds whose gain's interval holds zero (an insight: no
        measurable gain). Other researchers learn from both, and each is said once per recipe."""
        gain = paired_gain(trial, vanilla)
        ids = self._evaluation_ids(recipe)
        if gain is None or not ids:
            return None
        if len(gain.seeds) >= MIN_SEEDS:
            kind = "insight"
            title = f"no measurable gain over vanilla: {recipe.describe()}"
            body = (f"Paired with vanilla on seeds {', '.join(map(str, gain.seeds))}: gain {gain.mean:+.3f}, 95% CI "
                    f"[{gain.low:+.3f}, {gain.high:+.3f}], which holds zero, so no difference is claimed.")
        elif gain.mean >= MIN_LEAD:
            kind = "hypothesis"
            title = f"worth confirming: {recipe.describe()}"
            body = (f"On seed {gain.seeds[0]} it leads vanilla by {gain.mean:+.3f} dev PGR (mean over the research "
                    "tasks). One seed is mostly noise: it is being confirmed on more seeds before it counts.")
        else:
            return None
        if (recipe_key(recipe), kind) in self.noted:
            return None
        self.noted.add((recipe_key(recipe), kind))
        self.toolbox.call("share_finding", {
            "type": kind, "title": title[:200], "tags": ["search", self.direction.name[:40]], "evaluation_id": ids[0],
            "body": f"{body}\nRecipe:\n{json.dumps(recipe.to_dict(), sort_keys=True)}"})
        return kind

    def wrap_up(self) -> str | None:
        """When research ends: one insight saying what this researcher tried, negative results included, so
        the forum, the report and whoever reads the campaign later keep them. Said once per researcher and
        research (wrap_up.json beside trials.jsonl holds the steps it covered: a resumed campaign says it again
        only if research went on); None when vanilla never scored.
        """
        marker = self.trials_path.parent / "wrap_up.json"
        try:
            said = json.loads(marker.read_text()) if marker.exists() else None
        except (OSError, json.JSONDecodeError):
            said = None
        if isinstance(said, dict) and said.get("steps") == self.steps:
            return None
        vanilla = self.state.vanilla()
        if vanilla is None or not vanilla.seed_scores or not self._evaluation_ids(VANILLA):
            return None
        gains = sorted(self.state.gains(), key=lambda pair: (pair[1].mean, len(pair[1].seeds)), reverse=True)
        confirmed = [(t, g) for t, g in gains if len(g.seeds) >= MIN_SEEDS]
        lines = [f"Direction {self.direction.name}: {len(gains)} recipe(s) paired with vanilla in {self.steps} "
                 f"step(s); {len(confirmed)} confirmed on {MIN_SEEDS}+ paired seeds; vanilla's dev PGR "
                 f"{vanilla.score:.3f} on seeds {', '.join(map(str, sorted(vanilla.seed_scores)))}."]
        for trial, gain in gains[:5]:
            interval = (f"95% CI [{gain.low:+.3f}, {gain.high:+.3f}]" if np.isfinite(gain.low)
                        else "one seed, no interval")
            lines.append(f"- {trial.recipe.describe()}: paired gain {gain.mean:+.3f}, {interval}, "
                         f"{len(gain.seeds)} seed(s)")
        best = self.state.best()
        if best is not None:
            title = f"wrap-up: promoted {best[0].recipe.describe()} (paired gain {best[1].mean:+.3f}, CI above 0)"
            snapshot = self.snapshots.get(recipe_key(best[0].recipe))
            lines.append(f"Promoted and sent to verification: snapshot {snapshot}." if snapshot else
                         "Promoted, but its snapshot could not be saved, so it was not verified.")
            cited = best[0].recipe
        elif gains:
            title = f"wrap-up: no measurable gain over vanilla in {len(gains)} recipe(s)"
            lines.append("No recipe's paired gain had a 95% lower bound above zero on enough seeds: no gain is claimed.")
            cited = gains[0][0].recipe
        else:
            tried = sum(trial.recipe != VANILLA for trial in self.state.trials)
            title = (f"wrap-up: none of {tried} recipe(s) scored besides vanilla" if tried else
                     "wrap-up: only vanilla ran before research ended")
            cited = VANILLA
        reply = self.toolbox.call("share_finding", {
            "type": "insight", "title": title[:200], "body": "\n".join(lines),
            "tags": ["search", "wrap-up", self.direction.name[:40]],
            "evaluation_id": (self._evaluation_ids(cited) or self._evaluation_ids(VANILLA))[0]})
        if reply.startswith("error:"):  # logged by the toolbox; a resumed campaign tries again
            return None
        marker.write_text(json.dumps({"title": title, "steps": self.steps}) + "\n")
        return title

    def _board(self, task: str | None) -> list[dict[str, Any]] | None:
        try:
            rows = json.loads(self.toolbox.call("leaderboard", {"task": task} if task else {}))
        except json.JSONDecodeError:
            return None
        return rows if isinstance(rows, list) else None

    def _read_leaderboard(self) -> None:
        """Adopt candidates: verified recipes from the leaderboard, best first (holdout PGR on the first task).

        With several research tasks a snapshot counts only if it is verified on each, and its score is
        its mean dev PGR over them (comparable with our own trials' scores).
        """
        tasks = self.toolbox.tasks
        boards = [self._board(task if len(tasks) > 1 else None) for task in tasks]
        if any(board is None for board in boards):
            return
        dev: list[dict[str, float]] = []
        for board in boards:
            seen: dict[str, float] = {}
            for row in board or []:
                if row.get("dev_pgr") is not None and row.get("snapshot_id"):
                    seen.setdefault(str(row["snapshot_id"]), float(row["dev_pgr"]))
            dev.append(seen)
        found: list[SharedRecipe] = []
        for row in (boards[0] or [])[:5]:
            snapshot_id = row.get("snapshot_id")
            if row.get("dev_pgr") is None or not snapshot_id or not all(snapshot_id in d for d in dev):
                continue
            self.toolbox.call("download_snapshot", {"snapshot_id": snapshot_id})
            source = self.toolbox.call("read_file", {"path": f"prior_work/{snapshot_id}/method.py"})
            recipe = recipe_from_method(source)
            if recipe is not None:
                found.append(SharedRecipe(recipe.canonical(), sum(d[snapshot_id] for d in dev) / len(dev)))
        self.state.forum_best = sorted(found, key=lambda t: -t.score)
