"""Secret task instances: a generated task is drawn from an instance seed that only the lab keeps.

A registered generator is installed wherever autow2s is, the sandbox included. If it were
deterministic, a method could rebuild the lab's task and read its labels. So every generated task
is drawn from a seed taken from the OS's CSPRNG, its items are shuffled with that seed and given
fresh HMAC-derived ids, and the seed is written only to the lab view (lab/instance.json).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.tasks.dataset import Split, Task

INSTANCE_FILE = "instance.json"
SEED_BITS = 63  # fits an int64 and JSON; 2**63 draws cannot be searched
ID_BYTES = 6


def draw_instance_seed() -> int:
    """A fresh instance seed from the OS's CSPRNG."""
    return secrets.randbits(SEED_BITS)


def check_instance_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**SEED_BITS:
        raise AutoW2SError(f"--instance-seed must be an integer in [0, 2**{SEED_BITS}), got {seed!r}")
    return seed


def _derive(instance_seed: int, purpose: str) -> bytes:
    """HMAC-SHA256 of the purpose under the seed: one-way, so nothing derived from it leads back."""
    return hmac.new(instance_seed.to_bytes(16, "little"), purpose.encode(), hashlib.sha256).digest()


def derived_rng(instance_seed: int, purpose: str) -> np.random.Generator:
    """An RNG for one use of the instance seed (shuffle, partition, null supervisor), independent of the others.

    Its state comes through an HMAC, so even a recovered generator state does not reveal the seed.
    """
    return np.random.default_rng(int.from_bytes(_derive(instance_seed, purpose), "little"))


def _fresh_ids(instance_seed: int, prefix: str, n: int, taken: set[str]) -> list[str]:
    """Public ids: HMAC tokens, which say nothing about the seed, the generator or the item's position."""
    ids: list[str] = []
    counter = 0
    while len(ids) < n:
        token = _derive(instance_seed, f"id:{prefix}:{counter}")[:ID_BYTES].hex()
        counter += 1
        candidate = f"{prefix}-{token}"
        if candidate not in taken:
            taken.add(candidate)
            ids.append(candidate)
    return ids


def _reorder(split: Split, order: np.ndarray, ids: list[str]) -> Split:
    rows = None
    if split.rows is not None:
        rows = [{**split.rows[i], "id": new_id} for i, new_id in zip(order, ids)]
    return Split(ids=ids, labels=None if split.labels is None else split.labels[order],
                 strong=None if split.strong is None else split.strong[order],
                 weak=None if split.weak is None else split.weak[order], rows=rows)


def conceal(task: Task, instance_seed: int) -> Task:
    """Shuffle every split and replace its ids, so neither position nor id says how an item was made."""
    rng = derived_rng(instance_seed, "shuffle")
    taken: set[str] = set()
    splits = {}
    for name, split in task.splits.items():
        order = rng.permutation(len(split))
        prefix = {"train_label": "l", "train_unlabel": "u", "test": "t"}.get(name, name[:1])
        splits[name] = _reorder(split, order, _fresh_ids(instance_seed, prefix, len(split), taken))
    return Task(meta=task.meta, splits=splits)


def write_instance(lab_dir: Path, task: str, instance_seed: int, *, chosen_by_user: bool) -> None:
    """Only the lab view gets the seed; `public/` never does."""
    record: dict[str, Any] = {"task": task, "instance_seed": instance_seed,
                              "drawn_by": "user (--instance-seed)" if chosen_by_user else "csprng"}
    (lab_dir / INSTANCE_FILE).write_text(json.dumps(record) + "\n")


def read_instance_seed(lab_dir: Path) -> int | None:
    path = lab_dir / INSTANCE_FILE
    if not path.is_file():
        return None
    return int(json.loads(path.read_text())["instance_seed"])
