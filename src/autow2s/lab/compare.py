"""Each verified snapshot against vanilla, paired by item, on every research and transfer task.

A decision (this method beats vanilla, it transfers) rests on the difference and its CI, not on two CIs
side by side: run outcomes (lab/outcomes.py) resample the same holdout items for both. Per task, and for
research PGR (the mean over research tasks) with all of them in one bootstrap. A difference whose CI holds
0 is reported as no difference. Finished runs never change, so each comparison is computed once per lab
process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from autow2s.lab.outcomes import unpack
from autow2s.testbed.metrics import PairedDifference, paired_pgr_difference_over_tasks

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


def _difference(pairs: list[tuple[str, int, int]], outcome: Outcome, seed: int) -> PairedDifference | None:
    """(kind, method run id, vanilla run id) per task -> the mean difference over those tasks, paired."""
    def compute() -> PairedDifference | None:
        loaded = []
        for kind, mine, theirs in pairs:
            a, b = outcome(kind, mine), outcome(kind, theirs)
            if a is None or b is None:
                return None
            (run_a, ceiling), (run_b, _) = unpack(a), unpack(b)
            loaded.append((run_a, run_b, ceiling))
        try:
            return paired_pgr_difference_over_tasks(loaded, n_boot=N_BOOT, seed=seed)
        except ValueError:
            return None  # the runs scored different items (a task prepared twice): no pairing
    return _CACHE.get(tuple(pairs), compute)


def vs_vanilla(row: dict[str, Any], vanilla: dict[str, Any] | None, research_tasks: list[str],
               transfer_tasks: list[str], outcome: Outcome) -> dict[str, Any] | None:
    """The row's paired differences with vanilla: per research task, research PGR, per transfer task, and how
    many transfer tasks it is significantly better or worse on."""
    if vanilla is None or row is vanilla:
        return None
    research: dict[str, dict[str, Any] | None] = {}
    pairs = []
    for task in research_tasks:
        mine, theirs = row["research_tasks"].get(task), vanilla["research_tasks"].get(task)
        if mine and theirs:
            pair = ("verify", int(mine["verify_id"]), int(theirs["verify_id"]))
            pairs.append(pair)
            research[task] = _as_json(_difference([pair], outcome, seed=pair[1]))
    overall = _as_json(_difference(pairs, outcome, seed=0)) if len(pairs) == len(research_tasks) else None
    transfer: dict[str, dict[str, Any] | None] = {}
    for task in transfer_tasks:
        mine, theirs = row["transfer"].get(task), vanilla["transfer"].get(task)
        if mine and theirs and mine["status"] == theirs["status"] == "done":
            pair = ("transfer", int(mine["transfer_id"]), int(theirs["transfer_id"]))
            transfer[task] = _as_json(_difference([pair], outcome, seed=pair[1]))
    verdicts = [found["verdict"] for found in transfer.values() if found is not None]
    return {"research": overall, "research_tasks": research, "transfer": transfer,
            "transfer_better": verdicts.count("better"), "transfer_worse": verdicts.count("worse"),
            "transfer_compared": len(verdicts)}
