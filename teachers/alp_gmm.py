"""ALP-GMM: Absolute Learning Progress - Gaussian Mixture Model teacher.

Portelas, Colas, Hofmann and Oudeyer, "Teacher algorithms for curriculum learning of Deep RL in
continuously parameterized environments", CoRL 2019 (arXiv:1910.07224). Reference implementation:
flowersteam/teachDeepRL ``teachDRL/teachers/algos/alp_gmm.py`` ("TDRL"), followed here.

For an episode on task tau with score r:

* **ALP** (paper eq. 1-2): ``alp = |r - r_old|`` where ``r_old`` is the score of the previous episode
  whose task is nearest to tau (Euclidean, in the teacher's task units), provided the ALP database
  already holds more than 5 entries; else ``alp = 0``. The query precedes the insert of (tau, r).
* A row ``[tau, alp]`` (dimension d + 1) is appended. Every ``fit_rate`` episodes (once
  ``n_bootstrap`` episodes have passed), full-covariance GMMs with k = k_min..k_max components are
  fitted by EM on the last ``fit_rate`` rows and the one with the smallest AIC (or BIC / TDRL's AICc)
  is kept.
* **Sampling:** uniform over the task space during the bootstrap, with probability
  ``random_task_ratio``, or while there is no mixture; otherwise a component j is chosen with
  probability ``mu_j[alp] / sum_i mu_i[alp]`` (its mean ALP; mixture weights are ignored; uniform if
  all are 0), x ~ N(mu_j, Sigma_j) is drawn in d + 1 dimensions, the ALP coordinate dropped and the
  task clipped to the bounds.

JAX port (batched, masked, fixed shapes):

* ``update`` receives a batch whose valid rows are episodes in finishing order. Every valid row's ALP
  is computed in parallel, by a brute-force masked nearest-neighbour search, against the database
  before the batch plus the valid rows earlier in the batch; this equals TDRL's one-at-a-time
  processing. Then the valid rows are inserted in order.
* The ALP database is a ring buffer of ``history_capacity`` (task, score) entries (default 20000):
  once full, the oldest entry is overwritten. This is TDRL's ``alp_max_size``, but exact (the episode
  e sees exactly episodes ``max(0, e - capacity) .. e - 1``), where TDRL drops old entries only when
  its KD-tree buffer flushes. Give a capacity of at least the episode budget to keep all history,
  as TDRL does by default. The "more than 5 entries" rule counts ``min(e, capacity)`` entries.
* Refit once per ``update`` (see :func:`teachers.gmm.refit_on_crossing` for why this equals TDRL's
  per-episode schedule). The k-means init of sklearn is replaced by k-means++ + Lloyd steps (see
  :mod:`teachers.gmm`); every refit uses the same fit key, drawn in ``init`` (TDRL's fixed
  ``random_state``).
* ``normalise_tasks=True`` (default) maps tasks to [0, 1]^d inside the teacher: the nearest-neighbour
  distances, the GMM and the clipping work in the unit cube. TDRL (and TeachMyAgent) use raw task
  units; ``normalise_tasks=False`` reproduces that for parity runs. The two coincide on unit boxes
  (such as the hypercube toy environment).
* The ALP coordinate is in score units (scores in [0, 1] where the environment knows a range, as
  TDRL's normalised returns).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers import gmm as G
from teachers.base import Teacher, compact_valid_first

_NN_CHUNK = 128  # rows per block of the brute-force nearest-neighbour search (bounds memory)


@dataclasses.dataclass(frozen=True)
class ALPGMMConfig:
    """ALP-GMM options; defaults are TDRL's class defaults."""

    fit_rate: int = 250  # episodes between refits = size of the fit window
    k_min: int = 2  # component counts tried: k_min..k_max inclusive (TDRL arange(2, 11))
    k_max: int = 10
    criterion: str = "aic"  # "aic", "bic" or "aicc" (TDRL's AICc, see teachers.gmm)
    random_task_ratio: float = 0.2  # probability of a uniform task after the bootstrap
    n_bootstrap: int | None = None  # uniform episodes before the first fit; None -> fit_rate
    history_capacity: int = 20000  # ALP database size (TDRL alp_max_size); oldest overwritten
    em_iters: int = 100  # sklearn max_iter
    reg_covar: float = 1e-6  # sklearn reg_covar
    normalise_tasks: bool = True  # work in [0, 1]^d; False = raw task units (TDRL parity)
    em_tol: float = 1e-3  # sklearn tol on the mean log-likelihood
    kmeans_iters: int = 10  # Lloyd steps after k-means++ seeding (replaces sklearn's KMeans)

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(range(self.k_min, self.k_max + 1))

    @property
    def bootstrap(self) -> int:
        return self.fit_rate if self.n_bootstrap is None else self.n_bootstrap


