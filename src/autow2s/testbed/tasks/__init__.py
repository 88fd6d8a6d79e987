"""Tasks: the registry, the jsonl loader and the synthetic generators."""

from autow2s.testbed.tasks.dataset import SPLITS, Split, Task
from autow2s.testbed.tasks.registry import DEFAULT_TASK, TASKS, load_task

__all__ = ["DEFAULT_TASK", "SPLITS", "TASKS", "Split", "Task", "load_task"]
