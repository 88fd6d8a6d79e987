"""`autow2s sandbox ...`: run a command exactly as a researcher's job would run, to debug it.

Kept light on purpose: importing this module pulls in neither torch nor ray.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.table import Table

from autow2s.errors import AutoW2SError
from autow2s.sandbox.config import TASK_MOUNT, WORKSPACE_MOUNT, SandboxConfig
from autow2s.sandbox.limits import KILLED_EXIT_CODE, Limits, MiB

sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Run commands in the sandbox that researchers' jobs run in.")
err_console = Console(stderr=True)


def _write(stream: TextIO) -> Callable[[bytes], None]:
    """Pass the job's bytes straight through, flushed, so output appears as the job writes it."""
    buffer = stream.buffer

    def sink(data: bytes) -> None:
        buffer.write(data)
        buffer.flush()

    return sink


def _limits(wall_time: float | None, cpu_time: float | None, memory_mb: int | None,
            max_processes: int | None, output_mb: float | None, disk_mb: int | None) -> Limits:
    defaults = Limits()
    return Limits(
        wall_seconds=wall_time if wall_time is not None else defaults.wall_seconds,
        cpu_seconds=cpu_time,
        memory_bytes=memory_mb * MiB if memory_mb is not None else defaults.memory_bytes,
        max_processes=max_processes if max_processes is not None else defaults.max_processes,
        output_bytes=int(output_mb * MiB) if output_mb is not None else defaults.output_bytes,
        disk_bytes=disk_mb * MiB if disk_mb is not None else defaults.disk_bytes,
    )


@sandbox_app.command("run")
def run_command(
    command: list[str] = typer.Argument(..., help="the command, after `--`; {workspace} and {task_data} are filled in"),
    workspace: Path = typer.Option(..., "--workspace", help=f"the job's read-write directory, seen at {WORKSPACE_MOUNT}"),
    task_data: Path | None = typer.Option(None, "--task-data", help=f"a public task view, seen read-only at {TASK_MOUNT}"),
    gpu: bool = typer.Option(False, "--gpu", help="pass /dev/nvidia* through"),
    wall_time: float | None = typer.Option(None, "--wall-time", help="seconds of wall time (default 3600)"),
    cpu_time: float | None = typer.Option(None, "--cpu-time", help="seconds of CPU time, all processes together"),
    memory_mb: int | None = typer.Option(None, "--memory-mb", help="MiB of memory, all processes together (default 8192)"),
    max_processes: int | None = typer.Option(None, "--max-processes", help="processes and threads (default 512)"),
    output_mb: float | None = typer.Option(None, "--output-mb", help="MiB of stdout plus stderr (default 64)"),
    disk_mb: int | None = typer.Option(None, "--disk-mb", help="MiB the workspace may grow (default 4096)"),
    hide: list[Path] = typer.Option([], "--hide", help="a host path that must stay invisible even if under a bound one"),
    unsafe_no_sandbox: bool = typer.Option(False, "--unsafe-no-sandbox", help="run WITHOUT isolation (prints a warning)"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the report as JSON here"),
) -> None:
    """Run CMD in the sandbox; exit with its exit code, or 137 and the limit's name if a limit killed it.

    Example: autow2s sandbox run --workspace ws --task-data prep/public -- autow2s predict
    --public /task --method /workspace/method --out /workspace/preds.json
    """
    from autow2s.sandbox.runner import run_sandboxed

    try:
        config = SandboxConfig(workspace=workspace, task_data=task_data, gpu=gpu, hidden=tuple(hide),
                               limits=_limits(wall_time, cpu_time, memory_mb, max_processes, output_mb, disk_mb),
                               unsafe_no_sandbox=unsafe_no_sandbox)
        result = run_sandboxed(config, command, stdout=_write(sys.stdout), stderr=_write(sys.stderr))
    except (AutoW2SError, ValueError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if result.limit_hit is not None:
        err_console.print(f"[bold red]sandbox: {result.limit_hit}[/]: {result.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=KILLED_EXIT_CODE)
    raise typer.Exit(code=result.exit_code)


@sandbox_app.command("check")
def check_command(
    workspace: Path = typer.Option(Path("."), "--workspace", help="a workspace to show the mounts for"),
    task_data: Path | None = typer.Option(None, "--task-data", help="a public task view"),
) -> None:
    """Say whether bubblewrap works here and list what a job would see."""
    from autow2s.sandbox.bwrap import build_plan, bwrap_features, require_sandbox, running_as_root

    try:
        require_sandbox()
        plan = build_plan(SandboxConfig(workspace=workspace, task_data=task_data), ["true"])
    except AutoW2SError as exc:
        err_console.print(f"[bold red]sandbox unavailable:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    table = Table(title=f"what a job sees ({bwrap_features().path}, "
                        f"{'root: jobs run as uid ' + str(plan.uid) if running_as_root() else 'user namespace'})")
    table.add_column("mount")
    table.add_column("host source")
    table.add_column("access")
    argv = plan.argv
    for i, arg in enumerate(argv):
        if arg in ("--ro-bind", "--bind", "--dev-bind"):
            access = {"--ro-bind": "read-only", "--bind": "read-write", "--dev-bind": "device"}[arg]
            table.add_row(argv[i + 2], argv[i + 1], access)
        elif arg in ("--tmpfs", "--proc", "--dev") and argv[i + 1] != "--remount-ro":
            table.add_row(argv[i + 1], arg.lstrip("-"), "private")
        elif arg == "--symlink":
            table.add_row(argv[i + 2], f"-> {argv[i + 1]}", "symlink")
    for name in plan.data_files:
        table.add_row(name, "generated", "read-only")
    Console().print(table)
    Console().print("network: none (own namespace); environment: built from scratch; PID namespace: own")
