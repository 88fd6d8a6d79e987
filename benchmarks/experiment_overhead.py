"""Where one run_experiment's time goes: the jobs themselves, the sandbox around them, the lab's scoring, the tool.

    .venv/bin/python benchmarks/experiment_overhead.py --runs 5            # the default research suite, 3 seeds
    .venv/bin/python benchmarks/experiment_overhead.py --tasks synth-linear --runs 5

A real campaign directory is made in a temporary folder (tasks prepared, the lab on loopback, a
LocalExecutor with warm sandboxes), and one researcher's ToolBox calls run_experiment on vanilla,
every research task, seeds 1-3, `--runs` times: first on an idle machine, then while the lab runs
verifications for another researcher (at the nice level verified runs get, VERIFY_JOB_LIMITS). The
first call also starts the researcher's warm sandbox (torch imported once): it is reported apart.
The split comes from run_experiment's own `timing` (researchers/experiments.py); medians of the runs.
Throughout, the campaign's state.json is saved every second, as a running campaign's research loop
does (`--persist-every 0` turns that off).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rich.console import Console

PARTS = ("total_s", "jobs_s", "sandbox_s", "scoring_s", "tool_s")


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {part: statistics.median(row[part] for row in rows) for part in PARTS}


def _line(label: str, timing: dict[str, float]) -> str:
    overhead = timing["total_s"] - timing["jobs_s"]
    return (f"| {label} | {timing['total_s']:.2f} | {timing['jobs_s']:.2f} | {timing['sandbox_s']:.2f} | "
            f"{timing['scoring_s']:.2f} | {timing['tool_s']:.2f} | **{overhead:.2f}** |")


def _experiment(toolbox: Any, seeds: list[int]) -> dict[str, float]:
    reply = json.loads(toolbox.call("run_experiment", {"method_dir": "vanilla", "seeds": seeds}))
    if reply.get("mean_dev_pgr") is None:
        raise SystemExit(f"run_experiment did not score every seed: {json.dumps(reply)[:2000]}")
    return reply["timing"]


def _keep_verifying(toolbox: Any, stop: threading.Event, method: str) -> None:
    """Another researcher's verifications, one after another, so the lab's verify workers stay busy."""
    count = 0
    while not stop.is_set():
        count += 1
        toolbox.call("write_file", {"path": f"v{count}/method.py", "content": method + f"\n# variant {count}\n"})
        snapshot = json.loads(toolbox.call("save_snapshot", {"method_dir": f"v{count}", "message": "load"}))
        toolbox.call("request_verification", {"snapshot_id": snapshot["snapshot_id"]})
        stop.wait(20.0)


def _keep_persisting(campaign: Any, stop: threading.Event, every: float) -> None:
    """What the campaign's research loop does while researchers work: save state.json (by rename) every second."""
    while not stop.wait(every):
        campaign.persist()


def main() -> None:
    from autow2s.campaign.runner import Campaign
    from autow2s.campaign.state import CampaignConfig
    from autow2s.executor import LocalExecutor
    from autow2s.testbed.methods.composed import Recipe, render_method
    from autow2s.testbed.tasks.suites import expand_tasks

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="default-research")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-busy", action="store_true", help="only the idle machine")
    parser.add_argument("--persist-every", type=float, default=1.0,
                        help="seconds between state saves, as in a running campaign (0: none)")
    args = parser.parse_args()
    seeds = list(range(1, args.seeds + 1))
    tasks = expand_tasks(args.tasks)
    console = Console(stderr=True)
    method = render_method(Recipe(), "vanilla: the strong student on weak soft labels")
    with tempfile.TemporaryDirectory(prefix="autow2s-overhead-") as tmp:
        config = CampaignConfig(tasks=tasks, transfer_tasks=(), researchers=(("search", 2),), eval_budget=10_000,
                                eval_rate=10_000, verify_rate=100)
        campaign = Campaign.create(Path(tmp) / "run", config, console)
        campaign.prepare_data()
        secrets = campaign.paths.load_secrets()
        lab_url = campaign.start_lab(secrets)
        executor = LocalExecutor(campaign.paths.jobs)
        persisting = threading.Event()
        if args.persist_every > 0:
            threading.Thread(target=_keep_persisting, args=(campaign, persisting, args.persist_every),
                             daemon=True).start()
        try:
            researcher = campaign.toolbox("search-1", lab_url, secrets, executor)
            loader = campaign.toolbox("search-2", lab_url, secrets, executor)
            researcher.call("write_file", {"path": "vanilla/method.py", "content": method})
            started = time.monotonic()
            first = _experiment(researcher, seeds)
            console.print(f"first call (starts the warm sandbox): {time.monotonic() - started:.1f} s")
            idle = [_experiment(researcher, seeds) for _ in range(args.runs)]
            busy: list[dict[str, float]] = []
            if not args.skip_busy:
                stop = threading.Event()
                thread = threading.Thread(target=_keep_verifying, args=(loader, stop, method), daemon=True)
                thread.start()
                time.sleep(15.0)  # the first verification is under way
                busy = [_experiment(researcher, seeds) for _ in range(args.runs)]
                stop.set()
                thread.join(timeout=60)
        finally:
            persisting.set()
            executor.shutdown()
            campaign.stop_lab()
    jobs = len(tasks) * len(seeds)
    print(f"\nrun_experiment on vanilla, {len(tasks)} task(s) x {len(seeds)} seeds = {jobs} jobs; "
          f"medians of {args.runs} calls (seconds)\n")
    print("| machine | total | jobs | sandbox | lab scoring | tool | overhead (total - jobs) |")
    print("|---|---|---|---|---|---|---|")
    print(_line("first call (warm sandbox starts)", first))
    print(_line("idle", _median(idle)))
    if busy:
        print(_line("verifications running (nice 10)", _median(busy)))


if __name__ == "__main__":
    main()
