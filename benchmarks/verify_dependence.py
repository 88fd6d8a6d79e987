"""What the supervisor-dependence check costs: verification time with it on and off.

A vanilla snapshot of the default task (a secret instance of synth-linear, 5 lab seeds, each a
sandboxed job) is verified by two labs on the same data, one with `--dependence-check on` and
one with `off`, alternating, `--runs` times each. Reported: the median wall time from request to
`done`, and the ratio on/off (the goal is at most 2.2x).

    .venv/bin/python benchmarks/verify_dependence.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from autow2s.testbed.cache import ArtifactCache
from autow2s.testbed.prepare import prepare_task
from autow2s.testbed.tasks.registry import resolve_task
from lab_helpers import start_lab
from test_lab_snapshots import make_tarball, upload

VANILLA = b"from autow2s.testbed.methods.registry import load_method\n\ndef run(ctx):\n" \
          b"    return load_method('vanilla').run(ctx)\n"


def _snapshot(client, index: int) -> str:
    """A fresh snapshot each time: the lab answers a repeated request for one snapshot with its first run."""
    source = VANILLA + f"# run {index}\n".encode()
    return upload(client, make_tarball([("vanilla/method.py", None, source)]), name="vanilla").json()["snapshot_id"]


def _timed_verify(client, snapshot_id: str) -> float:
    started = time.perf_counter()
    verify_id = client.post("/api/v1/verify", json={"snapshot_id": snapshot_id, "task": "synth-linear"}).json()["verify_id"]
    while True:
        run = client.get(f"/api/v1/verify/{verify_id}").json()
        if run["status"] in ("done", "failed"):
            if run["status"] == "failed":
                raise RuntimeError(run["error"])
            return time.perf_counter() - started
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="autow2s-bench-verify-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        drawn = resolve_task("synth-linear")
        prepare_task(drawn.task, root / "data" / "synth-linear", instance_seed=drawn.instance_seed,
                     cache=ArtifactCache(root / "data" / ".cache"))
        clients = {}
        for mode in ("off", "on"):
            lab = stack.enter_context(start_lab(root / "data", root / f"state-{mode}", extra_args=[
                "--dependence-check", mode, "--budget-rate", "1000"]))
            client = lab.client(lab.create_researcher(f"bench-{mode}"), timeout=120)
            _timed_verify(client, _snapshot(client, 0))  # warm-up: caches, page cache, first sandbox
            clients[mode] = client
        times: dict[str, list[float]] = {"off": [], "on": []}
        for index in range(1, args.runs + 1):
            for mode in ("off", "on"):
                times[mode].append(_timed_verify(clients[mode], _snapshot(clients[mode], index)))
    off, on = statistics.median(times["off"]), statistics.median(times["on"])
    print(f"verify, check off: median {off:.1f} s  {[f'{t:.1f}' for t in times['off']]}")
    print(f"verify, check on:  median {on:.1f} s  {[f'{t:.1f}' for t in times['on']]}")
    print(f"ratio on/off: {on / off:.2f}x (goal <= 2.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
