"""spend.jsonl: one fsynced line per model call, appended by the ledger and read by resume, dashboard and report.

A kill mid-write can leave a torn last line; every reader skips it, so the figures read back are
exactly the calls that were recorded in full.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SpendRecord:
    researcher: str
    model: str
    dollars: float
    usage: dict[str, int] = field(default_factory=dict)  # token counts by kind (researchers/accounting.Usage)

    def to_json(self) -> dict[str, Any]:
        return {"researcher": self.researcher, "model": self.model, "dollars": self.dollars, "usage": self.usage}


def append_spend(path: Path, record: SpendRecord) -> None:
    """Append one record and fsync it, so a recorded charge survives a kill -9."""
    with path.open("a") as handle:
        handle.write(json.dumps(record.to_json()) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_spend(path: Path) -> list[SpendRecord]:
    """Every complete record, in order; none when the journal does not exist yet."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            entry = json.loads(line)
            usage = entry.get("usage") or {}
            records.append(SpendRecord(researcher=str(entry["researcher"]), model=str(entry.get("model", "")),
                                       dollars=float(entry["dollars"]),
                                       usage={str(key): int(value) for key, value in usage.items()}))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line torn by a kill mid-write
    return records


def spent_per_researcher(path: Path) -> dict[str, float]:
    """Dollars per researcher, as the ledger counts them."""
    spent: dict[str, float] = {}
    for record in read_spend(path):
        spent[record.researcher] = spent.get(record.researcher, 0.0) + record.dollars
    return spent
