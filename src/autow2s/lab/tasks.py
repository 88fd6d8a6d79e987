"""The tasks a lab serves: labels held in memory as arrays, and the fixed baselines of each.

Baselines are computed once per task by the trusted side with the testbed (the public weak
teacher's test labels; the ceiling averaged over seeds), stored in the DB under the task's
fingerprint, and used for every PGR the lab reports. Labs that start together on one database may
each compute them: the first row stored is kept, and every lab reads that row back and uses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from autow2s.errors import AutoW2SError
from autow2s.lab.db import insert_or_ignore
from autow2s.lab.models import Baseline
from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.models.registry import default_backend
from autow2s.testbed.prepare import NULL_VIEWS
from autow2s.testbed.public_run import load_public
from autow2s.testbed.tasks.dataset import Task
from autow2s.testbed.tasks.loader import load_task_dir
from autow2s.testbed.teachers import ceiling_probs

log = logging.getLogger("autow2s.lab")


@dataclass(frozen=True)
class Baselines:
    weak_dev_acc: float
    weak_holdout_acc: float
    ceiling_dev_acc: float
    ceiling_holdout_acc: float
    seeds: tuple[int, ...]
    weak_bits: np.ndarray  # (n_test,) bool: the weak teacher's test predictions
    ceiling_bits: np.ndarray  # (n_seeds, n_test) bool


@dataclass
class LabTask:
    """One task as the scorer needs it: labels and the dev/holdout index arrays."""

    name: str
    kind: str
    lab_dir: Path
    public_dir: Path
    test_ids: list[str]
    labels: np.ndarray  # (n_test,) bool
    dev_idx: np.ndarray
    holdout_idx: np.ndarray
    fingerprint: str
    null_dirs: tuple[Path, ...] = ()  # public-shaped views with a null supervisor (prepare's null/pos, null/neg)
    baselines: Baselines | None = None
    dev_mask: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.dev_mask = np.zeros(len(self.test_ids), dtype=bool)
        self.dev_mask[self.dev_idx] = True

    @property
    def n_test(self) -> int:
        return len(self.test_ids)

    @property
    def n_dev(self) -> int:
        return len(self.dev_idx)

    def correct(self, bits: np.ndarray) -> tuple[int, int]:
        """Numbers of correct dev and holdout predictions for (n_test,) bool predictions."""
        right = bits == self.labels
        dev = int(np.count_nonzero(right & self.dev_mask))
        return dev, int(np.count_nonzero(right)) - dev


def find_task_dirs(data_dir: Path) -> list[Path]:
    """DIR/<name>/{lab,public} for each task `autow2s prepare` wrote (or DIR itself)."""
    if not data_dir.is_dir():
        raise AutoW2SError(f"--data {data_dir}: not a directory; pass the folder `autow2s prepare --out` wrote into")
    if (data_dir / "lab").is_dir():
        return [data_dir]
    found = sorted(p for p in data_dir.iterdir()  # a dot-folder is a preparation still in progress
                   if not p.name.startswith(".") and (p / "lab").is_dir() and (p / "public").is_dir())
    if not found:
        raise AutoW2SError(
            f"--data {data_dir}: no prepared task in it; run `autow2s prepare TASK --out {data_dir}/TASK` first"
        )
    return found


def _fingerprint(task: Task, partition: dict[str, Any], weak_test: np.ndarray, seeds: tuple[int, ...]) -> str:
    """What the stored baselines depend on: the task's content, the partition, the teacher, the seeds."""
    digest = hashlib.sha256(task.fingerprint().encode())
    digest.update(json.dumps(list(seeds)).encode())
    digest.update(json.dumps({"dev": partition["dev"], "holdout": partition["holdout"]}).encode())
    digest.update(np.ascontiguousarray(weak_test, dtype=np.float64).tobytes())
    return digest.hexdigest()


def load_lab_task(task_dir: Path, seeds: tuple[int, ...]) -> tuple[LabTask, Task, np.ndarray]:
    lab_dir, public_dir = task_dir / "lab", task_dir / "public"
    task = load_task_dir(lab_dir)
    partition_path = lab_dir / "partition.json"
    if not partition_path.is_file():
        raise AutoW2SError(f"{partition_path}: missing; re-run `autow2s prepare` to write the dev/holdout partition")
    partition = json.loads(partition_path.read_text())
    test_ids = task.split("test").ids
    position = {rid: i for i, rid in enumerate(test_ids)}
    try:
        dev_idx = np.array(sorted(position[r] for r in partition["dev"]), dtype=np.int64)
        holdout_idx = np.array(sorted(position[r] for r in partition["holdout"]), dtype=np.int64)
    except KeyError as exc:
        raise AutoW2SError(f"{partition_path}: id {exc} is not in test.jsonl; re-run `autow2s prepare`") from None
    if len(dev_idx) == 0 or len(holdout_idx) == 0 or len(dev_idx) + len(holdout_idx) != len(test_ids):
        raise AutoW2SError(f"{partition_path}: dev and holdout must be non-empty and cover test exactly once")
    _, teacher = load_public(public_dir)
    weak_test = teacher.soft_labels["test"]
    null_dirs = tuple(task_dir / "null" / polarity for polarity in NULL_VIEWS)
    if not all((view / "weak" / "model.json").is_file() for view in null_dirs):
        null_dirs = ()
    lab_task = LabTask(name=task.name, kind=task.kind, lab_dir=lab_dir, public_dir=public_dir, test_ids=test_ids,
                       labels=task.labels("test").astype(bool), dev_idx=dev_idx, holdout_idx=holdout_idx,
                       fingerprint=_fingerprint(task, partition, weak_test, seeds), null_dirs=null_dirs)
    return lab_task, task, weak_test


