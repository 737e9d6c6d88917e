"""Covar-GMM: learning progress as the time-reward covariance of a Gaussian mixture component.

Moulin-Frier, Nguyen and Oudeyer, "Self-organization of early vocal development in infants and
machines: the role of intrinsic motivation", Frontiers in Psychology 2014 (the IGMM goal sampler),
in the version with "minor improvements" of flowersteam/teachDeepRL
``teachDRL/teachers/algos/covar_gmm.py`` ("TDRL"; also TeachMyAgent), followed here. The fitting,
the refit schedule and the sampling are the shared GMM teacher (:mod:`teachers.gmm`); what is
Covar-GMM's own is here:

* **Rows** ``[tau, t, r]`` with the relative time ``t = (n mod F) / F``, n = episodes before this one,
  F = ``fit_rate`` (t = 0, 1/F, ..., (F-1)/F within each block of F episodes), and r the score.
* **Component score** (learning progress): ``LP_j = max(0, Sigma_j[t, r])``, the raw time-reward
  covariance entry (``|Sigma_j[t, r]|`` with ``absolute_lp``).
* The bootstrap is F episodes (TDRL has no separate ``n_bootstrap``) and the criterion AIC.

TeachMyAgent fixes the fit's ``random_state`` to the seed; TDRL's Covar-GMM leaves it unset; here the
fit key is drawn once in ``init``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from envs.task_space import TaskSpace
from teachers.base import Teacher
from teachers.em import GMM
from teachers.gmm import GMMTeacherConfig, exact_block, RowModel, gmm_teacher


@dataclasses.dataclass(frozen=True)
class CovarGMMConfig(GMMTeacherConfig):
    """Covar-GMM options; defaults are TDRL's (EM options in ``em``)."""

    absolute_lp: bool = False  # LP = |cov(t, r)| instead of max(0, cov(t, r))


def learning_progress(gmm: GMM, absolute_lp: bool = False) -> jax.Array:
    """Per-component LP [kmax]: ``max(0, Sigma[t, r])`` or ``|Sigma[t, r]|``; 0 for unused components."""
    c = gmm.covs[:, -2, -1]
    lp = jnp.abs(c) if absolute_lp else jnp.maximum(c, 0.0)
    return jnp.where(gmm.component_mask, lp, 0.0)


def time_column(count: jax.Array, mask: jax.Array, fit_rate: int) -> jax.Array:
    """t of each row: ``((count + valid rows before it) mod F) / F`` (0 for masked rows)."""
    offsets = jnp.cumsum(jnp.asarray(mask, jnp.int32)) - 1
    t = jnp.mod(count + offsets, fit_rate).astype(jnp.float32) / fit_rate
    return jnp.where(mask, t, 0.0)


def covar_model(config: CovarGMMConfig) -> RowModel:
    """Covar-GMM's rows ``[task, t, r]`` and component score (time-reward covariance)."""

    def rows(aux, units, scores, mask, count):
        t = time_column(count, mask, config.fit_rate)
        return aux, jnp.stack([t, scores], axis=1)

    return RowModel("covar_gmm", 2, lambda key: (), rows,
                    lambda gmm: learning_progress(gmm, config.absolute_lp))


def covar_gmm(task_space: TaskSpace, config: CovarGMMConfig = CovarGMMConfig()) -> Teacher:
    """The Covar-GMM teacher over a box ``task_space`` (see the module docstring)."""
    if config.n_bootstrap is not None and config.n_bootstrap != config.fit_rate:
        raise ValueError(
            f"covar_gmm: the bootstrap is fit_rate episodes as in TDRL; n_bootstrap must be None, "
            f"got {config.n_bootstrap}")
    return gmm_teacher(task_space, config, covar_model(config))
