"""The GMM teacher: one implementation behind ALP-GMM (:mod:`teachers.alp_gmm`) and Covar-GMM
(:mod:`teachers.covar_gmm`), which differ only in the rows they fit and how a component is scored.

Portelas et al., CoRL 2019 (ALP-GMM) and Moulin-Frier et al. 2014 (Covar-GMM), as the reference
implementation flowersteam/teachDeepRL ("TDRL", ``teachDRL/teachers/algos/alp_gmm.py``,
``covar_gmm.py``) runs them:

* Each episode on task tau with score r appends a row ``[tau, extra columns]`` (ALP-GMM: the episode's
  absolute learning progress; Covar-GMM: relative time and score). A column needed only when a
  window is fitted may be filled in then (:class:`RowModel`'s ``fit_rows``: ALP-GMM's ALP).
* Every ``fit_rate`` episodes, once ``n_bootstrap`` (default ``fit_rate``) episodes have passed, fresh
  full-covariance GMMs with k = k_min..k_max components are fitted by EM on the last ``fit_rate`` rows
  and the one with the smallest criterion is kept (:mod:`teachers.em`, options in :class:`EMOptions`).
* **Sampling:** uniform over the task space during the bootstrap, with probability
  ``random_task_ratio``, or while there is no mixture; otherwise a component j is chosen with
  probability ``score_j / sum_i score_i`` (the teacher's component score, clamped at 0; uniform if all
  are 0; the mixture weights are ignored), x ~ N(mu_j, Sigma_j) is drawn, the extra columns dropped
  and the task clipped to the bounds.

JAX port (batched, masked, fixed shapes):

* Rows sit in a ring of ``2 fit_rate``; the refit happens once per ``update``, on the ``fit_rate``
  rows ending at the last multiple of ``fit_rate`` the episode count crossed during the batch. TDRL
  refits after each such episode, but nothing samples from the mixture inside one ``update`` and the
  fit is a deterministic function of those rows and the fixed fit key (TDRL's fixed
  ``random_state``), so only the last fit of a batch matters and it is the same (the ring holds the
  last ``2 fit_rate`` rows, which always contain that window, whatever the batch size).
* Under ``vmap`` over seeds only the seeds that refit run EM (:func:`teachers.em.refit`).
* ``refit_period`` M (default 1, the behaviour above) lets only every M-th ``update`` call refit
  (calls M - 1, 2M - 1, ... counted from ``init``), on the window ending at the last multiple of
  ``fit_rate`` reached by then: the same mixtures as M = 1, each adopted up to M - 1 calls later (and
  a multiple that a later one passes before the next opportunity is skipped, as within one batch).
  Every call counts, even one with no valid rows, so seeds updated in lockstep stay aligned; with
  M > 1 a call therefore changes the state even when every row is masked. Why: on a GPU a refit costs
  its latency (about a hundred dependent EM loop steps), not its arithmetic. Seeds vmapped in PPO
  drift apart, so with M = 1 nearly every update has some seed refitting; with M > 1 the seeds due in
  M updates refit together, and one latency is paid per M updates.
* With M > 1 the teacher also offers the refit split out of ``update``
  (:class:`teachers.base.Deferred`: ``update`` = record the rows, then ``refit`` at calls M - 1,
  2M - 1, ...). PPO places the refit in its static loop (``algos.loops.periodic_scan``), so the M - 1
  calls in between contain no refit code at all: inside ``update`` the refit's data-dependent loop
  made the GPU wait for the host at every PPO update, which on one H200 cost more than the fits
  themselves (benchmarks/RESULTS.md).
* ``normalise_tasks=True`` (default) maps tasks to [0, 1]^d inside the teacher: distances, the GMM and
  the clipping work in the unit cube. TDRL (and TeachMyAgent) use raw task units;
  ``normalise_tasks=False`` reproduces that. The two coincide on unit boxes (the hypercube).
* Inputs are checked and cleaned by :func:`teachers.base.checked_update` (non-finite rows masked out
  and counted, tasks and scores clipped and counted).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace
from teachers import em as E
from teachers.base import Deferred, InputCounts, Teacher, checked_sample, checked_update, ring_positions
from teachers.em import EMOptions


@dataclasses.dataclass(frozen=True)
class GMMTeacherConfig:
    """Options shared by the GMM teachers; defaults are TDRL's class defaults."""

    fit_rate: int = 250  # episodes between refits = size of the fit window
    k_min: int = 2  # component counts tried: k_min..k_max inclusive (TDRL arange(2, 11))
    k_max: int = 10
    random_task_ratio: float = 0.2  # probability of a uniform task after the bootstrap
    n_bootstrap: int | None = None  # uniform episodes before the first fit; None -> fit_rate
    normalise_tasks: bool = True  # work in [0, 1]^d; False = raw task units (TDRL parity)
    em: EMOptions = EMOptions()  # EM and model selection (sklearn's defaults)
    refit_period: int = 1  # update calls per refit opportunity; 1 = exact (see the module docstring)

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(range(self.k_min, self.k_max + 1))

    @property
    def bootstrap(self) -> int:
        return self.fit_rate if self.n_bootstrap is None else self.n_bootstrap

    def exact_block(self) -> int:
        """Episodes per sample/update block that equal one episode at a time (blocks aligned on
        multiples of it): the largest divisor of both ``fit_rate`` and ``n_bootstrap`` (the mixture
        only changes at refits, and the batched rows equal the sequential ones). With ``refit_period``
        > 1 the refits depend on the number of calls, so no block larger than one is claimed."""
        if self.refit_period != 1:
            return 1
        return math.gcd(self.fit_rate, self.bootstrap) if self.bootstrap else self.fit_rate

    def validate(self, owner: str, task_space: TaskSpace) -> None:
        """Raise ``ValueError`` naming ``owner`` on bad options (host-side, before compiling)."""

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if task_space.is_discrete:
            raise ValueError(f"{owner}: needs a continuous box task space, got a discrete one")
        for field in ("fit_rate", "k_min", "k_max", "refit_period"):
            if not is_int(getattr(self, field)):
                raise ValueError(f"{owner}: {field} must be an int, got {getattr(self, field)!r}")
        if self.k_min < 1:
            raise ValueError(f"{owner}: k_min must be >= 1, got {self.k_min}")
        if self.k_max < self.k_min:
            raise ValueError(f"{owner}: k_max must be >= k_min (inclusive range), got {self.k_min}..{self.k_max}")
        if self.refit_period < 1:
            raise ValueError(f"{owner}: refit_period must be >= 1, got {self.refit_period}")
        if self.fit_rate < max(self.k_max, 2):
            raise ValueError(
                f"{owner}: fit_rate ({self.fit_rate}) must be >= k_max ({self.k_max}) and >= 2: each "
                "fit uses the last fit_rate episodes and needs at least as many points as components")
        if not 0.0 <= float(self.random_task_ratio) <= 1.0:
            raise ValueError(f"{owner}: random_task_ratio must be in [0, 1], got {self.random_task_ratio}")
        if self.n_bootstrap is not None and (not is_int(self.n_bootstrap) or self.n_bootstrap < 0):
            raise ValueError(f"{owner}: n_bootstrap must be None or an int >= 0, got {self.n_bootstrap!r}")
        if not isinstance(self.em, EMOptions):
            raise ValueError(f"{owner}: em must be an EMOptions, got {type(self.em).__name__}")
        self.em.validate(owner)
        if self.em.criterion == "aicc":
            worst = E.tdrl_aicc_parameters(self.k_max, task_space.dim)
            if self.fit_rate - worst - 1 <= 0:
                raise ValueError(
                    f"{owner}: with criterion 'aicc' fit_rate ({self.fit_rate}) must exceed P'+1 = "
                    f"{worst + 1:g} for k_max={self.k_max} (the AICc correction divides by N - P' - 1)")


