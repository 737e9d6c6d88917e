"""JAX environments (gymnax 1.0 API) and what makes them tasks."""

from envs.task_space import TaskSpace

__all__ = ["TaskSpace"]
