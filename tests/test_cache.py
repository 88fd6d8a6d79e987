"""The artifact cache: a hit loads exactly what it claims, and poisoned entries are refused."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from autow2s.testbed.cache import ArtifactCache, CacheCorruption
from autow2s.testbed.models.heads import TorchHead
from autow2s.testbed.teachers import ceiling_probs, weak_teacher
from testbed_helpers import small_task


@pytest.fixture()
def fit_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count real training runs (the real fit still runs)."""
    calls: list[int] = []
    original = TorchHead.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TorchHead, "fit", counting_fit)
    return calls


def test_hit_skips_training_and_returns_identical_arrays(tmp_path: Path, fit_calls: list[int]) -> None:
    task, cache = small_task(), ArtifactCache(tmp_path)
    first = weak_teacher(task, 7, cache)
    ceiling = ceiling_probs(task, 7, cache)
    trained = len(fit_calls)
    assert trained >= 2
    again = weak_teacher(task, 7, cache)
    assert np.array_equal(again.soft_labels["test"], first.soft_labels["test"])
    assert np.array_equal(ceiling_probs(task, 7, cache), ceiling)
    assert len(fit_calls) == trained  # nothing was retrained


def test_other_seed_or_task_is_a_miss(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    a = weak_teacher(small_task(), 1, cache)
    b = weak_teacher(small_task(), 2, cache)
    c = weak_teacher(small_task(data_seed=5), 1, cache)
    assert not np.array_equal(a.soft_labels["test"], b.soft_labels["test"])
    assert len(list((tmp_path / "weak").iterdir())) == 3
    assert c.soft_labels["test"].shape == a.soft_labels["test"].shape


def _entry(cache_root: Path, kind: str) -> Path:
    (entry,) = [p for p in (cache_root / kind).iterdir() if not p.name.startswith(".")]
    return entry


def test_poisoned_payload_is_detected_and_recomputed(tmp_path: Path) -> None:
    task, cache = small_task(), ArtifactCache(tmp_path)
    honest = weak_teacher(task, 3, cache).soft_labels["test"]
    entry = _entry(tmp_path, "weak")
    # Poison: replace the stored soft labels with all-ones "perfect" ones, keep meta.json as is.
    with np.load(entry / "arrays.npz") as data:
        arrays = {name: data[name] for name in data.files}
    arrays["soft.test"] = np.ones_like(arrays["soft.test"])
    np.savez(entry / "arrays.npz", **arrays)
    with pytest.warns(CacheCorruption, match="digest mismatch"):
        reloaded = weak_teacher(task, 3, cache).soft_labels["test"]
    assert np.array_equal(reloaded, honest)


def test_entry_planted_under_another_key_is_rejected(tmp_path: Path) -> None:
    task, cache = small_task(), ArtifactCache(tmp_path)
    seed_1 = weak_teacher(task, 1, cache).soft_labels["test"]
    entries = {p.name: p for p in (tmp_path / "weak").iterdir()}
    weak_teacher(task, 2, cache)
    (other_key,) = [p for p in (tmp_path / "weak").iterdir() if p.name not in entries]
    seed_1_entry = next(iter(entries.values()))
    # Plant seed 1's (self-consistent) entry where seed 2's should be.
    shutil.rmtree(other_key)
    shutil.copytree(seed_1_entry, other_key)
    with pytest.warns(CacheCorruption, match="config differs"):
        seed_2 = weak_teacher(task, 2, cache).soft_labels["test"]
    assert not np.array_equal(seed_2, seed_1)
    meta = json.loads((other_key / "meta.json").read_text())
    assert meta["config"]["seed"] == 2  # rewritten with the honest artifact


def test_disabled_cache_writes_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "off", enabled=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weak_teacher(small_task(), 1, cache)
    assert not (tmp_path / "off").exists()
