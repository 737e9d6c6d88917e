"""Task environments by name, for the experiment CLIs (``--env stump_track``)."""

from __future__ import annotations

import importlib

from envs.task_env import TaskEnv

TASK_ENVS: dict[str, tuple[str, str]] = {
    "cartpole_tasks": ("envs.cartpole_tasks", "cartpole_tasks"),
    "stump_track": ("envs.stump_track", "stump_track_tasks"),
}


def make_task_env(name: str) -> TaskEnv:
    if name not in TASK_ENVS:
        raise ValueError(f"unknown task environment {name!r}; known: {sorted(TASK_ENVS)}")
    module, factory = TASK_ENVS[name]
    return getattr(importlib.import_module(module), factory)()
