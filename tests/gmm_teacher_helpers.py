"""Shared fixtures of the GMM-teacher tests (tests/test_alp_gmm.py, tests/test_covar_gmm.py)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from envs.task_space import TaskSpace
from teachers import em as G
from teachers import gmm as GT
from teachers.registry import make_teacher

TS = TaskSpace.box(["height", "spacing"], [0.0, 0.0], [2.0, 6.0])  # not a unit box on purpose


class Jitted:
    """A GMM teacher with its jitted functions (compiled once per config)."""

    def __init__(self, name, config):
        self.config = config
        self.t = make_teacher(name, TS, config)
        self.update = jax.jit(self.t.update)
        self.sample = jax.jit(self.t.sample, static_argnums=2)
        self.window_fit = jax.jit(lambda state: window_fit(config, state))


@functools.lru_cache(maxsize=None)
def jitted(name, config) -> Jitted:
    return Jitted(name, config)


def row_model(config) -> GT.RowModel:
    from teachers.alp_gmm import ALPGMMConfig, alp_model
    from teachers.covar_gmm import covar_model

    return alp_model(TS, config) if isinstance(config, ALPGMMConfig) else covar_model(config)


def window_fit(config, state):
    """The mixture a refit at the last multiple of fit_rate must produce (direct fit + select)."""
    f = config.fit_rate
    window = GT.window_rows(row_model(config), state, (state.episodes // f) * f)
    return G.fit_and_select(jax.random.key(state.fit_seed), window, jnp.ones(f, bool), config.ks,
                            config.em, aicc_dim=TS.dim)


def random_batches(seed, n_batches, n, p_valid=0.6):
    """``n_batches`` of (tasks [n, 2], scores [n], mask [n]) uniform over TS."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        tasks = rng.uniform(TS.low, TS.high, size=(n, TS.dim)).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        out.append((tasks, scores, rng.random(n) < p_valid))
    return out


def ks_uniform(tasks) -> float:
    """The smallest Kolmogorov-Smirnov p-value, over dimensions, of ``tasks`` against uniform on TS."""
    from scipy.stats import kstest

    u = np.asarray(TS.normalise(jnp.asarray(tasks)))
    return min(kstest(u[:, i], "uniform").pvalue for i in range(TS.dim))
