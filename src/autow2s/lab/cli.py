"""`autow2s serve`: run the lab server. Heavy imports happen inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from autow2s.lab.settings import setting_defaults  # stdlib only: `autow2s --help` stays light

if TYPE_CHECKING:
    from autow2s.lab.settings import LabSettings

D = setting_defaults()  # every default below comes from LabSettings


def serve(
    data: Path = typer.Option(..., "--data", help="the folder `autow2s prepare` wrote (one subfolder per task)"),
    transfer_data: Path | None = typer.Option(
        D["transfer_dir"], "--transfer-data", help="held-out transfer tasks (prepared like --data): only the admin can "
        "run snapshots on them (POST /api/v1/admin/transfer); researchers cannot see, name or count them"),
    port: int = typer.Option(8600, "--port", min=0, max=65535),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address; loopback unless you mean to share the lab"),
    db: str | None = typer.Option(D["db_url"], "--db", help="SQLAlchemy URL (default: SQLite in the state folder)"),
    state: Path | None = typer.Option(D["state_dir"], "--state", help="state folder: DB and snapshot repo "
                                         "(default: DATA/.lab-state)"),
    budget_total: int | None = typer.Option(
        D["budget_total"], "--budget-total", min=0,
        help="evaluations per researcher per task (default: 7.5% of dev, 20 to 300)"),
    budget_rate: int = typer.Option(D["budget_rate_per_minute"], "--budget-rate", min=1,
                                    help="evaluations per researcher per task per minute"),
    verify_rate: int = typer.Option(D["verify_rate_per_minute"], "--verify-rate", min=1,
                                    help="verify requests per researcher per task per minute"),
    sqlite_synchronous: str = typer.Option(D["sqlite_synchronous"], "--sqlite-synchronous", help="FULL or NORMAL"),
    score_noise_se: float = typer.Option(D["score_noise_se"], "--score-noise-se", min=0.0,
                                         help="noise on reported dev accuracy, in standard errors (0: none)"),
    score_resolution: float = typer.Option(D["score_resolution"], "--score-resolution", min=0.0,
                                           help="rounding of dev accuracy"),
    near_duplicate_fraction: float = typer.Option(D["near_duplicate_fraction"], "--near-duplicate-fraction", min=0.0,
                                                  max=1.0, help="refuse submissions this close to an earlier one"),
    near_duplicate_min_items: int = typer.Option(D["near_duplicate_min_items"], "--near-duplicate-min-items", min=0),
    noise_seed: int | None = typer.Option(D["noise_seed"], "--noise-seed", hidden=True, help="tests only"),
    unsafe_no_sandbox: bool = typer.Option(D["unsafe_no_sandbox"], "--unsafe-no-sandbox",
                                           help="verify snapshots without bubblewrap (warns on every job)"),
    dependence_check: str = typer.Option("on" if D["dependence_check"] else "off", "--dependence-check",
                                         help="on: repeat every verified run with a null supervisor (permuted weak "
                                              "labels) and flag methods that do not need it; off: skip, and the "
                                              "leaderboard says 'not checked'"),
    verify_workers: int = typer.Option(D["verify_workers"], "--verify-workers", min=1, max=64,
                                       help="verified runs executed at once per lab process (each is a sandboxed job)"),
    executor: str = typer.Option(D["executor"], "--executor",
                                 help="where verified runs execute: local (sandboxed jobs on this host) or ray"),
    ray_address: str | None = typer.Option(D["ray_address"], "--ray-address",
                                           help="with --executor ray: the cluster (e.g. 10.0.0.5:6379; default: a "
                                                "private local Ray)"),
    job_dir: Path | None = typer.Option(D["job_dir"], "--job-dir",
                                        help="verified runs' workspaces and logs (default: a temporary folder); "
                                             "with --executor ray, storage every node mounts at the same path"),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="lab processes serving the port; budgets, rate limits, the probing history and "
                                     "the verify queue live in the DB, so N processes enforce what one does"),
    log_level: str = typer.Option("info", "--log-level"),
    http: str = typer.Option("auto", "--http", help="auto (httptools when installed), h11 or httptools"),
    loop: str = typer.Option("auto", "--loop", help="auto (uvloop when installed), asyncio or uvloop"),
) -> None:
    """Run the lab server: scoring, verified runs, leaderboard, forum and snapshots (see docs/lab.md)."""
    from autow2s.errors import AutoW2SError
    from autow2s.lab.settings import LabSettings, admin_token_from_env

    try:
        admin_token = admin_token_from_env()
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    if dependence_check not in ("on", "off"):
        typer.echo(f"error: --dependence-check must be on or off, got {dependence_check!r}", err=True)
        raise typer.Exit(code=2)
    if executor not in ("local", "ray"):
        typer.echo(f"error: --executor must be local or ray, got {executor!r}", err=True)
        raise typer.Exit(code=2)
    settings = LabSettings(data_dir=data, admin_token=admin_token, state_dir=state, db_url=db, transfer_dir=transfer_data,
                           budget_total=budget_total, budget_rate_per_minute=budget_rate,
                           sqlite_synchronous=sqlite_synchronous, score_noise_se=score_noise_se,
                           score_resolution=score_resolution, near_duplicate_fraction=near_duplicate_fraction,
                           near_duplicate_min_items=near_duplicate_min_items, noise_seed=noise_seed,
                           unsafe_no_sandbox=unsafe_no_sandbox, dependence_check=dependence_check == "on",
                           verify_workers=verify_workers, verify_rate_per_minute=verify_rate, executor=executor,
                           ray_address=ray_address, job_dir=job_dir)
    try:
        run_server(settings, host=host, port=port, log_level=log_level, http=http, loop=loop, workers=workers)
    except AutoW2SError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None


def check_schema(settings: LabSettings) -> None:
    """Create a fresh DB's schema, or raise AutoW2SError (naming `autow2s lab upgrade`) on an old or newer one."""
    from autow2s.lab.db import make_engine
    from autow2s.lab.schema import ensure_schema

    engine = make_engine(settings.resolved_db_url, synchronous=settings.sqlite_synchronous)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


