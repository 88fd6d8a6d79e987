"""Shared fixtures: every test writes its caches under a temporary directory, never ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("autow2s-cache")
    os.environ["AUTOW2S_CACHE_DIR"] = str(cache)
    return cache
