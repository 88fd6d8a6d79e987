"""A fake host clock for one process: a lab host whose clock is FAKE_CLOCK_OFFSET_S seconds off.

Tests put this folder on PYTHONPATH of a `autow2s serve` subprocess (tests/test_lab_workers.py), so
that process's time.time() runs that far ahead (or behind) of the real clock, as a badly synchronised
host's would, while the database keeps the real one. Without the variable it does nothing.
"""

from __future__ import annotations

import os
import time

_offset = float(os.environ.get("FAKE_CLOCK_OFFSET_S", "0") or 0)
if _offset:
    _real_time = time.time

    def _skewed_time() -> float:
        return _real_time() + _offset

    time.time = _skewed_time