@struct.dataclass
class ALPGMMState:
    hist_tasks: jax.Array  # [history_capacity, d] ALP database tasks (teacher units), ring
    hist_scores: jax.Array  # [history_capacity] ALP database scores, ring
    rows: jax.Array  # [2 fit_rate, d + 1] rows [task, alp] for the fit window, ring
    episodes: jax.Array  # [] int32, episodes reported so far
    gmm: G.GMM  # current mixture over [task, alp] (padded to k_max); valid iff has_gmm
    has_gmm: jax.Array  # [] bool
    n_fits: jax.Array  # [] int32, refits done so far
    fit_seed: jax.Array  # [] uint32, seed of the (fixed) fit key


def validate_config(task_space: TaskSpace, config: ALPGMMConfig) -> None:
    """Raise ``ValueError`` on bad options (host-side, before anything is compiled)."""
    G.validate_gmm_teacher(
        "ALP-GMM",
        task_space,
        fit_rate=config.fit_rate,
        k_min=config.k_min,
        k_max=config.k_max,
        random_task_ratio=config.random_task_ratio,
        em_iters=config.em_iters,
        reg_covar=config.reg_covar,
        em_tol=config.em_tol,
        kmeans_iters=config.kmeans_iters,
    )
    if config.criterion not in G.CRITERIA:
        raise ValueError(f"ALP-GMM: criterion must be one of {G.CRITERIA}, got {config.criterion!r}")
    if config.n_bootstrap is not None and (
        not isinstance(config.n_bootstrap, int) or isinstance(config.n_bootstrap, bool)
        or config.n_bootstrap < 0
    ):
        raise ValueError(f"ALP-GMM: n_bootstrap must be None or an int >= 0, got {config.n_bootstrap!r}")
    if not isinstance(config.history_capacity, int) or config.history_capacity <= 5:
        raise ValueError(
            "ALP-GMM: history_capacity must be an int > 5 (ALP stays 0 until the database holds "
            f"more than 5 entries), got {config.history_capacity!r}"
        )
    if config.criterion == "aicc":
        d = task_space.dim
        worst = G.tdrl_aicc_parameters(config.k_max, d)
        if config.fit_rate - worst - 1 <= 0:
            raise ValueError(
                f"ALP-GMM: with criterion='aicc' fit_rate ({config.fit_rate}) must exceed P'+1 = "
                f"{worst + 1:g} for k_max={config.k_max} (the AICc correction divides by N - P' - 1)"
            )


def batch_alp(
    hist_tasks: jax.Array,
    hist_scores: jax.Array,
    count: jax.Array,
    tasks: jax.Array,
    scores: jax.Array,
    mask: jax.Array,
) -> jax.Array:
    """ALP of every valid row of a batch, as if the valid rows were processed one after another.

    ``hist_*`` is the ring database (capacity C) holding episodes ``max(0, count - C) .. count - 1``
    (episode e at slot ``e % C``). Valid row i is episode ``e_i = count + (valid rows before i)``; its
    candidates are the database entries and earlier valid batch rows with episode index
    ``>= e_i - C`` (the database TDRL would hold with ``alp_max_size = C``). ALP = |score - score of
    the nearest candidate| if ``min(e_i, C) > 5``, else 0. Masked rows get 0. Returns [n].
    """
    capacity = hist_tasks.shape[0]
    n = tasks.shape[0]
    mask = jnp.asarray(mask, bool)
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1  # order among the valid rows
    slots = jnp.arange(capacity)
    slot_episode = count - 1 - jnp.mod(count - 1 - slots, capacity)
    slot_used = slots < count
    hist_t = hist_tasks.T  # [d, C]
    batch_t = tasks.T  # [d, n]

    def sq_dist(q, pts_t):  # [B, d] x [d, M] -> [B, M], coordinate by coordinate (fast on CPU)
        out = jnp.zeros((q.shape[0], pts_t.shape[1]), jnp.float32)
        for k in range(pts_t.shape[0]):
            out = out + (q[:, k, None] - pts_t[k][None, :]) ** 2
        return out

    def block_alp(block):
        q, score, off, valid = block  # a block of B rows
        e = count + off
        ok_hist = slot_used[None, :] & (slot_episode[None, :] >= e[:, None] - capacity)
        d_hist = jnp.where(ok_hist, sq_dist(q, hist_t), jnp.inf)
        ok_batch = mask[None, :] & (offsets[None, :] < off[:, None])
        ok_batch = ok_batch & (offsets[None, :] >= off[:, None] - capacity)
        d_batch = jnp.where(ok_batch, sq_dist(q, batch_t), jnp.inf)
        j_hist, j_batch = jnp.argmin(d_hist, axis=1), jnp.argmin(d_batch, axis=1)
        take_batch = jnp.min(d_batch, axis=1) < jnp.min(d_hist, axis=1)  # ties: the database
        nearest = jnp.where(take_batch, scores[j_batch], hist_scores[j_hist])
        use = valid & (jnp.minimum(e, capacity) > 5)
        return jnp.where(use, jnp.abs(score - nearest), 0.0)

    # Only the valid rows need a search: move them to the front and process blocks of _NN_CHUNK rows
    # while a block still holds valid rows (under vmap: until every seed's valid rows are done).
    order, n_valid = compact_valid_first(mask)
    chunk = min(n, _NN_CHUNK)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    xs = tuple(
        jnp.pad(a[order], [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        for a in (tasks, scores, offsets, mask)
    )

    def cond(carry):
        i, _ = carry
        return i * chunk < n_valid

    def body(carry):
        i, out = carry
        block = tuple(jax.lax.dynamic_slice_in_dim(a, i * chunk, chunk) for a in xs)
        return i + 1, jax.lax.dynamic_update_slice_in_dim(out, block_alp(block), i * chunk, 0)

    _, out = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), jnp.zeros((n_chunks * chunk,))))
    return jnp.zeros((n,), jnp.float32).at[order].set(out[:n])


