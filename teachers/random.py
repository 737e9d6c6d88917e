"""Random teacher: tasks uniform over the task space, blind to scores (the baseline of every paper).

Portelas et al. (2019) and TeachMyAgent call it Random; it is domain randomisation over the box.
"""

from __future__ import annotations

import jax
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import InputCounts, Teacher, checked_sample, checked_update


@struct.dataclass
class RandomState:
    episodes: jax.Array  # number of episodes reported so far (for logging only)
    inputs: InputCounts  # bad input received (teachers.base)


def exact_block(config=None) -> int | None:
    """Episodes per sample/update block that equal one episode at a time: any (it ignores scores)."""
    return None


def random_teacher(task_space: TaskSpace) -> Teacher:
    """Uniform sampling over ``task_space``; ``update`` only counts episodes."""

    def init(key: jax.Array) -> RandomState:
        del key
        return RandomState(episodes=jax.numpy.zeros((), jax.numpy.int32), inputs=InputCounts.zeros())

    @checked_sample("random")
    def sample(state: RandomState, key: jax.Array, n: int) -> tuple[RandomState, jax.Array]:
        return state, task_space.sample_uniform(key, n)

    @checked_update("random", task_space)
    def update(state: RandomState, tasks, scores, mask, **extras) -> RandomState:
        del tasks, scores
        return state.replace(episodes=state.episodes + mask.sum().astype(jax.numpy.int32))

    return Teacher(init, sample, update, task_space, "random")
