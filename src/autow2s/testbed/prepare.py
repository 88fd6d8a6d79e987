"""`autow2s prepare`: split a task into the lab's view (labels) and the researchers' (none).

Besides lab/ and public/, it writes null/pos and null/neg: public-shaped views whose weak
supervisor was trained on permuted labels (see `null_supervisor`). Only the lab uses them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.models.registry import default_backend
from autow2s.testbed.public_run import FEATURES_DIR
from autow2s.testbed.tasks.dataset import Split, Task
from autow2s.testbed.tasks.instance import derived_rng, draw_instance_seed, write_instance
from autow2s.testbed.tasks.schema import SPLIT_FILES
from autow2s.testbed.teachers import WeakTeacher, weak_teacher

NULL_VIEWS: tuple[str, ...] = ("pos", "neg")


def _label_value(kind: str, label: int) -> Any:
    if kind == "binary":
        return bool(label)
    if kind == "pairwise":
        return "B" if label else "A"
    return int(label)


def _rows(task: Task, split: Split, *, with_labels: bool) -> list[dict[str, Any]]:
    rows = []
    for i, rid in enumerate(split.ids):
        if split.rows is not None:
            row = dict(split.rows[i])
            row["id"] = rid
        else:
            if split.strong is None or split.weak is None:
                raise ValueError(f"{task.name}: a split with neither rows (text task) nor strong and weak "
                                 "features (features task)")
            row = {"id": rid, "strong_features": split.strong[i].tolist(), "weak_features": split.weak[i].tolist()}
        if with_labels and split.labels is not None:
            row["label"] = _label_value(task.kind, int(split.labels[i]))
        rows.append(row)
    return rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def dev_holdout_partition(n_test: int, *, dev_fraction: float = 0.5,
                          rng: np.random.Generator | None = None) -> np.ndarray:
    """A boolean mask over test: True marks dev (scored for researchers), False holdout."""
    order = (rng or np.random.default_rng(0)).permutation(n_test)
    mask = np.zeros(n_test, dtype=bool)
    mask[order[: int(round(n_test * dev_fraction))]] = True
    return mask


def null_supervisor(task: Task, secret: int, polarity: str) -> Task:
    """The task with train_label's labels permuted (and, for polarity 'neg', flipped).

    A weak model trained on it has the supervisor's architecture and label balance but no signal.
    The two polarities are mirror images: a method that takes only a direction from its supervisor
    (the sign of a probe) is right under one and wrong under the other, so it averages to chance,
    while a method that never needed the supervisor keeps its accuracy under both.
    """
    labels = task.labels("train_label")
    permuted = labels[derived_rng(secret, "null").permutation(len(labels))]
    if polarity == "neg":
        permuted = 1 - permuted
    split = task.split("train_label")
    splits = dict(task.splits) | {"train_label": Split(ids=split.ids, labels=permuted, strong=split.strong,
                                                         weak=split.weak, rows=split.rows)}
    return Task(meta=task.meta, splits=splits)


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    try:
        Path(target).hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def _write_weak(view: Path, task: Task, teacher: WeakTeacher, backend: str, seed: int) -> None:
    weak_dir = view / "weak"
    weak_dir.mkdir()
    for split, probs in teacher.soft_labels.items():
        _write_jsonl(weak_dir / f"{split}.jsonl",
                     [{"id": rid, "p": float(p)} for rid, p in zip(task.split(split).ids, probs)])
    # numpy's stub: a **dict could fill savez's allow_pickle: bool keyword, so mypy rejects it
    np.savez(weak_dir / "model.npz", **teacher.model_arrays)  # type: ignore[arg-type]
    (weak_dir / "model.json").write_text(json.dumps({"backend": backend, "seed": seed}) + "\n")


def _copy_public_files(public: Path, view: Path) -> None:
    """Everything of a public view but its weak supervisor: the task files and the encoded texts."""
    view.mkdir(parents=True)
    for entry in public.iterdir():
        if entry.is_file():
            _link_or_copy(entry, view / entry.name)
        elif entry.name == FEATURES_DIR:  # the same encoded texts: a view with another supervisor looks alike
            shutil.copytree(entry, view / entry.name, copy_function=_link_or_copy)


def _write_null_views(task: Task, out: Path, public: Path, secret: int, seed: int, backend: str,
                      cache: ArtifactCache) -> None:
    """null/pos and null/neg: the public files as they are, with a null supervisor's weak artifacts."""
    for polarity in NULL_VIEWS:
        view = out / "null" / polarity
        _copy_public_files(public, view)
        null_task = null_supervisor(task, secret, polarity)
        _write_weak(view, task, weak_teacher(null_task, seed, cache, backend=backend), backend, seed)


