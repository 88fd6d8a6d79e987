"""The verify queue in the database: claims, heartbeats and takeover, on a real SQLite file and the real writer.

A run whose worker still beats is never taken over; one whose worker stopped beating is; and the
worker that lost its claim cannot write the run's result.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import insert, select, update

from autow2s.lab.db import Writer, make_engine
from autow2s.lab.models import Researcher, VerifyRun
from autow2s.lab.schema import ensure_schema
from autow2s.lab.verify import STALE_AFTER_S, RunTakenOver, VerifyService, db_now


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[SimpleNamespace]:
    url = f"sqlite:///{tmp_path / 'lab.sqlite'}"
    engine = make_engine(url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(Researcher), {"name": "r", "token_hash": "0" * 64, "created_at": time.time()})
    writer_engine = make_engine(url, immediate=True)
    writer = Writer(writer_engine)
    writer.start()
    try:
        yield SimpleNamespace(engine=engine, writer=writer)
    finally:
        writer.stop()
        engine.dispose()
        writer_engine.dispose()


def queue_run(lab: SimpleNamespace, **values: object) -> int:
    row = {"researcher_id": 1, "snapshot_id": "a" * 40, "task": "mini", "seeds": "[1]", "status": "queued",
           "error": "", "created_at": time.time(), **values}
    with lab.engine.begin() as conn:
        return int(conn.execute(insert(VerifyRun), row).inserted_primary_key[0])


def run_row(lab: SimpleNamespace, run_id: int) -> VerifyRun:
    with lab.engine.connect() as conn:
        return conn.execute(select(VerifyRun).where(VerifyRun.id == run_id)).one()


def test_a_queued_run_is_claimed_once(lab: SimpleNamespace) -> None:
    run_id = queue_run(lab)
    first, second = VerifyService(lab, runner=None), VerifyService(lab, runner=None)  # type: ignore[arg-type]
    assert lab.writer.run_sync(first._claim) == ("verify", run_id)
    assert lab.writer.run_sync(second._claim) is None
    assert run_row(lab, run_id).claimed_by == first.identity


def test_a_beating_worker_keeps_its_run_and_a_silent_one_loses_it(lab: SimpleNamespace) -> None:
    alive, other = VerifyService(lab, runner=None), VerifyService(lab, runner=None)  # type: ignore[arg-type]
    # A live process of this host (this test's own pid) with another nonce: only its heartbeat tells.
    assert alive.identity.split(":")[2] == str(os.getpid())
    with lab.engine.connect() as conn:
        now = db_now(conn)
    run_id = queue_run(lab, status="running", claimed_by=alive.identity, heartbeat_at=now)
    assert lab.writer.run_sync(other._claim) is None  # beating: left alone
    with lab.engine.begin() as conn:
        conn.execute(update(VerifyRun).where(VerifyRun.id == run_id).values(heartbeat_at=now - STALE_AFTER_S - 5))
    assert lab.writer.run_sync(other._claim) == ("verify", run_id)  # silent for too long: taken over
    assert run_row(lab, run_id).claimed_by == other.identity
    with pytest.raises(RunTakenOver):
        alive.finish(VerifyRun, run_id, status="done")  # the stalled worker's late result is dropped
    other.finish(VerifyRun, run_id, status="done")
    assert run_row(lab, run_id).status == "done"


def test_a_run_of_a_dead_process_is_taken_over_at_once(lab: SimpleNamespace) -> None:
    service = VerifyService(lab, runner=None)  # type: ignore[arg-type]
    host, namespace, _, _ = service.identity.split(":")
    dead = f"{host}:{namespace}:{2**22 + 12345}:abcdef"  # beyond pid_max: no such process
    with lab.engine.connect() as conn:
        now = db_now(conn)
    run_id = queue_run(lab, status="running", claimed_by=dead, heartbeat_at=now)
    assert lab.writer.run_sync(service._claim) == ("verify", run_id)


class _Blocking(VerifyService):
    """A worker whose run takes as long as the test says (the real loop, claim and stop around it)."""

    def __init__(self, lab: SimpleNamespace) -> None:
        super().__init__(lab, runner=None)  # type: ignore[arg-type]
        self.started, self.release = threading.Event(), threading.Event()
        self.outcome: list[str] = []

    def _run_verify(self, run_id: int) -> None:
        self.started.set()
        self.release.wait(30)
        try:
            self._set(run_id, status="done", finished_at=time.time())
            self.outcome.append("written")
        except RunTakenOver:
            self.outcome.append("refused")
            raise


def test_stopping_hands_a_running_run_back_to_the_queue_at_once(lab: SimpleNamespace) -> None:
    run_id = queue_run(lab)
    stopping = _Blocking(lab)
    stopping.start()
    assert stopping.started.wait(20), "the worker never claimed the queued run"
    assert run_row(lab, run_id).claimed_by == stopping.identity
    began = time.monotonic()
    stopping.stop()
    assert time.monotonic() - began < 3  # not a wait for the run to finish
    row = run_row(lab, run_id)
    assert (row.status, row.claimed_by, row.heartbeat_at) == ("queued", None, None)
    stopping.release.set()  # the old run's late result is refused: the claim is no longer its worker's
    stopping._threads[0].join(10)
    assert stopping.outcome == ["refused"] and run_row(lab, run_id).status == "queued"
    successor = VerifyService(lab, runner=None)  # type: ignore[arg-type]
    assert lab.writer.run_sync(successor._claim) == ("verify", run_id)