class RowModel(NamedTuple):
    """What one GMM teacher adds to the shared mechanics.

    ``rows(aux, units, scores, mask, count) -> (aux, columns [n, columns])``: the extra columns of the
    batch's rows as stored in the ring (tasks in teacher units; valid rows are episodes ``count,
    count + 1, ...`` in order) and the teacher's own state ``aux`` after the batch.
    ``component_score(gmm) -> [kmax]``. ``fit_rows(aux, window [F, d + columns], end, fitted) ->
    window``, if given, turns the stored rows of episodes ``end - F .. end - 1`` into the rows that are
    fitted; it is called only for a refit (``fitted``), so a column that is costly and only needed
    then (ALP-GMM's ALP) is computed there, once per window, instead of at every update.
    """

    name: str
    columns: int
    init: Callable[[jax.Array], Any]  # key -> aux
    rows: Callable[..., tuple[Any, jax.Array]]
    component_score: Callable[[E.GMM], jax.Array]
    fit_rows: Callable[..., jax.Array] | None = None


@struct.dataclass
class GMMTeacherState:
    rows: jax.Array  # [2 fit_rate, d + columns] stored rows (teacher units), ring; see RowModel.fit_rows
    episodes: jax.Array  # [] int32, episodes reported so far
    gmm: E.GMM  # current mixture (padded to k_max); valid iff has_gmm
    has_gmm: jax.Array  # [] bool
    n_fits: jax.Array  # [] int32, refits done so far
    updates: jax.Array  # [] int32, update calls so far (counted only when refit_period > 1)
    fitted_to: jax.Array  # [] int32, end of the last window considered for a refit (a multiple of fit_rate)
    fit_seed: jax.Array  # [] uint32, seed of the (fixed) fit key
    aux: Any  # the teacher's own state (ALP-GMM: its ALP history)
    inputs: InputCounts  # bad input received (teachers.base)


