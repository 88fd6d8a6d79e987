"""The offline search researcher: the one-page policy, driven through the same tools as an LLM.

Mechanics only: write each candidate as a method dir, run it, remember the score, share and snapshot
what improves, and read verified recipes from the leaderboard so good ideas spread.

With several research tasks each trial runs on all of them; its score is the summary's mean dev PGR
over the tasks (-1.0, a failure, when any task has no scored seed) and trials.jsonl also keeps
"per_task" (task -> that task's mean dev PGR, null where none) and "seeds_failed". Recipes read from
the leaderboard count only when verified on every research task, scored by their mean dev PGR.
See search_policy for how the best trial is chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.researchers.directions import Direction
from autow2s.researchers.experiments import task_results
from autow2s.researchers.search_policy import Decision, SearchState, Trial, search_policy
from autow2s.researchers.toolbox import ToolBox
from autow2s.testbed.methods.composed import Recipe, render_method

IMPROVEMENT_MARGIN = 0.02  # dev PGR is coarsened by the lab; small wiggles are not findings
READ_FORUM_EVERY = 3


def recipe_from_method(source: str) -> Recipe | None:
    """Recover the recipe of a rendered method.py without executing it (the JSON literal in it)."""
    marker = "RECIPE = Recipe.from_dict("
    start = source.find(marker)
    end = source.find("\n})", start)
    if start < 0 or end < 0:
        return None
    try:
        return Recipe.from_dict(json.loads(source[start + len(marker): end + 2]))
    except (ValueError, AutoW2SError):
        return None


@dataclass
class SearchResearcher:
    toolbox: ToolBox
    direction: Direction
    seed: int
    trials_path: Path
    policy: Callable[[SearchState, np.random.Generator], Decision] = search_policy
    seeds_per_trial: tuple[int, ...] = (42,)
    state: SearchState = field(init=False)
    rng: np.random.Generator = field(init=False)
    steps: int = field(init=False, default=0)
    best_snapshot: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.state = SearchState(bias=dict(self.direction.bias))
        self.rng = np.random.default_rng(self.seed)
        self._resume()

    def _resume(self) -> None:
        """Trials already run (and scored) are reloaded, never re-run."""
        if not self.trials_path.exists():
            return
        for line in self.trials_path.read_text().splitlines():
            entry = json.loads(line)
            self.state.trials.append(Trial(Recipe.from_dict(entry["recipe"]), entry["score"],
                                           int(entry.get("seeds_failed", 0))))
            self.best_snapshot = entry.get("snapshot_id") or self.best_snapshot
        self.steps = len(self.state.trials)
        self.rng = np.random.default_rng([self.seed, self.steps])

    def step(self) -> dict[str, Any]:
        """One research step: decide, run, record, and share if it improved."""
        if self.steps % READ_FORUM_EVERY == 0:
            self._read_leaderboard()
        decision = self.policy(self.state, self.rng)
        method_dir = f"candidates/c{self.steps:03d}-{decision.recipe.slug()}"
        self.toolbox.call("write_file", {"path": f"{method_dir}/method.py",
                                         "content": render_method(decision.recipe, decision.recipe.describe())})
        raw = self.toolbox.call("run_experiment", {"method_dir": method_dir, "seeds": list(self.seeds_per_trial)})
        try:
            summary = json.loads(raw)
        except json.JSONDecodeError:
            summary = {"mean_dev_pgr": None, "error": raw}
        score = summary.get("mean_dev_pgr")
        results = task_results(summary)
        per_task = {task: result.get("mean_dev_pgr") for task, result in results.items()}
        failed = sum(int(result.get("seeds_failed", 0)) for result in results.values())
        if score is not None and any(per_task.get(task) is None for task in self.toolbox.tasks):
            score = None  # a task with no score makes the trial a failure, whatever the summary says
        previous_best = self.state.best()
        entry: dict[str, Any] = {"step": self.steps, "action": decision.action, "why": decision.why,
                                 "recipe": decision.recipe.to_dict(), "score": score if score is not None else -1.0,
                                 "per_task": per_task, "seeds_failed": failed}
        if score is not None and (previous_best is None or score > previous_best.score + IMPROVEMENT_MARGIN):
            entry |= self._publish(method_dir, decision, summary, previous_best)
        self.state.trials.append(Trial(decision.recipe, entry["score"], failed))
        with self.trials_path.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
        self.steps += 1
        return entry

    def _publish(self, method_dir: str, decision: Decision, summary: dict[str, Any],
                 previous: Trial | None) -> dict[str, Any]:
        snapshot = json.loads(self.toolbox.call("save_snapshot", {
            "method_dir": method_dir, "message": f"{decision.action}: {decision.recipe.describe()}",
            **({"parent_id": self.best_snapshot} if self.best_snapshot else {})}) or "{}")
        snapshot_id = snapshot.get("snapshot_id")
        results = task_results(summary)
        first = results.get(self.toolbox.tasks[0]) or next(iter(results.values()), {})
        # The finding cites the first research task's evaluation, so it lands on the forum's task.
        evaluation_ids = [s["evaluation_id"] for s in first.get("per_seed", []) if "evaluation_id" in s]
        if evaluation_ids:
            before = f"{previous.score:.2f}" if previous else "nothing yet"
            tasks = "" if len(results) < 2 else " (mean over tasks; " + ", ".join(
                f"{task} {result['mean_dev_pgr']:.3f}" for task, result in results.items()) + ")"
            self.toolbox.call("share_finding", {
                "type": "result", "title": f"{decision.recipe.describe()}"[:200],
                "body": f"{decision.why}. Dev PGR {summary['mean_dev_pgr']:.3f}{tasks} (was {before}). "
                        f"Recipe:\n{json.dumps(decision.recipe.to_dict(), sort_keys=True)}\nSnapshot {snapshot_id}.",
                "tags": ["search", self.direction.name[:40]], "evaluation_id": evaluation_ids[0]})
        if snapshot_id:
            self.best_snapshot = snapshot_id
            self.toolbox.call("request_verification", {"snapshot_id": snapshot_id})
        return {"snapshot_id": snapshot_id}

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
        found: list[Trial] = []
        for row in (boards[0] or [])[:5]:
            snapshot_id = row.get("snapshot_id")
            if row.get("dev_pgr") is None or not snapshot_id or not all(snapshot_id in d for d in dev):
                continue
            self.toolbox.call("download_snapshot", {"snapshot_id": snapshot_id})
            source = self.toolbox.call("read_file", {"path": f"prior_work/{snapshot_id}/method.py"})
            recipe = recipe_from_method(source)
            if recipe is not None:
                found.append(Trial(recipe, sum(d[snapshot_id] for d in dev) / len(dev)))
        self.state.forum_best = sorted(found, key=lambda t: -t.score)
