"""Scoring endpoints: the v1 evaluation and the anchor-compatible one, both on dev only.

A submission is validated and scored on the preloaded label arrays; then, in one transaction
under the task's lock, it is checked against the researcher's budget and every researcher's
history on the task, judged by the probing detector, and stored with its audit row (which is the
charge) before the answer leaves. Holdout correctness is stored and never returned; nothing per item ever is.

A submission whose predicted classes are identical to an earlier accepted submission on the task
(anyone's) is answered from that evaluation: no charge, no flag, the same
coarsened figure (so repeating it cannot average the noise away), and the reply says so. So is a
near-duplicate of one of the researcher's own (fewer than the detector's minimum of items changed): an
ablation that changes a handful of predictions learns that the lab cannot tell it apart, and a label
flip learns nothing. Only a pattern is flagged: near-duplicates of many different evaluations in a short
window (lab/probing.py). A near-duplicate of another researcher's submission is refused, free of charge.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, insert

from autow2s.lab.audit import audit_row
from autow2s.lab.auth import Principal, researcher
from autow2s.lab.budgets import Standing, lock_task
from autow2s.lab.db import inserted_id
from autow2s.lab.errors import APIError, json_body, json_body_openapi
from autow2s.lab.models import AuditEntry, Evaluation
from autow2s.lab.probing import NEAR_DUPLICATE_OUTCOME, PATTERN_MIN_EVALUATIONS, PATTERN_WINDOW_S, History
from autow2s.testbed.metrics import gap_message, pgr

router = APIRouter(tags=["scoring"])
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
SnapshotId = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$", description="a snapshot (git commit) id")]
TaskName = Annotated[str, Field(min_length=1, max_length=200)]


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: TaskName
    predictions: list[Probability] = Field(description="P(label = 1), or 0/1, for every test item in order")
    snapshot_id: SnapshotId | None = None


class EvaluateResponse(BaseModel):
    evaluation_id: int
    task: str
    dev_accuracy: float = Field(description="coarsened: rounded, with noise of about one standard error")
    dev_pgr: float | None
    n_scored: int = Field(description="dev items scored (the rest of test is holdout, never scored for you)")
    budget_left: int
    rate_left: int
    flags: list[str]
    note: str = ""
    identical_to_evaluation: int | None = Field(
        default=None, description="set when this submission repeats an earlier one on the task exactly (yours or "
                                  "another researcher's): the answer is that evaluation's, and nothing was charged")
    near_duplicate_of_evaluation: int | None = Field(
        default=None, description="set when this submission differs from an earlier one of yours in fewer than "
                                  "min_items_changed items: the answer is that evaluation's figure, and nothing was "
                                  "charged (the lab cannot measure a change that small)")
    items_changed: int | None = Field(default=None, description="with near_duplicate_of_evaluation: how many items "
                                                                 "differ from it")
    min_items_changed: int | None = Field(default=None, description="with near_duplicate_of_evaluation: the fewest "
                                                                     "changed items the lab scores as a new submission")


class AnchorRequest(BaseModel):
    """The anchor's body, as its remote_evaluation client sends it."""

    predictions: list[Probability]
    dataset: TaskName
    split: str = "test"
    weak_model: str | None = Field(default=None, max_length=200)
    strong_model: str | None = Field(default=None, max_length=200)


class AnchorResponse(BaseModel):
    transfer_acc: float
    pgr: float | None
    correct: int
    total: int
    fixed_weak_acc: float
    fixed_strong_acc: float
    evaluation_id: int
    budget_left: int
    warnings: list[str] = []
    pgr_error: str | None = None


@dataclass(frozen=True)
class Scored:
    evaluation_id: int
    task: str
    reported_accuracy: float
    reported_pgr: float | None
    n_dev: int
    budget_left: int
    rate_left: int
    flags: list[str]
    weak_acc: float
    ceiling_acc: float
    identical_to: int | None = None
    near_duplicate_of: int | None = None  # the researcher's own earlier evaluation this one is answered from
    items_changed: int | None = None
    min_items_changed: int | None = None
    pattern: int = 0  # with near_duplicate_of: how many different evaluations the recent near-duplicates were of


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="seconds")


def _retry_headers(standing: Standing, now: float) -> dict[str, Any]:
    if standing.resets_at is None:
        return {"headers": {}, "resets_at": None, "retry_after_s": None}
    return {"headers": {"Retry-After": str(max(1, int(standing.resets_at - now + 1)))},
            "resets_at": _iso(standing.resets_at), "retry_after_s": round(standing.resets_at - now, 1)}