def exact_block(config: GMMTeacherConfig) -> int:
    """See :meth:`GMMTeacherConfig.exact_block`."""
    return config.exact_block()


def ring_write(
    buffer: jax.Array, count: jax.Array, values: jax.Array, mask: jax.Array, capacity: int | None = None
) -> jax.Array:
    """Write the valid rows of ``values`` [n, ...] in order into the ring ``buffer`` [C', ...] of
    ``capacity`` C (default C'; slots >= C are left alone).

    Valid row number o (0-based among the valid rows) lands at ``(count + o) % C``. When a batch holds
    more than C valid rows only the last C are written (the others would be overwritten anyway).
    """
    capacity = buffer.shape[0] if capacity is None else capacity
    mask = jnp.asarray(mask, bool)
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1
    total = jnp.sum(mask.astype(jnp.int32))
    keep = mask & (offsets >= total - capacity)
    pos = jnp.where(keep, ring_positions(count, mask, capacity), buffer.shape[0])
    return buffer.at[pos].set(values.astype(buffer.dtype), mode="drop")


def ring_window(buffer: jax.Array, end: jax.Array, length: int) -> jax.Array:
    """The ``length`` entries of a ring [C, ...] for episodes ``end - length .. end - 1``, in order."""
    idx = (end - length + jnp.arange(length)) % buffer.shape[0]
    return buffer[idx]


