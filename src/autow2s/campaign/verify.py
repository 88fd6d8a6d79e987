"""The end of a campaign: verify the best snapshots and the vanilla baseline, then build the leaderboard."""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from autow2s.board_rules import BASELINE_RESEARCHER as BASELINE
from autow2s.board_rules import supervised
from autow2s.campaign.selection import choose
from autow2s.campaign.shared_lab import own_overview
from autow2s.researchers.experiment_log import ExperimentLog
from autow2s.researchers.lab_client import LabClient, LabError, pack_method_dir
from autow2s.safefs import SafeTree
from autow2s.testbed.methods.composed import Recipe, render_method

if TYPE_CHECKING:
    from rich.console import Console

    from autow2s.campaign.researchers import ResearcherStatus
    from autow2s.campaign.state import CampaignConfig
    from autow2s.rundir.layout import RunDir, RunState


class Campaign(Protocol):
    """What the final step uses of a campaign (campaign/runner.py's Campaign), named here so this module
    needs nothing of the runner's (which calls it)."""

    paths: RunDir
    config: CampaignConfig
    state: RunState
    console: Console
    statuses: dict[str, ResearcherStatus]
    task_names: tuple[str, ...]
    transfer_names: tuple[str, ...]

    def persist(self) -> None: ...
    def researcher_token(self, lab_url: str, secrets: dict[str, Any], name: str) -> str: ...

VERIFY_WAIT_S = 300.0
TRANSFER_WAIT_S = 900.0
REQUEST_WAIT_S = 600.0  # how long the final step waits out the lab's verify rate limit, all requests together


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


def _best_candidates(campaign: Campaign, lab_url: str, secrets: dict[str, Any], k: int) -> list[tuple[str, str]]:
    """(researcher, snapshot_id) of the k methods to verify: every researcher's run_experiment results (whatever
    kind of researcher), ranked by the lower confidence bound of research dev PGR (campaign/selection.py). A
    chosen method is saved as a snapshot of its researcher's from the code that ran, once (kept in state.json)."""
    logs = {name: ExperimentLog(campaign.paths.researcher_dir(name), name) for name in campaign.statuses}
    results = [result for log in logs.values() for result in log.results()]
    chosen = choose(results, tuple(campaign.task_names), k)
    if chosen:
        campaign.console.print("verifying, by the lower 95% bound of research dev PGR over seeds:")
    picked = []
    for candidate in chosen:
        campaign.console.print(f"  {candidate.describe()}")
        snapshot = campaign.state.candidate_snapshots.get(candidate.method_sha)
        if snapshot is None:
            client = LabClient(lab_url, secrets["researchers"][candidate.researcher])
            message = (f"{candidate.method_dir}: research dev PGR {candidate.research_pgr:+.3f} (95% lower bound "
                       f"{candidate.lower_bound:+.3f}), chosen by the campaign from {candidate.researcher}'s experiments")
            snapshot = client.save_snapshot(logs[candidate.researcher].method(candidate.method_sha),
                                            name=candidate.method_dir.rsplit("/", 1)[-1][:64], message=message)[
                "snapshot_id"]
            campaign.state.candidate_snapshots[candidate.method_sha] = snapshot
            campaign.persist()
        picked.append((candidate.researcher, snapshot))
    return picked


def _baseline_snapshot(campaign: Campaign, client: LabClient) -> str:
    """The vanilla method, saved once under the baseline researcher (kept in state for a resume)."""
    if campaign.state.baseline_snapshot is None:
        with tempfile.TemporaryDirectory() as tmp:
            method_dir = Path(tmp) / "vanilla"
            method_dir.mkdir()
            (method_dir / "method.py").write_text(render_method(Recipe(), "vanilla: the strong student on weak soft "
                                                                          "labels"))
            snapshot = client.save_snapshot(pack_method_dir(SafeTree(method_dir)), name="vanilla",
                                            message="the vanilla baseline, verified by the campaign")
        campaign.state.baseline_snapshot = snapshot["snapshot_id"]
        campaign.persist()
    return campaign.state.baseline_snapshot


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


