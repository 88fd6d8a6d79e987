"""Which methods the campaign verifies: ranked by a lower confidence bound of research dev PGR, not its mean.

A method that looked best on one lucky seed used to win; a winner chosen by its mean dev PGR loses its
lead on held-out data as often as not. Each method (the digest of the code that ran) pools every
complete, non-quick run_experiment of any researcher: per research task the mean over its scored
seeds (repeats of one evaluation count once), then research PGR = the mean over tasks. Its
uncertainty uses the seed-to-seed spread, shrunk toward the spread pooled over every method of the
campaign (a one-seed method borrows the campaign's noise instead of claiming none), and the bound is
one-sided 95%: mean - 1.645 * se.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autow2s.researchers.experiment_log import ExperimentResult

Z_ONE_SIDED_95 = 1.645
PRIOR_SEEDS = 2.0  # how many seeds' worth of weight the campaign-wide spread gets in each method's estimate
DEFAULT_SEED_SD = 0.25  # dev PGR's seed-to-seed spread before any is measured (typical here); a prior, not a floor


@dataclass(frozen=True)
class Candidate:
    researcher: str
    method_sha: str
    method_dir: str
    research_pgr: float  # the mean over research tasks of each task's mean dev PGR
    lower_bound: float
    seeds: dict[str, int]  # scored seeds per task

    def describe(self) -> str:
        seeds = "/".join(str(n) for n in self.seeds.values())
        return (f"{self.researcher}'s {self.method_dir}: research dev PGR {self.research_pgr:+.3f}, 95% lower bound "
                f"{self.lower_bound:+.3f} ({seeds} seeds)")


def _scores(results: list[ExperimentResult], tasks: tuple[str, ...]) -> dict[str, dict[str, dict[int, float]]]:
    """method sha -> task -> {evaluation id: dev PGR}, from complete non-quick experiments."""
    found: dict[str, dict[str, dict[int, float]]] = {}
    for result in results:
        if result.quick or not result.complete_on(tasks):
            continue
        for task in tasks:
            runs = result.tasks[task]
            scored = found.setdefault(result.method_sha, {}).setdefault(task, {})
            for index, (pgr, evaluation) in enumerate(zip(runs["dev_pgrs"], runs["evaluation_ids"])):
                key = int(evaluation) if evaluation is not None else -(len(scored) + index + 1)
                scored[key] = float(pgr)
    return found


def _pooled_variance(per_method: list[list[float]]) -> float:
    """The within-method variance pooled over methods (each method's own mean removed), shrunk toward
    DEFAULT_SEED_SD with PRIOR_SEEDS degrees of freedom: two seeds that happen to score alike (the lab's scores
    are coarsened) must not make the campaign believe it has no noise."""
    squares, freedom = PRIOR_SEEDS * DEFAULT_SEED_SD ** 2, PRIOR_SEEDS
    for values in per_method:
        if len(values) >= 2:
            mean = sum(values) / len(values)
            squares += sum((v - mean) ** 2 for v in values)
            freedom += len(values) - 1
    return squares / freedom


def rank_candidates(results: list[ExperimentResult], tasks: tuple[str, ...]) -> list[Candidate]:
    """Every method run completely on every research task, best lower bound first."""
    scores = _scores(results, tasks)
    if not scores:
        return []
    pooled = {task: _pooled_variance([list(by_task[task].values()) for by_task in scores.values()]) for task in tasks}
    owner: dict[str, ExperimentResult] = {}
    for result in results:
        if result.method_sha in scores:
            owner.setdefault(result.method_sha, result)  # the first researcher to run it
    ranked = []
    for sha, by_task in scores.items():
        means, variances = [], []
        for task in tasks:
            values = list(by_task[task].values())
            n = len(values)
            mean = sum(values) / n
            own = sum((v - mean) ** 2 for v in values) / (n - 1) if n >= 2 else 0.0
            shrunk = (PRIOR_SEEDS * pooled[task] + (n - 1) * own) / (PRIOR_SEEDS + n - 1)
            means.append(mean)
            variances.append(shrunk / n)
        research = sum(means) / len(means)
        se = math.sqrt(sum(variances)) / len(tasks)
        first = owner[sha]
        ranked.append(Candidate(first.researcher, sha, first.method_dir, research, research - Z_ONE_SIDED_95 * se,
                                {task: len(by_task[task]) for task in tasks}))
    return sorted(ranked, key=lambda c: (-c.lower_bound, -c.research_pgr, c.method_sha))


def choose(results: list[ExperimentResult], tasks: tuple[str, ...], k: int) -> list[Candidate]:
    """Each researcher's best method by lower bound, then the k best of those."""
    best: dict[str, Candidate] = {}
    for candidate in rank_candidates(results, tasks):
        best.setdefault(candidate.researcher, candidate)
    return sorted(best.values(), key=lambda c: (-c.lower_bound, -c.research_pgr, c.method_sha))[:k]