def run_server(settings: LabSettings, *, host: str, port: int, log_level: str = "info", http: str = "auto",
               loop: str = "auto", workers: int = 1) -> None:
    """Serve the lab: one process, or `workers` processes sharing the port and the database.

    With several, the parent prepares the DB first (schema check, baselines), so the workers only
    load; each worker then keeps nothing that matters in memory (see docs/lab.md, "Several workers").
    """
    import os

    from autow2s.lab.auth import configure_logging

    configure_logging(log_level, (settings.admin_token,))
    check_schema(settings)  # first, and before uvicorn: in its lifespan an AutoW2SError would be a traceback, exit 3
    import uvicorn

    from autow2s.lab.app import LOG_LEVEL_ENV, SETTINGS_ENV, create_app
    from autow2s.lab.core import Lab
    from autow2s.lab.settings import settings_to_json

    common: dict[str, Any] = {"host": host, "port": port, "log_config": None, "log_level": log_level.lower(), "access_log": True,
              "timeout_graceful_shutdown": 5, "backlog": 2048, "http": http, "loop": loop}
    if workers == 1:
        uvicorn.run(create_app(settings), workers=1, **common)
        return
    lab = Lab(settings)
    try:
        lab.prepare()
    finally:
        lab.engine.dispose()
        lab.write_engine.dispose()
    os.environ[SETTINGS_ENV] = settings_to_json(settings)
    os.environ[LOG_LEVEL_ENV] = log_level
    uvicorn.run("autow2s.lab.app:app_from_environment", factory=True, workers=workers, **common)


lab_app = typer.Typer(help="Look after a lab's database (see docs/lab.md).", no_args_is_help=True)


@lab_app.command("upgrade")
def upgrade(
    db: str | None = typer.Option(None, "--db", help="SQLAlchemy URL of the lab DB (as given to `serve --db`)"),
    state: Path | None = typer.Option(None, "--state", help="or the state folder whose lab.sqlite to migrate "
                                                             "(as given to `serve --state`)"),
) -> None:
    """Migrate a lab DB to this autow2s's schema; a SQLite file is backed up first."""
    if (db is None) == (state is None):
        typer.echo("error: give the DB as --db URL or --state DIR (one of them)", err=True)
        raise typer.Exit(code=2)
    from autow2s.errors import AutoW2SError
    from autow2s.lab.db import make_engine
    from autow2s.lab.schema import upgrade_database

    if state is not None:
        path = state / "lab.sqlite"
        if not path.is_file():
            typer.echo(f"error: no lab DB at {path}: is {state} the folder given to `serve --state`?", err=True)
            raise typer.Exit(code=2)
        db = f"sqlite:///{path}"
    assert db is not None
    engine = make_engine(db)
    shown = engine.url.render_as_string(hide_password=True)
    def announce(backup: Path) -> None:
        typer.echo(f"backed up {shown} to {backup}")

    try:
        result = upgrade_database(engine, on_backup=announce)
    except AutoW2SError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    except Exception as exc:
        typer.echo(f"error: the migration of {shown} failed: {type(exc).__name__}: {exc}", err=True)
        typer.echo("On PostgreSQL the migration is one transaction: the DB is as it was. On SQLite, copy the backup "
                   "named above over the DB file (and delete its -wal and -shm files) before retrying.", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    if not result.changed:
        typer.echo(f"{shown} is already at schema revision {result.to_revision}: nothing to do")
        return
    typer.echo(f"migrated {shown}: schema revision {result.from_revision or '(empty)'} -> {result.to_revision}")
    if result.backup is not None:
        typer.echo(f"the backup {result.backup} can go once the lab runs well")
