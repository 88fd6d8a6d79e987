"""A factory of real researcher toolboxes on the `mini` task of a running lab (see lab_helpers)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lab_helpers import LabServer

from autow2s.executor import LocalExecutor
from autow2s.researchers.lab_client import LabClient
from autow2s.researchers.toolbox import ToolBox


@contextmanager
def toolbox_factory(lab: LabServer, lab_data: Path, tmp_path: Path) -> Iterator[Callable[..., ToolBox]]:
    """make(name, **options) -> a ToolBox with its own researcher, workspace, executor and error log."""
    executors: list[LocalExecutor] = []

    def make(name: str, **options: Any) -> ToolBox:
        executor = LocalExecutor(tmp_path / f"jobs-{name}")
        executors.append(executor)
        workspace = tmp_path / f"ws-{name}"
        workspace.mkdir()
        return ToolBox(name=name, task="mini", workspace=workspace, public_dir=lab_data / "mini" / "public",
                       lab=LabClient(lab.url, lab.create_researcher(name)), executor=executor,
                       notebook_path=tmp_path / f"notebook-{name}.md", hidden=(lab_data / "mini" / "lab",),
                       error_log=tmp_path / f"errors-{name}.log", **options)

    try:
        yield make
    finally:
        for executor in executors:
            executor.shutdown()
