"""The offline search researcher's policy, in one page (AIDE's draft / improve / adopt).

Mechanics (running experiments, talking to the lab) live in the researcher loop; this only
decides what to try next from what has been seen.

What is optimised: a trial's score is the mean dev PGR over the research tasks (the
run_experiment summary's mean_dev_pgr, the mean over tasks of each task's mean over seeds). A
trial with no score on some task (every seed failed or was refused there) scores -1.0, a failure.
The best trial is the highest score; ties go to the trial with fewer failed seeds, then to the
earlier trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autow2s.researchers.search_space import mutate, sample
from autow2s.testbed.methods.composed import Recipe

N_DRAFTS = 3  # explore the direction before exploiting
ADOPT_PROBABILITY = 0.25  # take a better verified idea from the forum
DRAFT_PROBABILITY = 0.15  # keep some fresh exploration


@dataclass(frozen=True)
class Trial:
    recipe: Recipe
    score: float  # mean dev PGR over the research tasks as the lab reported it; -1.0 for a failed trial
    failed_seeds: int = 0  # over all research tasks


@dataclass
class SearchState:
    bias: dict[str, list[Any]] = field(default_factory=dict)  # field -> values the directions favour
    trials: list[Trial] = field(default_factory=list)
    forum_best: list[Trial] = field(default_factory=list)  # others' verified recipes, best first

    def best(self) -> Trial | None:
        return max(self.trials, key=lambda t: (t.score, -t.failed_seeds), default=None)  # max keeps the earliest

    def tried(self, recipe: Recipe) -> bool:
        return any(t.recipe == recipe for t in self.trials)


@dataclass(frozen=True)
class Decision:
    action: str  # "draft" | "improve" | "adopt"
    recipe: Recipe
    why: str


def search_policy(state: SearchState, rng: np.random.Generator) -> Decision:
    """Draft until we have a few results, then mostly improve our best; adopt better ideas we read."""
    best = state.best()
    if best is None or len(state.trials) < N_DRAFTS:
        return Decision("draft", sample(rng, state.bias), "exploring the starting direction")
    better_elsewhere = [t for t in state.forum_best if t.score > best.score]
    roll = rng.random()
    if better_elsewhere and roll < ADOPT_PROBABILITY:
        source = better_elsewhere[0]
        recipe = source.recipe if not state.tried(source.recipe) else mutate(source.recipe, rng, state.bias)
        return Decision("adopt", recipe, f"a shared recipe verified at {source.score:.2f} beats our {best.score:.2f}")
    if roll < ADOPT_PROBABILITY + DRAFT_PROBABILITY:
        return Decision("draft", sample(rng, state.bias), "fresh exploration")
    for _ in range(20):
        candidate = mutate(best.recipe, rng, state.bias)
        if not state.tried(candidate):
            return Decision("improve", candidate, f"mutating our best ({best.score:.2f})")
    return Decision("draft", sample(rng, state.bias), "the neighbourhood of our best is exhausted")


def random_policy(state: SearchState, rng: np.random.Generator) -> Decision:
    """The benchmark's baseline: unbiased random search, no reading, no exploitation."""
    return Decision("draft", sample(rng), "random search")