def final_verification(campaign: Campaign, lab_url: str, secrets: dict[str, Any],
                       admin: LabClient) -> dict[str, Any]:
    """Verify the best snapshots and vanilla on every research task, then run them unchanged on each transfer
    task. Every request is recorded before it is awaited, and the lab answers a repeated request with the
    run it already has, so a resume after kill -9 redoes nothing that finished."""
    tasks = campaign.task_names
    console = campaign.console
    console.print("verifying the best snapshots and the vanilla baseline on lab-chosen seeds…")
    baseline_client = LabClient(lab_url, campaign.researcher_token(lab_url, secrets, BASELINE))
    baseline_snapshot = _baseline_snapshot(campaign, baseline_client)
    request_deadline = time.monotonic() + REQUEST_WAIT_S
    for task in tasks:
        if task not in campaign.state.baseline_verify_ids:
            campaign.state.baseline_verify_ids[task] = _request(baseline_client, baseline_snapshot, task, console,
                                                                request_deadline)
            campaign.persist()
    for name, snapshot_id in _best_candidates(campaign, lab_url, secrets, campaign.config.verify_top_k):
        status = campaign.statuses[name]
        client = LabClient(lab_url, secrets["researchers"][name])
        for task in tasks:
            if task in status.verifications.get(snapshot_id, {}):
                continue
            try:
                status.record_verification(snapshot_id, task, _request(client, snapshot_id, task, console,
                                                                       request_deadline))
            except LabError as exc:
                console.print(f"[yellow]could not verify {snapshot_id[:10]} of {name} on {task}: {exc}[/]")
                continue
            campaign.persist()
    verify_ids = list(campaign.state.baseline_verify_ids.values())
    verify_ids += [v for s in campaign.statuses.values() for by_task in s.to_json()["verifications"].values()
                   for v in by_task.values() if v not in verify_ids]
    campaign.persist()
    finished = _wait(admin, verify_ids, VERIFY_WAIT_S)
    board = board_from_lab(campaign, admin)
    if campaign.transfer_names:
        request_transfers(campaign, admin, transfer_candidates(board, campaign.config.verify_top_k))
        board = board_from_lab(campaign, admin)
    board["unfinished_verifications"] = sorted(set(verify_ids) - set(finished))
    return board


def transfer_candidates(board: dict[str, Any], top: int) -> list[str]:
    """The snapshots transfer runs on: the top supervised rows by research PGR, and vanilla as the reference."""
    chosen = [row["snapshot"] for row in board["rows"][:top]]
    if board["vanilla"].get("snapshot"):
        chosen.append(board["vanilla"]["snapshot"])
    return chosen


def request_transfers(campaign: Campaign, admin: LabClient, snapshots: list[str]) -> None:
    """Run each snapshot unchanged on every transfer task (admin-only runs), and wait for them.

    Each run's id is saved in state.json as soon as the lab accepts it, and the lab answers a repeated
    (snapshot, task) with the run it has: after kill -9 nothing finished is run again.
    """
    console = campaign.console
    console.print(f"transfer: {len(snapshots)} method(s) run unchanged on {len(campaign.transfer_names)} "
                  "held-out task(s)…")
    wanted = []
    for snapshot_id in snapshots:
        for task in campaign.transfer_names:
            key = f"{snapshot_id}:{task}"
            if key not in campaign.state.transfer_ids:
                campaign.state.transfer_ids[key] = int(admin.request_transfer(snapshot_id, task)["transfer_id"])
                campaign.persist()
            wanted.append(campaign.state.transfer_ids[key])
    deadline = time.monotonic() + TRANSFER_WAIT_S
    done: set[int] = set()
    while len(done) < len(wanted) and time.monotonic() < deadline:
        for transfer_id in wanted:
            if transfer_id not in done:
                run = admin.transfer_run(transfer_id)
                if run["status"] not in ("queued", "running"):
                    done.add(transfer_id)
                    figure = "failed: " + run["error"][:80] if run["status"] == "failed" else \
                        f"PGR {_fmt(run['holdout_pgr'])}"
                    console.print(f"  transfer {len(done)}/{len(wanted)}: {run['snapshot_id'][:10]} on "
                                  f"{run['task']}: {figure}")
        time.sleep(1.0)
    if len(done) < len(wanted):
        console.print(f"[yellow]{len(wanted) - len(done)} transfer run(s) still running after "
                      f"{TRANSFER_WAIT_S:.0f} s; `autow2s transfer {campaign.paths.root}` picks them up[/]")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def board_from_lab(campaign: Campaign, admin: LabClient) -> dict[str, Any]:
    """leaderboard.json: research PGR (the mean over research tasks) with per-task figures, and transfer.

    On a shared lab only this campaign's rows, under its own researcher names (campaign/shared_lab.py).
    """
    tasks = list(campaign.task_names)
    overview = own_overview(admin.transfer_overview(), campaign.config.lab_url is not None,
                            campaign.paths.load_secrets())
    detail = {task: {row["snapshot_id"]: row for row in admin.leaderboard(task)} for task in tasks}
    return board_from(overview, detail, tasks, list(campaign.transfer_names))


