"""The MCP server's prompt and resources for one researcher, read from its ToolBox when a client asks.

Resources are the researcher's read-only views (the method reference and the forum mirror, which
jobs see at /reference and /forum) and its notebook; the brief is the system prompt our own LLM
researchers get, with the lab's live budgets and the notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autow2s.researchers.lab_client import LabError
from autow2s.researchers.mcp_server import ResourceInfo, ServerContent, instructions_text
from autow2s.researchers.prompts import PromptLimits, research_brief
from autow2s.researchers.views import FORUM_MOUNT, REFERENCE_NAME, REFERENCE_PATH
from autow2s.safefs import SafeTree

if TYPE_CHECKING:
    from autow2s.researchers.directions import Direction
    from autow2s.researchers.toolbox import ToolBox

SCHEME = "autow2s://"
REFERENCE_URI = f"{SCHEME}reference/{REFERENCE_NAME}"
NOTEBOOK_URI = f"{SCHEME}notebook"
FORUM_PREFIX = f"{SCHEME}forum/"


def toolbox_content(toolbox: ToolBox, direction: Direction) -> ServerContent:
    """Instructions, the research brief and the resources of `toolbox`'s researcher."""

    def brief() -> str:
        labs: dict[str, dict[str, Any]] = {}
        for task in toolbox.tasks:
            try:
                labs[task] = toolbox.lab.my_status(task)
            except LabError:
                pass
        limits = PromptLimits(job_limits=toolbox.limits, max_turns=None, context_tokens=None, labs=labs,
                              seconds_left=toolbox.time_left(), several_tasks=toolbox.several_tasks)
        return research_brief(toolbox.tasks, direction, limits, toolbox._tool_notebook("read"))

    def resources() -> list[ResourceInfo]:
        toolbox.refresh_views(force=True)  # a client listing resources wants the forum as it is now
        found = [ResourceInfo(REFERENCE_URI, REFERENCE_PATH, "The method contract: ctx, the student, losses, Recipe, "
                                                             "examples (read-only)"),
                 ResourceInfo(NOTEBOOK_URI, "notebook", "Your notebook (the notebook tool appends to it)")]
        forum = SafeTree(toolbox.view_root)
        for name, kind in forum.list_dir("forum"):
            if kind == "file" and name.endswith(".md"):
                title = forum.read_text(f"forum/{name}", 4096).split("\n", 1)[0].lstrip("# ").strip()
                found.append(ResourceInfo(f"{FORUM_PREFIX}{name}", f"{FORUM_MOUNT}/{name}", f"forum finding: {title}"))
        return found

    def read(uri: str) -> str:
        if uri == REFERENCE_URI:
            return toolbox._read_text(REFERENCE_PATH)
        if uri == NOTEBOOK_URI:
            return toolbox._tool_notebook("read")
        if uri.startswith(FORUM_PREFIX):
            return toolbox._read_text(f"{FORUM_MOUNT}/{uri[len(FORUM_PREFIX):]}")
        raise ValueError(f"unknown resource {uri!r}; list_resources shows what this server has")

    return ServerContent(instructions=instructions_text(REFERENCE_PATH, FORUM_MOUNT), brief=brief,
                         resources=resources, read_resource=read)
