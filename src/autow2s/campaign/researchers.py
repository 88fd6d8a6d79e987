"""Build each researcher of a campaign (its toolbox and policy) and run its loop in a thread."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autow2s.errors import AutoW2SError, ProviderRejected
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, CapReached, Ledger
from autow2s.researchers.directions import Direction
from autow2s.researchers.search_policy import random_policy, search_policy
from autow2s.researchers.toolbox import MIN_JOB_SECONDS, ToolBox

if TYPE_CHECKING:  # imported when used: it pulls numpy and the testbed
    from autow2s.researchers.search_researcher import SearchResearcher

IDLE_AFTER = 2  # iterations in a row that end without a tool call
IDLE_FIRST_SLEEP_S = 30.0
IDLE_MAX_SLEEP_S = 600.0
IDLE_POLL_S = 5.0


@dataclass
class ResearcherStatus:
    """What the dashboard and resume read about a researcher. Threads change it only through its lock."""

    name: str
    kind: str
    direction: str
    state: str = "waiting"  # waiting | running | idle | capped | stopped | rejected | error
    experiments: int = 0
    best_dev_pgr: float | None = None
    iterations: int = 0
    error: str = ""
    verifications: dict[str, dict[str, int]] = field(default_factory=dict)  # snapshot_id -> {task: verify_id}
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def update(self, **values: Any) -> None:
        with self._lock:
            for key, value in values.items():
                setattr(self, key, value)

    def record_verification(self, snapshot_id: str, task: str, verify_id: int) -> None:
        with self._lock:
            self.verifications.setdefault(snapshot_id, {})[task] = int(verify_id)

    def to_json(self) -> dict[str, Any]:
        """A consistent copy, safe to serialise while the researcher's thread goes on."""
        with self._lock:
            data = {k: v for k, v in vars(self).items() if not k.startswith("_")}
            data["verifications"] = {snapshot: dict(runs) for snapshot, runs in self.verifications.items()}
            return data


def normalise_verifications(saved: Any, first_task: str) -> dict[str, dict[str, int]]:
    """A saved `verifications` in today's shape, {snapshot_id: {task: verify_id}}.

    A state saved before research suites holds {snapshot_id: verify_id}, all on the one task it had:
    those become {snapshot_id: {first_task: verify_id}}. Entries already in the new shape are kept.
    """
    result: dict[str, dict[str, int]] = {}
    for snapshot_id, runs in (saved or {}).items():
        if isinstance(runs, dict):
            result[str(snapshot_id)] = {str(task): int(vid) for task, vid in runs.items()}
        else:
            result[str(snapshot_id)] = {first_task: int(runs)}
    return result


@dataclass
class ResearcherWorker:
    """One researcher's loop: steps until told to stop, its deadline passes, or its cap is reached.

    A step returns what its iteration did (an LLM policy's IterationOutcome; None for the search
    researchers). An LLM researcher whose iterations end without a tool call IDLE_AFTER times in a
    row is idle: it sleeps with a doubling back-off and wakes early on news (a new finding, a
    changed leaderboard), or stops when the campaign says `--idle stop`.
    """

    status: ResearcherStatus
    toolbox: ToolBox
    step: Callable[[int], Any]
    stop: threading.Event
    deadline: float
    log_path: Path
    idle: str = "sleep"
    wrap_up: Callable[[], Any] | None = None  # once research ends (deadline or stop), not after an error or a cap
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.status.name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        quiet, backoff = 0, IDLE_FIRST_SLEEP_S
        self.status.update(state="running")
        # No iteration starts when too little time is left for a job: it could only record failures.
        while not self.stop.is_set() and time.monotonic() < self.deadline - MIN_JOB_SECONDS:
            try:
                self.toolbox.refresh_views()  # the forum mirror at /forum (also refreshed by the tools themselves)
                outcome = self.step(self.status.iterations)
                self.status.update(iterations=self.status.iterations + 1)
                if getattr(outcome, "reason", None) == "cap":
                    raise CapReached("the dollar cap was reached during the iteration")
                quiet = quiet + 1 if getattr(outcome, "calls_made", 1) == 0 else 0
                if quiet < IDLE_AFTER:
                    backoff = IDLE_FIRST_SLEEP_S
                    continue
                if self.idle == "stop":
                    self.status.update(state="stopped", error="idle: its last iterations made no tool call")
                    return
                self.status.update(state="idle")
                self._sleep_until_news(backoff)
                backoff = min(2 * backoff, IDLE_MAX_SLEEP_S)
                self.status.update(state="running")
            except CapReached as exc:
                self.status.update(state="capped", error=str(exc))
                return
            except ProviderRejected as exc:  # a bad key or request: no retry helps; the campaign goes on
                self.status.update(state="rejected", error=str(exc)[:300])
                self._log(f"{type(exc).__name__}: {exc}")
                return
            except AutoW2SError as exc:  # the lab refused, a budget ran out, the provider is away: pause, go on
                self.status.update(error=str(exc)[:300])
                self._log(f"{type(exc).__name__}: {exc}")
                self.stop.wait(5.0)
            except Exception as exc:  # a bug: record it and stop this researcher, not the campaign
                self.status.update(state="error", error=f"{type(exc).__name__}: {exc}"[:300])
                self._log(traceback.format_exc())
                return
        self._wrap_up()
        self.status.update(state="stopped")

    def _wrap_up(self) -> None:
        if self.wrap_up is None:
            return
        try:
            self.wrap_up()
            self.toolbox.refresh_views(force=True)  # its own view shows its last word too
        except Exception:  # noqa: BLE001 - a summary must not turn a finished researcher into an error
            self._log(f"the wrap-up finding failed:\n{traceback.format_exc()}")

    def _news(self) -> tuple[Any, ...]:
        """What an idle researcher waits for: the newest finding and the verified runs on the leaderboard of
        every research task."""
        lab, tasks = self.toolbox.lab, self.toolbox.tasks
        findings = lab.search_findings(sort="new", limit=1, task=self.toolbox.forum_task)
        boards = tuple(tuple(sorted((row["verify_id"], row.get("holdout_pgr")) for row in lab.leaderboard(task)))
                       for task in tasks)
        return (findings[0]["id"] if findings else None, boards)

    def _sleep_until_news(self, seconds: float) -> None:
        until = min(self.deadline, time.monotonic() + seconds)
        try:
            seen = self._news()
        except AutoW2SError:
            seen = None
        while not self.stop.is_set() and time.monotonic() < until:
            self.stop.wait(min(IDLE_POLL_S, max(0.0, until - time.monotonic())))
            try:
                if seen is not None and self._news() != seen:
                    return
            except AutoW2SError:
                continue

    def _log(self, text: str) -> None:
        with self.log_path.open("a") as handle:
            handle.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")


