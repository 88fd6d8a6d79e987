"""The campaign's settings: CampaignConfig, saved once in the run directory (autow2s.rundir) and reused on --resume."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from autow2s.errors import AutoW2SError
from autow2s.rundir.layout import RunDir
from autow2s.testbed.tasks.suites import DEFAULT_RESEARCH_SUITE, SUITES


@dataclass(frozen=True)
class CampaignConfig:
    """What `autow2s run` was asked to do; saved once and reused as-is on --resume.

    The one place the campaign's defaults live: `autow2s run` reads its option defaults from here.
    """

    tasks: tuple[str, ...] = SUITES[DEFAULT_RESEARCH_SUITE].tasks  # research tasks: what researchers optimise
    transfer_tasks: tuple[str, ...] = ()  # held out: only the final step runs methods on them
    transfer_pool: tuple[str, ...] = ()  # what `--transfer-tasks auto` drew them from (empty: the user named them)
    researchers: tuple[tuple[str, int], ...] = (("search", 4),)
    budget_s: float = 120.0  # seconds of research; `make run`'s whole campaign takes about 6 min cached on 2 cores
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
    context_tokens: int = 120_000  # an LLM researcher's history budget (llm_policy.DEFAULT_CONTEXT_TOKENS)
    idle: str = "sleep"  # what an LLM researcher with nothing to do does: sleep (with back-off) or stop
    verify_top_k: int = 3
    unsafe_no_sandbox: bool = False
    replay_transcript: str | None = None

    @property
    def transfer_drawn(self) -> bool:
        """The transfer tasks are a secret draw: the campaign names them to the user only at the end."""
        return bool(self.transfer_pool)

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
        data["transfer_pool"] = tuple(data.get("transfer_pool", ()))
        return cls(**data)

    @classmethod
    def load(cls, paths: RunDir) -> CampaignConfig:
        """The config a run directory was created with (campaign.json)."""
        return cls.from_json(paths.config_json())


def researcher_names(researchers: tuple[tuple[str, int], ...]) -> list[str]:
    """The campaign's researchers by name, in order: search-1, search-2, claude-3, ... (one place for the rule)."""
    kinds = [kind for kind, count in researchers for _ in range(count)]
    return [f"{kind}-{i + 1}" for i, kind in enumerate(kinds)]


def format_researchers(researchers: tuple[tuple[str, int], ...]) -> str:
    """((kind, count), ...) -> 'search:2,claude:1', the form --researchers takes."""
    return ",".join(f"{kind}:{count}" for kind, count in researchers)


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
