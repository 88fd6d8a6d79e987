"""The offline search researcher: the one-page policy, driven through the same tools as an LLM.

Mechanics only: write each candidate as a method dir, run it, remember the score, share and snapshot
what improves, and read verified recipes from the leaderboard so good ideas spread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.researchers.directions import Direction
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
            self.state.trials.append(Trial(Recipe.from_dict(entry["recipe"]), entry["score"]))
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
        previous_best = self.state.best()
        entry: dict[str, Any] = {"step": self.steps, "action": decision.action, "why": decision.why,
                                 "recipe": decision.recipe.to_dict(), "score": score if score is not None else -1.0}
        if score is not None and (previous_best is None or score > previous_best.score + IMPROVEMENT_MARGIN):
            entry |= self._publish(method_dir, decision, summary, previous_best)
        self.state.trials.append(Trial(decision.recipe, entry["score"]))
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
        evaluation_ids = [s["evaluation_id"] for s in summary.get("per_seed", []) if "evaluation_id" in s]
        if evaluation_ids:
            before = f"{previous.score:.2f}" if previous else "nothing yet"
            self.toolbox.call("share_finding", {
                "type": "result", "title": f"{decision.recipe.describe()}"[:200],
                "body": f"{decision.why}. Dev PGR {summary['mean_dev_pgr']:.3f} (was {before}). "
                        f"Recipe:\n{json.dumps(decision.recipe.to_dict(), sort_keys=True)}\nSnapshot {snapshot_id}.",
                "tags": ["search", self.direction.name[:40]], "evaluation_id": evaluation_ids[0]})
        if snapshot_id:
            self.best_snapshot = snapshot_id
            self.toolbox.call("request_verification", {"snapshot_id": snapshot_id})
        return {"snapshot_id": snapshot_id}

    def _read_leaderboard(self) -> None:
        """Adopt candidates: verified recipes from the leaderboard, best first (holdout PGR)."""
        try:
            rows = json.loads(self.toolbox.call("leaderboard", {}))
        except json.JSONDecodeError:
            return
        found: list[Trial] = []
        for row in rows[:5] if isinstance(rows, list) else []:
            if row.get("dev_pgr") is None or not row.get("snapshot_id"):
                continue
            self.toolbox.call("download_snapshot", {"snapshot_id": row["snapshot_id"]})
            source = self.toolbox.call("read_file", {"path": f"prior_work/{row['snapshot_id']}/method.py"})
            recipe = recipe_from_method(source)
            if recipe is not None:
                found.append(Trial(recipe, float(row["dev_pgr"])))
        self.state.forum_best = sorted(found, key=lambda t: -t.score)
