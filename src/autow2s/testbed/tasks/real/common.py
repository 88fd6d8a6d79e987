"""What every real task shares: a fixed, balanced pool of items and a split drawn from the instance seed.

The pool is fixed (chosen once with a public RNG, per task name), so each model embeds each text
once and its cached features serve every instance. The instance seed decides which pool items go
to train_label, train_unlabel and test, stratified by label (or, for answer verification, by
question: both answers to one question land in the same split, so a test question is never seen
in training; or, for sentences of speeches, by speech: the pool is then the whole corpus). The
seed never enters task.json.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autow2s.errors import AutoW2SError
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.instance import derived_rng
from autow2s.testbed.tasks.schema import TaskMeta


@dataclass(frozen=True)
class Item:
    """One labelled row before ids are given; `group` keeps items of one question together."""

    question: str
    choice: str
    label: bool
    group: str = ""
    difficulty: float | None = None


@dataclass(frozen=True)
class Sizes:
    """Items per split: enough test items that a PGR's CI can be narrower than the effects it compares.

    The weak teacher learns from 200 labels and the student (and the ceiling) from 3,000 items: the
    usual W2S shape, where the supervisor has seen less than the student will. 3,000 test items
    (1,500 dev, 1,500 holdout) give vanilla's PGR a 95% CI of about ±0.1 on a 0.15 gap
    (docs/calibration.md); 500 gave ±0.25 to ±0.7. The pool's total (6,200) fixes which texts are
    embedded, so changing the split sizes within it costs no re-encoding.
    """

    train_label: int = 200
    train_unlabel: int = 3000
    test: int = 3000

    @property
    def total(self) -> int:
        return self.train_label + self.train_unlabel + self.test


@dataclass(frozen=True)
class RealSpec:
    """A real task: how to read its items, and what task.json says about it."""

    name: str
    description: str
    source: str  # package, original dataset, licence
    read: Callable[[], list[Item]]
    domain: str  # what kind of data and label: suites hold transfer tasks out by it (tasks/suites.py)
    sources: tuple[str, ...]  # the fetched sources (testbed/fetch/sources.py) its corpus comes from
    # What transfer holds out by (tasks/suites.py): the domain and the corpus, so tasks sharing texts share it.
    family: str = ""  # empty: the domain itself
    grouped: bool = False  # answer verification: split by question, not by item
    by_document: bool = False  # items sharing a `group` (one speech) stay in one split
    sizes: Sizes = Sizes()
    strong: str = "mpnet"  # the answer alone is embedded: every row asks the same question (mpnet-qa otherwise)
    weak: str = "tfidf"
    # Registered (buildable by name) by default; the answer-verification tasks are not (a sentence-embedding head
    # shows no gap on them) and load with AUTOW2S_EXTRA_TASKS=name,... (tasks/registry.py).
    registered: bool = True
    # In the default suites and the transfer pool (what a secret transfer draw picks from) only when the default
    # pair's measured ceiling - weak gap is not far below the 0.12 target: under 0.1 a PGR is mostly noise
    # (docs/calibration.md names each task left out, with its figures).
    pooled: bool = True


def public_rng(name: str) -> np.random.Generator:
    """The RNG that picks the fixed pool: public and per task, so it says nothing about an instance."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def unique_items(items: list[Item]) -> list[Item]:
    """The first item of each text; a text that carries both labels (a tweet two outlets both posted) is
    dropped altogether, since no model could be right on both."""
    labels: dict[tuple[str, str], set[bool]] = {}
    for item in items:
        labels.setdefault((item.question, item.choice), set()).add(item.label)
    seen: set[tuple[str, str]] = set()
    unique = []
    for item in items:
        key = (item.question, item.choice)
        if key not in seen and len(labels[key]) == 1:
            seen.add(key)
            unique.append(item)
    return unique


def balanced_pool(items: list[Item], total: int, name: str) -> list[Item]:
    """total/2 positives and total/2 negatives, de-duplicated by text, picked once with a public RNG."""
    unique = unique_items(items)
    positives = [item for item in unique if item.label]
    negatives = [item for item in unique if not item.label]
    half = total // 2
    if min(len(positives), len(negatives)) < half:
        raise AutoW2SError(f"task {name!r}: the corpus has {len(positives)} positive and {len(negatives)} negative "
                           f"items, fewer than the {half} of each the sizes ask for; use smaller sizes")
    rng = public_rng(name)
    pick = [positives[i] for i in rng.choice(len(positives), half, replace=False)]
    pick += [negatives[i] for i in rng.choice(len(negatives), half, replace=False)]
    return pick


def paired_pool(groups: list[tuple[str, str, list[str]]], total: int, name: str) -> list[Item]:
    """Answer verification: per question, its correct answer and one wrong answer (fixed), so labels balance.

    groups: (question, correct answer, wrong answers).
    """
    usable = [g for g in groups if g[2] and g[1] not in g[2]]
    n_questions = total // 2
    if len(usable) < n_questions:
        raise AutoW2SError(f"task {name!r}: the corpus has {len(usable)} usable questions, fewer than the "
                           f"{n_questions} the sizes ask for; use smaller sizes")
    rng = public_rng(name)
    items = []
    for index in rng.choice(len(usable), n_questions, replace=False):
        question, correct, wrong = usable[int(index)]
        group = f"q{int(index)}"
        items.append(Item(question, correct, True, group))
        items.append(Item(question, wrong[int(rng.integers(len(wrong)))], False, group))
    return items


