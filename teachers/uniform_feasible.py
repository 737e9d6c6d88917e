"""Uniform-over-the-feasible-tasks teacher: Random restricted to the part of the task box a student
can master at all (a baseline with expert knowledge of feasibility, blind to scores).

On stump_track about half the box is infeasible (stumps of 1.5 m and more cannot be jumped: see
``envs/stump_track.py``); this teacher samples the heights uniformly in [0, 1.45] and the spacing over
its whole range. The feasible sub-box is ``low``/``high`` when given, else the task space's bounds
narrowed by :data:`FEASIBLE` for the dimensions it names.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import InputCounts, Teacher, checked_sample, checked_update

#: Feasible range of a task dimension, by name (stump_track: the highest clearable stump).
FEASIBLE = {"stump_height": (0.0, 1.45)}


@dataclasses.dataclass(frozen=True)
class UniformFeasibleConfig:
    """The feasible sub-box; None: the task space narrowed by :data:`FEASIBLE`."""

    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None


@struct.dataclass
class UniformFeasibleState:
    episodes: jax.Array  # number of episodes reported so far (for logging only)
    inputs: InputCounts  # bad input received (teachers.base)


def feasible_box(task_space: TaskSpace, config: UniformFeasibleConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of the sub-box sampled, checked to lie inside the task space."""
    low = np.array([FEASIBLE.get(n, (lo, hi))[0] for n, lo, hi in
                    zip(task_space.names, task_space.low, task_space.high)], np.float32)
    high = np.array([FEASIBLE.get(n, (lo, hi))[1] for n, lo, hi in
                     zip(task_space.names, task_space.low, task_space.high)], np.float32)
    if config.low is not None:
        low = np.asarray(config.low, np.float32)
    if config.high is not None:
        high = np.asarray(config.high, np.float32)
    if low.shape != (task_space.dim,) or high.shape != (task_space.dim,):
        raise ValueError(f"uniform_feasible: low/high need {task_space.dim} values, got {low}, {high}")
    if np.any(low >= high) or np.any(low < np.asarray(task_space.low, np.float32)) or np.any(
            high > np.asarray(task_space.high, np.float32)):
        raise ValueError(f"uniform_feasible: [{low}, {high}] is not a box inside the task space "
                         f"[{task_space.low}, {task_space.high}]")
    return low, high


def exact_block(config=None) -> int | None:
    """Any block equals one episode at a time (it ignores scores)."""
    return None


def uniform_feasible(task_space: TaskSpace, config: UniformFeasibleConfig = UniformFeasibleConfig()) -> Teacher:
    """Tasks uniform over the feasible sub-box of ``task_space``."""
    if task_space.is_discrete:
        raise ValueError("uniform_feasible: needs a continuous box task space")
    low, high = (jnp.asarray(a) for a in feasible_box(task_space, config))

    def init(key: jax.Array) -> UniformFeasibleState:
        del key
        return UniformFeasibleState(episodes=jnp.zeros((), jnp.int32), inputs=InputCounts.zeros())

    @checked_sample("uniform_feasible")
    def sample(state, key: jax.Array, n: int):
        return state, low + jax.random.uniform(key, (n, task_space.dim)) * (high - low)

    @checked_update("uniform_feasible", task_space)
    def update(state, tasks, scores, mask, **extras):
        return state.replace(episodes=state.episodes + jnp.sum(mask.astype(jnp.int32)))

    return Teacher(init, sample, update, task_space, "uniform_feasible")
