"""RIAC: Robust Intelligent Adaptive Curiosity (Baranes & Oudeyer, 2009), as teachDeepRL implements it.

The task space is split recursively into axis-aligned boxes (regions); tasks are drawn from regions in
proportion to their absolute learning progress (ALP). This port follows the reference implementation of
Portelas et al. (CoRL 2019, ``flowersteam/teachDeepRL`` ``teachers/algos/riac.py``, "RIAC with minor
improvements"). Tasks are kept in raw task units throughout, as in the reference (no normalisation).

Rules
-----
* **Tree.** Region 0 is the whole task space. Every region holds a FIFO of up to ``max_region_size + 1``
  (task, reward) pairs in arrival order. "Copy-all mode": a pair is appended to *every* region whose box
  contains the task (the root, the internal nodes and the one leaf), so parents keep data after a split.
* **Region ALP.** With the region's rewards R in arrival order and n = |R|: ALP = 0 if n <= 2; otherwise
  w = min(n, alp_window_size), h = floor(w/2), ALP = |mean(R[n-w : n-h]) - mean(R[n-h : n])|. Recomputed
  after every episode for every region that received it.
* **Split.** When the leaf that received a pair holds more than ``max_region_size`` pairs, try
  ``nb_split_attempts`` splits: a dimension and a threshold inside the leaf's extent, accepted only if
  both children hold >= ``min_reg_size`` pairs (the reference redraws until they do). An attempt is
  valid if both children's extents are >= ``min_dims_range_ratio`` x the task space's range on every
  dimension. Score: ``split_score="code"`` |ALP1 - ALP2| (the reference multiplies by
  ``len(child1) * len(child2)``, which are lengths of two-element lists, i.e. the constant 4);
  ``"paper"`` n1 * n2 * |ALP1 - ALP2| (original RIAC). The best valid attempt wins, ties going to the
  later attempt; any valid attempt beats none. The children receive the parent's pairs (in arrival
  order) and become leaves; the parent stays with its data.
* **Discard.** If no attempt is valid, the oldest floor(max_region_size * discard_ratio) pairs of the
  leaf are dropped.
* **Sampling** (u ~ U[0, 1) per task): u < 0.1 ("mode 3"): a region chosen in proportion to ALP
  (uniformly if all ALPs are 0), its lowest-reward stored task plus N(0, mutation_std^2) per dimension
  (raw units), clipped into the region (1e-5 inside its bounds); 0.1 <= u < 0.3: uniform over the whole
  space; u >= 0.3: a region chosen in proportion to ALP, uniform inside it. Regions are all nodes
  (root included), or only leaves with ``sampling_in_leaves_only``.

JAX port: what differs from the reference and why
--------------------------------------------------
* **Fixed arrays.** At most ``max_regions`` regions (region ``i < num_regions`` is used; children always
  have larger indices than their parent). When the tree is full no split is possible, so an overfull
  leaf follows the discard rule. ``RIACState.num_regions`` shows whether a run hit the capacity.
* **Split attempts without a while loop.** The reference redraws (dimension, threshold) uniformly until
  both children hold ``min_reg_size`` pairs: rejection sampling. Here the accepted draw is sampled
  directly from the same distribution: on each dimension the thresholds that leave >= ``min_reg_size``
  pairs on both sides form an interval [a_d, b_d) (from order statistics of the leaf's data), so the
  accepted dimension has probability proportional to |[a_d, b_d) within the leaf| / extent_d and the
  threshold is uniform on that interval. Exact, vectorised, and no retry budget to tune. Where no
  threshold is feasible on any dimension (e.g. all pairs share one task) the reference loops forever;
  here the split fails and the discard rule applies.
* **Children's ALP.** ``child_alp="last_attempt"`` (default, the reference's behaviour): new children
  carry the ALPs computed for the *last* split attempt, not for the chosen one, until they next receive
  a pair. ``child_alp="chosen"``: the ALPs of the chosen split's children (what was surely intended).
* **The buffer after a discard, as the reference keeps it.** After a discard the reference replaces
  the leaf's FIFO by an unbounded deque; once that leaf has split (a leaf never holds more than
  ``max_region_size + 1`` pairs) the node keeps every later pair. Here every region stores a FIFO of
  ``max_region_size + 1`` and such a region (``unbounded``) also remembers the lowest-reward pair its
  FIFO has dropped since the discard, which is all the reference reads of the older pairs: its
  mode-3 lowest-reward task (the oldest among equals, as ``np.argmin``). ALPs only look at the last
  ``alp_window_size`` pairs, so they are exact unless ``alp_window_size > max_region_size + 1``.
* **Region membership.** A child made by splitting at threshold t on dimension j holds x_j <= t (lower
  child) or x_j > t (upper child), for both the split and later insertions, so every task lies in
  exactly one leaf (the reference's inclusive boxes put a task exactly on a threshold into both).
  Tasks are clipped into the task space before insertion (the reference ignores tasks outside it).
* **Batches.** ``update`` processes the valid rows one after another in their order (a while loop over
  the number of valid rows after :func:`teachers.base.compact_valid_first`, not a scan over all n
  rows, so a mostly-masked batch costs only its valid rows; masked rows are never read). The
  randomness of split attempts comes from a key carried in the state.
* **Cost.** Per pair: O(max_regions x max_region_size) for the ALPs plus, when a leaf is overfull, a
  ``lax.cond`` branch of O(nb_split_attempts x max_region_size) that returns only the two new rows
  (under ``vmap`` the branch runs for every pair, but nothing else of the state is copied).
* Parity with the reference on its hypercube toy environment: ``benchmarks/RESULTS.md``.
* "On the very first call sample uniformly" (reference) is read as: while no pair has been received,
  mode 3 samples uniformly over the whole space. A chosen region with no pairs (possible only with
  ``min_reg_size=0``) makes mode 3 sample uniformly inside that region.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import (InputCounts, Teacher, after, batch_all, checked_sample, checked_update,
                           compact_valid_first)

# Sampling mode boundaries of the reference: u < 0.1 mode 3, u < 0.3 uniform, else ALP-proportional.
P_MODE3 = 0.1
P_UNIFORM = 0.2
CLIP_EPS = 1e-5  # mode-3 samples are clipped this far inside the region's bounds

MODE_ALP_REGION = 0  # u >= 0.3: region chosen by ALP, uniform inside it
MODE_UNIFORM = 1  # 0.1 <= u < 0.3: uniform over the whole space
MODE_MUTATE = 2  # u < 0.1: "mode 3", mutate the lowest-reward task of a region


@dataclasses.dataclass(frozen=True)
class RIACConfig:
    """RIAC hyperparameters; defaults are teachDeepRL's (TeachMyAgent's benchmark: 150, 75, 0.1)."""

    max_region_size: int = 200  # a leaf holding more pairs than this is split
    alp_window_size: int | None = None  # None: max_region_size
    nb_split_attempts: int = 50
    min_reg_size: float | None = None  # None: max_region_size / 20
    min_dims_range_ratio: float = 1 / 15  # children's extent >= this x full range, every dimension
    discard_ratio: float = 1 / 4  # share of max_region_size dropped when no split is valid
    sampling_in_leaves_only: bool = False
    max_regions: int = 256  # region slots (JAX port); when full, overfull leaves discard instead
    split_score: str = "code"  # "code": |dALP| (teachDeepRL); "paper": n1 * n2 * |dALP|
    child_alp: str = "last_attempt"  # "last_attempt" (teachDeepRL quirk) or "chosen"
    mutation_std: float = 0.1  # mode-3 Gaussian noise, raw task units

    @property
    def window(self) -> int:
        return self.max_region_size if self.alp_window_size is None else int(self.alp_window_size)

    @property
    def min_size(self) -> float:
        return self.max_region_size / 20 if self.min_reg_size is None else float(self.min_reg_size)

    @property
    def capacity(self) -> int:
        """Pairs stored per region: ``max_region_size + 1``."""
        return self.max_region_size + 1

    @property
    def discard_count(self) -> int:
        return int(self.max_region_size * self.discard_ratio)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_config(config: RIACConfig, task_space: TaskSpace) -> None:
    """Raise ``ValueError`` on settings RIAC cannot run with."""
    if task_space.is_discrete:
        raise ValueError("RIAC splits a continuous box; got a discrete TaskSpace")
    if not _is_int(config.max_region_size) or config.max_region_size < 2:
        raise ValueError(f"max_region_size must be an int >= 2, got {config.max_region_size!r}")
    if config.alp_window_size is not None and (
        not _is_int(config.alp_window_size) or config.alp_window_size < 2
    ):
        raise ValueError(
            f"alp_window_size must be None or an int >= 2 (a window of 1 has an empty older half), "
            f"got {config.alp_window_size!r}"
        )
    if not _is_int(config.nb_split_attempts) or config.nb_split_attempts < 1:
        raise ValueError(f"nb_split_attempts must be an int >= 1, got {config.nb_split_attempts!r}")
    if config.min_reg_size is not None and not (
        math.isfinite(config.min_reg_size) and config.min_reg_size >= 0
    ):
        raise ValueError(f"min_reg_size must be None or >= 0, got {config.min_reg_size!r}")
    if not 0.0 <= config.min_dims_range_ratio <= 1.0:
        raise ValueError(f"min_dims_range_ratio must lie in [0, 1], got {config.min_dims_range_ratio!r}")
    if not 0.0 <= config.discard_ratio <= 1.0:
        raise ValueError(f"discard_ratio must lie in [0, 1], got {config.discard_ratio!r}")
    if not _is_int(config.max_regions) or config.max_regions < 1:
        raise ValueError(f"max_regions must be an int >= 1, got {config.max_regions!r}")
    if config.split_score not in ("code", "paper"):
        raise ValueError(f"split_score must be 'code' or 'paper', got {config.split_score!r}")
    if config.child_alp not in ("last_attempt", "chosen"):
        raise ValueError(f"child_alp must be 'last_attempt' or 'chosen', got {config.child_alp!r}")
    if not (math.isfinite(config.mutation_std) and config.mutation_std >= 0):
        raise ValueError(f"mutation_std must be >= 0, got {config.mutation_std!r}")


@struct.dataclass
class RIACState:
    """Region tree in fixed arrays: R = max_regions, C = max_region_size + 1, d = task dimension.

    Each region's pairs sit in a ring buffer: the k-th oldest pair is in slot ``(start + k) % C``,
    k < count (see :func:`region_pairs`).
    """

    low: jax.Array  # [R, d] lower bounds of each region
    high: jax.Array  # [R, d] upper bounds (inclusive)
    low_open: jax.Array  # [R, d] bool: lower bound exclusive (upper child of a split on that dim)
    parent: jax.Array  # [R] int32, -1 for the root and unused slots
    is_leaf: jax.Array  # [R] bool
    tasks: jax.Array  # [R, C, d] stored tasks (ring buffer)
    rewards: jax.Array  # [R, C]
    start: jax.Array  # [R] int32 slot of the oldest pair
    count: jax.Array  # [R] int32 number of stored pairs
    alp: jax.Array  # [R] float32 absolute learning progress
    unbounded: jax.Array  # [R] bool: the region discarded once, so the reference keeps all its pairs
    evicted_task: jax.Array  # [R, d] lowest-reward pair dropped from an unbounded region's FIFO
    evicted_reward: jax.Array  # [R] its reward (inf: none)
    num_regions: jax.Array  # [] int32 regions in use (indices 0 .. num_regions - 1)
    episodes: jax.Array  # [] int32 pairs received
    discards: jax.Array  # [] int32 failed splits (discard rule applied)
    key: jax.Array  # PRNG key for split attempts
    inputs: InputCounts  # bad input received (teachers.base)

    @property
    def valid(self) -> jax.Array:
        """[R] bool: region slots in use."""
        return jnp.arange(self.count.shape[-1]) < self.num_regions[..., None]


def region_pairs(state: RIACState, region: int) -> tuple[np.ndarray, np.ndarray]:
    """Host-side: the (tasks [count, d], rewards [count]) stored in ``region``, oldest first."""
    tasks = np.asarray(state.tasks[region])
    rewards = np.asarray(state.rewards[region])
    c = tasks.shape[0]
    idx = (int(state.start[region]) + np.arange(int(state.count[region]))) % c
    return tasks[idx], rewards[idx]


def region_alp(rewards: jax.Array, member: jax.Array, window: int) -> jax.Array:
    """ALP of the pairs ``member`` selects from ``rewards`` (last axis in arrival order).

    n = number of members; 0 if n <= 2, else |mean(older half) - mean(newer half)| of the last
    w = min(n, window) members, the newer half holding floor(w / 2).
    """
    rank = jnp.cumsum(member.astype(jnp.int32), axis=-1) - 1
    return _alp_from_rank(rewards, member, rank, jnp.sum(member, axis=-1), window)


def _alp_from_rank(rewards, member, rank, n, window):
    """ALP given each pair's chronological ``rank`` (0 = oldest) among the ``n`` members."""
    n = n[..., None]
    w = jnp.minimum(n, window)
    h = w // 2
    older = member & (rank >= n - w) & (rank < n - h)
    newer = member & (rank >= n - h)
    n_old = jnp.maximum(jnp.sum(older, axis=-1), 1)
    n_new = jnp.maximum(jnp.sum(newer, axis=-1), 1)
    mean_old = jnp.sum(jnp.where(older, rewards, 0.0), axis=-1) / n_old
    mean_new = jnp.sum(jnp.where(newer, rewards, 0.0), axis=-1) / n_new
    return jnp.where(n[..., 0] > 2, jnp.abs(mean_old - mean_new), 0.0)