def write_supervised_view(public: Path, view: Path, task: Task, teacher: WeakTeacher) -> Path:
    """A copy of a public view whose weak supervisor is `teacher` (the lab's fresh supervisors at verification).

    Everything else is the public view's, byte for byte, model.json included, so only the supervisor's
    outputs differ. `task` is the lab's copy (its ids and order are the public view's).
    """
    _copy_public_files(public, view)
    weak_dir = view / "weak"
    weak_dir.mkdir()
    for split, probs in teacher.soft_labels.items():
        _write_jsonl(weak_dir / f"{split}.jsonl",
                     [{"id": rid, "p": float(p)} for rid, p in zip(task.split(split).ids, probs)])
    np.savez(weak_dir / "model.npz", **teacher.model_arrays)  # type: ignore[arg-type]  # see _write_weak
    shutil.copyfile(public / "weak" / "model.json", weak_dir / "model.json")
    return view


NEUTRAL_NAME = "task"  # what a held-out task's view calls itself
_NEUTRAL_PREFIX = {"train_unlabel": "u", "test": "t"}


def write_neutral_view(public: Path, view: Path, *, strong_backend: str) -> Path:
    """A copy of a public view that says nothing about which task it is: task.json names no task (no name,
    description, source or computable-labels mark) and every item gets a fresh random id. For transfer runs,
    whose task a method must not be able to recognise. The rows' own text (a question) stays: it is the input.

    weak/model.json gains the strong backend the task's ceiling used, which the public view otherwise implies
    by the task's name (testbed.models.registry.default_backend), so the method gets the same student.
    """
    import secrets

    from autow2s.testbed.tasks.schema import TaskMeta

    meta = TaskMeta.from_json(json.loads((public / "task.json").read_text()))
    view.mkdir(parents=True)
    (view / "task.json").write_text(json.dumps(TaskMeta(name=NEUTRAL_NAME, kind=meta.kind).to_json(), indent=2) + "\n")
    (view / "weak").mkdir()
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for split, prefix in _NEUTRAL_PREFIX.items():
        rows = [json.loads(line) for line in (public / SPLIT_FILES[split]).read_text().splitlines() if line.strip()]
        for row in rows:
            fresh = f"{prefix}-{secrets.token_hex(6)}"
            while fresh in taken:
                fresh = f"{prefix}-{secrets.token_hex(6)}"
            taken.add(fresh)
            renamed[str(row["id"])] = row["id"] = fresh
        _write_jsonl(view / SPLIT_FILES[split], rows)
        weak_rows = [json.loads(line) for line in (public / "weak" / f"{split}.jsonl").read_text().splitlines()
                     if line.strip()]
        _write_jsonl(view / "weak" / f"{split}.jsonl",
                     [{"id": renamed[str(row["id"])], "p": row["p"]} for row in weak_rows])
    shutil.copyfile(public / "weak" / "model.npz", view / "weak" / "model.npz")
    model_meta = json.loads((public / "weak" / "model.json").read_text())
    (view / "weak" / "model.json").write_text(json.dumps(model_meta | {"strong": strong_backend}) + "\n")
    if (public / FEATURES_DIR).is_dir():  # keyed by the texts' content, not by task or id
        shutil.copytree(public / FEATURES_DIR, view / FEATURES_DIR, copy_function=_link_or_copy)
    return view


