"""`--transfer-tasks auto`: a secret draw of held-out tasks, so no researcher can know or tune to them.

A fixed default list could be read inside the sandbox (`SUITES`) and tuned to. The draw takes K tasks
(3 by default) with the operating system's CSPRNG from the eligible pool: every registered task whose
family no research task has (`suites.transfer_pool`), at least one real and one synthetic task where the
pool has both. It is recorded only where the lab's secrets are (campaign.json and the lab's views of the
transfer data, both masked in every sandbox), the public view a transfer job gets names no task
(lab/transfer.py), and the campaign names the tasks to the user only at the end.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from autow2s.errors import AutoW2SError

DEFAULT_DRAW = 3
_AUTO = re.compile(r"^auto(?::(\d+))?$")


@dataclass(frozen=True)
class TransferDraw:
    """What the draw chose from and what it chose (kept in campaign.json beside the chosen tasks)."""

    tasks: tuple[str, ...]
    pool: tuple[str, ...]
    requested: int


def parse_auto(spec: str) -> int | None:
    """'auto' -> 3, 'auto:5' -> 5; anything else -> None (a list or a suite)."""
    match = _AUTO.match(spec.strip().lower())
    if match is None:
        return None
    count = int(match.group(1) or DEFAULT_DRAW)
    if count < 1:
        raise AutoW2SError("--transfer-tasks auto:K needs K >= 1 (or `none` to skip transfer)")
    return count


def draw_transfer_tasks(research: tuple[str, ...], count: int = DEFAULT_DRAW,
                        rng: secrets.SystemRandom | None = None) -> TransferDraw:
    """K tasks from the pool, at least one real and one synthetic where it has both; the rest uniformly."""
    from autow2s.testbed.tasks.suites import is_real, is_synthetic, transfer_pool

    rng = rng or secrets.SystemRandom()
    pool = transfer_pool(research)
    if not pool:
        raise AutoW2SError("--transfer-tasks auto: every registered task shares a family with a research task, so "
                           "none is held out; name transfer tasks yourself or pass `none`")
    chosen: list[str] = []
    for kind in (is_real, is_synthetic):
        candidates = [task for task in pool if kind(task) and task not in chosen]
        if candidates and len(chosen) < count:
            chosen.append(rng.choice(candidates))
    rest = [task for task in pool if task not in chosen]
    chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
    rng.shuffle(chosen)  # the order says nothing about which one was the real or the synthetic pick
    return TransferDraw(tasks=tuple(chosen), pool=pool, requested=count)
