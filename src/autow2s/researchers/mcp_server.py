"""`autow2s mcp`: one researcher's tool set as an MCP server, so any agent harness can be a researcher.

The tools are exactly the ones our own researchers get (tool_specs.TOOLS, with their JSON schemas),
executed by that researcher's ToolBox: sandbox tools run in its sandbox, lab tools use its own lab
token, and an `error: ...` result comes back as an MCP tool error (isError). The harness's own shell
and file tools must be off, or its actions would bypass the sandbox (README: "Any agent harness").

The server answers at once (the tool list is static) while the toolbox is built in the background:
a resumable campaign's lab can take a while to start, and harnesses give servers little time to
answer the handshake. A tool call waits for it.
"""

from __future__ import annotations

import re
import signal
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from autow2s.errors import AutoW2SError
from autow2s.rundir.layout import RunDir

SERVER_NAME = "autow2s"
SETUP_TIMEOUT_S = 600.0  # a tool call waits this long for the lab; the lab's own readiness wait is 240 s
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
INSTRUCTIONS = ("These are the tools of one researcher in an autow2s weak-to-strong supervision campaign. Shell and "
                "file tools run in your sandbox (workspace at /workspace, task data read-only at /task); lab tools "
                "spend your own evaluation budget. Start with read_file METHOD_REFERENCE.md and lab_status.")


def build_server(call: Callable[[str, dict[str, Any]], str], name: str = SERVER_NAME) -> Any:
    """An `mcp` low-level Server whose tools are TOOLS and whose calls go to `call` (a ToolBox.call).

    `call` blocks (a job can run for minutes), so it runs in a worker thread.
    """
    import anyio.to_thread
    import mcp.types as types
    from mcp.server.lowlevel import Server

    from autow2s.researchers.tool_specs import TOOLS

    tools = [types.Tool(name=spec.name, description=spec.description, input_schema=spec.parameters)
             for spec in TOOLS]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        text = await anyio.to_thread.run_sync(call, params.name, arguments, abandon_on_cancel=True)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                    is_error=text.startswith("error:"))

    return Server(name, instructions=INSTRUCTIONS, on_list_tools=list_tools, on_call_tool=call_tool)


class ResearcherTools:
    """The ToolBox of one researcher of a run directory, built in a thread that also owns the lab it starts.

    Why a thread that lives until close(): the lab child dies with the thread that started it
    (PR_SET_PDEATHSIG), so the thread that starts it must outlive every call.
    """

    def __init__(self, run_dir: Path, name: str) -> None:
        if not NAME_PATTERN.match(name):
            raise AutoW2SError(f"--researcher {name!r}: use letters, digits, '.', '_' or '-' (e.g. search-1)")
        self.run_dir, self.name = run_dir, name
        self.closing = threading.Event()  # also the toolbox's stop: running jobs end when the server does
        self._ready = threading.Event()
        self._lock = threading.Lock()  # one call at a time, as in autow2s's own researcher loop
        self._toolbox: Any = None
        self._problem: str | None = None
        self._thread = threading.Thread(target=self._own, name=f"mcp-{name}", daemon=True)

    def start(self) -> ResearcherTools:
        self._thread.start()
        return self

    def call(self, tool: str, arguments: dict[str, Any]) -> str:
        """ToolBox.call once the toolbox is ready; never raises."""
        if not self._ready.wait(SETUP_TIMEOUT_S):
            return "error: the campaign's lab is still starting; call the tool again in a minute"
        if self._problem is not None:
            return f"error: the autow2s MCP server could not open researcher {self.name}: {self._problem}"
        with self._lock:
            return str(self._toolbox.call(tool, arguments))

    def wait_ready(self, timeout: float = SETUP_TIMEOUT_S) -> str | None:
        """None once the toolbox is ready, else what went wrong."""
        if not self._ready.wait(timeout):
            return "the lab did not start in time"
        return self._problem

    def close(self) -> None:
        self.closing.set()
        self._thread.join(timeout=60)

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
        self.closing.wait()
        if executor is not None:
            executor.shutdown()
        if started_lab and campaign is not None:
            campaign.stop_lab()

    def _open(self) -> tuple[Any, Any, bool]:
        from rich.console import Console

        from autow2s.campaign.runner import Campaign
        from autow2s.executor import LocalExecutor

        campaign = Campaign.resume(self.run_dir, Console(stderr=True))
        campaign._prepare_data()
        secrets = campaign.paths.load_secrets()
        running = campaign.paths.running_lab()  # the campaign is running: use its lab
        started_lab = running is None
        lab_url = campaign._start_lab(secrets) if running is None else running
        executor = LocalExecutor(campaign.paths.jobs, unsafe_no_sandbox=campaign.config.unsafe_no_sandbox)
        toolbox = campaign.toolbox(self.name, lab_url, secrets, executor, others=self._others(campaign),
                                   stop=self.closing)
        self._toolbox = toolbox
        return campaign, executor, started_lab

    def _others(self, campaign: Any) -> tuple[Path, ...]:
        """Every other researcher's workspace: the campaign's own, and any other folder in workspaces/."""
        kinds = [kind for kind, count in campaign.config.researchers for _ in range(count)]
        names = {f"{kind}-{i + 1}" for i, kind in enumerate(kinds)}  # as Campaign._workers names them
        root = campaign.paths.workspace(self.name).parent
        if root.is_dir():
            names |= {path.name for path in root.iterdir() if path.is_dir()}
        return tuple(campaign.paths.workspace(other) for other in sorted(names - {self.name}))


def serve_stdio(server: Any) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def serve_http(server: Any, port: int, host: str = "127.0.0.1") -> None:
    import uvicorn

    app = server.streamable_http_app(host=host)
    typer.echo(f"autow2s MCP server (streamable HTTP): http://{host}:{port}/mcp", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def mcp_command(
    run_dir: Path = typer.Argument(..., help="a run directory of `autow2s run` (running, finished or resumable)"),
    researcher: str = typer.Option(..., "--researcher", help="whose tools to serve, e.g. search-1 (a new name "
                                   "gets its own workspace and lab token)"),
    transport: str = typer.Option("stdio", "--transport", help="stdio (the harness starts this command) or http "
                                  "(streamable HTTP on loopback, at /mcp)"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="the HTTP port (--transport http)"),
) -> None:
    """Serve one researcher's tools over MCP, for Claude Code, the Claude Agent SDK, Codex or any MCP client."""
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
    server = build_server(tools.call)
    # SIGTERM (how harnesses stop a server; uvicorn re-raises it after its graceful shutdown) becomes a normal
    # exit, so the `finally` below stops the lab this server started and removes its lab.url.
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