def _assign(pool: list[Item], sizes: Sizes, seed: int, grouped: bool) -> dict[str, list[Item]]:
    """Split the pool with the instance seed: stratified by label, or by question group."""
    rng = derived_rng(seed, "real-split")
    names = ("train_label", "train_unlabel", "test")
    quota = (sizes.train_label, sizes.train_unlabel, sizes.test)
    out: dict[str, list[Item]] = {name: [] for name in names}
    if grouped:
        groups: dict[str, list[Item]] = {}
        for item in pool:
            groups.setdefault(item.group, []).append(item)
        keys = list(groups)
        order = rng.permutation(len(keys))
        bounds = np.cumsum([q // 2 for q in quota])
        for rank, index in enumerate(order):
            split = names[int(np.searchsorted(bounds, rank, side="right"))] if rank < bounds[-1] else None
            if split is not None:
                out[split].extend(groups[keys[int(index)]])
        return out
    for label in (True, False):
        members = [item for item in pool if item.label == label]
        order = rng.permutation(len(members))
        start = 0
        for name, count in zip(names, quota):
            take = count // 2 if label else count - count // 2
            out[name].extend(members[int(i)] for i in order[start : start + take])
            start += take
    return out


def _assign_documents(items: list[Item], sizes: Sizes, seed: int, name: str) -> dict[str, list[Item]]:
    """Split whole documents (items sharing a `group`) with the instance seed, then balance each split.

    Per label, the documents in a seeded order fill train_label, then train_unlabel, then test; each
    split then keeps a seeded sample of exactly its quota, so no document is in two splits.
    """
    rng = derived_rng(seed, "real-split-documents")
    names = ("train_label", "train_unlabel", "test")
    out: dict[str, list[Item]] = {split: [] for split in names}
    for label in (True, False):
        documents: dict[str, list[Item]] = {}
        for item in items:
            if item.label == label:
                documents.setdefault(item.group, []).append(item)
        needs = [count // 2 if label else count - count // 2 for count in (sizes.train_label, sizes.train_unlabel,
                                                                             sizes.test)]
        filled: list[list[Item]] = [[] for _ in names]
        keys = sorted(documents)
        for index in rng.permutation(len(keys)):
            open_split = next((i for i, need in enumerate(needs) if len(filled[i]) < need), None)
            if open_split is None:
                break
            filled[open_split].extend(documents[keys[int(index)]])
        for split, need, chosen in zip(names, needs, filled):
            if len(chosen) < need:
                raise AutoW2SError(f"task {name!r}: its documents hold too few {'positive' if label else 'negative'} "
                                   f"items to fill {split} ({len(chosen)} of {need}) with whole documents; use "
                                   "smaller sizes")
            out[split].extend(chosen[int(i)] for i in sorted(rng.choice(len(chosen), need, replace=False)))
    return out


def _row(item: Item, index: int) -> dict[str, Any]:
    row: dict[str, Any] = {"id": f"r{index}", "question": item.question, "choice": item.choice}
    if item.difficulty is not None:
        row["difficulty"] = item.difficulty
    return row


def build(spec: RealSpec, instance_seed: int, sizes: Sizes | None = None) -> Task:
    """One instance of a real task. `sizes` overrides the spec's (tests use small ones)."""
    sizes = sizes or spec.sizes
    items = spec.read()
    if spec.by_document:
        parts = _assign_documents(unique_items(items), sizes, instance_seed, spec.name)
    else:
        pool = paired_pool_from(items, sizes.total, spec.name) if spec.grouped else balanced_pool(items, sizes.total,
                                                                                                   spec.name)
        parts = _assign(pool, sizes, instance_seed, spec.grouped)
    splits = {}
    counter = 0
    for name, chosen in parts.items():
        rows = []
        for item in chosen:
            rows.append(_row(item, counter))
            counter += 1
        splits[name] = Split(ids=[row["id"] for row in rows], rows=rows,
                             labels=np.asarray([int(item.label) for item in chosen], dtype=np.int64))
    meta = TaskMeta(name=spec.name, kind="binary", description=spec.description, source=spec.source,
                    labels_computable=False)
    return Task(meta=meta, splits=splits)


def paired_pool_from(items: list[Item], total: int, name: str) -> list[Item]:
    """Answer-verification items arrive as one correct and several wrong items per group."""
    groups: dict[str, tuple[str, str, list[str]]] = {}
    for item in items:
        question, correct, wrong = groups.get(item.group, (item.question, "", []))
        if item.label:
            correct = item.choice
        else:
            wrong = [*wrong, item.choice]
        groups[item.group] = (question, correct, wrong)
    return paired_pool([g for g in groups.values() if g[1]], total, name)
