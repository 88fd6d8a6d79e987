"""One researcher's tool set as an MCP server: its tools, a research brief prompt and readable resources.

The tools are exactly the ones our own researchers get (tool_specs.TOOLS, with their JSON schemas),
executed by that researcher's ToolBox: sandbox tools run in its sandbox, lab tools use its own lab
token, and an `error: ...` result comes back as an MCP tool error (isError). A harness shows the
prompt (`research_brief`: the researcher's direction, tasks, budgets and limits) as a slash command
and the resources (the method reference, the forum mirror, the notebook) as attachable context.

Which campaign and researcher the server serves is the campaign layer's business
(campaign/attach.py, `autow2s mcp`); this module only speaks the protocol.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SERVER_NAME = "autow2s"
BRIEF_PROMPT = "research_brief"


@dataclass(frozen=True)
class ResourceInfo:
    uri: str
    name: str
    description: str
    mime_type: str = "text/markdown"


@dataclass(frozen=True)
class ServerContent:
    """What the server offers besides tools, each read when a client asks (so it is never stale)."""

    instructions: str
    brief: Callable[[], str]
    resources: Callable[[], list[ResourceInfo]]
    read_resource: Callable[[str], str]


def instructions_text(reference_path: str, forum_path: str) -> str:
    """The server's instructions: what a harness shows the model first. Every path named here exists in a job."""
    return ("These are the tools of one researcher in an autow2s weak-to-strong supervision campaign. Shell and file "
            "tools run in your sandbox (your workspace at /workspace, the task data read-only at /task); lab tools "
            "spend your own evaluation budget. Start with the `research_brief` prompt (your direction, tasks, "
            f"budgets and limits), then read_file {reference_path} (the method contract) and call lab_status. "
            f"Other researchers' findings are mirrored read-only in {forum_path}/; the same files are MCP resources.")


def build_server(call: Callable[[str, dict[str, Any]], str], content: ServerContent | None = None,
                 name: str = SERVER_NAME) -> Any:
    """An `mcp` low-level Server whose tools are TOOLS and whose calls go to `call` (a ToolBox.call).

    `call` and the content readers block (a job can run for minutes), so they run in worker threads.
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

    if content is None:
        return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)

    brief = types.Prompt(name=BRIEF_PROMPT, title="Research brief",
                         description="Your research direction, the research tasks, your budgets and the limits in "
                                     "force, and how to work: the same brief autow2s's own researchers start from")

    async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[brief])

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name != BRIEF_PROMPT:
            raise ValueError(f"unknown prompt {params.name!r}; this server has {BRIEF_PROMPT!r}")
        text = await anyio.to_thread.run_sync(content.brief, abandon_on_cancel=True)
        return types.GetPromptResult(description=brief.description, messages=[
            types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))])

    async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
        found = await anyio.to_thread.run_sync(content.resources, abandon_on_cancel=True)
        return types.ListResourcesResult(resources=[
            types.Resource(uri=r.uri, name=r.name, description=r.description, mime_type=r.mime_type) for r in found])

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        text = await anyio.to_thread.run_sync(content.read_resource, uri, abandon_on_cancel=True)
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=uri, mime_type="text/markdown",
                                                                              text=text)])

    return Server(name, instructions=content.instructions, on_list_tools=list_tools, on_call_tool=call_tool,
                  on_list_prompts=list_prompts, on_get_prompt=get_prompt, on_list_resources=list_resources,
                  on_read_resource=read_resource)


def serve_stdio(server: Any) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def serve_http(server: Any, port: int, host: str = "127.0.0.1") -> None:
    """Streamable HTTP at /mcp. A client's open stream must not hold up a SIGTERM: graceful shutdown is 2 s."""
    import uvicorn

    app = server.streamable_http_app(host=host)
    print(f"autow2s MCP server (streamable HTTP): http://{host}:{port}/mcp", flush=True, file=sys.stderr)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                  timeout_graceful_shutdown=2)).run()
