"""The leaderboard: built only from verified runs, never from a figure a client sent."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autow2s.board_rules import BASELINE_RESEARCHER, is_baseline_researcher, supervised
from autow2s.lab.models import Evaluation, Snapshot, VerifyRun

__all__ = ["BASELINE_RESEARCHER", "is_baseline_researcher", "leaderboard_rows", "supervised",
           "supervisor_fields"]  # the lab's own modules import the shared rules from here too


def leaderboard_rows(session: Session, task: str, names: dict[int, str], limit: int = 1000) -> list[dict[str, Any]]:
    """Verified runs only, best holdout PGR first, each with its own dev - holdout gap (on the lab's seeds).

    GET /api/v1/leaderboard, the dashboard and the static report all read these rows.
    """
    runs = list(session.execute(select(VerifyRun, Snapshot.name, Snapshot.message)
                                .join(Snapshot, Snapshot.id == VerifyRun.snapshot_id)
                                .where(VerifyRun.task == task, VerifyRun.status == "done")).tuples())
    best_seen = dict(session.execute(select(Evaluation.researcher_id, func.max(Evaluation.reported_pgr))
                                     .where(Evaluation.task == task).group_by(Evaluation.researcher_id)).all())
    runs.sort(key=lambda pair: (pair[0].holdout_pgr is None, -(pair[0].holdout_pgr or 0.0), pair[0].id))
    rows = []
    for rank, (run, folder, message) in enumerate(runs[:limit], start=1):
        seen = best_seen.get(run.researcher_id)
        if run.dev_pgr is not None and (seen is None or run.dev_pgr > seen):
            seen = run.dev_pgr
        gap = None if run.dev_pgr is None or run.holdout_pgr is None else run.dev_pgr - run.holdout_pgr
        ci = None if run.holdout_ci_low is None else [run.holdout_ci_low, run.holdout_ci_high]
        rows.append({"rank": rank, "verify_id": run.id, "method": method_label(message, folder),
                     "snapshot_name": folder, "researcher": names.get(run.researcher_id, "?"),
                     "researcher_id": run.researcher_id,
                     "snapshot_id": run.snapshot_id, "dev_pgr": run.dev_pgr, "holdout_pgr": run.holdout_pgr,
                     "holdout_ci": ci, "best_seen_dev_pgr": seen, "dev_holdout_gap": gap,
                     "n_seeds": len(json.loads(run.seeds)), "finished_at": run.finished_at,
                     **supervisor_fields(run)})
    return rows


METHOD_LABEL_CHARS = 80


def method_label(message: str, folder: str) -> str:
    """What a leaderboard row calls a method: its snapshot message's first line (what the researcher said it is),
    the folder's name when the message is empty."""
    first = (message or "").strip().splitlines()[0].strip() if (message or "").strip() else ""
    if not first:
        return folder
    return first if len(first) <= METHOD_LABEL_CHARS else first[:METHOD_LABEL_CHARS - 1] + "…"


def supervisor_fields(run: VerifyRun) -> dict[str, Any]:
    """The supervisor-dependence check as every view shows it (docs/lab.md)."""
    check = run.supervisor_check or "not checked"
    ci = None if run.null_ci_low is None else [run.null_ci_low, run.null_ci_high]
    independent = {"flagged": True, "passed": False}.get(check)
    return {"supervisor_check": check, "null_supervisor_pgr": run.null_holdout_pgr, "null_supervisor_ci": ci,
            "independent_of_supervisor": independent}