def on_event(status: ResearcherStatus, persist: Callable[[], None]) -> Callable[[str, dict[str, Any]], None]:
    def handle(kind: str, data: dict[str, Any]) -> None:
        if kind == "experiment":
            score = data.get("mean_dev_pgr")
            best = status.best_dev_pgr
            status.update(experiments=status.experiments + 1,
                          best_dev_pgr=score if score is not None and (best is None or score > best) else best)
            persist()
        elif kind == "verification" and data.get("verify_ids"):
            for task, verify_id in data["verify_ids"].items():
                status.record_verification(data["snapshot_id"], task, int(verify_id))
            persist()
    return handle


def provider_wait_hook(status: ResearcherStatus) -> Callable[[str | None], None]:
    """Show "waiting for the provider" on the dashboard while the chat layer retries, and clear it after."""
    def hook(message: str | None) -> None:
        if message is not None:
            status.update(state="waiting for provider", error=message[:300])
        elif status.state == "waiting for provider":
            status.update(state="running")
    return hook


@dataclass
class SearchStep:
    """A search researcher's loop iteration, and its wrap-up finding once research ends."""

    researcher: SearchResearcher

    def __call__(self, iteration: int) -> dict[str, Any]:
        return self.researcher.step()

    def wrap_up(self) -> str | None:
        return self.researcher.wrap_up()


def make_step(kind: str, toolbox: ToolBox, direction: Direction, seed: int, researcher_dir: Path,
              ledger: Ledger, model: str | None, base_url: str | None, replay: str | None,
              status: ResearcherStatus | None = None, provider_retry_s: float = 600.0,
              context_tokens: int | None = None) -> Callable[[int], Any]:
    """The function one loop iteration calls, for each kind of researcher.

    context_tokens: the LLM researchers' history budget (`--context-tokens`; None: the policy's default).
    """
    if kind in ("search", "random"):
        from autow2s.researchers.search_researcher import SearchResearcher

        researcher = SearchResearcher(toolbox=toolbox, direction=direction, seed=seed,
                                      trials_path=researcher_dir / "trials.jsonl",
                                      policy=search_policy if kind == "search" else random_policy)
        return SearchStep(researcher)
    if kind == "replay":
        from autow2s.researchers.llm_policy import replay_calls

        if not replay:
            raise AutoW2SError("replay researchers need --replay TRANSCRIPT (a transcript.jsonl of an earlier run)")
        calls = replay_calls(Path(replay))

        def replay_step(iteration: int) -> None:
            if iteration >= len(calls):
                raise CapReached("the replay transcript is finished")
            name, arguments = calls[iteration]
            toolbox.call(name, arguments)
        return replay_step
    if kind == "agent-sdk":
        from autow2s.researchers.agent_sdk import AgentSDKResearcher

        agent = AgentSDKResearcher(toolbox=toolbox, direction=direction, ledger=ledger, researcher_dir=researcher_dir,
                                   model=model or DEFAULT_CLAUDE_MODEL, base_url=base_url)
        return agent.step
    from autow2s.researchers.chat import AnthropicChat, OpenAIChat
    from autow2s.researchers.llm_policy import DEFAULT_CONTEXT_TOKENS, LLMPolicy

    error_log = researcher_dir / "errors.log"
    on_wait = provider_wait_hook(status) if status is not None else None
    chat: AnthropicChat | OpenAIChat
    if kind == "claude":
        chat = AnthropicChat(model or DEFAULT_CLAUDE_MODEL, base_url=base_url, provider_retry_s=provider_retry_s,
                             error_log=error_log, on_wait=on_wait)
    else:
        if not model:
            raise AutoW2SError("openai researchers need --model NAME (and --base-url for a local server)")
        chat = OpenAIChat(model, base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY"),
                          provider_retry_s=provider_retry_s, error_log=error_log, on_wait=on_wait)
    policy = LLMPolicy(chat=chat, ledger=ledger, context_tokens=context_tokens or DEFAULT_CONTEXT_TOKENS)
    return lambda iteration: policy.run_iteration(toolbox, direction, iteration,
                                                  researcher_dir / "transcript.jsonl")
