"""Where untrusted method code runs: bubblewrap, limits, and a report of how each job ended.

Import cost is small on purpose (no torch, no ray): the CLI imports this package.
"""

from autow2s.sandbox.bwrap import SandboxUnavailableError, require_sandbox
from autow2s.sandbox.config import TASK_MOUNT, WORKSPACE_MOUNT, SandboxConfig
from autow2s.sandbox.limits import KILLED_EXIT_CODE, LIMIT_NAMES, GiB, Limits, MiB
from autow2s.sandbox.runner import SandboxResult, run_sandboxed

__all__ = ["GiB", "KILLED_EXIT_CODE", "LIMIT_NAMES", "Limits", "MiB", "SandboxConfig", "SandboxResult",
           "SandboxUnavailableError", "TASK_MOUNT", "WORKSPACE_MOUNT", "require_sandbox", "run_sandboxed"]