def compute_baselines(lab_task: LabTask, task: Task, weak_test: np.ndarray, seeds: tuple[int, ...],
                      cache: ArtifactCache) -> Baselines:
    weak_bits = weak_test >= 0.5
    backend = default_backend(task.kind, "strong", task.name)  # the experiment's own ceiling (mpnet on real tasks)
    ceiling_bits = np.stack([ceiling_probs(task, seed, cache, backend=backend) >= 0.5 for seed in seeds])

    def acc(bits: np.ndarray, idx: np.ndarray) -> float:
        return float((bits[..., idx] == lab_task.labels[idx]).mean())

    return Baselines(weak_dev_acc=acc(weak_bits, lab_task.dev_idx), weak_holdout_acc=acc(weak_bits, lab_task.holdout_idx),
                     ceiling_dev_acc=acc(ceiling_bits, lab_task.dev_idx),
                     ceiling_holdout_acc=acc(ceiling_bits, lab_task.holdout_idx),
                     seeds=tuple(seeds), weak_bits=weak_bits, ceiling_bits=ceiling_bits)


def stored_baselines(conn: Connection, lab_task: LabTask) -> Baselines | None:
    row = conn.execute(select(Baseline).where(Baseline.task == lab_task.name,
                                              Baseline.fingerprint == lab_task.fingerprint)).one_or_none()
    if row is None:
        return None
    seeds = tuple(json.loads(row.seeds))
    n = lab_task.n_test
    weak_bits = np.unpackbits(np.frombuffer(row.weak_bits, dtype=np.uint8), count=n).astype(bool)
    ceiling = np.unpackbits(np.frombuffer(row.ceiling_bits, dtype=np.uint8), count=n * len(seeds))
    return Baselines(row.weak_dev_acc, row.weak_holdout_acc, row.ceiling_dev_acc, row.ceiling_holdout_acc, seeds,
                     weak_bits, ceiling.reshape(len(seeds), n).astype(bool))


def store_baselines(conn: Connection, lab_task: LabTask, b: Baselines) -> Baselines:
    """Store these baselines unless another lab already stored the task's; return the stored ones.

    Two labs starting at once on a fresh database both compute them; the second's INSERT is skipped
    (ON CONFLICT DO NOTHING) instead of failing on the (task, fingerprint) key, and both labs then
    score with the same row.
    """
    conn.execute(insert_or_ignore(Baseline, conn.dialect.name).values(
        task=lab_task.name, fingerprint=lab_task.fingerprint, seeds=json.dumps(list(b.seeds)),
        weak_dev_acc=b.weak_dev_acc, weak_holdout_acc=b.weak_holdout_acc, ceiling_dev_acc=b.ceiling_dev_acc,
        ceiling_holdout_acc=b.ceiling_holdout_acc, weak_bits=np.packbits(b.weak_bits).tobytes(),
        ceiling_bits=np.packbits(b.ceiling_bits.reshape(-1)).tobytes(), created_at=time.time()))
    stored = stored_baselines(conn, lab_task)
    if stored is None:
        raise RuntimeError(f"task {lab_task.name}: its baselines row is missing just after it was stored")
    return stored


def load_tasks(data_dir: Path, engine_connect: Callable[[], Connection], seeds: tuple[int, ...], cache: ArtifactCache,
               *, need_null_views: bool = False) -> dict[str, LabTask]:
    """Every task under data_dir with its baselines (read from the DB, or computed and stored)."""
    tasks: dict[str, LabTask] = {}
    for task_dir in find_task_dirs(data_dir):
        lab_task, task, weak_test = load_lab_task(task_dir, tuple(seeds))
        if need_null_views and not lab_task.null_dirs:
            raise AutoW2SError(
                f"{task_dir}: no null-supervisor views (null/pos, null/neg), which the supervisor-dependence check "
                f"needs; re-run `autow2s prepare` for this task, or start the lab with --dependence-check off")
        if lab_task.name in tasks:
            raise AutoW2SError(f"{task_dir}: a second task named {lab_task.name!r}; task names must be unique")
        with engine_connect() as conn:
            baselines = stored_baselines(conn, lab_task)
            if baselines is None:
                started = time.perf_counter()
                baselines = store_baselines(conn, lab_task,
                                            compute_baselines(lab_task, task, weak_test, tuple(seeds), cache))
                conn.commit()
                log.info("task %s: baselines computed in %.1fs (weak %.3f, ceiling %.3f on dev)", lab_task.name,
                         time.perf_counter() - started, baselines.weak_dev_acc, baselines.ceiling_dev_acc)
        lab_task.baselines = baselines
        tasks[lab_task.name] = lab_task
    return tasks
