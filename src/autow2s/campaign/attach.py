"""`autow2s mcp`: attach an outside agent harness to a campaign as one of its researchers.

The server answers at once (the tool list is static) while the researcher's toolbox is opened in
the background: a resumable campaign's lab can take a while to start, and harnesses give servers
little time to answer the handshake. A tool call waits for it. The harness's own shell and file
tools must be off, or its actions would bypass the sandbox (README: "Any agent harness").

Attached to a campaign that is researching, the researcher keeps the campaign's clock: its jobs
end at the campaign's research deadline and nothing new starts once the campaign verifies (attached
to a finished campaign, it researches on with no deadline: nothing else runs then). Its
jobs take one CPU slot of their own (the campaign's executor already counts every CPU).
"""

from __future__ import annotations

import re
import signal
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import typer

from autow2s.errors import AutoW2SError
from autow2s.rundir.layout import RunDir, RunState

SETUP_TIMEOUT_S = 600.0  # a tool call waits this long for the lab; the lab's own readiness wait is 240 s
CLOCK_POLL_S = 2.0  # how often the campaign's state.json is read for its research deadline
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESEARCH_OVER = ("error: the campaign's research phase is over (it is verifying or done), so nothing new runs; "
                 "the leaderboard and your lab_status still answer")


class ResearcherTools:
    """The ToolBox of one researcher of a run directory, opened in a thread that also owns the lab it starts.

    Why a thread that lives until close(): the lab child dies with the thread that started it
    (PR_SET_PDEATHSIG), so the thread that starts it must outlive every call.
    """

    def __init__(self, run_dir: Path, name: str) -> None:
        if not NAME_PATTERN.match(name):
            raise AutoW2SError(f"--researcher {name!r}: use letters, digits, '.', '_' or '-' (e.g. search-1)")
        self.run_dir, self.name = run_dir, name
        self.closing = threading.Event()  # the server is shutting down
        self.research_over = threading.Event()  # also the toolbox's stop: running jobs end with the campaign's research
        self._ready = threading.Event()
        self._lock = threading.Lock()  # one call at a time, as in autow2s's own researcher loop
        self.toolbox: Any = None
        self.direction: Any = None
        self._problem: str | None = None
        self._thread = threading.Thread(target=self._own, name=f"mcp-{name}", daemon=True)

    def start(self) -> ResearcherTools:
        self._thread.start()
        return self

    def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """ToolBox.call once the toolbox is ready; never raises."""
        problem = self.wait_ready()
        if problem is not None:
            return f"error: the autow2s MCP server could not open researcher {self.name}: {problem}"
        if self.research_over.is_set() and tool not in ("leaderboard", "lab_status", "read_file", "list_files",
                                                        "read_finding", "search_findings", "notebook"):
            return RESEARCH_OVER
        with self._lock:
            return str(self.toolbox.call(tool, arguments))

    def locked(self, read: Any) -> Any:
        """Run a reader of the toolbox (a prompt, a resource) under the same one-at-a-time lock as calls."""
        problem = self.wait_ready()
        if problem is not None:
            raise RuntimeError(f"the autow2s MCP server could not open researcher {self.name}: {problem}")
        with self._lock:
            return read()

    def wait_ready(self, timeout: float = SETUP_TIMEOUT_S) -> str | None:
        """None once the toolbox is ready, else what went wrong."""
        if not self._ready.wait(timeout):
            return "the campaign's lab is still starting; call again in a minute"
        return self._problem

    def close(self) -> None:
        self.closing.set()
        self.research_over.set()
        self._thread.join(timeout=30)

    def _own(self) -> None:
        campaign, executor, started_lab = None, None, False
        try:
            campaign, executor, started_lab = self._open()
        except AutoW2SError as exc:
            self._problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - report it to the client instead of dying silently
            self._problem = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            self._ready.set()
        if campaign is not None and not started_lab:
            self._follow_the_campaigns_clock(campaign)
        self.closing.wait()
        if executor is not None:
            executor.shutdown()
        if started_lab and campaign is not None:
            campaign.stop_lab()

    def _open(self) -> tuple[Any, Any, bool]:
        from rich.console import Console

        from autow2s.campaign.runner import Campaign
        from autow2s.campaign.state import researcher_names
        from autow2s.executor import LocalExecutor

        campaign = Campaign.resume(self.run_dir, Console(stderr=True))
        campaign.prepare_data()
        secrets = campaign.paths.load_secrets()
        running = campaign.paths.running_lab()  # the campaign is running: use its lab
        started_lab = running is None
        lab_url = campaign.start_lab(secrets) if running is None else running
        executor = LocalExecutor(campaign.paths.jobs, cpus=1, unsafe_no_sandbox=campaign.config.unsafe_no_sandbox)
        names = researcher_names(campaign.config.researchers)
        self.direction = campaign.direction_for(self.name)
        others = self._others(campaign, names)
        self.toolbox = campaign.toolbox(self.name, lab_url, secrets, executor, others=others, stop=self.research_over,
                                        deadline=self._deadline(campaign) if not started_lab else None)
        return campaign, executor, started_lab

    @staticmethod
    def _deadline(campaign: Any) -> float | None:
        """The campaign's research deadline as a time.monotonic() value, from its state.json: now while it verifies,
        None once it is done (attached to a finished campaign, research goes on outside its clock)."""
        state = RunState.load(campaign.paths.state)
        if state.phase == "done":
            return None
        if state.phase not in ("starting", "researching"):
            return time.monotonic()
        return time.monotonic() + max(0.0, campaign.config.budget_s - state.elapsed_s)

    def _follow_the_campaigns_clock(self, campaign: Any) -> None:
        """Keep the toolbox's deadline on the running campaign's, and stop its jobs when research ends."""
        def follow() -> None:
            while not self.closing.wait(CLOCK_POLL_S):
                deadline = self._deadline(campaign)
                self.toolbox.deadline = deadline
                if deadline is not None and deadline <= time.monotonic():
                    self.research_over.set()
                    return
        threading.Thread(target=follow, name=f"mcp-clock-{self.name}", daemon=True).start()

    def _others(self, campaign: Any, names: list[str]) -> tuple[Path, ...]:
        """Every other researcher's workspace: the campaign's own, and any other folder in workspaces/."""
        root = campaign.paths.workspace(self.name).parent
        known = set(names)
        if root.is_dir():
            known |= {path.name for path in root.iterdir() if path.is_dir()}
        return tuple(campaign.paths.workspace(other) for other in sorted(known - {self.name}))


