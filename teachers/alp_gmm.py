"""ALP-GMM: Absolute Learning Progress - Gaussian Mixture Model teacher.

Portelas, Colas, Hofmann and Oudeyer, "Teacher algorithms for curriculum learning of Deep RL in
continuously parameterized environments", CoRL 2019 (arXiv:1910.07224). Reference implementation:
flowersteam/teachDeepRL ``teachDRL/teachers/algos/alp_gmm.py`` ("TDRL"), followed here. The fitting,
the refit schedule and the sampling are the shared GMM teacher (:mod:`teachers.gmm`); what is
ALP-GMM's own is here:

* **Rows** ``[tau, alp]`` (paper eq. 1-2): ``alp = |r - r_old|`` where ``r_old`` is the score of the
  previous episode whose task is nearest to tau (Euclidean, in the teacher's task units), provided the
  ALP database already holds more than 5 entries; else ``alp = 0``. The query precedes the insert of
  (tau, r), so a task never matches itself.
* **Component score**: the component's mean on the ALP coordinate.

JAX port:

* **Ties.** When several previous tasks are equally near (exact duplicates are common: GMM samples
  clipped to a corner of the task box), one of them is chosen uniformly at random, as TDRL's KD-tree
  query effectively does; it is not the oldest (always taking the oldest keeps a corner's ALP high and
  traps the teacher there). The choice for episode e is a hash of (seed, e, candidate's episode), so
  it does not depend on how episodes are batched.
* **History.** The ALP database holds ``history_capacity`` entries. TDRL keeps all history by default
  (``alp_max_size=None``): ``history_capacity=None`` means "sized to the run": an experiment that knows
  its episode budget passes it (``make_teacher(..., max_episodes=N)``,
  :meth:`ALPGMMConfig.sized_to_run`); without one :data:`DEFAULT_HISTORY` entries are kept. Once full,
  the oldest entry is overwritten (TDRL's ``alp_max_size``, exact: episode e sees episodes
  ``max(0, e - C) .. e - 1``) and the overwritten entries are counted (:func:`history_dropped`), never
  silently. The "more than 5 entries" rule counts ``min(e, C)`` entries.
* **Cost.** Every valid row's ALP is computed in parallel against the database before the batch plus
  the valid rows earlier in the batch (equal to TDRL's one-at-a-time processing): a brute-force
  masked nearest-neighbour search over blocks of the *filled* part of the database only, for blocks
  of valid rows only, so an update costs (valid rows) x (entries so far), not the capacity.
* The ALP coordinate is in score units (scores in [0, 1], as TDRL's normalised returns).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import Teacher, after, compact_valid_first
from teachers.gmm import GMMTeacherConfig, exact_block, GMMTeacherState, RowModel, gmm_teacher, ring_write

DEFAULT_HISTORY = 100_000  # database entries when the run's episode budget is not known
QUERY_BLOCK = 8  # valid rows searched together
HISTORY_BLOCK = 512  # database entries per step of the search


@dataclasses.dataclass(frozen=True)
class ALPGMMConfig(GMMTeacherConfig):
    """ALP-GMM options; defaults are TDRL's class defaults (EM options in ``em``)."""

    history_capacity: int | None = None  # ALP database size (TDRL alp_max_size); None: sized to the run

    def sized_to_run(self, max_episodes: int) -> ALPGMMConfig:
        """This config with a database for every episode of a run of at most ``max_episodes`` (TDRL
        keeps all history), unless a capacity was given."""
        if self.history_capacity is not None:
            return self
        return dataclasses.replace(self, history_capacity=max(int(max_episodes), 6))

    @property
    def capacity(self) -> int:
        return DEFAULT_HISTORY if self.history_capacity is None else int(self.history_capacity)


@struct.dataclass
class ALPHistory:
    tasks: jax.Array  # [C', d] database tasks (teacher units), ring over the first C slots
    scores: jax.Array  # [C'] database scores
    tie_seed: jax.Array  # [] uint32, seed of the tie-breaking hash
    capacity: int = struct.field(pytree_node=False, default=0)  # logical capacity C


