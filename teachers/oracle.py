"""Oracle teacher: a hand-made curriculum that slides a sampling window from easy to hard tasks.

This is the Oracle of Portelas et al. (2019) (TDRL ``teachDRL/teachers/algos/oracle_teacher.py``), in the batched, masked protocol of ``teachers/base.py``:

* Tasks are sampled uniformly in a box window whose width is ``window_fraction`` of the task range
  on each dimension (TDRL: 1/6).
* The window starts at ``window_start`` (its lower corner). TDRL derives the start from the sign of
  the step: at ``low`` on a dimension that moves up, at ``high - width`` on one that moves down; that is
  what ``window_start=None`` does (a zero step starts at ``low``; TDRL would start it at the top).
* Episodes are counted one at a time in blocks of ``check_every`` (TDRL ``step_rate`` = 50). When a
  block is complete and its mean score is > ``threshold``, the window moves by ``step`` on every
  dimension at once, clipped so that it stays inside the bounds (a rising dimension stops at
  ``high - width``, a falling one at ``low``); then the next block starts empty whether or not the
  window moved.
* A batch may complete several blocks (or none): blocks are formed over the valid rows in row order,
  exactly as if they had been reported one by one. Invalid rows change nothing.

Defaults, and how they relate to TDRL:

* ``threshold = 0.76``: TDRL compares the *raw* BipedalWalker return with 230; curriculax scores are
  normalised to [0, 1], and TDRL's own normalisation of that return (``interp(r, (-150, 350), (0, 1))``)
  maps 230 to 0.76.
* ``step = None`` → ``range / 30`` on every dimension, from the easy end towards the hard end:
  TDRL's Stump Tracks step in relative terms (+0.1 of the [0, 3] stump height = range/30; -0.2 of the
  [0, 6] spacing = -range/30; Hexagon Tracks used +0.1 of [0, 4] = range/40). A dimension moves up
  unless its name is in :data:`HARDER_WHEN_SMALLER` (tasks get harder as it shrinks: stump spacing,
  CartPole's pole length and angle limit), where it starts at the top and moves down. So on
  stump_track the default window starts at no stumps and the widest spacing, as the paper's Oracle.
  With a 1/6 window the window moves 1/5 of its width per success.

The window state is an integer count of successful checks (``advances``): the window's lower corner is
``clip(start + advances * step)``, which equals TDRL's repeated clipped additions and does not drift.

:func:`hypercube_oracle_config` gives curriculax's own Oracle for the hypercube toy environment (the
reference has none); see its docstring.
"""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import InputCounts, Teacher, checked_sample, checked_update

#: Task dimensions that make a task harder as they shrink (the Oracle's default moves them down).
HARDER_WHEN_SMALLER = frozenset({"stump_spacing", "obstacle_spacing", "pole_length", "angle_limit"})


def _as_tuple(x):
    if x is None or isinstance(x, (int, float)):
        return x
    return tuple(float(v) for v in x)


