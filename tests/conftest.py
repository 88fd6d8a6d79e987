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


# `make test-fast` skips these: each starts a real campaign, a browser, a Ray cluster or a verifying lab
# (minutes on 2 cores). `make test` still runs them all.
SLOW_FILES = {"test_campaign.py", "test_campaign_budgets.py", "test_executor_ray.py"}
SLOW_FIXTURES = {"campaign_run", "browser", "synth_lab", "code_lab"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