def board_from(overview: dict[str, Any], detail: dict[str, dict[str, dict[str, Any]]], tasks: list[str],
               transfer_tasks: list[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    supervisor_free: list[dict[str, Any]] = []
    vanilla: dict[str, Any] = {}
    for row in overview["rows"]:
        per_task = {task: detail[task][row["snapshot_id"]] for task in tasks if row["snapshot_id"] in detail[task]}
        if len(per_task) < len(tasks):
            continue  # not verified on every research task: no research PGR
        nulls = [r["null_supervisor_pgr"] for r in per_task.values()]
        entry = {"method": row["method"], "researcher": row["researcher"], "snapshot": row["snapshot_id"],
                 "research_pgr": row["research_pgr"], "research_ci": row["research_ci"],
                 "dev_pgr": _mean([r["dev_pgr"] for r in per_task.values()]),
                 "holdout_pgr": row["research_pgr"], "holdout_ci": row["research_ci"],
                 "supervisor_check": row["supervisor_check"],
                 "null_supervisor_pgr": _mean(nulls),
                 "independent_of_supervisor": {"flagged": True, "passed": False}.get(row["supervisor_check"]),
                 "per_task": {task: {"dev_pgr": r["dev_pgr"], "holdout_pgr": r["holdout_pgr"],
                                     "holdout_ci": r["holdout_ci"], "verify_id": r["verify_id"],
                                     "supervisor_check": r["supervisor_check"],
                                     "null_supervisor_pgr": r["null_supervisor_pgr"]} for task, r in per_task.items()},
                 "transfer": {task: {"pgr": t["pgr"], "ci": t["ci"], "status": t["status"]}
                              for task, t in row["transfer"].items()},
                 "transfer_pgr": row["transfer_pgr"], "transfer_ci": row["transfer_ci"],
                 "transfer_beats_vanilla": row["transfer_beats_vanilla"],
                 # paired with vanilla by item, with CIs: what "beats vanilla" rests on (lab/compare.py)
                 "vs_vanilla": row.get("vs_vanilla")}
        if len(tasks) == 1:
            only = per_task[tasks[0]]
            entry.update(verify_id=only["verify_id"], null_supervisor_ci=only["null_supervisor_ci"])
        if row["is_vanilla"]:
            vanilla = entry
        else:  # a method that keeps its PGR without the supervisor is shown, but apart: it is not weak-to-strong
            (rows if supervised(entry) else supervisor_free).append(entry)
    for entry in rows + supervisor_free:
        entry["vanilla_holdout_pgr"] = vanilla.get("research_pgr")
    return {"task": ", ".join(tasks), "tasks": tasks, "transfer_tasks": transfer_tasks, "vanilla": vanilla,
            "rows": rows, "supervisor_free": supervisor_free}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None
