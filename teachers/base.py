"""The teacher protocol: three pure functions over a fixed-size state pytree, in the manner of optax.

    state = teacher.init(key)
    state, tasks = teacher.sample(state, key, n)          # tasks: [n, dim] float32
    state = teacher.update(state, tasks, scores, mask, **extras)
                                  # tasks [n, dim], scores [n], mask [n] bool, extras: name -> [n]

* ``scores`` are episodic performance, normalised to [0, 1] where the task environment knows a range.
* ``mask`` marks which rows are real finished episodes. Rows with ``mask == False`` must change
  nothing: a jitted rollout hands the teacher every (step, env) slot at once and most are not episode
  ends. The order of valid rows is the order in which the episodes finished.
* ``sample`` must not assume that every task it returns is used (a vectorised rollout draws a task for
  every environment each step and keeps only those of environments whose episode ended); per-episode
  bookkeeping belongs in ``update``.
* ``extras`` carry what the learner knows about each finished episode, in the manner of optax's
  extra-args transforms: ``initial_value`` (the critic's V at the episode's first observation) and
  ``discounted_return`` (sum of gamma^t r_t over the episode), each ``[n]``. Every ``update`` accepts
  ``**extras``; a teacher names the ones it reads in ``Teacher.extras`` and the trainer computes and
  passes those, so a teacher that reads none does not pay for them (benchmarks/RESULTS.md).
* ``n`` is static (a Python int). All functions are jittable and vmappable over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from envs.task_space import TaskSpace

TeacherState = Any


class Teacher(NamedTuple):
    """A curriculum: ``init``, ``sample`` and ``update`` (see the module docstring)."""

    init: Callable[[jax.Array], TeacherState]
    sample: Callable[[TeacherState, jax.Array, int], tuple[TeacherState, jax.Array]]
    update: Callable[..., TeacherState]  # (state, tasks, scores, mask, **extras) -> state
    task_space: TaskSpace
    name: str = "teacher"
    extras: tuple[str, ...] = ()  # the extras ``update`` reads (see the module docstring)


EXTRAS = ("initial_value", "discounted_return")  # what trainers can hand to a teacher


def compact_valid_first(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Stable permutation that moves the rows with ``mask`` True to the front, in their order.

    Returns ``(order, count)``: ``x[order][:count]`` are the valid rows of ``x`` in arrival order.
    Teachers that must process episodes one after another use it to scan only over valid rows.
    """
    order = jnp.argsort(~mask, stable=True)
    return order, jnp.sum(mask.astype(jnp.int32))


def ring_positions(count: jax.Array, mask: jax.Array, capacity: int) -> jax.Array:
    """Write positions in a ring buffer of ``capacity`` for the valid rows of a batch.

    Valid row ``i`` goes to ``(count + number of valid rows before i) % capacity``; invalid rows get
    the out-of-bounds index ``capacity`` so that ``.at[pos].set(..., mode="drop")`` ignores them.
    """
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1
    return jnp.where(mask, (count + offsets) % capacity, capacity)
