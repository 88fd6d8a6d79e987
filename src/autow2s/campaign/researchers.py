"""Build each researcher of a campaign (its toolbox and policy) and run its loop in a thread."""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from autow2s.errors import AutoW2SError
from autow2s.researchers.accounting import DEFAULT_CLAUDE_MODEL, CapReached, Ledger
from autow2s.researchers.directions import Direction
from autow2s.researchers.lab_client import LabClient
from autow2s.researchers.search_policy import random_policy, search_policy
from autow2s.researchers.toolbox import ToolBox

FORUM_MIRROR_EVERY_S = 10.0


@dataclass
class ResearcherStatus:
    name: str
    kind: str
    direction: str
    state: str = "waiting"
    experiments: int = 0
    best_dev_pgr: float | None = None
    iterations: int = 0
    error: str = ""
    verifications: dict[str, int] = field(default_factory=dict)  # snapshot_id -> verify_id


def mirror_forum(lab: LabClient, task: str, workspace: Path) -> None:
    """Write the forum into workspace/forum/ as read-only markdown files, so researchers can grep it."""
    folder = workspace / "forum"
    folder.mkdir(parents=True, exist_ok=True)
    for finding in lab.search_findings(sort="new", limit=200, task=task):
        path = folder / f"{finding['id']:05d}.md"
        if path.exists():
            continue
        path.write_text(f"# {finding['title']}\n\ntype: {finding['type']} · author: {finding['author']} · "
                        f"tags: {', '.join(finding.get('tags', []))}\n\n{finding['body']}\n")
        os.chmod(path, 0o444)


@dataclass
class ResearcherWorker:
    """One researcher's loop: steps until told to stop, its deadline passes, or its cap is reached."""

    status: ResearcherStatus
    toolbox: ToolBox
    step: Callable[[int], None]
    stop: threading.Event
    deadline: float
    log_path: Path
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=self.status.name, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        last_mirror = 0.0
        self.status.state = "running"
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                if time.monotonic() - last_mirror > FORUM_MIRROR_EVERY_S:
                    mirror_forum(self.toolbox.lab, self.toolbox.task, self.toolbox.workspace)
                    last_mirror = time.monotonic()
                self.step(self.status.iterations)
                self.status.iterations += 1
            except CapReached as exc:
                self.status.state, self.status.error = "capped", str(exc)
                return
            except AutoW2SError as exc:  # the lab refused, a budget ran out: note it, pause, go on
                self.status.error = str(exc)[:300]
                self._log(f"{type(exc).__name__}: {exc}")
                self.stop.wait(5.0)
            except Exception as exc:  # a bug: record it and stop this researcher, not the campaign
                self.status.state, self.status.error = "error", f"{type(exc).__name__}: {exc}"[:300]
                self._log(traceback.format_exc())
                return
        self.status.state = "stopped"

    def _log(self, text: str) -> None:
        with self.log_path.open("a") as handle:
            handle.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")


def on_event(status: ResearcherStatus, persist: Callable[[], None]) -> Callable[[str, dict[str, Any]], None]:
    def handle(kind: str, data: dict[str, Any]) -> None:
        if kind == "experiment":
            status.experiments += 1
            score = data.get("mean_dev_pgr")
            if score is not None and (status.best_dev_pgr is None or score > status.best_dev_pgr):
                status.best_dev_pgr = score
            persist()
        elif kind == "verification" and data.get("verify_id"):
            status.verifications[data["snapshot_id"]] = int(data["verify_id"])
            persist()
    return handle


def make_step(kind: str, toolbox: ToolBox, direction: Direction, seed: int, researcher_dir: Path,
              ledger: Ledger, model: str | None, base_url: str | None, replay: str | None) -> Callable[[int], None]:
    """The function one loop iteration calls, for each kind of researcher."""
    if kind in ("search", "random"):
        from autow2s.researchers.search_researcher import SearchResearcher

        researcher = SearchResearcher(toolbox=toolbox, direction=direction, seed=seed,
                                      trials_path=researcher_dir / "trials.jsonl",
                                      policy=search_policy if kind == "search" else random_policy)
        return lambda iteration: researcher.step()
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
    from autow2s.researchers.chat import AnthropicChat, OpenAIChat
    from autow2s.researchers.llm_policy import LLMPolicy

    if kind == "claude":
        chat = AnthropicChat(model or DEFAULT_CLAUDE_MODEL, base_url=base_url)
    else:
        if not model:
            raise AutoW2SError("openai researchers need --model NAME (and --base-url for a local server)")
        chat = OpenAIChat(model, base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY"))
    policy = LLMPolicy(chat=chat, ledger=ledger)
    return lambda iteration: policy.run_iteration(toolbox, direction, iteration,
                                                  researcher_dir / "transcript.jsonl")
