"""Covar-GMM: learning progress as the time-reward covariance of a Gaussian mixture component.

Moulin-Frier, Nguyen and Oudeyer, "Self-organization of early vocal development in infants and
machines: the role of intrinsic motivation", Frontiers in Psychology 2014 (the IGMM goal sampler),
in the version with "minor improvements" of flowersteam/teachDeepRL
``teachDRL/teachers/algos/covar_gmm.py`` ("TDRL"; also TeachMyAgent), followed here.

* Each episode on task tau with score r appends a row ``[tau, t, r]`` with the relative time
  ``t = (n mod F) / F``, n = episodes before this one, F = ``fit_rate`` (t = 0, 1/F, ..., (F-1)/F
  within each block of F episodes).
* Every F episodes (the first time at episode F), *fresh* full-covariance GMMs with
  k = k_min..k_max components are fitted by EM on the last F rows (one time block) and the AIC
  minimiser is kept.
* Learning progress of component j: ``LP_j = max(0, Sigma_j[t, r])``, the raw time-reward
  covariance entry (``|Sigma_j[t, r]|`` with ``absolute_lp``).
* Sampling: uniform during the first F episodes, with probability ``random_task_ratio`` or while there
  is no mixture; otherwise a component is chosen with probability ``LP_j / sum LP`` (uniformly if all
  are 0), x ~ N(mu_j, Sigma_j) is drawn, the (t, r) coordinates dropped and the task clipped.

JAX port: the same shared mechanics as ALP-GMM (:mod:`teachers.gmm`): rows in a ring of 2F, one refit
per ``update`` when the count crossed a multiple of F (equivalent to TDRL's per-episode schedule, see
:func:`teachers.gmm.refit_on_crossing`), k-means++ + Lloyd init instead of sklearn's KMeans, and a
fixed fit key drawn in ``init`` (TeachMyAgent fixes ``random_state`` to the seed; TDRL's Covar-GMM
leaves it unset). ``normalise_tasks=True`` (default) fits in [0, 1]^d; ``False`` keeps raw task units
as TDRL does.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers import gmm as G
from teachers.base import Teacher


@dataclasses.dataclass(frozen=True)
class CovarGMMConfig:
    """Covar-GMM options; defaults are TDRL's."""

    fit_rate: int = 250  # F: episodes between refits = fit window = bootstrap length
    k_min: int = 2  # component counts tried: k_min..k_max inclusive
    k_max: int = 10
    random_task_ratio: float = 0.2
    absolute_lp: bool = False  # LP = |cov(t, r)| instead of max(0, cov(t, r))
    em_iters: int = 100
    reg_covar: float = 1e-6
    normalise_tasks: bool = True  # work in [0, 1]^d; False = raw task units (TDRL parity)
    em_tol: float = 1e-3
    kmeans_iters: int = 10

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(range(self.k_min, self.k_max + 1))


@struct.dataclass
class CovarGMMState:
    rows: jax.Array  # [2 fit_rate, d + 2] rows [task, t, r] (teacher units), ring
    episodes: jax.Array  # [] int32
    gmm: G.GMM  # current mixture over [task, t, r]; valid iff has_gmm
    has_gmm: jax.Array  # [] bool
    n_fits: jax.Array  # [] int32
    fit_seed: jax.Array  # [] uint32


def validate_config(task_space: TaskSpace, config: CovarGMMConfig) -> None:
    """Raise ``ValueError`` on bad options (host-side, before anything is compiled)."""
    G.validate_gmm_teacher(
        "Covar-GMM",
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


def learning_progress(gmm: G.GMM, absolute_lp: bool = False) -> jax.Array:
    """Per-component LP [kmax]: ``max(0, Sigma[t, r])`` or ``|Sigma[t, r]|``; 0 for unused components."""
    c = gmm.covs[:, -2, -1]
    lp = jnp.abs(c) if absolute_lp else jnp.maximum(c, 0.0)
    return jnp.where(gmm.component_mask, lp, 0.0)


def time_column(count: jax.Array, mask: jax.Array, fit_rate: int) -> jax.Array:
    """t of each row: ``((count + valid rows before it) mod F) / F`` (0 for masked rows)."""
    offsets = jnp.cumsum(jnp.asarray(mask, jnp.int32)) - 1
    t = jnp.mod(count + offsets, fit_rate).astype(jnp.float32) / fit_rate
    return jnp.where(mask, t, 0.0)


def covar_gmm(task_space: TaskSpace, config: CovarGMMConfig = CovarGMMConfig()) -> Teacher:
    """The Covar-GMM teacher over a box ``task_space`` (see the module docstring)."""
    validate_config(task_space, config)
    d = task_space.dim
    fit_rate = config.fit_rate
    if config.normalise_tasks:
        to_units, from_units = task_space.normalise, task_space.denormalise
        low, high = jnp.zeros((d,), jnp.float32), jnp.ones((d,), jnp.float32)
    else:
        to_units, from_units = (lambda t: t), (lambda u: u)
        low, high = task_space.low_array, task_space.high_array

    def init(key: jax.Array) -> CovarGMMState:
        return CovarGMMState(
            rows=jnp.zeros((2 * fit_rate, d + 2), jnp.float32),
            episodes=jnp.zeros((), jnp.int32),
            gmm=G.empty_gmm(config.k_max, d + 2),
            has_gmm=jnp.zeros((), bool),
            n_fits=jnp.zeros((), jnp.int32),
            fit_seed=jax.random.bits(key, (), jnp.uint32),
        )

    def update(state: CovarGMMState, tasks, scores, mask, **extras) -> CovarGMMState:
        mask = jnp.asarray(mask, bool)
        units = to_units(jnp.asarray(tasks, jnp.float32))
        scores = jnp.asarray(scores, jnp.float32)
        count = state.episodes
        count_after = count + jnp.sum(mask.astype(jnp.int32))
        t = time_column(count, mask, fit_rate)
        new_rows = jnp.concatenate([units, t[:, None], scores[:, None]], axis=1)
        rows = G.ring_write(state.rows, count, new_rows, mask)
        gmm, has_gmm, fitted = G.refit_on_crossing(
            jax.random.key(state.fit_seed),
            rows,
            count,
            count_after,
            state.gmm,
            state.has_gmm,
            fit_rate=fit_rate,
            n_bootstrap=fit_rate,
            ks=config.ks,
            criterion="aic",
            iters=config.em_iters,
            reg_covar=config.reg_covar,
            tol=config.em_tol,
            kmeans_iters=config.kmeans_iters,
        )
        return state.replace(
            rows=rows,
            episodes=count_after,
            gmm=gmm,
            has_gmm=has_gmm,
            n_fits=state.n_fits + fitted.astype(jnp.int32),
        )

    def sample(state: CovarGMMState, key: jax.Array, n: int) -> tuple[CovarGMMState, jax.Array]:
        k_uniform, k_gmm = jax.random.split(key)
        uniform = task_space.sample_uniform(k_uniform, n)
        use_gmm = state.has_gmm & (state.episodes >= fit_rate)
        units, from_gmm = G.sample_curriculum(
            k_gmm,
            n,
            state.gmm,
            learning_progress(state.gmm, config.absolute_lp),
            use_gmm,
            config.random_task_ratio,
            d,
            to_units(uniform),
            low,
            high,
        )
        tasks = jnp.where(from_gmm[:, None], task_space.clip(from_units(units)), uniform)
        return state, tasks

    return Teacher(init, sample, update, task_space, "covar_gmm")
