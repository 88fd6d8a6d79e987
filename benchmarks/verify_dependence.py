"""What verification costs: the fresh verification supervisor against the verify path before it, and the null check.

A vanilla snapshot of the default task (a secret instance of synth-linear, 5 lab seeds, each run one
sandboxed job per view) is verified by three labs on the same prepared data, alternating, `--runs` times
each:

- `before`: this tree with the fresh supervisor switched off in the lab process (`PUBLIC_VIEWS_PATCH`):
  the real run on the public view, the null runs on `prepare`'s null/pos and null/neg, PGR against the
  public teacher, and no vanilla reference. That is the verify path at 5c738bf; everything else (runner,
  sandbox, scoring) is this tree's, so the difference is the supervisors' training, their views and the
  vanilla reference alone. Dependence check on.
- `fresh`: this tree, dependence check on: each run trains its own real and null weak supervisors
  (lab/supervisor.py) and writes their views before its jobs, and after the real run trains vanilla
  in-process on the same supervisor and seeds (the paired reference of lab/compare.py).
- `off`: this tree, dependence check off (the real run only, still on a fresh supervisor).

Reported: the median wall time from request to `done` for each, and the ratios fresh/before (the goal is at
most 1.2x) and fresh/off.

    .venv/bin/python benchmarks/verify_dependence.py --runs 5
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from autow2s.testbed.cache import ArtifactCache  # noqa: E402
from autow2s.testbed.prepare import prepare_task  # noqa: E402
from autow2s.testbed.tasks.registry import resolve_task  # noqa: E402
from lab_helpers import LabServer, serve_on_free_port, start_lab  # noqa: E402
from test_lab_snapshots import make_tarball, upload  # noqa: E402

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


PUBLIC_VIEWS_PATCH = """
import sys
import autow2s.lab.verify as verify
from autow2s.lab.supervisor import RunSupervisors, WeakBaseline


def public_views(task, out, *, secret=None, with_nulls=True):
    # The verify path before the fresh supervisor: the public view, prepare's null views, the public teacher.
    return RunSupervisors(real=task.public_dir, nulls=tuple(task.null_dirs), weak=WeakBaseline.public(task),
                          null_factors=(1.0, 1.0))


verify.draw_supervisors = public_views
verify.vanilla_alongside = lambda view, seeds: None  # nor the in-process vanilla reference: it came later too
from autow2s.cli import app
sys.exit(app())
"""


@contextmanager
def start_lab_before(data_dir: Path, state_dir: Path, extra_args: list[str]) -> Iterator[LabServer]:
    """What start_lab does, with the lab process's verify path as it was before the fresh supervisor."""
    state_dir.mkdir(parents=True, exist_ok=True)
    token = "admin-" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOW2S_")}
    env |= {"AUTOW2S_ADMIN_TOKEN": token, "AUTOW2S_CACHE_DIR": str(data_dir / ".cache"), "PYTHONUNBUFFERED": "1"}

    def make(port: int) -> LabServer:
        argv = [sys.executable, "-c", PUBLIC_VIEWS_PATCH, "serve", "--data", str(data_dir), "--port", str(port),
                "--state", str(state_dir), *extra_args]
        return LabServer(url=f"http://127.0.0.1:{port}", port=port, admin_token=token, data_dir=data_dir,
                         state_dir=state_dir, log_path=state_dir / "server.log", args=argv, env=env,
                         db_url=f"sqlite:///{state_dir / 'lab.sqlite'}")

    with serve_on_free_port(make, "the lab (before)") as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    modes = ("before", "fresh", "off")
    with tempfile.TemporaryDirectory(prefix="autow2s-bench-verify-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        drawn = resolve_task("synth-linear")
        prepare_task(drawn.task, root / "data" / "synth-linear", instance_seed=drawn.instance_seed,
                     cache=ArtifactCache(root / "data" / ".cache"))
        clients = {}
        for mode in modes:
            extra = ["--dependence-check", "off" if mode == "off" else "on", "--budget-rate", "1000"]
            starter = start_lab_before if mode == "before" else start_lab
            lab = stack.enter_context(starter(root / "data", root / f"state-{mode}", extra_args=extra))
            client = lab.client(lab.create_researcher(f"bench-{mode}"), timeout=120)
            _timed_verify(client, _snapshot(client, 0))  # warm-up: caches, page cache, first sandbox, torch
            clients[mode] = client
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for index in range(1, args.runs + 1):
            for mode in modes:
                times[mode].append(_timed_verify(clients[mode], _snapshot(clients[mode], index)))
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    for mode in modes:
        print(f"verify, {mode:>6}: median {medians[mode]:.1f} s  {[f'{t:.1f}' for t in times[mode]]}")
    print(f"ratio fresh/before: {medians['fresh'] / medians['before']:.2f}x (goal <= 1.2x)")
    print(f"ratio fresh/off:    {medians['fresh'] / medians['off']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
