"""What run_experiment runs inside the sandbox: one method on the public view, predictions and ctx.log out.

`autow2s predict` writes predictions only; a researcher also needs what its method logged, so
this job writes both. Run as `autow2s experiment-job` (see ExperimentTools), so a warm sandbox runs
it in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import traceback
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError
from autow2s.testbed.experiment import ExperimentSettings, build_context, call_method, check_predictions
from autow2s.testbed.methods.registry import load_method
from autow2s.testbed.public_run import load_public, subsample_train

MAX_LOGGED = 200


def _plain(value: Any) -> Any:
    """ctx.log values as JSON: numbers, strings and lists thereof; anything else as its repr."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return _plain(value.item())
    if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
        items = list(value.tolist() if hasattr(value, "tolist") else value)
        return [_plain(v) for v in items[:50]]
    return repr(value)[:200]


def _report(exc: AutoW2SError, method_dir: str) -> None:
    """The method's own frames and the one-line error: the library's frames would push the method's
    earlier stderr out of the tail the researcher sees."""
    cause = exc.__cause__
    if cause is not None and cause.__traceback__ is not None:
        root = str(Path(method_dir).resolve())
        frames = [f for f in traceback.extract_tb(cause.__traceback__) if f.filename.startswith(root)]
        if frames:
            sys.stderr.write("Traceback (your method's frames):\n" + "".join(traceback.format_list(frames)))
    sys.stderr.write(f"error: {exc}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="autow2s experiment-job")
    parser.add_argument("--public", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--train-fraction", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        _run(args)
    except AutoW2SError as exc:
        _report(exc, args.method)
        sys.exit(1)


def _run(args: argparse.Namespace) -> None:
    method = load_method(args.method)
    task, teacher = load_public(args.public)
    if args.train_fraction < 1.0:
        task, teacher = subsample_train(task, teacher, args.train_fraction, args.seed)
    ctx = build_context(task, teacher, args.seed, ExperimentSettings())
    test_ids = task.split("test").ids
    predictions = check_predictions(method.name, call_method(method, ctx), len(test_ids))
    metrics = [{str(k): _plain(v) for k, v in entry.items()} for entry in ctx.metrics[:MAX_LOGGED]]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ids": test_ids, "predictions": predictions.tolist(), "metrics": metrics}) + "\n")
    print(f"{len(test_ids)} test predictions written; {len(ctx.metrics)} ctx.log entries")


if __name__ == "__main__":
    main()