def history_dropped(state: GMMTeacherState) -> jax.Array:
    """Entries of the ALP database overwritten so far (0 while the run fits the capacity)."""
    return jnp.maximum(state.episodes - state.aux.capacity, 0)


def _mix32(x: jax.Array) -> jax.Array:
    """murmur3's 32-bit finaliser: a cheap, well-mixed hash of uint32."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def _priority(query_seed: jax.Array, episode: jax.Array) -> jax.Array:
    """Random tie-break priority of candidate ``episode`` [M] for queries with ``query_seed`` [Q]."""
    return _mix32(query_seed[:, None] ^ _mix32(episode.astype(jnp.uint32) * jnp.uint32(0x9E3779B9))[None, :])


def batch_alp(
    history: ALPHistory,
    capacity: int,
    count: jax.Array,
    tasks: jax.Array,
    scores: jax.Array,
    mask: jax.Array,
) -> jax.Array:
    """ALP of every valid row of a batch, as if the valid rows were processed one after another.

    The database (logical capacity C) holds episodes ``max(0, count - C) .. count - 1`` (episode e at
    slot ``e % C``). Valid row i is episode ``e_i = count + (valid rows before i)``; its candidates are
    the database entries and earlier valid batch rows with episode index ``>= e_i - C``. ALP =
    |score - score of the nearest candidate| (ties: uniformly at random) if ``min(e_i, C) > 5``, else
    0. Masked rows get 0. Returns [n].
    """
    n, d = tasks.shape
    stored = history.tasks.shape[0]
    mask = jnp.asarray(mask, bool)
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1
    order, n_valid = compact_valid_first(mask)
    qb = min(n, QUERY_BLOCK)
    n_qblocks = -(-n // qb)
    pad = n_qblocks * qb - n
    q_tasks, q_scores, q_off = (
        jnp.pad(a[order], [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in (tasks, scores, offsets))
    q_valid = jnp.arange(n_qblocks * qb) < n_valid
    q_episode = count + q_off
    q_seed = _mix32(history.tie_seed ^ _mix32(q_episode.astype(jnp.uint32)))
    hb = min(stored, HISTORY_BLOCK)
    n_used = jnp.minimum(count, capacity)

    def sq_dist(q, pts):  # [Q, d] x [M, d] -> [Q, M], coordinate by coordinate
        return sum((q[:, k, None] - pts[None, :, k]) ** 2 for k in range(d))

    def history_block(j):
        slots = j * hb + jnp.arange(hb)
        episode = count - 1 - jnp.mod(count - 1 - slots, capacity)
        return (jax.lax.dynamic_slice_in_dim(history.tasks, j * hb, hb),
                jax.lax.dynamic_slice_in_dim(history.scores, j * hb, hb),
                episode, slots < n_used)

    def batch_block(j):
        idx = j * qb + jnp.arange(qb)
        return q_tasks[idx], q_scores[idx], count + q_off[idx], idx < n_valid

    n_hblocks = (n_used + hb - 1) // hb

    def search(q, e, seeds, ties_pass, best):
        """One pass over every candidate block; ``best`` = (dmin, score, ties) or, in the tie pass,
        (dmin, score, priority)."""

        def visit(get, j, best):
            pts, sc, ep, used = get(j)
            ok = used[None, :] & (ep[None, :] < e[:, None]) & (ep[None, :] >= e[:, None] - capacity)
            dist = jnp.where(ok, sq_dist(q, pts), jnp.inf)
            if not ties_pass:
                dmin, score, ties = best
                bmin = jnp.min(dist, axis=1)
                bscore = sc[jnp.argmin(dist, axis=1)]
                bties = jnp.sum((dist == bmin[:, None]) & ok, axis=1)
                new = jnp.minimum(dmin, bmin)
                ties = jnp.where(dmin == new, ties, 0) + jnp.where(bmin == new, bties, 0)
                return new, jnp.where(bmin < dmin, bscore, score), ties
            dmin, score, pri = best
            p = jnp.where(ok & (dist == dmin[:, None]), _priority(seeds, ep), 0)
            bpri = jnp.max(p, axis=1)
            bscore = sc[jnp.argmax(p, axis=1)]
            return dmin, jnp.where(bpri > pri, bscore, score), jnp.maximum(pri, bpri)

        def loop(get, n_blocks, best):
            def body(carry):
                j, best = carry
                return j + 1, visit(get, j, best)

            return jax.lax.while_loop(lambda c: c[0] < n_blocks, body, (jnp.zeros((), jnp.int32), best))[1]

        best = loop(history_block, n_hblocks, best)
        return loop(batch_block, (jnp.max(jnp.where(q_valid, q_off, -1)) // qb) + 1, best)

    def query_block(i, out):
        idx = i * qb + jnp.arange(qb)
        q, e, seeds, valid = q_tasks[idx], q_episode[idx], q_seed[idx], q_valid[idx]
        first = (jnp.full((qb,), jnp.inf), jnp.zeros((qb,)), jnp.zeros((qb,), jnp.int32))
        dmin, score, ties = search(q, e, seeds, False, first)

        def break_ties(score):  # only run when some query has equally near candidates
            return search(q, e, seeds, True, (dmin, score, jnp.zeros((qb,), jnp.uint32)))[1]

        # a while loop, not a cond: under vmap a cond on a per-seed flag would run the pass always
        need = jnp.any(valid & (ties > 1))
        score = jax.lax.while_loop(lambda c: need & ~c[0], lambda c: (True, break_ties(c[1])),
                                   (jnp.zeros((), bool), score))[1]
        use = valid & (jnp.minimum(e, capacity) > 5)
        return jax.lax.dynamic_update_slice_in_dim(
            out, jnp.where(use, jnp.abs(q_scores[idx] - score), 0.0), i * qb, 0)

    out = jax.lax.while_loop(
        lambda c: c[0] * qb < n_valid,
        lambda c: (c[0] + 1, query_block(c[0], c[1])),
        (jnp.zeros((), jnp.int32), jnp.zeros((n_qblocks * qb,), jnp.float32)),
    )[1]
    return jnp.zeros((n,), jnp.float32).at[order].set(out[:n])


def alp_model(task_space: TaskSpace, config: ALPGMMConfig) -> RowModel:
    """ALP-GMM's rows ``[task, alp]`` and component score (mean ALP)."""
    capacity = config.capacity
    stored = -(-capacity // HISTORY_BLOCK) * HISTORY_BLOCK if capacity > HISTORY_BLOCK else capacity
    d = task_space.dim

    def init(key: jax.Array) -> ALPHistory:
        return ALPHistory(
            tasks=jnp.zeros((stored, d), jnp.float32),
            scores=jnp.zeros((stored,), jnp.float32),
            tie_seed=jax.random.bits(key, (), jnp.uint32),
            capacity=capacity,
        )

    def rows(history: ALPHistory, units, scores, mask, count):
        alps = batch_alp(history, capacity, count, units, scores, mask)
        # written after the search has read the database, so that it is updated in place (base.after)
        units, scores = after((units, scores), alps)
        # slots >= capacity are padding (whole search blocks) and never written
        history = history.replace(
            tasks=ring_write(history.tasks, count, units, mask, capacity),
            scores=ring_write(history.scores, count, scores, mask, capacity),
        )
        return history, alps[:, None]

    return RowModel("alp_gmm", 1, init, rows, lambda gmm: gmm.means[:, -1])


def alp_gmm(task_space: TaskSpace, config: ALPGMMConfig = ALPGMMConfig()) -> Teacher:
    """The ALP-GMM teacher over a box ``task_space`` (see the module docstring)."""
    if config.history_capacity is not None and (
        not isinstance(config.history_capacity, int) or isinstance(config.history_capacity, bool)
        or config.history_capacity <= 5
    ):
        raise ValueError(
            "alp_gmm: history_capacity must be None or an int > 5 (ALP stays 0 until the database "
            f"holds more than 5 entries), got {config.history_capacity!r}")
    return gmm_teacher(task_space, config, alp_model(task_space, config))
