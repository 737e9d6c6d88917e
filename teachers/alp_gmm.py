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
* **When ALP is computed.** An episode's ALP depends only on the episodes before it, and only the
  rows of a fit window are ever fitted, so ``update`` just stores (tau, r) in the history (a ring of
  C + 2 fit_rate entries: a window may end up to fit_rate episodes before the latest, and its first
  episode looks C back) and the ALP column of a window is computed when the window is fitted
  (:func:`window_alps`): the same numbers as TDRL's ALP at insertion, once per window instead of at
  every update. Under ``vmap`` only the seeds that refit search, a chunk of seeds at a time
  (:func:`teachers.base.map_due_seeds`), and the search is a brute-force masked nearest-neighbour
  scan over blocks of the episodes each query can see, so a window costs ``fit_rate x min(e, C)``.
* The ALP coordinate is in score units (scores in [0, 1], as TDRL's normalised returns).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import Teacher, batch_all, chunk_size, map_due_seeds
from teachers.gmm import GMMTeacherConfig, exact_block, GMMTeacherState, RowModel, gmm_teacher, ring_write

DEFAULT_HISTORY = 100_000  # database entries when the run's episode budget is not known
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
    tasks: jax.Array  # [C + 2 fit_rate, d] tasks (teacher units) of the last episodes, a ring
    scores: jax.Array  # [C + 2 fit_rate] their scores
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


def _seed_alps(h_tasks, h_scores, s, tie_seed, q_tasks, q_scores, end, capacity: int):
    """ALP of the queries ``q_*`` [L, ...], episodes ``end - L .. end - 1``, for seed ``s`` of the
    histories ``h_*`` [S, C', ...] (episode e at slot ``e % C'``, holding every episode whose
    candidates are needed: ``end - L - capacity`` onwards)."""
    L, d = q_tasks.shape
    stored = h_tasks.shape[1]
    hb = min(stored, HISTORY_BLOCK)
    e = end - L + jnp.arange(L)
    q_seed = _mix32(tie_seed ^ _mix32(e.astype(jnp.uint32)))
    lo = jnp.maximum(end - L - capacity, 0)  # the oldest candidate of the first query
    n_blocks = (jnp.maximum(end - 1 - lo, 0) + hb - 1) // hb  # candidates lo .. end - 2

    def visit(j, best, ties_pass):
        ep = lo + j * hb + jnp.arange(hb)
        slots = ep % stored
        pts, sc = h_tasks[s, slots], h_scores[s, slots]
        ok = (ep[None, :] < e[:, None]) & (ep[None, :] >= e[:, None] - capacity)
        dist = jnp.where(ok, sum((q_tasks[:, k, None] - pts[None, :, k]) ** 2 for k in range(d)), jnp.inf)
        if not ties_pass:  # best = (nearest squared distance, its score, how many are that near)
            dmin, score, ties = best
            bmin = jnp.min(dist, axis=1)
            bscore = sc[jnp.argmin(dist, axis=1)]
            bties = jnp.sum((dist == bmin[:, None]) & ok, axis=1)
            new = jnp.minimum(dmin, bmin)
            ties = jnp.where(dmin == new, ties, 0) + jnp.where(bmin == new, bties, 0)
            return new, jnp.where(bmin < dmin, bscore, score), ties
        dmin, score, pri = best  # among the nearest, the candidate of highest priority
        p = jnp.where(ok & (dist == dmin[:, None]), _priority(q_seed, ep), 0)
        bpri = jnp.max(p, axis=1)
        bscore = sc[jnp.argmax(p, axis=1)]
        return dmin, jnp.where(bpri > pri, bscore, score), jnp.maximum(pri, bpri)

    def search(best, ties_pass):
        body = lambda c: (c[0] + 1, visit(c[0], c[1], ties_pass))
        return jax.lax.while_loop(lambda c: c[0] < n_blocks, body, (jnp.zeros((), jnp.int32), best))[1]

    dmin, score, ties = search((jnp.full((L,), jnp.inf), jnp.zeros((L,)), jnp.zeros((L,), jnp.int32)), False)
    # a while loop, not a cond: under vmap a cond on a per-seed flag would run the pass always
    need = jnp.any(ties > 1)
    score = jax.lax.while_loop(
        lambda c: need & ~c[0],
        lambda c: (True, search((dmin, c[1], jnp.zeros((L,), jnp.uint32)), True)[1]),
        (jnp.zeros((), bool), score))[1]
    use = (e >= 0) & (jnp.minimum(e, capacity) > 5)
    return jnp.where(use, jnp.abs(q_scores - score), 0.0)


@functools.lru_cache(maxsize=None)
def _window_alps_fn(capacity: int, chunk: int | None):
    @jax.custom_batching.custom_vmap
    def fn(h_tasks, h_scores, tie_seed, q_tasks, q_scores, end, fitted):
        return jax.lax.cond(
            fitted,
            lambda: _seed_alps(h_tasks[None], h_scores[None], 0, tie_seed, q_tasks, q_scores, end, capacity),
            lambda: jnp.zeros(q_scores.shape, jnp.float32))

    @fn.def_vmap
    def fn_vmap(axis_size, in_batched, *args):
        h_tasks, h_scores, tie_seed, q_tasks, q_scores, end, fitted = batch_all(axis_size, in_batched, args)
        # each chunk reads the histories of its seeds in place, block by block (no gathered copies)
        one = lambda s: _seed_alps(h_tasks, h_scores, s, tie_seed[s], q_tasks[s], q_scores[s], end[s], capacity)
        out = map_due_seeds(fitted, chunk_size(axis_size, chunk), jax.vmap(one),
                            jnp.zeros(q_scores.shape, jnp.float32))
        return out, True

    return fn


def window_alps(
    history: ALPHistory, tasks: jax.Array, scores: jax.Array, end: jax.Array, fitted: jax.Array,
    chunk: int | None = None,
) -> jax.Array:
    """ALP [L] of episodes ``end - L .. end - 1`` with ``tasks`` [L, d] (teacher units) and ``scores``
    [L], as TDRL computes it one episode at a time when the episode is added, if ``fitted``; zeros
    otherwise (under ``vmap`` only the seeds with ``fitted`` search, ``chunk`` at a time, see
    :func:`teachers.base.map_due_seeds`).

    Episode e's candidates are the history's episodes ``max(0, e - C) .. e - 1``; ALP = |score - score
    of the nearest candidate| (ties: uniformly at random) if ``min(e, C) > 5``, else 0. The history
    must still hold episode ``end - L - C`` onwards (it holds C + 2 fit_rate episodes)."""
    fn = _window_alps_fn(int(history.capacity), chunk)
    return fn(history.tasks, history.scores, history.tie_seed, tasks, scores, end, jnp.asarray(fitted, bool))


def episode_alps(state: GMMTeacherState, end: jax.Array, length: int) -> jax.Array:
    """The ALP [length] of episodes ``end - length .. end - 1`` of an ALP-GMM state, as its refits
    compute them (``state.episodes - 2 fit_rate <= end - length``, ``end <= state.episodes``)."""
    history = state.aux
    slots = (end - length + jnp.arange(length)) % history.tasks.shape[0]
    return window_alps(history, history.tasks[slots], history.scores[slots], end, True)


def alp_model(task_space: TaskSpace, config: ALPGMMConfig) -> RowModel:
    """ALP-GMM's rows ``[task, alp]`` and component score (mean ALP). The ring stores ``[task, score]``;
    the ALP column of a window is computed when it is fitted (:func:`window_alps`)."""
    capacity = config.capacity
    stored = capacity + 2 * config.fit_rate  # + the episodes a refit's window may lag behind
    d = task_space.dim

    def init(key: jax.Array) -> ALPHistory:
        return ALPHistory(
            tasks=jnp.zeros((stored, d), jnp.float32),
            scores=jnp.zeros((stored,), jnp.float32),
            tie_seed=jax.random.bits(key, (), jnp.uint32),
            capacity=capacity,
        )

    def rows(history: ALPHistory, units, scores, mask, count):
        history = history.replace(
            tasks=ring_write(history.tasks, count, units, mask),
            scores=ring_write(history.scores, count, scores, mask),
        )
        return history, scores[:, None]

    def fit_rows(history: ALPHistory, window, end, fitted):
        alps = window_alps(history, window[:, :d], window[:, d], end, fitted, config.em.vmap_chunk)
        return window.at[:, d].set(alps)

    return RowModel("alp_gmm", 1, init, rows, lambda gmm: gmm.means[:, -1], fit_rows)


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
