"""Lab names of a campaign's researchers, so that several campaigns can join one shared lab (`run --lab`).

Every campaign calls its researchers search-1, search-2, … and baseline-vanilla. On a shared lab it
registers them as `<campaign id>.<name>`: the id is drawn once and kept in secrets.json, so a resume
reuses the same lab names and tokens and never touches another campaign's researchers. The run
directory (workspaces, state.json, leaderboard.json) keeps the plain names. A campaign's own
embedded lab keeps plain names too.
"""

from __future__ import annotations

import re
import secrets as random_tokens
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autow2s.board_rules import BASELINE_RESEARCHER

CAMPAIGN_ID = "lab_campaign_id"  # the key in secrets.json
SEPARATOR = "."  # never part of a local name (kind-N or baseline-vanilla), allowed in a lab name


@dataclass(frozen=True)
class LabNames:
    """prefix '' means plain names: the embedded lab, or a shared lab joined before names had prefixes."""

    prefix: str

    def lab(self, local: str) -> str:
        return f"{self.prefix}{SEPARATOR}{local}" if self.prefix else local

    def local(self, lab_name: str) -> str | None:
        """The campaign's name for a lab researcher; None when it has another campaign's prefix."""
        if not self.prefix:
            return lab_name
        head = self.prefix + SEPARATOR
        return lab_name[len(head):] if lab_name.startswith(head) else None


def lab_names(shared: bool, root: Path, secrets: dict[str, Any]) -> LabNames:
    """This campaign's names; on a shared lab the id is drawn on first use and stored in `secrets`.

    The caller saves `secrets` before registering anyone, so the id survives a kill and a resume.
    """
    if not shared:
        return LabNames("")
    if CAMPAIGN_ID not in secrets:
        # A campaign that registered researchers before ids existed did so under plain names: keep them.
        secrets[CAMPAIGN_ID] = "" if secrets.get("researchers") else new_campaign_id(root)
    return LabNames(str(secrets[CAMPAIGN_ID]))


def new_campaign_id(root: Path) -> str:
    """The run directory's name (readable on the lab's dashboard) and random hex (unique across hosts)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", root.resolve().name).strip("-_")[:24] or "campaign"
    return f"{stem}-{random_tokens.token_hex(3)}"


def secrets_to_save(shared: bool, secrets: dict[str, Any]) -> dict[str, Any]:
    """A shared lab's admin token stays in the environment (AUTOW2S_ADMIN_TOKEN), never in the run directory."""
    return {key: value for key, value in secrets.items() if key != "admin_token"} if shared else secrets


def own_overview(overview: dict[str, Any], shared: bool, secrets: dict[str, Any]) -> dict[str, Any]:
    """On a shared lab: only this campaign's rows of GET /api/v1/admin/transfer, under their local names.

    The lab marks as vanilla only a researcher named exactly baseline-vanilla; here the campaign's own
    `<id>.baseline-vanilla` is its vanilla reference.
    """
    if not shared:
        return overview
    names = LabNames(str(secrets.get(CAMPAIGN_ID, "")))
    mine = set(secrets.get("researchers", {}))
    rows = []
    for row in overview["rows"]:
        local = names.local(row["researcher"])
        if local in mine:
            rows.append(row | {"researcher": local, "is_vanilla": local == BASELINE_RESEARCHER})
    return overview | {"rows": rows, "vanilla": next((row for row in rows if row["is_vanilla"]), None)}
