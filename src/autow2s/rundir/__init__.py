"""The run directory `autow2s run` writes: its layout, its writers and its readers, in one place.

It sits below the campaign (which writes it), the lab's dashboard and the report (which read it),
and imports none of them: `layout` names every path, `spend` owns the spend journal, and `view`
reads a campaign's progress the way the dashboard and the report show it.
"""

from autow2s.rundir.layout import LAB_URL_FILE, RUN_DIR_ENV, RunDir, RunState, find_run_dir, write_json_atomic
from autow2s.rundir.spend import SpendRecord, append_spend, read_spend, spent_per_researcher
from autow2s.rundir.view import JobKills, LimitKill, RunView, read_run_view

__all__ = [
           "LAB_URL_FILE",
           "RUN_DIR_ENV",
           "JobKills",
           "LimitKill",
           "RunDir",
           "RunState",
           "RunView",
           "SpendRecord",
           "append_spend",
           "find_run_dir",
           "read_run_view",
           "read_spend",
           "spent_per_researcher",
           "write_json_atomic",
]