def _write_features(task: Task, public: Path, backends: tuple[str, ...]) -> None:
    """public/features: the encoder vectors of the view's own texts, so no sandboxed job re-encodes them."""
    from autow2s.testbed.models.registry import get_backend
    from autow2s.testbed.models.text.embed_cache import exporting_embeddings
    from autow2s.testbed.tasks.loader import load_task_dir

    for name in dict.fromkeys(backends):
        backend = get_backend(name, task.kind)
        if not hasattr(backend, "embed"):  # features tasks, TF-IDF, causal LMs: nothing to encode ahead
            continue
        written = load_task_dir(public, require_labels=False)  # the rows exactly as jobs will read them
        splits = [written.split(split) for split in ("train_unlabel", "test")]
        with exporting_embeddings(public / FEATURES_DIR):
            student = backend.make(example=backend.inputs(splits[0], "strong"), seed=0)
            for split in splits:
                student.features(backend.inputs(split, "strong"))


def prepare_task(
    task: Task,
    out: Path,
    *,
    seed: int = 0,
    dev_fraction: float = 0.5,
    cache: ArtifactCache | None = None,
    weak_backend: str | None = None,
    instance_seed: int | None = None,
    instance_chosen_by_user: bool = False,
    public_only: bool = False,
) -> dict[str, Path]:
    """Write out/lab (labels, partition, secret), out/public (no labels, weak artifacts) and out/null.

    instance_seed is the seed a generated task was drawn from; for a task directory it is None and
    a fresh secret is drawn for the partition and the null supervisor. Either way it goes to lab/ only.
    public_only: out/public alone, and no file with a label (a campaign host on a shared lab, whose own
    host holds lab/ and null/).
    """
    lab, public, null = out / "lab", out / "public", out / "null"
    for path in (lab, public, null):
        if path.exists():
            shutil.rmtree(path)
    views = (public,) if public_only else (lab, public)
    for path in views:
        path.mkdir(parents=True)
    secret = instance_seed if instance_seed is not None else draw_instance_seed()
    if not public_only:
        write_instance(lab, task.name, secret, chosen_by_user=instance_chosen_by_user)
    meta = task.meta.to_json()
    for directory in views:
        (directory / "task.json").write_text(json.dumps(meta, indent=2) + "\n")
    for split, filename in SPLIT_FILES.items():
        if not public_only:
            _write_jsonl(lab / filename, _rows(task, task.split(split), with_labels=True))
        if split != "train_label":
            _write_jsonl(public / filename, _rows(task, task.split(split), with_labels=False))
    # The partition comes from the secret: a public seed would tell a method which items are dev.
    mask = dev_holdout_partition(len(task.split("test")), dev_fraction=dev_fraction,
                                 rng=derived_rng(secret, "partition"))
    test_ids = task.split("test").ids
    partition = {"dev_fraction": dev_fraction,
                 "dev": [rid for rid, dev in zip(test_ids, mask) if dev],
                 "holdout": [rid for rid, dev in zip(test_ids, mask) if not dev]}
    if not public_only:
        (lab / "partition.json").write_text(json.dumps(partition) + "\n")
    weak_backend = weak_backend or default_backend(task.kind, "weak", task.name)
    cache = cache or ArtifactCache()
    _write_features(task, public, (default_backend(task.kind, "strong", task.name), weak_backend))
    _write_weak(public, task, weak_teacher(task, seed, cache, backend=weak_backend), weak_backend, seed)
    if public_only:
        return {"public": public}
    _write_null_views(task, out, public, secret, seed, weak_backend, cache)
    return {"lab": lab, "public": public, "null": null}
