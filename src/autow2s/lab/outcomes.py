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


def pack(method: np.ndarray, weak: np.ndarray, ceiling: np.ndarray, reference: np.ndarray | None = None) -> bytes:
    """(n_seeds, n_items), (n_items,), (n_ceiling_seeds, n_items) of 0/1 -> bytes for the run's row; reference:
    vanilla's (n_seeds, n_items) on the same seeds and supervisor, when the run computed it."""
    method, weak, ceiling = (np.asarray(a, dtype=bool) for a in (method, weak, ceiling))
    if not (method.shape[1] == weak.shape[0] == ceiling.shape[1]):
        raise ValueError(f"outcome arrays disagree on the items: {method.shape}, {weak.shape}, {ceiling.shape}")
    arrays: dict[str, np.ndarray] = {"shapes": np.array([*method.shape, ceiling.shape[0]]), "method": np.packbits(method),
                                     "weak": np.packbits(weak), "ceiling": np.packbits(ceiling)}
    if reference is not None:
        reference = np.asarray(reference, dtype=bool)
        if reference.shape != method.shape:
            raise ValueError(f"vanilla's reference {reference.shape} is not on the method's seeds and items "
                             f"{method.shape}")
        arrays["reference"] = np.packbits(reference)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first keyword
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[RunCorrectness, np.ndarray, RunCorrectness | None]:
    """The run's correctness, its task's ceiling correctness (float 0/1 arrays), and vanilla's on the same seeds and
    supervisor (None when the run has no reference: the campaign's own vanilla, or a run from before references)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        seeds, items, ceiling_seeds = (int(n) for n in stored["shapes"])
        method = np.unpackbits(stored["method"], count=seeds * items).reshape(seeds, items)
        weak = np.unpackbits(stored["weak"], count=items).astype(np.float64)
        ceiling = np.unpackbits(stored["ceiling"], count=ceiling_seeds * items).reshape(ceiling_seeds, items)
        reference = (np.unpackbits(stored["reference"], count=seeds * items).reshape(seeds, items)
                     if "reference" in stored.files else None)
    vanilla = None if reference is None else RunCorrectness(reference.astype(np.float64), weak)
    return RunCorrectness(method.astype(np.float64), weak), ceiling.astype(np.float64), vanilla
