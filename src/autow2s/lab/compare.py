"""Each verified snapshot against vanilla, paired, on every research and transfer task.

A decision (this method beats vanilla, it transfers) rests on the difference and its CI, not on two CIs
side by side. Every verified or transfer run also runs vanilla on its own supervisor and seeds (its
outcome's reference, lab/outcomes.py), so the comparison is paired by item, seed and supervisor: a
fresh verification supervisor moves PGR by more than item and seed noise, and comparing with the
campaign's vanilla run (another supervisor) would call that a difference. Runs without a reference (from
before it) are compared with the campaign's vanilla run, paired by item only. Per task, and for research
PGR (the mean over research tasks) with all of them in one bootstrap. A difference whose CI holds 0 is
reported as no difference. Finished runs never change, so each comparison is computed once per lab process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from autow2s.lab.outcomes import unpack
from autow2s.testbed.metrics import PairedDifference, PairedRuns, paired_pgr_difference_over_tasks

CACHE_SIZE = 4096
N_BOOT = 1000

Outcome = Callable[[str, int], bytes | None]  # (kind "verify" | "transfer", run id) -> the run's outcome


class _Cache:
    def __init__(self) -> None:
        self._items: OrderedDict[tuple[Any, ...], PairedDifference | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], compute: Callable[[], PairedDifference | None]) -> PairedDifference | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > CACHE_SIZE:
                self._items.popitem(last=False)
        return value


_CACHE = _Cache()


def _as_json(found: PairedDifference | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"difference": found.difference, "ci": [found.low, found.high], "verdict": found.verdict()}


def _paired(kind: str, mine: int, theirs: int | None, outcome: Outcome) -> PairedRuns | None:
    """The method's run against vanilla: its own reference when it has one (vanilla on the same supervisor and
    seeds, so paired by item and seed), else the campaign's vanilla run on the same task (paired by item)."""
    data = outcome(kind, mine)
    if data is None:
        return None
    run, ceiling, reference = unpack(data)
    if reference is not None:
        return PairedRuns(run, reference, ceiling, same_seeds=True)
    other = outcome(kind, theirs) if theirs is not None else None
    return None if other is None else PairedRuns(run, unpack(other)[0], ceiling)


def _difference(keys: list[tuple[str, int, int | None]], outcome: Outcome, seed: int) -> PairedDifference | None:
    """(kind, method run id, vanilla run id or None) per task -> the mean difference over those tasks, paired."""
    def compute() -> PairedDifference | None:
        pairs = [_paired(kind, mine, theirs, outcome) for kind, mine, theirs in keys]
        if not pairs or any(pair is None for pair in pairs):
            return None
        try:
            return paired_pgr_difference_over_tasks([pair for pair in pairs if pair is not None], n_boot=N_BOOT,
                                                    seed=seed)
        except ValueError:
            return None  # the runs scored different items (a task prepared twice): no pairing
    return _CACHE.get(tuple(keys), compute)


def vs_vanilla(row: dict[str, Any], vanilla: dict[str, Any] | None, research_tasks: list[str],
               transfer_tasks: list[str], outcome: Outcome) -> dict[str, Any] | None:
    """The row's paired differences with vanilla: per research task, research PGR, per transfer task, and how
    many transfer tasks it is significantly better or worse on."""
    if row is vanilla or row.get("is_vanilla"):
        return None
    vanilla = vanilla or {"research_tasks": {}, "transfer": {}}  # each run's own reference may still serve
    research: dict[str, dict[str, Any] | None] = {}
    keys: list[tuple[str, int, int | None]] = []
    for task in research_tasks:
        mine, theirs = row["research_tasks"].get(task), vanilla["research_tasks"].get(task)
        if mine:
            key = ("verify", int(mine["verify_id"]), int(theirs["verify_id"]) if theirs else None)
            keys.append(key)
            research[task] = _as_json(_difference([key], outcome, seed=key[1]))
    overall = _as_json(_difference(keys, outcome, seed=0)) if len(keys) == len(research_tasks) else None
    transfer: dict[str, dict[str, Any] | None] = {}
    for task in transfer_tasks:
        mine, theirs = row["transfer"].get(task), vanilla["transfer"].get(task)
        if mine and mine["status"] == "done":
            done = theirs is not None and theirs["status"] == "done"
            key = ("transfer", int(mine["transfer_id"]), int(theirs["transfer_id"]) if done else None)
            transfer[task] = _as_json(_difference([key], outcome, seed=key[1]))
    verdicts = [found["verdict"] for found in transfer.values() if found is not None]
    return {"research": overall, "research_tasks": research, "transfer": transfer,
            "transfer_better": verdicts.count("better"), "transfer_worse": verdicts.count("worse"),
            "transfer_compared": len(verdicts)}