def best_attempt(valid: jax.Array, score: jax.Array) -> jax.Array:
    """Index of the highest-scoring valid attempt, ties going to the later one."""
    masked = jnp.where(valid, score, -jnp.inf)
    last = masked.shape[0] - 1
    return last - jnp.argmax(masked[::-1])


def _in_regions(state: RIACState, x: jax.Array) -> jax.Array:
    """[R] bool: regions whose box contains ``x``."""
    above = jnp.where(state.low_open, x > state.low, x >= state.low)
    return jnp.all(above & (x <= state.high), axis=-1) & state.valid


def _chronological(state: RIACState, regions: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Tasks [..., C, d], rewards [..., C] and a stored mask [..., C] of ``regions``, oldest first."""
    C = state.rewards.shape[-1]
    slots = (state.start[regions][..., None] + jnp.arange(C)) % C
    tasks = jnp.take_along_axis(state.tasks[regions], slots[..., None], axis=-2)
    rewards = jnp.take_along_axis(state.rewards[regions], slots, axis=-1)
    stored = jnp.arange(C) < state.count[regions][..., None]
    return tasks, rewards, stored


class _SplitPatch(NamedTuple):
    """What splitting a leaf writes: two children, or nothing (then the discard rule applies)."""

    split: jax.Array  # [] bool
    low: jax.Array  # [2, d]
    high: jax.Array  # [2, d]
    low_open: jax.Array  # [2, d]
    tasks: jax.Array  # [2, C, d] arrival order from slot 0
    rewards: jax.Array  # [2, C]
    count: jax.Array  # [2]
    alp: jax.Array  # [2]


class _Geometry(NamedTuple):
    """Constants derived from the config and the task space (host-side, static)."""

    d: int  # task dimension
    R: int  # region slots
    C: int  # pairs per region FIFO
    A: int  # split attempts
    window: int  # ALP window
    min_size: float  # pairs each child needs
    m1: int  # ceil(min_size)
    n_discard: int  # pairs dropped by a discard
    space_low: jax.Array  # [d]
    space_high: jax.Array  # [d]
    min_extent: jax.Array  # [d] smallest child extent


def _geometry(task_space: TaskSpace, config: RIACConfig) -> _Geometry:
    low, high = task_space.low_array, task_space.high_array
    return _Geometry(
        d=task_space.dim, R=config.max_regions, C=config.capacity, A=config.nb_split_attempts,
        window=config.window, min_size=config.min_size, m1=math.ceil(config.min_size),
        n_discard=config.discard_count, space_low=low, space_high=high,
        min_extent=config.min_dims_range_ratio * (high - low),
    )


def init_state(g: _Geometry, key: jax.Array) -> RIACState:
    """One root region (the whole space) and nothing stored."""
    R, C, d = g.R, g.C, g.d
    return RIACState(
        low=jnp.zeros((R, d), jnp.float32).at[0].set(g.space_low),
        high=jnp.zeros((R, d), jnp.float32).at[0].set(g.space_high),
        low_open=jnp.zeros((R, d), bool),
        parent=jnp.full((R,), -1, jnp.int32),
        is_leaf=jnp.zeros((R,), bool).at[0].set(True),
        tasks=jnp.zeros((R, C, d), jnp.float32),
        rewards=jnp.zeros((R, C), jnp.float32),
        start=jnp.zeros((R,), jnp.int32),
        count=jnp.zeros((R,), jnp.int32),
        alp=jnp.zeros((R,), jnp.float32),
        unbounded=jnp.zeros((R,), bool),
        evicted_task=jnp.zeros((R, d), jnp.float32),
        evicted_reward=jnp.full((R,), jnp.inf, jnp.float32),
        num_regions=jnp.ones((), jnp.int32),
        episodes=jnp.zeros((), jnp.int32),
        discards=jnp.zeros((), jnp.int32),
        key=key,
        inputs=InputCounts.zeros(),
    )


def threshold_intervals(g: _Geometry, tasks_p, member, n_p, low_p, high_p):
    """Per dimension, the thresholds ``[lo, hi)`` that leave >= ``min_size`` pairs on both sides of a
    split (order statistics of the leaf's tasks) and the probability weight of each dimension for an
    accepted draw of the reference's redraw-until-big-enough loop."""
    d, C, m1 = g.d, g.C, g.m1
    srt = jnp.sort(jnp.where(member[:, None], tasks_p, jnp.inf), axis=0)  # [C, d]
    if m1 <= 0:
        a = jnp.full((d,), -jnp.inf)
    elif m1 <= C:
        a = srt[m1 - 1]
    else:
        a = jnp.full((d,), jnp.inf)
    m2 = n_p - m1  # the lower child may hold at most m2 pairs
    b = jnp.where(m2 >= n_p, jnp.inf, srt[jnp.clip(m2, 0, C - 1)])
    lo = jnp.maximum(a, low_p)
    hi = jnp.minimum(b, high_p)
    length = jnp.where(m2 >= 0, jnp.maximum(hi - lo, 0.0), 0.0)
    return lo, hi, length / (high_p - low_p)


def no_split(g: _Geometry) -> _SplitPatch:
    """The patch of a leaf that is not overfull (nothing written)."""
    return _SplitPatch(
        split=jnp.zeros((), bool),
        low=jnp.zeros((2, g.d), jnp.float32),
        high=jnp.zeros((2, g.d), jnp.float32),
        low_open=jnp.zeros((2, g.d), bool),
        tasks=jnp.zeros((2, g.C, g.d), jnp.float32),
        rewards=jnp.zeros((2, g.C), jnp.float32),
        count=jnp.zeros((2,), jnp.int32),
        alp=jnp.zeros((2,), jnp.float32),
    )


def try_split(g: _Geometry, config: RIACConfig, state: RIACState, p: jax.Array, key) -> _SplitPatch:
    """Best of ``A`` split attempts on leaf ``p`` (``split`` False if none is valid)."""
    A = g.A
    tasks_p, rew_p, member = _chronological(state, p)  # [C, d], [C], [C]
    low_p, high_p = state.low[p], state.high[p]
    lo, hi, weight = threshold_intervals(g, tasks_p, member, state.count[p], low_p, high_p)
    feasible = jnp.sum(weight) > 0

    k_dim, k_thr = jax.random.split(key)
    logits = jnp.where(weight > 0, jnp.log(jnp.where(weight > 0, weight, 1.0)), -jnp.inf)
    dims = jax.random.categorical(k_dim, logits, shape=(A,))
    thr = lo[dims] + jax.random.uniform(k_thr, (A,)) * (hi[dims] - lo[dims])  # [A]

    side1 = member[None, :] & (tasks_p[:, dims].T <= thr[:, None])  # [A, C] lower child
    side2 = member[None, :] & ~side1
    n1, n2 = jnp.sum(side1, axis=1), jnp.sum(side2, axis=1)
    size_ok = (n1 >= g.min_size) & (n2 >= g.min_size)
    bounds_ok = (
        jnp.all(high_p - low_p >= g.min_extent)
        & (thr - low_p[dims] >= g.min_extent[dims])
        & (high_p[dims] - thr >= g.min_extent[dims])
    )
    alp1 = region_alp(rew_p[None, :], side1, g.window)
    alp2 = region_alp(rew_p[None, :], side2, g.window)
    delta = jnp.abs(alp1 - alp2)
    if config.split_score == "paper":
        score = n1.astype(jnp.float32) * n2.astype(jnp.float32) * delta
    else:  # teachDeepRL: len(.) * len(.) of two-element lists = 4, a constant factor
        score = delta
    valid = feasible & size_ok & bounds_ok & (state.num_regions + 2 <= g.R)
    best = best_attempt(valid, score)
    child_from = best if config.child_alp == "chosen" else A - 1

    dim, t = dims[best], thr[best]
    sides = jnp.stack([side1[best], side2[best]])  # [2, C]
    counts = jnp.sum(sides, axis=1).astype(jnp.int32)
    order = jnp.argsort(~sides, axis=1, stable=True)  # each child's pairs first, in order
    keep = jnp.arange(g.C)[None, :] < counts[:, None]
    return _SplitPatch(
        split=jnp.any(valid),
        low=jnp.stack([low_p, low_p.at[dim].set(t)]),
        high=jnp.stack([high_p.at[dim].set(t), high_p]),
        low_open=jnp.stack([state.low_open[p], state.low_open[p].at[dim].set(True)]),
        tasks=jnp.where(keep[..., None], tasks_p[order], 0.0),
        rewards=jnp.where(keep, rew_p[order], 0.0),
        count=counts,
        alp=jnp.stack([alp1[child_from], alp2[child_from]]),
    )


def append_pair(g: _Geometry, state: RIACState, x: jax.Array, r: jax.Array, active=True):
    """Append (x, r) to every region containing x (the root-to-leaf path); a full FIFO drops its
    oldest pair, remembered when the region keeps all its pairs (see the module docstring).
    ``active`` False changes nothing. Returns ``(state, into [R], key)``."""
    into = _in_regions(state, x) & active
    full = state.count >= g.C
    old_r = state.rewards[jnp.arange(g.R), state.start]
    old_t = state.tasks[jnp.arange(g.R), state.start]
    remember = into & full & state.unbounded & (old_r < state.evicted_reward)
    pos = jnp.where(full, state.start, (state.start + state.count) % g.C)
    rows = jnp.where(into, jnp.arange(g.R), g.R)  # R: out of bounds, dropped
    new_key, sub = jax.random.split(state.key)
    x, r = after((x, r), old_r, old_t)  # written after the FIFO reads, in place (base.after)
    state = state.replace(
        tasks=state.tasks.at[rows, pos].set(x, mode="drop"),
        rewards=state.rewards.at[rows, pos].set(r, mode="drop"),
        start=jnp.where(into & full, (state.start + 1) % g.C, state.start),
        count=jnp.where(into, jnp.minimum(state.count + 1, g.C), state.count),
        evicted_reward=jnp.where(remember, old_r, state.evicted_reward),
        evicted_task=jnp.where(remember[:, None], old_t, state.evicted_task),
        key=jnp.where(active, new_key, state.key),
        episodes=state.episodes + jnp.asarray(active, jnp.int32),
    )
    return state, into, sub


def split_or_discard(g: _Geometry, state: RIACState, p, need, patch: _SplitPatch) -> RIACState:
    """Write the two children of a split of leaf ``p``, or apply the discard rule to it."""
    R = g.R
    split = need & patch.split
    discard = need & ~patch.split
    c1 = state.num_regions
    kids = jnp.where(split, jnp.stack([c1, c1 + 1]), R)  # R: dropped
    p_if_split = jnp.where(split, p, R)
    p_if_discard = jnp.where(discard, p, R)
    return state.replace(
        low=state.low.at[kids].set(patch.low, mode="drop"),
        high=state.high.at[kids].set(patch.high, mode="drop"),
        low_open=state.low_open.at[kids].set(patch.low_open, mode="drop"),
        parent=state.parent.at[kids].set(p, mode="drop"),
        is_leaf=state.is_leaf.at[kids].set(True, mode="drop").at[p_if_split].set(False, mode="drop"),
        tasks=state.tasks.at[kids].set(patch.tasks, mode="drop"),
        rewards=state.rewards.at[kids].set(patch.rewards, mode="drop"),
        start=state.start.at[kids].set(0, mode="drop")
        .at[p_if_discard].set((state.start[p] + g.n_discard) % g.C, mode="drop"),
        count=state.count.at[kids].set(patch.count, mode="drop")
        .at[p_if_discard].set(jnp.maximum(state.count[p] - g.n_discard, 0), mode="drop"),
        alp=state.alp.at[kids].set(patch.alp, mode="drop"),
        # the reference replaces a discarding leaf's FIFO by an unbounded deque
        unbounded=state.unbounded.at[p_if_discard].set(True, mode="drop"),
        evicted_reward=state.evicted_reward.at[p_if_discard].set(jnp.inf, mode="drop"),
        num_regions=state.num_regions + 2 * split.astype(jnp.int32),
        discards=state.discards + discard.astype(jnp.int32),
    )


def add_pair_lazy(g: _Geometry, config: RIACConfig, state: RIACState, x, r, active=True):
    """One episode (nothing if ``active`` is False): append, split or discard an overfull leaf.
    The ALPs of the regions that received the pair are left stale; returns ``(state, into [R])``
    and :func:`refresh_alp` recomputes them."""
    x = jnp.clip(x, g.space_low, g.space_high)
    state, into, key = append_pair(g, state, x, r, active)
    overfull = into & state.is_leaf & (state.count > config.max_region_size)
    need = jnp.any(overfull)
    p = jnp.argmax(overfull)
    patch = jax.lax.cond(need, lambda: try_split(g, config, state, p, key), lambda: no_split(g))
    return split_or_discard(g, state, p, need, patch), into


def refresh_alp(g: _Geometry, state: RIACState, touched: jax.Array) -> RIACState:
    """Recompute the ALP of the regions ``touched`` [R] from their stored pairs (others keep theirs).

    Exact after any number of :func:`add_pair_lazy`: a region's pairs change only when it receives
    one (or discards, in the same step), and a new child keeps the ALP its split gave it until then,
    so recomputing once from the final pairs gives what recomputing after every pair gives."""
    rank = (jnp.arange(g.C)[None, :] - state.start[:, None]) % g.C
    member = rank < state.count[:, None]
    new_alp = _alp_from_rank(state.rewards, member, rank, state.count, g.window)
    return state.replace(alp=jnp.where(touched, new_alp, state.alp))


def add_pairs(g: _Geometry, config: RIACConfig, state: RIACState, tasks, scores, n_valid) -> RIACState:
    """The first ``n_valid`` rows of ``tasks [n, d]`` / ``scores [n]`` one after another, the ALPs
    refreshed once at the end (:func:`refresh_alp`).

    Under ``vmap`` a loop whose trip count differs between seeds would select the whole state (every
    region's FIFO) after every pair; the batching rule here loops up to the largest count with a
    per-seed ``active`` flag instead, so a seed past its count writes nothing and nothing is copied."""
    return _add_pairs_fn(g, config)(state, tasks, scores, n_valid)


def _add_pairs_fn(g: _Geometry, config: RIACConfig):
    def step(state, touched, x, r, active):
        state, into = add_pair_lazy(g, config, state, x, r, active)
        return state, touched | into

    def finish(state, touched):
        return refresh_alp(g, state, touched)

    @jax.custom_batching.custom_vmap
    def fn(state, tasks, scores, n_valid):
        def body(i, carry):
            return step(*carry, tasks[i], scores[i], True)

        touched = jnp.zeros((g.R,), bool)
        return finish(*jax.lax.fori_loop(0, n_valid, body, (state, touched)))

    @fn.def_vmap
    def fn_vmap(axis_size, in_batched, state, tasks, scores, n_valid):
        state, tasks, scores, n_valid = batch_all(axis_size, in_batched, (state, tasks, scores, n_valid))

        def body(i, carry):
            return jax.vmap(step)(*carry, tasks[:, i], scores[:, i], i < n_valid)

        touched = jnp.zeros((axis_size, g.R), bool)
        carry = jax.lax.fori_loop(0, jnp.max(n_valid), body, (state, touched))
        out = jax.vmap(finish)(*carry)
        return out, jax.tree.map(lambda _: True, out)

    return fn


def exact_block(config: RIACConfig) -> int:
    """Episodes per sample/update block that equal one episode at a time: 1 (regions and their ALPs
    change after every episode)."""
    return 1


def riac(task_space: TaskSpace, config: RIACConfig = RIACConfig()) -> Teacher:
    """RIAC teacher over a box ``task_space`` (see the module docstring)."""
    validate_config(config, task_space)
    g = _geometry(task_space, config)

    @checked_update("riac", task_space)
    def update(state: RIACState, tasks, scores, mask, **extras) -> RIACState:
        order, n_valid = compact_valid_first(mask)
        return add_pairs(g, config, state, tasks[order], scores[order], n_valid)

    @checked_sample("riac")
    def sample(state: RIACState, key: jax.Array, n: int) -> tuple[RIACState, jax.Array]:
        tasks, _ = sample_with_modes(task_space, config, state, key, n)
        return state, tasks

    return Teacher(lambda key: init_state(g, key), sample, update, task_space, "riac")


def sample_with_modes(
    task_space: TaskSpace, config: RIACConfig, state: RIACState, key: jax.Array, n: int
) -> tuple[jax.Array, jax.Array]:
    """RIAC's ``sample``, also returning each task's mode (MODE_ALP_REGION, MODE_UNIFORM, MODE_MUTATE).

    The teacher's ``sample`` is this without the modes; ``n`` is static.
    """
    d = task_space.dim
    k_u, k_reg, k_in, k_whole, k_noise = jax.random.split(key, 5)
    u = jax.random.uniform(k_u, (n,))
    mode = jnp.where(
        u < P_MODE3, MODE_MUTATE, jnp.where(u < P_MODE3 + P_UNIFORM, MODE_UNIFORM, MODE_ALP_REGION)
    )
    active = state.valid & (state.is_leaf if config.sampling_in_leaves_only else True)
    w = jnp.where(active, state.alp, 0.0)
    w = jnp.where(jnp.sum(w) > 0, w, active.astype(jnp.float32))  # all ALPs 0: uniform
    logits = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    reg = jax.random.categorical(k_reg, logits, shape=(n,))  # one region per task

    lo, hi = state.low[reg], state.high[reg]  # [n, d]
    in_region = lo + jax.random.uniform(k_in, (n, d)) * (hi - lo)
    whole = task_space.sample_uniform(k_whole, n)

    # Mode 3: the region's lowest-reward pair (the oldest among equals), mutated, kept in the region.
    tasks_r, rewards_r, stored = _chronological(state, reg)  # [n, C, d], [n, C], [n, C]
    stored_r = jnp.where(stored, rewards_r, jnp.inf)
    worst = jnp.argmin(stored_r, axis=1)
    base = jnp.take_along_axis(tasks_r, worst[:, None, None], axis=1)[:, 0]  # [n, d]
    # an unbounded region (see the module docstring) also holds its older pairs, which win ties
    older = state.evicted_reward[reg] <= jnp.min(stored_r, axis=1)
    base = jnp.where(older[:, None], state.evicted_task[reg], base)
    mutated = base + config.mutation_std * jax.random.normal(k_noise, (n, d))
    mutated = jnp.clip(mutated, lo + CLIP_EPS, hi - CLIP_EPS)
    mutated = jnp.where((state.count[reg] > 0)[:, None], mutated, in_region)
    mutated = jnp.where(state.count[0] > 0, mutated, whole)  # no pair received yet

    m = mode[:, None]
    tasks = jnp.where(m == MODE_MUTATE, mutated, jnp.where(m == MODE_UNIFORM, whole, in_region))
    return tasks, mode
