"""The trusted-side tools (scoring, forum, snapshots, verification, status, wait), mixed into ToolBox.

Each calls the lab with the researcher's own token; what the lab refuses comes back as its own
explanation. With several research tasks: evaluate_predictions needs task=<name>; leaderboard
defaults to the first research task; lab_status without a task answers {task: status} for each;
request_verification asks for a verified run on every research task; the forum is campaign-wide
and is read and written under the first research task. `wait` blocks without spending tokens
until something the researcher cares about happens (a verified run on any research task finishes,
a new finding), so an agent with nothing to do does not poll.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from autow2s.researchers.lab_client import LabError, pack_method_dir
from autow2s.researchers.output import ToolError
from autow2s.safefs import UnsafePathError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from autow2s.researchers.lab_client import LabClient
    from autow2s.researchers.toolbox import ToolBox
    from autow2s.safefs import SafeTree

DEFAULT_WAIT_S = 300
WAIT_POLL_S = 3.0


def _read_predictions(text: str, path: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); write it with "
                        "json.dump({'predictions': [...]}, f): one P(label=1) per test item") from None
    if isinstance(data, dict):
        if "predictions" not in data:
            raise ToolError(f"{path} has no 'predictions' key (it has {', '.join(map(str, list(data)[:8])) or 'none'}); "
                            "write {\"predictions\": [p_1, ..., p_n]} with one P(label=1) per test item")
        data = data["predictions"]
    if not isinstance(data, list):
        raise ToolError(f"{path}: 'predictions' must be a list of numbers, got {type(data).__name__}")
    return data


class _Host(Protocol):
    """What LabTools' methods use of `self`: the ToolBox it is mixed into (LabTools' own helpers included)."""

    lab: LabClient
    tasks: tuple[str, ...]
    stop: threading.Event | None
    poll_s: float

    @property
    def files(self) -> SafeTree: ...

    @property
    def on_event(self) -> Callable[[str, dict[str, Any]], None]: ...
    @property
    def several_tasks(self) -> bool: ...
    @property
    def forum_task(self) -> str | None: ...
    def one_task(self, name: str | None, tool: str) -> str: ...
    def check_task(self, name: str, tool: str) -> str: ...
    def stopping(self) -> bool: ...
    def time_left(self) -> float | None: ...
    def _rel(self, relative: str | None) -> str: ...
    def _read_text(self, path: str) -> str: ...
    def _my_runs(self) -> dict[tuple[str, int], dict[str, Any]]: ...
    def _news_marks(self) -> tuple[dict[tuple[str, int], str], int]: ...


if TYPE_CHECKING:
    def _toolbox_is_a_host(box: ToolBox) -> _Host:
        return box  # mypy checks here that ToolBox provides everything _Host names


class LabTools:
    """Lab-side tools; `self` is the ToolBox (typed as the _Host protocol: what these methods use of it)."""

    poll_s: float = WAIT_POLL_S

    def _tool_evaluate_predictions(self: _Host, predictions_file: str, task: str | None = None,
                                   snapshot_id: str | None = None) -> Any:
        task = self.one_task(task, "evaluate_predictions")
        predictions = _read_predictions(self._read_text(predictions_file), predictions_file)
        return self.lab.evaluate(task, predictions, snapshot_id)

    def _tool_share_finding(self: _Host, type: str, title: str, body: str, tags: list[str] | None = None,
                            evaluation_id: int | None = None, verify_id: int | None = None) -> Any:
        finding = self.lab.share_finding(type=type, title=title, body=body, tags=tags or [], task=self.tasks[0],
                                         evaluation_id=evaluation_id, verify_id=verify_id)
        self.on_event("finding", {"id": finding.get("id"), "type": type})
        return finding

    def _tool_search_findings(self: _Host, query: str | None = None, sort: str | None = None,
                              limit: int = 10) -> Any:
        return self.lab.search_findings(q=query, sort=sort, limit=limit, task=self.forum_task)

    def _tool_read_finding(self: _Host, finding_id: int) -> Any:
        return self.lab.read_finding(finding_id)

    def _tool_comment(self: _Host, finding_id: int, body: str) -> Any:
        return self.lab.comment(finding_id, body)

    def _tool_vote(self: _Host, finding_id: int, value: int) -> Any:
        return self.lab.vote(finding_id, value)

    def _tool_leaderboard(self: _Host, limit: int = 20, task: str | None = None) -> Any:
        return self.lab.leaderboard(self.check_task(task or self.tasks[0], "leaderboard"), limit=limit)

    def _tool_save_snapshot(self: _Host, method_dir: str, message: str, parent_id: str | None = None) -> Any:
        relative = self._rel(method_dir)
        if self.files.kind(f"{relative}/method.py") != "file":
            raise ToolError(f"{method_dir}: no method.py there; save_snapshot takes a method directory")
        try:
            packed = pack_method_dir(self.files, relative)
        except UnsafePathError as exc:
            raise ToolError(f"save_snapshot: {exc}") from None
        snapshot = self.lab.save_snapshot(packed, name=relative.rsplit("/", 1)[-1], message=message,
                                          parent_id=parent_id)
        self.on_event("snapshot", {"snapshot_id": snapshot["snapshot_id"]})
        return snapshot

    def _tool_download_snapshot(self: _Host, snapshot_id: str) -> str:
        if not snapshot_id.isalnum():
            raise ToolError(f"snapshot_id {snapshot_id!r} is not a snapshot id (40 hex digits)")
        try:
            files = self.lab.download_snapshot(snapshot_id, self.files, f"prior_work/{snapshot_id}")
        except UnsafePathError as exc:
            raise ToolError(f"download_snapshot: {exc}") from None
        return f"downloaded {len(files)} files into prior_work/{snapshot_id}/: {', '.join(files)}"

    def _tool_request_verification(self: _Host, snapshot_id: str) -> Any:
        """A verified run on every research task. A task the lab refuses gets {"error": ...} in the answer
        (the others keep their runs); only when every task is refused does the call fail."""
        replies: dict[str, Any] = {}
        first_error: LabError | None = None
        for task in self.tasks:
            try:
                replies[task] = self.lab.request_verification(snapshot_id, task)
            except LabError as exc:
                if not self.several_tasks:
                    raise
                first_error = first_error or exc
                replies[task] = {"error": str(exc)}
        verify_ids = {task: int(reply["verify_id"]) for task, reply in replies.items()
                      if isinstance(reply, dict) and reply.get("verify_id") is not None}
        if verify_ids:
            self.on_event("verification", {"snapshot_id": snapshot_id, "verify_ids": verify_ids})
        if not verify_ids and first_error is not None:
            raise first_error
        if not self.several_tasks:
            return replies[self.tasks[0]]  # one research task: the lab's answer, as it has always been
        return {"snapshot_id": snapshot_id, "verifications": replies}

    def _tool_lab_status(self: _Host, task: str | None = None) -> Any:
        if task is not None or not self.several_tasks:
            return self.lab.my_status(self.check_task(task or self.tasks[0], "lab_status"))
        return {name: self.lab.my_status(name) for name in self.tasks}

    # -- wait ------------------------------------------------------------------------------
    def _my_runs(self: _Host) -> dict[tuple[str, int], dict[str, Any]]:
        """(task, verify id) -> my verified run, on every research task."""
        return {(task, int(v["verify_id"])): {"task": task, **v} for task in self.tasks
                for v in self.lab.my_status(task)["verifications"]}

    def _news_marks(self: _Host) -> tuple[dict[tuple[str, int], str], int]:
        """((task, verify id) -> status of my runs, newest finding id on the forum)."""
        runs = {key: str(run["status"]) for key, run in self._my_runs().items()}
        newest = self.lab.search_findings(sort="new", limit=1, task=self.forum_task)
        return runs, int(newest[0]["id"]) if newest else 0

    def _tool_wait(self: _Host, timeout_s: int = DEFAULT_WAIT_S) -> str:
        started = time.monotonic()
        until = started + timeout_s
        left = self.time_left()
        if left is not None:
            until = min(until, time.monotonic() + max(0.0, left))
        runs, newest = self._news_marks()
        pending = sorted(key for key, state in runs.items() if state in ("queued", "running"))
        while time.monotonic() < until and not self.stopping():
            pause = min(self.poll_s, max(0.0, until - time.monotonic()))
            if self.stop is not None:
                self.stop.wait(pause)
            else:
                time.sleep(pause)
            try:
                now_runs, now_newest = self._news_marks()
            except LabError:
                continue  # a lab hiccup is not news; keep waiting
            finished = [key for key in pending if now_runs.get(key) not in ("queued", "running")]
            waited = f"after {time.monotonic() - started:.0f} s"
            if finished:
                mine = self._my_runs()
                details = [mine[key] if self.several_tasks else {k: v for k, v in mine[key].items() if k != "task"}
                           for key in finished if key in mine]
                return f"{waited}: verification finished: {json.dumps(details, default=str)}"
            if now_newest > newest:
                found = self.lab.search_findings(sort="new", limit=min(5, now_newest - newest), task=self.forum_task)
                fresh = [{"id": f["id"], "title": f["title"], "author": f.get("author"), "type": f.get("type")}
                         for f in found if int(f["id"]) > newest]
                return f"{waited}: new forum finding(s): {json.dumps(fresh)}; read_finding shows one"
        reason = "the campaign is stopping" if self.stopping() else (
            "the campaign's time is up" if left is not None and until < started + timeout_s else "timeout")
        shown = [f"{vid} ({task})" if self.several_tasks else str(vid) for task, vid in pending]
        return (f"waited {time.monotonic() - started:.0f} s: nothing new ({reason}); pending verifications: "
                f"{', '.join(shown) or 'none'}")