@dataclass(frozen=True)
class _Submission:
    researcher_id: int
    task: Any  # LabTask
    bits: np.ndarray
    dev_correct: int
    holdout_correct: int
    snapshot_id: str | None
    endpoint: str
    now: float
    candidates: History  # the cached history's rows near these predictions, found before the task's lock


def _decide(lab: Any, scope: MutableMapping[str, Any], sub: _Submission, conn: Connection) -> tuple[Scored | APIError, History]:
    """Check and charge in one transaction under the task's lock: repeat, budget, probe, record.

    Runs on the writer; everything it reads (the history of every researcher on the task, the
    spending) and writes (the evaluation, the audit row that is the charge) is in the database, so
    every lab worker decides the same way. Also returns the history rows it read, for the cache.
    """
    task, rid = sub.task, sub.researcher_id
    lock_task(conn, task.name)
    history, delta = lab.histories.read(conn, task.name, (task.n_test + 7) // 8, since=sub.candidates)
    baselines = task.baselines
    repeat = lab.probes.identical(history, sub.bits, rid)
    if repeat is not None:  # the earlier evaluation's answer, uncharged: nothing in it is new to the researcher
        earlier_id, reported = history.evaluation_ids[repeat], history.reported[repeat]
        standing = lab.budgets.standing(conn, rid, task.name, "evaluate", sub.now)
        repeat_flags = ["degenerate"] if lab.probes.is_degenerate(sub.bits) else []
        answer_id = earlier_id
        if history.researcher_ids[repeat] != rid:  # another researcher's: the caller gets a row of its own to cite
            answer_id = _insert_evaluation(conn, sub, reported, ",".join(repeat_flags))
        conn.execute(insert(AuditEntry), audit_row(scope, 200, outcome="identical_repeat", evaluation_id=answer_id,
                                                   detail=f"identical to evaluation {earlier_id}; answered from it, "
                                                          "not charged"))
        return Scored(answer_id, task.name, reported, pgr(baselines.weak_dev_acc, baselines.ceiling_dev_acc, reported),
                      task.n_dev, standing.total_left, standing.rate_left, repeat_flags, baselines.weak_dev_acc,
                      baselines.ceiling_dev_acc, identical_to=earlier_id), delta
    near = lab.probes.own_near_duplicate(history, sub.bits, rid)
    if near is not None:
        return _near_duplicate_answer(lab, scope, sub, conn, history, *near), delta
    standing = lab.budgets.standing(conn, rid, task.name, "evaluate", sub.now)
    if not standing.allowed:  # not charged: the middleware audits the 429
        retry = _retry_headers(standing, sub.now)
        return APIError(429, standing.reason, field=None, outcome="over_budget", headers=retry["headers"],
                        resets_at=retry["resets_at"], retry_after_s=retry["retry_after_s"],
                        budget_left=standing.total_left), delta
    after = standing.charged()
    verdict, reported = lab.probes.judge(history, sub.bits, sub.dev_correct / task.n_dev, task.n_dev)
    if verdict.near_duplicate_of is not None:  # another researcher's (the researcher's own were answered above)
        minimum = lab.probes.min_changed(task.n_test)
        # Refused all the same (colluders would flip between tokens), but an independent near-twin costs nothing.
        message = (f"predictions: this submission differs from evaluation {verdict.near_duplicate_of} (another "
                   f"researcher's) in only {verdict.distance} of {task.n_test} items; the lab compares every submission "
                   f"with every researcher's and refuses one within {minimum} items of another researcher's, so "
                   "researchers cannot pool their probes. It was flagged, not charged; submit a genuinely different "
                   "method's predictions")
        conn.execute(insert(AuditEntry), audit_row(scope, 409, outcome="refused_probe", flags="near_duplicate",
                                                   detail=message[:500]))
        return APIError(409, message, field="predictions", outcome="refused_probe",
                        earlier_evaluation_id=verdict.near_duplicate_of, earlier_dev_accuracy=None,
                        items_changed=verdict.distance, min_items_changed=minimum,
                        budget_left=standing.total_left), delta
    flags = ",".join(verdict.flags)
    evaluation_id = _insert_evaluation(conn, sub, reported, flags)
    lab.budgets.charge(conn, audit_row(scope, 200, outcome="accepted", charged="evaluate", evaluation_id=evaluation_id,
                                       flags=flags), standing)
    return Scored(evaluation_id, task.name, reported, pgr(baselines.weak_dev_acc, baselines.ceiling_dev_acc, reported),
                  task.n_dev, after.total_left, after.rate_left, verdict.flags, baselines.weak_dev_acc,
                  baselines.ceiling_dev_acc), delta


def _near_duplicate_answer(lab: Any, scope: MutableMapping[str, Any], sub: _Submission, conn: Connection,
                           history: History, index: int, distance: int) -> Scored:
    """The researcher's own earlier evaluation's figure, uncharged: a change this small is below what the lab
    scores, and answering it afresh is how labels are probed. Flagged only as part of a pattern (probing.py)."""
    task, rid, baselines = sub.task, sub.researcher_id, sub.task.baselines
    earlier_id, reported = history.evaluation_ids[index], history.reported[index]
    pattern = lab.probes.pattern_size(conn, rid, task.name, earlier_id)
    flags = ["degenerate"] if lab.probes.is_degenerate(sub.bits) else []
    if pattern >= PATTERN_MIN_EVALUATIONS:
        flags.append("probing_pattern")
    minimum = lab.probes.min_changed(task.n_test)
    conn.execute(insert(AuditEntry), audit_row(
        scope, 200, outcome=NEAR_DUPLICATE_OUTCOME, evaluation_id=earlier_id, flags=",".join(flags),
        detail=f"{distance} of {task.n_test} items from evaluation {earlier_id} (fewer than {minimum}); answered from "
               f"it, not charged; near-duplicates of {pattern} different evaluation(s) in the window"))
    standing = lab.budgets.standing(conn, rid, task.name, "evaluate", sub.now)
    return Scored(earlier_id, task.name, reported, pgr(baselines.weak_dev_acc, baselines.ceiling_dev_acc, reported),
                  task.n_dev, standing.total_left, standing.rate_left, flags, baselines.weak_dev_acc,
                  baselines.ceiling_dev_acc, near_duplicate_of=earlier_id, items_changed=distance,
                  min_items_changed=minimum, pattern=pattern)


_INSERT_EVALUATION = insert(Evaluation)  # built once: building it per request cost about as much as running it


def _insert_evaluation(conn: Connection, sub: _Submission, reported: float, flags: str) -> int:
    task = sub.task
    return inserted_id(conn.execute(_INSERT_EVALUATION, {
        "researcher_id": sub.researcher_id, "task": task.name, "snapshot_id": sub.snapshot_id,
        "endpoint": sub.endpoint, "created_at": sub.now, "n_dev": task.n_dev, "dev_correct": sub.dev_correct,
        "holdout_correct": sub.holdout_correct, "n_holdout": len(task.holdout_idx), "reported_accuracy": reported,
        "reported_pgr": pgr(task.baselines.weak_dev_acc, task.baselines.ceiling_dev_acc, reported), "flags": flags,
        "pred_bits": np.packbits(sub.bits).tobytes()}))


async def score_submission(request: Request, principal: Principal, task_name: str, predictions: list[float],
                           snapshot_id: str | None, endpoint: str, *, task_field: str = "task") -> Scored:
    lab = request.app.state.lab
    state = request.scope.setdefault("state", {})
    task = lab.task(task_name, field=task_field)
    state["task"] = task.name
    if len(predictions) != task.n_test:
        raise APIError(422, f"predictions: expected {task.n_test} values (one per test item of task {task.name!r}, "
                       f"in test.jsonl order), got {len(predictions)}", field="predictions")
    if snapshot_id is not None and lab.snapshot_owner(snapshot_id) is None:
        raise APIError(404, f"snapshot_id: no snapshot {snapshot_id}; upload it with POST /api/v1/snapshots first",
                       field="snapshot_id", outcome="not_found")
    assert principal.researcher_id is not None
    bits = np.asarray(predictions, dtype=np.float64) >= 0.5
    dev_correct, holdout_correct = task.correct(bits)
    # The whole-history comparison, before the writer and the task's lock; under it, only newer rows are compared.
    candidates = lab.histories.candidates(task.name, np.packbits(bits), lab.probes.widest(task.n_test))
    submission = _Submission(principal.researcher_id, task, bits, dev_correct, holdout_correct, snapshot_id, endpoint,
                             time.time(), candidates)
    outcome, delta = await lab.writer.run(partial(_decide, lab, request.scope, submission))
    lab.histories.merge(task.name, delta)  # committed now: the cache may keep what the transaction read
    if isinstance(outcome, APIError):
        if outcome.status_code == 409:
            state["audited"] = True  # its audit row, the charge, is committed with the decision
        raise outcome
    state["audited"] = True
    scored: Scored = outcome
    return scored


def _note(scored: Scored) -> str:
    notes = []
    if scored.identical_to is not None:
        whose = "your evaluation" if scored.identical_to == scored.evaluation_id else "another researcher's evaluation"
        notes.append(f"identical to {whose} {scored.identical_to} (the same predicted class on every item): "
                     "answered from it; not charged and not flagged again")
    if scored.near_duplicate_of is not None:
        notes.append(f"near-duplicate: differs from your evaluation {scored.near_duplicate_of} in only "
                     f"{scored.items_changed} items (the lab scores a submission afresh from {scored.min_items_changed} "
                     f"changed items): answered with evaluation {scored.near_duplicate_of}'s figure, not charged; the "
                     "change is too small for the lab to measure (verify both snapshots to compare them exactly)")
        if "probing_pattern" in scored.flags:
            notes.append(f"flagged for the lab's admin: near-duplicates of {scored.pattern} different evaluations "
                         f"within {PATTERN_WINDOW_S / 60:.0f} minutes look like label probing")
    if scored.reported_pgr is None:
        notes.append(gap_message(scored.weak_acc, scored.ceiling_acc))
    if "degenerate" in scored.flags:
        notes.append("nearly every prediction is the same class: the score is rounded to a coarse grid and flagged")
    return "; ".join(notes)


evaluate_body = json_body(EvaluateRequest)
anchor_body = json_body(AnchorRequest)


@router.post("/api/v1/evaluate", response_model=EvaluateResponse, openapi_extra=json_body_openapi(EvaluateRequest),
             responses={404: {"description": "unknown task or snapshot"}, 409: {"description": "near-duplicate"},
                        429: {"description": "over budget"}})
async def evaluate(request: Request, principal: Principal = Depends(researcher),  # the token before the body
                   body: EvaluateRequest = Depends(evaluate_body)) -> dict[str, Any]:
    """Score test predictions on the dev items only; the answer is coarsened and budgeted."""
    scored = await score_submission(request, principal, body.task, body.predictions, body.snapshot_id, "v1")
    return {"evaluation_id": scored.evaluation_id, "task": scored.task, "dev_accuracy": scored.reported_accuracy,
            "dev_pgr": scored.reported_pgr, "n_scored": scored.n_dev, "budget_left": scored.budget_left,
            "rate_left": scored.rate_left, "flags": scored.flags, "note": _note(scored),
            "identical_to_evaluation": scored.identical_to, "near_duplicate_of_evaluation": scored.near_duplicate_of,
            "items_changed": scored.items_changed, "min_items_changed": scored.min_items_changed}


@router.post("/api/evaluate-predictions", response_model=AnchorResponse, tags=["anchor"],
             openapi_extra=json_body_openapi(AnchorRequest))
async def evaluate_predictions(request: Request, principal: Principal = Depends(researcher),
                               body: AnchorRequest = Depends(anchor_body)) -> dict[str, Any]:
    """The anchor's endpoint and keys, computed on dev only; train_unlabel is refused."""
    if body.split == "train_unlabel":
        raise APIError(403, "split: train_unlabel is never scored: its labels are what weak-to-strong methods must "
                       "not see, and scoring it would hand them out (the anchor allowed this; this lab does not). "
                       "Send test predictions", field="split", outcome="forbidden")
    if body.split != "test":
        raise APIError(422, f"split: only 'test' is scored (on its dev part), got {body.split!r}", field="split")
    scored = await score_submission(request, principal, body.dataset, body.predictions, None, "anchor",
                                    task_field="dataset")
    warnings = [f"scored on the {scored.n_dev} dev items of test only; the accuracy is coarsened"]
    if scored.identical_to is not None or scored.near_duplicate_of is not None:
        warnings.append(_note(scored))
    if body.weak_model or body.strong_model:
        warnings.append("weak_model/strong_model are ignored: the lab's fixed baselines for this task are used")
    return {"transfer_acc": scored.reported_accuracy, "pgr": scored.reported_pgr,
            "correct": int(round(scored.reported_accuracy * scored.n_dev)), "total": scored.n_dev,
            "fixed_weak_acc": scored.weak_acc, "fixed_strong_acc": scored.ceiling_acc,
            "evaluation_id": scored.evaluation_id, "budget_left": scored.budget_left, "warnings": warnings,
            "pgr_error": None if scored.reported_pgr is not None else gap_message(scored.weak_acc, scored.ceiling_acc)}
