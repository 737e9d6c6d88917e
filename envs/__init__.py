"""JAX environments (gymnax 1.0 API) and what makes them tasks."""

from envs.xla_cpu import apply_cpu_deadlock_workaround, check_packages

apply_cpu_deadlock_workaround()  # before anything starts JAX: see envs/xla_cpu.py
check_packages()

from envs.task_space import TaskSpace  # noqa: E402
from envs.task_env import EpisodeStats, TaskAutoReset, TaskEnv, fixed_task_env  # noqa: E402
from envs.wrappers import (  # noqa: E402
    FlattenObservation,
    GymnaxWrapperAdapter,
    ObservePreviousActionReward,
    with_context_in_obs,
)

__all__ = [
    "TaskSpace",
    "TaskEnv",
    "TaskAutoReset",
    "EpisodeStats",
    "fixed_task_env",
    "FlattenObservation",
    "ObservePreviousActionReward",
    "GymnaxWrapperAdapter",
    "with_context_in_obs",
]