@dataclasses.dataclass(frozen=True)
class OracleConfig:
    """Options of the sliding-window Oracle (see the module docstring). Per-dimension fields are in
    task units; ``window_fraction`` may be one float for every dimension or one per dimension."""

    window_fraction: float | tuple[float, ...] = 1.0 / 6.0
    window_start: tuple[float, ...] | None = None  # lower corner; None -> TDRL's rule (low, or top)
    step: tuple[float, ...] | None = None  # per-dimension move; None -> +range/30 on every dimension
    check_every: int = 50  # episodes per block (TDRL step_rate)
    threshold: float = 0.76  # mean score of a block must be > this (TDRL: raw return 230 -> 0.76)
    path: str = "linear"  # "linear": TDRL, every dimension moves at once; "sweep": see below

    def __post_init__(self) -> None:
        # Accept lists (from a CLI or JSON) but keep the config hashable.
        for name in ("window_fraction", "window_start", "step"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if self.check_every < 1:
            raise ValueError(f"OracleConfig: check_every must be >= 1, got {self.check_every}")
        if self.path not in ("linear", "sweep"):
            raise ValueError(f"OracleConfig: path must be 'linear' or 'sweep', got {self.path!r}")


@struct.dataclass
class OracleState:
    advances: jax.Array  # int32: number of blocks that passed the threshold (window moves)
    block_sum: jax.Array  # float32: sum of the scores of the current, incomplete block
    block_count: jax.Array  # int32: episodes in the current block, in [0, check_every)
    episodes: jax.Array  # int32: valid episodes reported so far
    inputs: InputCounts  # bad input received (teachers.base)


def _per_dim(value, dim: int, what: str) -> np.ndarray:
    """One float for every dimension, or exactly ``dim`` of them, as float64 ``[dim]``."""
    arr = np.asarray(value, np.float64)
    if arr.ndim == 0:
        return np.full((dim,), float(arr))
    if arr.shape != (dim,):
        raise ValueError(f"OracleConfig: {what} needs {dim} values, got {arr.size}")
    return arr


def _geometry(task_space: TaskSpace, config: OracleConfig):
    """Host-side: (width, start, step, limit_low, limit_high) per dimension, as float32 numpy arrays."""
    if task_space.is_discrete:
        raise ValueError("the Oracle needs a continuous (box) task space")
    d = task_space.dim
    low = np.asarray(task_space.low, np.float64)
    high = np.asarray(task_space.high, np.float64)
    span = high - low
    frac = _per_dim(config.window_fraction, d, "window_fraction")
    if np.any(frac <= 0) or np.any(frac > 1):
        raise ValueError(f"OracleConfig: window_fraction must lie in (0, 1], got {config.window_fraction}")
    width = frac * span
    if config.step is None:
        down = np.asarray([name in HARDER_WHEN_SMALLER for name in task_space.names])
        step = np.where(down, -1.0, 1.0) * span / 30.0
    else:
        step = _per_dim(config.step, d, "step")
    if config.window_start is None:
        start = np.where(step < 0, high - width, low)
    else:
        start = _per_dim(config.window_start, d, "window_start")
        tol = 1e-6 * span
        if np.any(start < low - tol) or np.any(start + width > high + tol):
            raise ValueError(
                f"OracleConfig: window_start {config.window_start} puts the window outside the task "
                f"space (low {task_space.low}, high {task_space.high}, width {tuple(width)})"
            )
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return f32(width), f32(start), f32(step), f32(low), f32(high - width)


def oracle_window(
    task_space: TaskSpace, config: OracleConfig, state: OracleState
) -> tuple[jax.Array, jax.Array]:
    """The current window ``(lower corner [dim], upper corner [dim])`` of an Oracle state."""
    width, start, step, lo, hi = _geometry(task_space, config)
    if config.path == "sweep":
        # Raster over the grid of window positions: dimension 0 moves fastest; when it reaches its
        # end it returns to the start and the next dimension moves one step (a mixed-radix counter).
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.where(step > 0, hi - start, np.where(step < 0, lo - start, 0.0))
            counts = np.where(step != 0, np.floor(reach / np.where(step != 0, step, 1.0) + 1e-4) + 1, 1)
        counts = counts.astype(np.int64)
        radix = np.concatenate([[1], np.cumprod(counts)[:-1]])
        adv = jnp.minimum(state.advances, int(np.prod(counts)) - 1)[..., None]
        position = (adv // radix) % counts
        return start + position * step, start + position * step + width
    corner = start + state.advances.astype(jnp.float32)[..., None] * step
    # Rising dimensions stop at high - width, falling (or fixed) ones at low: TDRL's clipping.
    corner = jnp.where(step > 0, jnp.minimum(corner, hi), jnp.maximum(corner, lo))
    return corner, corner + width


def exact_block(config: OracleConfig) -> int:
    """Episodes per sample/update block that equal one episode at a time: ``check_every`` (the window
    moves only at the end of a block; any divisor of it works too)."""
    return int(config.check_every)


def oracle(task_space: TaskSpace, config: OracleConfig = OracleConfig()) -> Teacher:
    """The sliding-window Oracle over ``task_space`` (see the module docstring)."""
    _geometry(task_space, config)  # validate on the host, before anything is traced
    check_every = int(config.check_every)
    threshold = float(config.threshold)

    def init(key: jax.Array) -> OracleState:
        del key
        return OracleState(
            advances=jnp.zeros((), jnp.int32),
            block_sum=jnp.zeros((), jnp.float32),
            block_count=jnp.zeros((), jnp.int32),
            episodes=jnp.zeros((), jnp.int32),
            inputs=InputCounts.zeros(),
        )

    @checked_sample("oracle")
    def sample(state: OracleState, key: jax.Array, n: int) -> tuple[OracleState, jax.Array]:
        lower, upper = oracle_window(task_space, config, state)
        u = jax.random.uniform(key, (n, task_space.dim))
        tasks = lower + u * (upper - lower)
        return state, task_space.clip(tasks)

    @checked_update("oracle", task_space)
    def update(state: OracleState, tasks, scores, mask, **extras) -> OracleState:
        del tasks
        n = mask.shape[0]
        # Position of each valid row in the episode sequence that starts with the current block.
        pos = state.block_count + jnp.cumsum(mask.astype(jnp.int32)) - 1
        block = pos // check_every  # block of each valid row: 0 = the current one
        num_blocks = (check_every - 1 + n) // check_every + 1  # static bound on blocks touched
        member = mask[:, None] & (block[:, None] == jnp.arange(num_blocks)[None, :])
        sums = jnp.sum(jnp.where(member, scores[:, None], 0.0), axis=0)  # [num_blocks]
        sums = sums.at[0].add(state.block_sum)
        total = state.block_count + jnp.sum(mask.astype(jnp.int32))
        completed = total // check_every  # blocks finished by this batch
        passed = (sums / check_every > threshold) & (jnp.arange(num_blocks) < completed)
        return state.replace(
            advances=state.advances + jnp.sum(passed.astype(jnp.int32)),
            block_sum=sums[completed],
            block_count=total - completed * check_every,
            episodes=state.episodes + jnp.sum(mask.astype(jnp.int32)),
        )

    return Teacher(init, sample, update, task_space, "oracle")


def hypercube_oracle_config(hypercube_config) -> OracleConfig:
    """curriculax's own Oracle for the hypercube toy environment (``envs.hypercube``).

    The reference code has no Oracle for the toy environment; this one is curriculax's design, by
    analogy with the BipedalWalker Oracle: the window is one cube wide on every used dimension and
    starts on the origin cube; after each block of ``check_every`` (50) episodes whose mean score
    exceeds the mastery level (0.75) it moves one cube on, sweeping the cubes in raster order
    (``path="sweep"``: along dimension 0, then one cube up dimension 1 and back to the start, ...), so
    that every cube it reaches has a mastered previous neighbour. (TDRL's linear path, moving every
    dimension at once, would walk the diagonal and master at most ``nb_cubes`` cubes.) On useless
    dimensions the window spans the whole range and never moves (the student ignores them).
    """
    c = hypercube_config
    cube = 1.0 / c.nb_cubes
    used, useless = c.nb_dims, c.useless_dims
    return OracleConfig(
        window_fraction=(cube,) * used + (1.0,) * useless,
        window_start=(0.0,) * (used + useless),
        step=(cube,) * used + (0.0,) * useless,
        check_every=50,
        threshold=c.mastery_threshold / c.max_per_cube,
        path="sweep",
    )


__all__ = ["OracleConfig", "OracleState", "oracle", "oracle_window", "hypercube_oracle_config"]
