"""A verified or transfer run's per-item outcome, kept so that methods can be compared with vanilla *paired*.

Two verified runs' CIs side by side hide most of what tells them apart: the same holdout items are hard
for both. So each run keeps, on its task's holdout items, which of them each seed got right, which its
own weak supervisor got right, and which the task's ceiling students got right (a few kB as packed
bits), and the comparison resamples the items once for both (testbed.metrics.paired_pgr_difference).
Outcomes are the lab's: no researcher endpoint serves them, only the admin's transfer table their
comparison with vanilla.
"""

from __future__ import annotations

import io

import numpy as np

from autow2s.testbed.metrics import RunCorrectness


def pack(method: np.ndarray, weak: np.ndarray, ceiling: np.ndarray) -> bytes:
    """(n_seeds, n_items), (n_items,), (n_ceiling_seeds, n_items) of 0/1 -> bytes for the run's row."""
    method, weak, ceiling = (np.asarray(a, dtype=bool) for a in (method, weak, ceiling))
    if not (method.shape[1] == weak.shape[0] == ceiling.shape[1]):
        raise ValueError(f"outcome arrays disagree on the items: {method.shape}, {weak.shape}, {ceiling.shape}")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, shapes=np.array([*method.shape, ceiling.shape[0]]),
                        method=np.packbits(method), weak=np.packbits(weak), ceiling=np.packbits(ceiling))
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[RunCorrectness, np.ndarray]:
    """The run's correctness and its task's ceiling correctness (float 0/1 arrays)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        seeds, items, ceiling_seeds = (int(n) for n in stored["shapes"])
        method = np.unpackbits(stored["method"], count=seeds * items).reshape(seeds, items)
        weak = np.unpackbits(stored["weak"], count=items)
        ceiling = np.unpackbits(stored["ceiling"], count=ceiling_seeds * items).reshape(ceiling_seeds, items)
    return RunCorrectness(method.astype(np.float64), weak.astype(np.float64)), ceiling.astype(np.float64)
