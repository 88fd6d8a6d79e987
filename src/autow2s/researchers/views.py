"""What the host writes for a researcher to read: the forum mirror and the method reference.

They live in a host folder of the researcher's own (`view_dir`), outside the workspace, and every
sandboxed job sees them read-only at /forum and /reference. So the host never writes these files
into a tree a job can write (a planted symlink there once made the host write a finding's body
into any file it named), and a job can neither edit them nor plant anything in their place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from autow2s.researchers.method_reference import REFERENCE
from autow2s.safefs import SafeTree

if TYPE_CHECKING:
    from autow2s.researchers.lab_client import LabClient

FORUM_MOUNT = "/forum"
REFERENCE_MOUNT = "/reference"
REFERENCE_NAME = "METHOD_API.md"
REFERENCE_PATH = f"{REFERENCE_MOUNT}/{REFERENCE_NAME}"
MOUNTS = {FORUM_MOUNT: "forum", REFERENCE_MOUNT: "reference"}  # sandbox path -> folder of view_dir
MIRRORED_FINDINGS = 200


def prepare_view(view_dir: Path) -> None:
    """Make the view's folders and (re)write the method reference; called whenever a toolbox is built."""
    tree = SafeTree(_made(view_dir))
    for folder in MOUNTS.values():
        tree.makedirs(folder)
    tree.write_text(f"reference/{REFERENCE_NAME}", REFERENCE, mode=0o444)


def ro_mounts(view_dir: Path) -> tuple[tuple[Path, str], ...]:
    """The view's folders as a job's read-only mounts (SandboxConfig.ro_mounts)."""
    return tuple((view_dir / folder, mount) for mount, folder in MOUNTS.items())


def finding_markdown(finding: dict[str, Any]) -> str:
    tags = finding.get("tags") or []
    return (f"# {finding['title']}\n\ntype: {finding['type']} · author: {finding['author']} · "
            f"tags: {', '.join(map(str, tags))}\n\n{finding['body']}\n")


def mirror_forum(lab: LabClient, task: str | None, view_dir: Path) -> int:
    """Write the newest findings as view_dir/forum/NNNNN.md (seen as /forum/NNNNN.md); returns how many are new."""
    tree = SafeTree(_made(view_dir))
    tree.makedirs("forum")
    present = {name for name, _ in tree.list_dir("forum")}
    written = 0
    for finding in lab.search_findings(sort="new", limit=MIRRORED_FINDINGS, task=task):
        name = f"{int(finding['id']):05d}.md"
        if name in present:
            continue
        tree.write_text(f"forum/{name}", finding_markdown(finding), mode=0o444)
        written += 1
    return written


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
