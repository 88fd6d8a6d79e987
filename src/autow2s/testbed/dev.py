"""dev_context: the ctx a method gets, for looking at the data from the `python` tool.

An attached agent analysing its task (how confident is the weak teacher, how do the strong
representations cluster) used to read the jsonl files by hand and could not reach the encoded text
features. `dev_context("rt-sentiment", seed=0)` builds exactly the ctx `run(ctx)` receives from the
public view mounted in the sandbox: train_unlabel and test inputs, the weak teacher and its soft
labels, fresh strong students. It holds no labels (the public view has none): nothing it shows is
dev or holdout ground truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from autow2s.errors import AutoW2SError
from autow2s.testbed.context import MethodContext

TASK_ROOT = "/task"


def _task_dir(task: str | None, root: Path) -> Path:
    """The public view of `task` under root: root itself with one research task, root/<task> with several."""
    if (root / "task.json").is_file():
        name = json.loads((root / "task.json").read_text()).get("name")
        if task is not None and task != name:
            raise AutoW2SError(f"dev_context: this sandbox holds only task {name!r}, not {task!r}")
        return root
    names = sorted(p.name for p in root.iterdir() if (p / "task.json").is_file()) if root.is_dir() else []
    if not names:
        raise AutoW2SError(f"dev_context: no task view at {root}; it works inside a researcher's sandbox (the "
                           "python tool), or pass root= a public view written by `autow2s prepare`")
    if task is None:
        if len(names) > 1:
            raise AutoW2SError(f"dev_context: there are several research tasks ({', '.join(names)}); say which one")
        task = names[0]
    if task not in names:
        raise AutoW2SError(f"dev_context: no task {task!r} here; the research tasks are {', '.join(names)}")
    return root / task


def dev_context(task: str | None = None, seed: int = 0, *, root: str | Path | None = None,
                device: str = "cpu") -> MethodContext:
    """The ctx `run(ctx)` gets on `task` (the only research task by default) with `seed`.

    Use it in the python tool to analyse: ctx.weak_soft_labels("train_unlabel"), ctx.inputs("test"),
    autow2s.testbed.methods.common.representation(ctx, "train_unlabel") (the strong model's features,
    the encoded texts on a text task), ctx.strong_model().fit(...). No split here carries labels.
    """
    from autow2s.testbed.experiment import ExperimentSettings, build_context
    from autow2s.testbed.public_run import load_public

    base = Path(root if root is not None else os.environ.get("AUTOW2S_TASK_DATA") or TASK_ROOT)
    public, teacher = load_public(_task_dir(task, base))
    return build_context(public, teacher, seed, ExperimentSettings(device=device))
