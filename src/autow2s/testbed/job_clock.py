"""The sandboxed job's deadline, set by the host that enforces it and read by `ctx.time_left()`.

The sandbox kills a job at its wall limit (300 s for a campaign's experiments, more for a verified
run); a method that paces itself by ctx.time_left() must see that limit, not a figure of its own.
"""

from __future__ import annotations

import os
import time

JOB_DEADLINE_ENV = "AUTOW2S_JOB_DEADLINE"  # seconds since the epoch at which the host kills the job


def deadline_env(wall_seconds: float) -> dict[str, str]:
    """The environment entry that tells a job starting now when its wall limit ends."""
    return {JOB_DEADLINE_ENV: repr(time.time() + wall_seconds)}  # full precision: never later than the kill


def job_seconds_left() -> float | None:
    """Seconds until the sandbox kills this job; None outside a sandboxed job."""
    raw = os.environ.get(JOB_DEADLINE_ENV)
    if not raw:
        return None
    try:
        return float(raw) - time.time()
    except ValueError:
        return None
