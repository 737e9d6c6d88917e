"""The fixed teacher: every episode runs one given task (what a trainer uses when no curriculum is
asked for; e.g. PPO on the environment's default task). Not in the registry: it is no curriculum.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from envs.task_space import TaskSpace
from teachers.base import Teacher


def fixed_teacher(task_space: TaskSpace, task: Sequence[float]) -> Teacher:
    """Always hands out ``task``; ``update`` changes nothing."""
    fixed = jnp.asarray(task_space.validate(task, "fixed_teacher task"), jnp.float32).reshape(-1)

    def init(key: jax.Array) -> tuple:
        del key
        return ()

    def sample(state, key: jax.Array, n: int):
        del key
        return state, jnp.broadcast_to(fixed, (n, fixed.shape[0]))

    def update(state, tasks, scores, mask, **extras):
        del tasks, scores, mask, extras
        return state

    return Teacher(init, sample, update, task_space, "fixed")
