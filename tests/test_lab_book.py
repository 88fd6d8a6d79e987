"""The fast paths of scoring agree with counting from scratch (issue 29), on SQLite and PostgreSQL.

- Budgets read one spend row instead of counting audit rows: the row is what the charged audit rows
  count, a stale check cannot overspend (the charge is conditional at the row), and the window and
  its reset are the database's.
- The probing history is compared in two parts, the cached rows before the task's lock and only
  the newer ones under it: whatever was cached, merged or only in the database at either moment,
  the answer is the one a comparison with every row gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, insert, select, text

from autow2s.lab.budgets import BudgetBook, BudgetRace, Limit, lock_task
from autow2s.lab.db import make_engine
from autow2s.lab.models import Evaluation, Researcher
from autow2s.lab.probing import History, HistoryCache
from autow2s.lab.schema import ensure_schema
from pg_helpers import BACKENDS, fresh_databases, pg_server  # noqa: F401 - pg_server is a fixture

N_BYTES = 50  # 400 items
TASK = "mini"


@pytest.fixture(params=[pytest.param(backend, marks=[pytest.mark.slow] if backend == "postgresql" else [])
                        for backend in BACKENDS])  # like lab_db: the fast tier runs SQLite only
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A lab database at the newest schema with researchers 1..3."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'lab.sqlite'}"
        made = make_engine(url)
        yield from _ready(made)
        return
    with fresh_databases(request.getfixturevalue("pg_server")) as make:
        yield from _ready(make_engine(make()))


def _ready(engine: Engine) -> Iterator[Engine]:
    ensure_schema(engine)
    with engine.begin() as conn:
        for rid in (1, 2, 3):
            conn.execute(insert(Researcher), {"id": rid, "name": f"r{rid}", "token_hash": f"{rid:064d}",
                                              "created_at": 0.0})
    yield engine
    engine.dispose()


def audit(rid: int, kind: str = "evaluate") -> dict[str, Any]:
    return {"researcher_id": rid, "actor": "researcher", "method": "POST", "path": "/api/v1/evaluate", "status": 200,
            "task": TASK, "outcome": "accepted", "charged": kind, "evaluation_id": None, "flags": "", "detail": ""}


def test_the_spend_row_is_the_count_of_charged_audit_rows_and_a_stale_check_cannot_overspend(engine: Engine) -> None:
    book = BudgetBook(lambda task, kind: Limit(3, 1000))
    with engine.begin() as conn:
        for _ in range(2):
            standing = book.standing(conn, 1, TASK, "evaluate", 0.0)
            assert standing.allowed
            book.charge(conn, audit(1), standing)
        last = book.standing(conn, 1, TASK, "evaluate", 0.0)
        assert last.allowed and last.total_left == 1
        assert book.charge(conn, audit(1), last) == 3
        spent = book.standing(conn, 1, TASK, "evaluate", 0.0)
        assert not spent.allowed and spent.total_left == 0 and "total budget of 3" in spent.reason
        with pytest.raises(BudgetRace):  # `last` is stale now: the row itself refuses a fourth charge
            book.charge(conn, audit(1), last)
    with engine.connect() as conn:
        counted = conn.execute(text("SELECT count(*) FROM audit WHERE researcher_id = 1 AND charged = 'evaluate'"))
        assert counted.scalar() == 3
        assert conn.execute(text("SELECT used FROM budget_spend WHERE researcher_id = 1")).scalar() == 3
        assert book.summary(conn, 1, TASK, "evaluate", 0.0) == {"total": 3, "rate_per_minute": 1000, "total_left": 0,
                                                               "rate_left": 997}
        assert book.summary(conn, 2, TASK, "evaluate", 0.0)["total_left"] == 3  # no row yet: nothing spent
        assert book.summary(conn, 1, TASK, "verify", 0.0)["total_left"] == 3  # kinds are apart


def test_the_rate_window_is_the_databases_minute_and_says_when_it_frees(engine: Engine) -> None:
    book = BudgetBook(lambda task, kind: Limit(100, 3))
    with engine.begin() as conn:
        for _ in range(3):
            book.charge(conn, audit(2), book.standing(conn, 2, TASK, "evaluate", 0.0))
        # Two of them a while ago (as a host whose clock ran behind would never have written: the DB stamps them).
        conn.execute(text("UPDATE audit SET created_at = created_at - 50 WHERE id IN "
                          "(SELECT id FROM audit WHERE researcher_id = 2 ORDER BY id LIMIT 2)"))
        refused = book.standing(conn, 2, TASK, "evaluate", 1000.0)
        assert not refused.allowed and refused.rate_left == 0 and refused.resets_at is not None
        assert 1009.0 < refused.resets_at <= 1010.5  # the oldest of the three leaves the window in ~10 s
        conn.execute(text("UPDATE audit SET created_at = created_at - 11 WHERE researcher_id = 2"))
        allowed = book.standing(conn, 2, TASK, "evaluate", 1000.0)
        assert allowed.allowed and allowed.rate_left == 2  # two left the window; one is still in it


def _bits(rng: np.random.Generator, base: np.ndarray | None = None, flips: int = 0) -> np.ndarray:
    if base is None:
        return rng.integers(0, 256, N_BYTES, dtype=np.uint8)
    unpacked = np.unpackbits(base)
    unpacked[rng.choice(len(unpacked), flips, replace=False)] ^= 1
    return np.packbits(unpacked)


def _insert(conn: Any, rid: int, bits: np.ndarray, reported: float) -> int:
    result = conn.execute(insert(Evaluation), {
        "researcher_id": rid, "task": TASK, "snapshot_id": None, "endpoint": "v1", "created_at": 0.0, "n_dev": 200,
        "dev_correct": 100, "holdout_correct": 100, "n_holdout": 200, "reported_accuracy": reported,
        "reported_pgr": None, "flags": "", "pred_bits": bits.tobytes()})
    return int(result.inserted_primary_key[0])


def _full(conn: Any) -> History:
    rows = conn.execute(select(Evaluation.id, Evaluation.researcher_id, Evaluation.pred_bits,
                               Evaluation.reported_accuracy).where(Evaluation.task == TASK)
                        .order_by(Evaluation.id)).all()
    block = np.array([np.frombuffer(r.pred_bits, dtype=np.uint8) for r in rows]).reshape(len(rows), N_BYTES)
    return History([block], [r.id for r in rows], [r.researcher_id for r in rows],
                   [r.reported_accuracy for r in rows])


def test_the_incremental_history_answers_as_a_comparison_with_every_row(engine: Engine) -> None:
    """Near-twins of a probe sit in every part: merged into the cache, read under the lock only, and committed
    between the two steps (by another worker), with far rows around them; each part must be found."""
    rng = np.random.default_rng(5)
    probe = _bits(rng)
    limit = 8
    cache = HistoryCache()
    plan = [  # (part, rows as flips from the probe: None = a far random row)
        ("merged before", [None, 3, None, 0, 12, None]),
        ("committed between", [None, 5, 7, None]),
        ("committed after merge", [2, None]),
    ]
    with engine.begin() as conn:
        for flips in plan[0][1]:
            _insert(conn, 1, _bits(rng) if flips is None else _bits(rng, probe, flips), 0.5)
    with engine.connect() as conn:  # a worker reads and merges them (as a committed scoring transaction does)
        _, delta = cache.read(conn, TASK, N_BYTES)
    cache.merge(TASK, delta)
    candidates = cache.candidates(TASK, probe, limit)  # before the lock
    assert sorted(distance for _, distance in candidates.close_to(probe, limit)) == [0, 3]
    with engine.begin() as conn:  # another worker commits more rows; this process never saw them
        for flips in plan[1][1]:
            _insert(conn, 2, _bits(rng) if flips is None else _bits(rng, probe, flips), 0.6)
    with engine.connect() as conn:  # this process merges some of them from another request of its own
        _, delta = cache.read(conn, TASK, N_BYTES)
    cache.merge(TASK, delta)
    with engine.begin() as conn:
        for flips in plan[2][1]:
            _insert(conn, 3, _bits(rng) if flips is None else _bits(rng, probe, flips), 0.7)
    with engine.connect() as conn:  # under the lock: the candidates completed with every newer row
        history, delta = cache.read(conn, TASK, N_BYTES, since=candidates)
        full = _full(conn)

    def found(h: History, within: int) -> list[tuple[int, int, int, float]]:
        return sorted((h.evaluation_ids[i], h.researcher_ids[i], d, h.reported[i]) for i, d in h.close_to(probe, within))

    for within in (1, 4, limit):
        assert found(history, within) == found(full, within)
    assert sorted(distance for _, _, distance, _ in found(history, limit)) == [0, 2, 3, 5, 7]
    assert len(history.evaluation_ids) < len(full.evaluation_ids)  # only the near rows and the newer ones
    assert delta.evaluation_ids == [full.evaluation_ids[-2], full.evaluation_ids[-1]]  # the database gave only these
    with pytest.raises(ValueError, match="only the rows within 8 items"):
        history.close_to(probe, limit + 1)


def test_the_task_lock_is_taken_once_per_transaction_and_again_in_the_next(engine: Engine) -> None:
    """The writer decides a batch in one transaction: lock_task asks PostgreSQL once per transaction, never skips
    a new one (a lock that carried over would let two workers decide on one task at once)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writer holds the file's write lock instead")
    held = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    with engine.connect() as conn:
        for _ in range(2):
            with conn.begin():
                assert conn.execute(held).scalar() == 0
                lock_task(conn, TASK)
                lock_task(conn, TASK)
                assert conn.execute(held).scalar() == 1
                lock_task(conn, "other")
                assert conn.execute(held).scalar() == 2
