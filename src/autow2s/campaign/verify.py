"""The end of a campaign: verify the best snapshots and the vanilla baseline, then build the leaderboard."""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autow2s.lab.leaderboard import supervised
from autow2s.researchers.lab_client import LabClient, LabError
from autow2s.testbed.methods.composed import Recipe, render_method

if TYPE_CHECKING:
    from autow2s.campaign.runner import Campaign

VERIFY_WAIT_S = 300.0
REQUEST_WAIT_S = 600.0  # how long the final step waits out the lab's verify rate limit, all requests together
BASELINE = "baseline-vanilla"


def _wait(client: LabClient, verify_ids: list[int], timeout: float) -> dict[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    done: dict[int, dict[str, Any]] = {}
    while len(done) < len(verify_ids) and time.monotonic() < deadline:
        for verify_id in verify_ids:
            if verify_id not in done:
                status = client.verification(verify_id)
                if status["status"] not in ("queued", "running"):
                    done[verify_id] = status
        time.sleep(1.0)
    return done


def _best_candidates(campaign: "Campaign", k: int) -> list[tuple[str, str, float]]:
    """(researcher, snapshot_id, dev score) of each researcher's best snapshotted trial, best first."""
    best: dict[str, tuple[str, str, float]] = {}
    for name in campaign.statuses:
        trials = campaign.paths.researcher_dir(name) / "trials.jsonl"
        if not trials.exists():
            continue
        for line in trials.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("snapshot_id") and (name not in best or entry["score"] > best[name][2]):
                best[name] = (name, entry["snapshot_id"], entry["score"])
    return sorted(best.values(), key=lambda row: -row[2])[:k]


def _verify_baseline(campaign: "Campaign", lab_url: str, secrets: dict[str, Any]) -> int | None:
    token = campaign._token(lab_url, secrets, BASELINE)
    client = LabClient(lab_url, token)
    with tempfile.TemporaryDirectory() as tmp:
        method_dir = Path(tmp) / "vanilla"
        method_dir.mkdir()
        (method_dir / "method.py").write_text(render_method(Recipe(), "vanilla: the strong student on weak soft labels"))
        snapshot = client.save_snapshot(method_dir, name="vanilla", message="the vanilla baseline, verified by the campaign")
    return int(client.request_verification(snapshot["snapshot_id"], campaign.task_name)["verify_id"])


def _request(client: LabClient, snapshot_id: str, task: str, console, deadline: float) -> int:
    """Ask for a verified run, waiting out the lab's verify rate limit: the campaign never skips its best."""
    while True:
        try:
            return int(client.request_verification(snapshot_id, task)["verify_id"])
        except LabError as exc:
            wait = _retry_after(exc)
            if exc.status != 429 or wait is None or time.monotonic() + wait > deadline:
                raise
            console.print(f"the lab's verify rate limit: waiting {wait:.0f} s to verify {snapshot_id[:10]}…")
            time.sleep(wait)


def _retry_after(exc: LabError) -> float | None:
    """Seconds until the lab's budget resets, from its 429 message; None when it never does (total spent)."""
    found = re.search(r"retry after (\d+(?:\.\d+)?) s", str(exc))
    return float(found.group(1)) if found else None


def final_verification(campaign: "Campaign", lab_url: str, secrets: dict[str, Any],
                       admin: LabClient) -> dict[str, Any]:
    campaign.console.print("verifying the best snapshots and the vanilla baseline on lab-chosen seeds…")
    verify_ids: list[int] = []
    baseline_id = campaign.state.baseline_verify_id
    if baseline_id is None:
        baseline_id = _verify_baseline(campaign, lab_url, secrets)
        campaign.state.baseline_verify_id = baseline_id
        campaign.persist()
    verify_ids.append(baseline_id)
    request_deadline = time.monotonic() + REQUEST_WAIT_S
    for name, snapshot_id, _score in _best_candidates(campaign, campaign.config.verify_top_k):
        status = campaign.statuses[name]
        if snapshot_id not in status.verifications:
            client = LabClient(lab_url, secrets["researchers"][name])
            try:
                status.record_verification(snapshot_id, _request(client, snapshot_id, campaign.task_name,
                                                                 campaign.console, request_deadline))
            except LabError as exc:
                campaign.console.print(f"[yellow]could not verify {snapshot_id[:10]} of {name}: {exc}[/]")
                continue
            campaign.persist()
        verify_ids.append(status.verifications[snapshot_id])
    verify_ids += [v for s in campaign.statuses.values() for v in s.to_json()["verifications"].values()
                   if v not in verify_ids]
    campaign.persist()
    finished = _wait(admin, verify_ids, VERIFY_WAIT_S)
    baseline = finished.get(baseline_id, {})
    vanilla_pgr = baseline.get("holdout_pgr")
    rows, supervisor_free = [], []
    for row in admin.leaderboard(campaign.task_name):
        if row["researcher"] == BASELINE:
            continue
        entry = {"method": row["method"], "researcher": row["researcher"], "snapshot": row["snapshot_id"],
                 "dev_pgr": row["dev_pgr"], "holdout_pgr": row["holdout_pgr"], "holdout_ci": row["holdout_ci"],
                 "vanilla_holdout_pgr": vanilla_pgr, "verify_id": row["verify_id"],
                 "supervisor_check": row["supervisor_check"], "null_supervisor_pgr": row["null_supervisor_pgr"],
                 "null_supervisor_ci": row["null_supervisor_ci"],
                 "independent_of_supervisor": row["independent_of_supervisor"]}
        # A method that keeps its PGR without the supervisor is shown, but apart: it is not weak-to-strong.
        (rows if supervised(row) else supervisor_free).append(entry)
    return {"task": campaign.task_name,
            "vanilla": {"holdout_pgr": vanilla_pgr, "holdout_ci": baseline.get("holdout_ci"),
                        "dev_pgr": baseline.get("dev_pgr"), "verify_id": baseline_id,
                        "supervisor_check": baseline.get("supervisor_check"),
                        "null_supervisor_pgr": baseline.get("null_supervisor_pgr")},
            "rows": rows, "supervisor_free": supervisor_free,
            "unfinished_verifications": sorted(set(verify_ids) - set(finished))}
