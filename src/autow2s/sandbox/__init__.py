"""Where untrusted method code runs: bubblewrap, limits, and a report of how each job ended.

Import cost is small on purpose (no torch, no ray): the CLI imports this package.
"""

from autow2s.sandbox.bwrap import SandboxUnavailableError, require_sandbox
from autow2s.sandbox.config import TASK_MOUNT, WORKSPACE_MOUNT, SandboxConfig
from autow2s.sandbox.limits import KILLED_EXIT_CODE, LIMIT_NAMES, GiB, Limits, MiB
from autow2s.sandbox.runner import run_sandboxed
from autow2s.sandbox.watch import SandboxResult

__all__ = [
           "KILLED_EXIT_CODE",
           "LIMIT_NAMES",
           "TASK_MOUNT",
           "WORKSPACE_MOUNT",
           "GiB",
           "Limits",
           "MiB",
           "SandboxConfig",
           "SandboxResult",
           "SandboxUnavailableError",
           "require_sandbox",
           "run_sandboxed",
]