def window_rows(model: RowModel, state: GMMTeacherState, end: jax.Array) -> jax.Array:
    """The rows a refit on the window ending at episode ``end`` (a multiple of ``fit_rate``, at most
    ``fit_rate`` episodes back) fits: the stored rows, through ``model.fit_rows``."""
    window = ring_window(state.rows, end, state.rows.shape[0] // 2)
    return window if model.fit_rows is None else model.fit_rows(state.aux, window, end, jnp.ones((), bool))


def gmm_teacher(task_space: TaskSpace, config: GMMTeacherConfig, model: RowModel) -> Teacher:
    """The GMM teacher with ``model``'s rows and component scores (see the module docstring)."""
    config.validate(model.name, task_space)
    d = task_space.dim
    fit_rate, n_bootstrap, ks = config.fit_rate, config.bootstrap, config.ks
    if config.normalise_tasks:
        to_units, from_units = task_space.normalise, task_space.denormalise
        low, high = jnp.zeros((d,), jnp.float32), jnp.ones((d,), jnp.float32)
    else:
        to_units, from_units = (lambda t: t), (lambda u: u)
        low, high = task_space.low_array, task_space.high_array

    def init(key: jax.Array) -> GMMTeacherState:
        k_fit, k_aux = jax.random.split(key)
        return GMMTeacherState(
            rows=jnp.zeros((2 * fit_rate, d + model.columns), jnp.float32),
            episodes=jnp.zeros((), jnp.int32),
            gmm=E.empty_gmm(config.k_max, d + model.columns),
            has_gmm=jnp.zeros((), bool),
            n_fits=jnp.zeros((), jnp.int32),
            updates=jnp.zeros((), jnp.int32),
            fitted_to=jnp.zeros((), jnp.int32),
            fit_seed=jax.random.bits(k_fit, (), jnp.uint32),
            aux=model.init(k_aux),
            inputs=InputCounts.zeros(),
        )

    def record(state: GMMTeacherState, tasks, scores, mask) -> GMMTeacherState:
        """The batch's rows stored and counted; no refit."""
        units = to_units(tasks)
        count = state.episodes
        aux, columns = model.rows(state.aux, units, scores, mask, count)
        rows = ring_write(state.rows, count, jnp.concatenate([units, columns], axis=1), mask)
        return state.replace(
            rows=rows, episodes=count + jnp.sum(mask.astype(jnp.int32)), aux=aux,
            updates=state.updates + 1 if config.refit_period > 1 else state.updates,
        )

    def refit(state: GMMTeacherState, opportunity=True) -> GMMTeacherState:
        """A fresh mixture on the window ending at the last multiple of fit_rate reached, if that
        multiple is new since the last opportunity and past the bootstrap."""
        last = (state.episodes // fit_rate) * fit_rate
        fitted = opportunity & (last > state.fitted_to) & (last >= n_bootstrap) & (last >= fit_rate)
        window = ring_window(state.rows, last, fit_rate)
        if model.fit_rows is not None:
            window = model.fit_rows(state.aux, window, last, fitted)
        gmm, good = E.refit(state.fit_seed, window, fitted, state.gmm, ks, config.em, aicc_dim=d)
        return state.replace(
            gmm=gmm, has_gmm=state.has_gmm | good, n_fits=state.n_fits + good.astype(jnp.int32),
            fitted_to=jnp.where(opportunity, last, state.fitted_to),
        )

    @checked_update(model.name, task_space)
    def update(state: GMMTeacherState, tasks, scores, mask, **extras) -> GMMTeacherState:
        state = record(state, tasks, scores, mask)
        # every call is an opportunity when refit_period is 1; else calls M - 1, 2M - 1, ...
        return refit(state, config.refit_period == 1 or state.updates % config.refit_period == 0)

    @checked_update(model.name, task_space)
    def record_only(state: GMMTeacherState, tasks, scores, mask, **extras) -> GMMTeacherState:
        return record(state, tasks, scores, mask)

    @checked_sample(model.name)
    def sample(state: GMMTeacherState, key: jax.Array, n: int) -> tuple[GMMTeacherState, jax.Array]:
        k_uniform, k_use, k_comp, k_x = jax.random.split(key, 4)
        uniform = task_space.sample_uniform(k_uniform, n)
        gmm = state.gmm
        comps = E.choose_components(k_comp, model.component_score(gmm), gmm.component_mask, n)
        x = E.sample_gmm_components(k_x, gmm, comps)
        from_gmm = (state.has_gmm & (state.episodes >= n_bootstrap)
                    & (jax.random.uniform(k_use, (n,)) >= config.random_task_ratio))
        tasks = task_space.clip(from_units(jnp.clip(x[:, :d], low, high)))
        return state, jnp.where(from_gmm[:, None], tasks, uniform)

    deferred = Deferred(record_only, refit, config.refit_period) if config.refit_period > 1 else None
    return Teacher(init, sample, update, task_space, model.name, deferred=deferred)
