"""Live progress of a campaign: one row per researcher, refreshed every second."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from autow2s.campaign.researchers import ResearcherWorker
    from autow2s.campaign.runner import Campaign


def progress_table(campaign: Campaign, workers: list[ResearcherWorker]) -> Table:
    budget = campaign.config.budget_s
    table = Table(title=f"campaign on {', '.join(campaign.task_names)} · {campaign.state.elapsed_s:.0f}/{budget:.0f} s · "
                        f"${campaign.ledger.total():.2f} spent")
    for column in ("researcher", "direction", "state", "experiments", "best dev PGR", "verified", "$"):
        table.add_column(column, justify="right" if column in ("experiments", "best dev PGR", "$") else "left")
    for worker in workers:
        s = worker.status
        best = "—" if s.best_dev_pgr is None else f"{s.best_dev_pgr:.3f}"
        state = s.state if not s.error or s.state != "running" else f"running (last: {s.error[:40]})"
        table.add_row(s.name, s.direction, state, str(s.experiments), best, str(len(s.verifications)),
                      f"{campaign.ledger.spent.get(s.name, 0.0):.2f}")
    return table


@contextmanager
def live_progress(campaign: Campaign, workers: list[ResearcherWorker]) -> Iterator[Callable[[], Any]]:
    with Live(progress_table(campaign, workers), console=campaign.console, refresh_per_second=2,
              transient=False) as live:
        yield lambda: live.update(progress_table(campaign, workers))
