"""A factory of real researcher toolboxes on the `mini` task of a running lab (see lab_helpers).

make(name, tasks=("mini", "wide")) gives a toolbox with several research tasks; its task view is
a directory holding one copy of each task's public view (/task/<name>/ in the sandbox).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autow2s.executor import LocalExecutor
from autow2s.researchers.lab_client import LabClient
from autow2s.researchers.toolbox import ToolBox
from lab_helpers import LabServer


@contextmanager
def toolbox_factory(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator[Callable[..., ToolBox]]:
    """make(name, **options) -> a ToolBox with its own researcher, workspace, executor and error log."""
    executors: list[LocalExecutor] = []

    def make(name: str, tasks: tuple[str, ...] = ("mini",), **options: Any) -> ToolBox:
        executor = LocalExecutor(tmp_path / f"jobs-{name}")
        executors.append(executor)
        workspace = tmp_path / f"ws-{name}"
        workspace.mkdir()
        view = lab_data / tasks[0] / "public"
        if len(tasks) > 1:
            view = tmp_path / f"view-{name}"
            for task in tasks:
                shutil.copytree(lab_data / task / "public", view / task)
        return ToolBox(name=name, tasks=tuple(tasks), workspace=workspace, task_view=view,
                       lab=LabClient(lab.url, lab.create_researcher(name)), executor=executor,
                       notebook_path=tmp_path / f"notebook-{name}.md",
                       hidden=tuple(lab_data / task / "lab" for task in tasks),
                       error_log=tmp_path / f"errors-{name}.log", **options)

    try:
        yield make
    finally:
        for executor in executors:
            executor.shutdown()
