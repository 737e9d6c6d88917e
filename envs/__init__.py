"""JAX environments (gymnax 1.0 API) and what makes them tasks."""

from envs.xla_cpu import apply_cpu_deadlock_workaround

apply_cpu_deadlock_workaround()  # before anything starts JAX: see envs/xla_cpu.py

from envs.task_space import TaskSpace  # noqa: E402

__all__ = ["TaskSpace"]
