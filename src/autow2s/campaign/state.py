"""The run directory: a frozen config, secrets (0600), and small JSON state written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError


def write_json_atomic(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write-then-rename, so a kill mid-write leaves the old file, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


@dataclass(frozen=True)
class CampaignConfig:
    """What `autow2s run` was asked to do; saved once and reused as-is on --resume."""

    tasks: tuple[str, ...] = ("synth-linear",)  # research tasks: what the researchers see and optimise
    transfer_tasks: tuple[str, ...] = ()  # held out: only the final step runs methods on them
    researchers: tuple[tuple[str, int], ...] = (("search", 4),)
    budget_s: float = 180.0
    max_dollars: float | None = None
    researcher_dollars: float | None = None
    eval_budget: int | None = None
    eval_rate: int = 120
    verify_rate: int = 5
    lab_url: str | None = None
    executor: str = "local"
    ray_address: str | None = None
    directions_file: str | None = None
    prices_file: str | None = None
    model: str | None = None
    base_url: str | None = None
    seed: int = 0
    instance_seed: int | None = None  # None: the lab draws a secret one (recorded only in data/<task>/lab)
    allow_computable_labels: bool = False
    dependence_check: bool = True  # repeat each verified run with a null supervisor
    provider_retry_s: float = 600.0  # how long an LLM researcher retries a failing provider before pausing
    idle: str = "sleep"  # what an LLM researcher with nothing to do does: sleep (with back-off) or stop
    verify_top_k: int = 3
    unsafe_no_sandbox: bool = False
    replay_transcript: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CampaignConfig:
        data = dict(data)
        data["researchers"] = tuple((kind, int(n)) for kind, n in data["researchers"])
        if "task" in data:  # run directories before research suites had one task and no transfer
            data["tasks"] = (data.pop("task"),)
        data["tasks"] = tuple(data["tasks"])
        data["transfer_tasks"] = tuple(data.get("transfer_tasks", ()))
        return cls(**data)


def parse_researchers(spec: str) -> tuple[tuple[str, int], ...]:
    """'search:4', 'claude:9', 'search:2,openai:1', 'agent-sdk:2' -> ((kind, count), ...)."""
    out = []
    for part in spec.split(","):
        kind, _, count = part.strip().partition(":")
        if kind not in ("search", "random", "claude", "openai", "replay", "agent-sdk"):
            raise AutoW2SError(f"--researchers: unknown kind {kind!r}; use search, random, claude, openai, agent-sdk "
                               "or replay (e.g. search:4 or claude:2,search:2)")
        if kind == "agent-sdk":
            from autow2s.researchers.agent_sdk import require_sdk

            require_sdk()  # say what to install now, not when the campaign starts its researchers
        try:
            n = int(count or "1")
        except ValueError:
            raise AutoW2SError(f"--researchers: {part!r} needs a count, like {kind}:4") from None
        if not 1 <= n <= 64:
            raise AutoW2SError(f"--researchers: count {n} must be between 1 and 64")
        out.append((kind, n))
    return tuple(out)


@dataclass
class RunState:
    """Mutable progress of a campaign, flushed after every change that matters for resume."""

    phase: str = "starting"  # starting | researching | verifying | done
    elapsed_s: float = 0.0
    researchers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The vanilla baseline's verified runs (task -> id), so a resume never repeats them.
    baseline_verify_ids: dict[str, int] = field(default_factory=dict)
    baseline_snapshot: str | None = None
    transfer_ids: dict[str, int] = field(default_factory=dict)  # "<snapshot>:<task>" -> transfer run id

    @classmethod
    def load(cls, path: Path) -> RunState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        researchers = dict(data["researchers"])
        researchers.pop("baseline-vanilla", None)  # run directories before 0.2 kept the baseline here
        return cls(phase=data["phase"], elapsed_s=data["elapsed_s"], researchers=researchers,
                   baseline_verify_ids=dict(data.get("baseline_verify_ids") or {}),
                   baseline_snapshot=data.get("baseline_snapshot"), transfer_ids=dict(data.get("transfer_ids") or {}))

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))


class RunDir:
    """Paths of one campaign's run directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    config = property(lambda self: self.root / "campaign.json")
    secrets = property(lambda self: self.root / "secrets.json")
    state = property(lambda self: self.root / "state.json")
    prices = property(lambda self: self.root / "prices.json")
    data = property(lambda self: self.root / "data")
    transfer_data = property(lambda self: self.root / "transfer-data")  # the lab's only; hidden from researchers
    task_view = property(lambda self: self.root / "task-view")  # /task in the sandbox when there are several
    lab_state = property(lambda self: self.root / "lab-state")
    lab_log = property(lambda self: self.root / "lab.log")
    jobs = property(lambda self: self.root / "jobs")
    spend = property(lambda self: self.root / "spend.jsonl")
    leaderboard = property(lambda self: self.root / "leaderboard.json")

    def workspace(self, name: str) -> Path:
        return self.root / "workspaces" / name

    def researcher_dir(self, name: str) -> Path:
        return self.root / "researchers" / name

    def load_config(self) -> CampaignConfig:
        if not self.config.exists():
            raise AutoW2SError(f"{self.root}: no campaign.json; is this a run directory of `autow2s run`?")
        return CampaignConfig.from_json(json.loads(self.config.read_text()))

    def load_secrets(self) -> dict[str, Any]:
        return json.loads(self.secrets.read_text()) if self.secrets.exists() else {}

    def save_secrets(self, secrets: dict[str, Any]) -> None:
        write_json_atomic(self.secrets, secrets, mode=0o600)
