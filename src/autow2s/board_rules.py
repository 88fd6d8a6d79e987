"""The leaderboard's shared vocabulary: who the vanilla reference is, and which rows belong on the main board.

The lab builds the leaderboard (lab/leaderboard.py); the campaign and the report read it over HTTP or
from the DB. Both sides need the same two rules, so they live here, below both, and the campaign
never imports the lab to learn them.
"""

from __future__ import annotations

from typing import Any

BASELINE_RESEARCHER = "baseline-vanilla"  # the campaign verifies vanilla under this name, as every view's reference


def is_baseline_researcher(name: str) -> bool:
    """A campaign's vanilla reference: `baseline-vanilla`, or `<campaign id>.baseline-vanilla` for a campaign
    that joined a shared lab (campaign/shared_lab.py); with several, any of them is vanilla on lab seeds."""
    return name == BASELINE_RESEARCHER or name.endswith("." + BASELINE_RESEARCHER)


def supervised(row: dict[str, Any]) -> bool:
    """Whether a row belongs on the main board: its supervisor check passed or was not run.

    Flagged runs go to the supervisor-free section.
    """
    return row["supervisor_check"] in ("passed", "not checked")
