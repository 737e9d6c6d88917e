"""The hypercube toy student of Portelas et al. (2019), "Teacher algorithms for curriculum learning of
Deep RL in continuously parameterized environments" (CoRL 2019), as defined by the reference code
``flowersteam/teachDeepRL``, ``teachDRL/toy_env/toy_env.py``.

No neural network learns here: a table of per-cube competences stands in for the student, so teachers
can be compared in seconds.

Rules (all thresholds are fields of :class:`HypercubeConfig`; TDRL's values in brackets):

* Task space [0, 1]^(nb_dims + useless_dims). Only the first ``nb_dims`` coordinates are used; the
  ``useless_dims`` extra ones are ignored by the student and only dilute the teacher's search.
* Each used dimension is cut into ``nb_cubes`` equal bins, giving ``nb_cubes ** nb_dims`` cubes. A task
  falls in cube ``floor(task * nb_cubes)`` per dimension, clipped to ``[0, nb_cubes - 1]`` (so a
  coordinate of exactly 1.0 is in the last cube, as with TDRL's ``binned_statistic_dd``).
* Each cube holds an integer competence in [0, max_per_cube] (100).
* ``episode(task)`` in cube ``c``: the origin cube (all indices 0) always learns: competence += 1,
  capped at ``max_per_cube``. Any other cube learns (+1, capped) only if at least one of its
  *previous neighbours* has competence >= ``unlock_threshold`` (75). The previous neighbours are all
  index vectors whose k-th entry is ``c_k`` or ``max(0, c_k - 1)``, except ``c`` itself (diagonals
  included: up to ``2**nb_dims - 1`` of them). A locked cube does not change.
* The score returned to the teacher is ``competence[c] / max_per_cube`` *after* the increment, in
  [0, 1]. (TDRL has a ``noise`` argument but the code that uses it is commented out: no noise here.)
* The metric (TDRL ``get_score``) is the percentage of cubes with competence > ``mastery_threshold``
  (75, i.e. >= 76). Note the asymmetry: a neighbour unlocks at >= 75, a cube counts as mastered at > 75.

Two measure-zero differences from TDRL: TDRL builds its bin edges with ``np.arange`` in float64, so a
coordinate lying exactly on an interior edge (e.g. 0.3 with 10 cubes) may be binned one cube lower than
``floor(task * nb_cubes)``; and TDRL exits on out-of-range tasks where this module clips them.

All functions are pure over a :class:`HypercubeState` and take the (hashable, static) config first,
so ``jax.jit(run_episodes, static_argnums=0)`` and ``jax.vmap`` over states work.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace


@dataclasses.dataclass(frozen=True)
class HypercubeConfig:
    """Static description of a hypercube toy environment (hashable; TDRL defaults)."""

    nb_dims: int = 2  # used dimensions
    nb_cubes: int = 10  # bins per used dimension
    useless_dims: int = 0  # extra task dimensions the student ignores
    max_per_cube: int = 100  # competence cap of a cube
    unlock_threshold: int = 75  # a previous neighbour with competence >= this unlocks a cube
    mastery_threshold: int = 75  # a cube with competence > this counts as mastered

    def __post_init__(self) -> None:
        if self.nb_dims < 1 or self.nb_cubes < 1 or self.useless_dims < 0:
            raise ValueError(
                f"HypercubeConfig: need nb_dims >= 1, nb_cubes >= 1, useless_dims >= 0, got "
                f"{self.nb_dims}, {self.nb_cubes}, {self.useless_dims}"
            )
        if self.nb_cubes**self.nb_dims >= 2**31:
            raise ValueError("HypercubeConfig: nb_cubes ** nb_dims must fit in int32")
        if self.max_per_cube < 1:
            raise ValueError("HypercubeConfig: max_per_cube must be >= 1")
        for name in ("unlock_threshold", "mastery_threshold"):
            if not 0 <= getattr(self, name) <= self.max_per_cube:
                raise ValueError(f"HypercubeConfig: {name} must lie in [0, max_per_cube]")

    @property
    def num_cubes(self) -> int:
        return self.nb_cubes**self.nb_dims

    @property
    def task_dim(self) -> int:
        return self.nb_dims + self.useless_dims


@struct.dataclass
class HypercubeState:
    competence: jax.Array  # [nb_cubes ** nb_dims] int32, row-major (C order) over the cube indices


@functools.lru_cache(maxsize=None)
def _previous_offsets(nb_dims: int) -> np.ndarray:
    """``[2**nb_dims - 1, nb_dims]`` int32: every non-empty 0/1 pattern of "step back one" per dim."""
    rows = [p for p in itertools.product((0, 1), repeat=nb_dims) if any(p)]
    return np.asarray(rows, np.int32)


def _strides(config: HypercubeConfig) -> np.ndarray:
    """Row-major strides of the cube grid, ``[nb_dims]``."""
    return (config.nb_cubes ** np.arange(config.nb_dims - 1, -1, -1)).astype(np.int32)


def init(config: HypercubeConfig) -> HypercubeState:
    """All cubes at competence 0."""
    return HypercubeState(competence=jnp.zeros((config.num_cubes,), jnp.int32))


def task_space(config: HypercubeConfig) -> TaskSpace:
    """[0, 1]^(nb_dims + useless_dims); used dims are ``x0, x1, ...``, the others ``useless0, ...``."""
    names = [f"x{i}" for i in range(config.nb_dims)] + [
        f"useless{i}" for i in range(config.useless_dims)
    ]
    d = config.task_dim
    return TaskSpace.box(names, [0.0] * d, [1.0] * d)


def cube_coords(config: HypercubeConfig, tasks: jax.Array) -> jax.Array:
    """Integer cube indices ``[..., nb_dims]`` of tasks ``[..., nb_dims + useless_dims]``."""
    used = jnp.asarray(tasks)[..., : config.nb_dims]
    idx = jnp.floor(used * config.nb_cubes).astype(jnp.int32)
    return jnp.clip(idx, 0, config.nb_cubes - 1)


def cube_index(config: HypercubeConfig, tasks: jax.Array) -> jax.Array:
    """Flat (row-major) cube index ``[...]`` of tasks ``[..., nb_dims + useless_dims]``."""
    return jnp.sum(cube_coords(config, tasks) * jnp.asarray(_strides(config)), axis=-1)


def _unlocked(config: HypercubeConfig, competence: jax.Array, coords: jax.Array) -> jax.Array:
    """Whether the cube at ``coords`` [nb_dims] may learn (origin, or a previous neighbour >= unlock)."""
    offsets = jnp.asarray(_previous_offsets(config.nb_dims))  # [K, nb_dims]
    neigh = jnp.maximum(coords[None, :] - offsets, 0)  # [K, nb_dims]
    is_other = jnp.any(neigh != coords[None, :], axis=-1)  # drop combinations that collapse onto c
    flat = jnp.sum(neigh * jnp.asarray(_strides(config)), axis=-1)
    good = competence[flat] >= config.unlock_threshold
    is_origin = jnp.all(coords == 0)
    return is_origin | jnp.any(good & is_other)


def episode(
    config: HypercubeConfig, state: HypercubeState, task: jax.Array
) -> tuple[HypercubeState, jax.Array]:
    """One episode on ``task`` [nb_dims + useless_dims]; returns the new state and the score in [0, 1]."""
    state, score = run_episodes(config, state, task[None], jnp.ones((1,), bool))
    return state, score[0]


def run_episodes(
    config: HypercubeConfig, state: HypercubeState, tasks: jax.Array, mask: jax.Array
) -> tuple[HypercubeState, jax.Array]:
    """Run the valid rows of ``tasks`` [n, D] one after another, in row order.

    Row ``i`` sees the competences left by the valid rows before it. Rows with ``mask[i] == False``
    change nothing and get score 0. Returns ``(state, scores[n])`` (float32, in [0, 1]).
    """
    strides = jnp.asarray(_strides(config))
    coords = cube_coords(config, tasks)  # [n, nb_dims]
    mask = jnp.asarray(mask, bool)

    def step(competence, inp):
        c, valid = inp
        flat = jnp.sum(c * strides)
        learns = valid & _unlocked(config, competence, c)
        new = jnp.minimum(competence[flat] + learns.astype(jnp.int32), config.max_per_cube)
        competence = competence.at[flat].set(new)
        score = jnp.where(valid, new.astype(jnp.float32) / config.max_per_cube, 0.0)
        return competence, score

    competence, scores = jax.lax.scan(step, state.competence, (coords, mask))
    return state.replace(competence=competence), scores


def mastered_pct(config: HypercubeConfig, state: HypercubeState) -> jax.Array:
    """Percentage of cubes with competence > mastery_threshold (TDRL ``get_score``), float32 scalar."""
    mastered = jnp.sum(state.competence > config.mastery_threshold)
    return 100.0 * mastered.astype(jnp.float32) / config.num_cubes


def ceiling_pct(config: HypercubeConfig, episodes: int) -> float:
    """Best possible % mastered after ``episodes`` episodes (references §4.2, derived, not a paper number).

    A cube needs ``mastery_threshold + 1`` increments (76) to count as mastered, so even a perfect
    teacher masters at most ``episodes // 76`` cubes: ``100 * min(N, episodes // 76) / N``.
    """
    n = config.num_cubes
    return 100.0 * min(n, int(episodes) // (config.mastery_threshold + 1)) / n