def alp_gmm(task_space: TaskSpace, config: ALPGMMConfig = ALPGMMConfig()) -> Teacher:
    """The ALP-GMM teacher over a box ``task_space`` (see the module docstring)."""
    validate_config(task_space, config)
    d = task_space.dim
    ks = config.ks
    fit_rate = config.fit_rate
    n_bootstrap = config.bootstrap
    if config.normalise_tasks:
        to_units, from_units = task_space.normalise, task_space.denormalise
        low, high = jnp.zeros((d,), jnp.float32), jnp.ones((d,), jnp.float32)
    else:
        to_units, from_units = (lambda t: t), (lambda u: u)
        low, high = task_space.low_array, task_space.high_array

    def init(key: jax.Array) -> ALPGMMState:
        return ALPGMMState(
            hist_tasks=jnp.zeros((config.history_capacity, d), jnp.float32),
            hist_scores=jnp.zeros((config.history_capacity,), jnp.float32),
            rows=jnp.zeros((2 * fit_rate, d + 1), jnp.float32),
            episodes=jnp.zeros((), jnp.int32),
            gmm=G.empty_gmm(config.k_max, d + 1),
            has_gmm=jnp.zeros((), bool),
            n_fits=jnp.zeros((), jnp.int32),
            fit_seed=jax.random.bits(key, (), jnp.uint32),
        )

    def update(state: ALPGMMState, tasks, scores, mask, **extras) -> ALPGMMState:
        mask = jnp.asarray(mask, bool)
        units = to_units(jnp.asarray(tasks, jnp.float32))
        scores = jnp.asarray(scores, jnp.float32)
        alps = batch_alp(state.hist_tasks, state.hist_scores, state.episodes, units, scores, mask)
        count = state.episodes
        count_after = count + jnp.sum(mask.astype(jnp.int32))
        rows = G.ring_write(state.rows, count, jnp.concatenate([units, alps[:, None]], axis=1), mask)
        gmm, has_gmm, fitted = G.refit_on_crossing(
            jax.random.key(state.fit_seed),
            rows,
            count,
            count_after,
            state.gmm,
            state.has_gmm,
            fit_rate=fit_rate,
            n_bootstrap=n_bootstrap,
            ks=ks,
            criterion=config.criterion,
            aicc_dim=d,  # TDRL counts AICc parameters without the ALP coordinate
            iters=config.em_iters,
            reg_covar=config.reg_covar,
            tol=config.em_tol,
            kmeans_iters=config.kmeans_iters,
        )
        return state.replace(
            hist_tasks=G.ring_write(state.hist_tasks, count, units, mask),
            hist_scores=G.ring_write(state.hist_scores, count, scores, mask),
            rows=rows,
            episodes=count_after,
            gmm=gmm,
            has_gmm=has_gmm,
            n_fits=state.n_fits + fitted.astype(jnp.int32),
        )

    def sample(state: ALPGMMState, key: jax.Array, n: int) -> tuple[ALPGMMState, jax.Array]:
        k_uniform, k_gmm = jax.random.split(key)
        uniform = task_space.sample_uniform(k_uniform, n)
        use_gmm = state.has_gmm & (state.episodes >= n_bootstrap)
        units, from_gmm = G.sample_curriculum(
            k_gmm,
            n,
            state.gmm,
            state.gmm.means[:, -1],  # mean ALP of each component
            use_gmm,
            config.random_task_ratio,
            d,
            to_units(uniform),
            low,
            high,
        )
        tasks = jnp.where(from_gmm[:, None], task_space.clip(from_units(units)), uniform)
        return state, tasks

    return Teacher(init, sample, update, task_space, "alp_gmm")
