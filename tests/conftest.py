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


# `make test-fast` skips these: each starts a real campaign, a browser, a Ray cluster, a verifying lab,
# a PostgreSQL server, several lab workers or a real language model, or prepares tasks in subprocesses
# (minutes on 2 cores; their durations under `pytest --durations`). `make test` still runs them all.
SLOW_FILES = {"test_campaign.py", "test_campaign_budgets.py", "test_executor_ray.py", "test_lab_migrations.py",
              "test_lab_reliability.py", "test_lab_workers.py", "test_hf_lm.py", "test_hf_lm_paths.py",
              "test_real_tasks.py", "test_smollm2.py", "test_text_backends.py"}
SLOW_FIXTURES = {"campaign_run", "browser", "synth_lab", "code_lab"}
# The fast tier runs the lab's tests on SQLite only, and the sandbox escapes in cold sandboxes only (the
# same bubblewrap confinement; each warm variant starts a worker that imports torch, ~5 s apiece).
SLOW_PARAMS = {("lab_db", "postgresql"), ("warm", True)}
# The scripted LLM conversation runs fast through the Claude adapter; through the OpenAI one (the same loop)
# in make test.
SLOW_IDS = {"test_scripted_conversation_calls_every_tool[openai]"}
SLOW_TESTS = {
    "test_an_instance_seed_repeats_an_instance_and_no_seed_is_a_fresh_draw",  # prepares a task twice
    "test_with_the_check_off_the_leaderboard_says_not_checked",  # a verified run
    "test_a_lab_refuses_data_without_null_views_while_the_check_is_on",
    "test_prepare_then_predict_on_the_public_view",
    "test_listing_commands_and_baselines_table",  # baselines over seeds
    "test_unknown_names_and_malformed_files_exit_2",  # a dozen CLI subprocesses
    "test_faults_come_back_as_errors_and_the_researcher_reaches_its_next_call",
    "test_code_verify_labels_come_from_execution_and_timeouts_are_dropped",
    "test_predict_job_end_to_end",
    "test_verify_reruns_on_lab_seeds_and_feeds_the_leaderboard",
    "test_budgets_survive_a_restart",
    "test_arith_verify_gives_a_full_experiment_row_offline",  # trains text models on three seeds
    "test_the_attack_is_real_without_the_detector",  # the probing attacks' control (the defended runs stay fast)
    # the warm pool's life cycle (each starts and retires sandboxes); the fast tier keeps the warm job
    # semantics: one sandbox shared, per-job limits, cold == warm predictions, no reach into the worker
    "test_a_job_that_changes_its_worker_retires_the_sandbox",
    "test_a_hidden_path_replaced_on_the_host_gets_a_new_sandbox",
    "test_a_job_that_kills_its_worker_fails_and_the_next_job_gets_a_new_sandbox",
    "test_executor_runs_warm_jobs_in_one_sandbox_and_closes_it",
    "test_idle_sandboxes_are_closed_without_another_job",
    "test_clean_up_survives_hostile_tmp_trees",
    "test_sysv_ipc_and_locked_tmp_dirs_do_not_outlive_a_job",
    "test_a_warm_sandbox_dies_with_its_parent",
    "test_a_warm_worker_does_not_take_a_cold_jobs_process_slot",
    "test_jobs_in_the_worker_behave_like_a_fresh_python",
    "test_cancel_stops_a_warm_job",
    # the default task's statistical checks (each trains every method's students on several seeds); the
    # fast tier still runs every baseline on every preset
    "test_clustering_does_not_beat_the_ceiling_on_the_default_preset",
    "test_logconf_beats_vanilla_on_the_default_task_and_nothing_comes_near_the_ceiling",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = item.name.split("[")[0]
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        slow_param = any(key in params and params[key] == value for key, value in SLOW_PARAMS)
        if (item.path.name in SLOW_FILES or name in SLOW_TESTS or item.name in SLOW_IDS or slow_param
                or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.slow)