def mcp_command(
    run_dir: Path = typer.Argument(..., help="a run directory of `autow2s run` (running, finished or resumable)"),
    researcher: str = typer.Option(..., "--researcher", help="whose tools to serve, e.g. search-1 (a new name "
                                   "gets its own workspace and lab token)"),
    transport: str = typer.Option("stdio", "--transport", help="stdio (the harness starts this command) or http "
                                  "(streamable HTTP on loopback, at /mcp)"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="the HTTP port (--transport http)"),
) -> None:
    """Serve one researcher's tools over MCP, for Claude Code, the Claude Agent SDK, Codex or any MCP client."""
    from autow2s.researchers.mcp_content import toolbox_content
    from autow2s.researchers.mcp_server import ServerContent, build_server, serve_http, serve_stdio

    if transport not in ("stdio", "http"):
        typer.echo(f"error: --transport must be stdio or http, got {transport!r}", err=True)
        raise typer.Exit(code=2)
    try:
        tools = ResearcherTools(run_dir, researcher)
        if not RunDir(run_dir).is_campaign():
            raise AutoW2SError(f"{run_dir}: no campaign.json; point at a run directory of `autow2s run`")
    except AutoW2SError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    tools.start()

    def content() -> ServerContent:
        return toolbox_content(tools.toolbox, tools.direction)

    from autow2s.researchers.mcp_server import instructions_text
    from autow2s.researchers.views import FORUM_MOUNT, REFERENCE_PATH

    # The prompt and resources are read through the toolbox once it is open, under the call lock.
    served = ServerContent(instructions=instructions_text(REFERENCE_PATH, FORUM_MOUNT),
                           brief=lambda: tools.locked(lambda: content().brief()),
                           resources=lambda: tools.locked(lambda: content().resources()),
                           read_resource=lambda uri: tools.locked(lambda: content().read_resource(uri)))
    server = build_server(tools.call, served)
    # SIGTERM (how harnesses stop a server) becomes a normal exit, so the `finally` below stops the lab this
    # server started and removes its lab.url. Over HTTP, uvicorn turns it into its (2 s) graceful shutdown.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if transport == "stdio":
            serve_stdio(server)
        else:
            serve_http(server, port)
    except KeyboardInterrupt:
        pass
    finally:
        tools.close()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)
