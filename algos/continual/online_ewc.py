"""Online EWC (Schwarz et al. 2018, "Progress & Compress", ICML): one running Fisher and one anchor,

    F~_t = gamma F~_{t-1} + F_t,   L(theta) = L_t(theta) + (lambda / 2) sum_i F~_i (theta_i - theta*_i)^2,

theta* the parameters at the end of the last task. The decay is applied once per consolidation (van de
Ven's code applies gamma a second time inside the penalty; here it is not). The Fisher is
:func:`algos.continual.ewc.diagonal_fisher` (exact, sampled or empirical, per sample). ``lambda`` and
``gamma`` are arrays in the state (vmappable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.continual.ewc import FISHERS, FisherData, LogProbs, first_rows, default_fisher_data, diagonal_fisher, \
    weighted_sq_distance
from algos.learner import Learner


@struct.dataclass
class OnlineEWCState:
    anchor: Any
    fisher: Any  # the running Fisher F~
    active: jax.Array  # bool: a task has been consolidated
    strength: jax.Array  # lambda
    gamma: jax.Array
    key: jax.Array


def online_ewc(
    apply: Callable[[Any, Any], Any],
    log_probs: LogProbs,
    strength: float = 100.0,
    gamma: float = 1.0,
    fisher: str = "exact",
    fisher_data: FisherData = default_fisher_data,
    value_fn: Callable[[Any, Any], jax.Array] | None = None,
    fisher_batch: int = 16,
    fisher_samples: int | None = None,
) -> Learner:
    """Online EWC; arguments as :func:`algos.continual.ewc.ewc`, plus the decay ``gamma``."""
    if fisher not in FISHERS:
        raise ValueError(f"unknown Fisher {fisher!r}; known: {list(FISHERS)}")
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"online EWC gamma must lie in [0, 1], got {gamma}")

    def init(key, params, example):
        del example
        zeros = jax.tree.map(jnp.zeros_like, params)
        return OnlineEWCState(zeros, zeros, jnp.zeros((), bool), jnp.asarray(strength, jnp.float32),
                              jnp.asarray(gamma, jnp.float32), key)

    def loss(task_loss):
        def wrapped(params, state: OnlineEWCState, batch, task_id, key):
            value, aux = task_loss(params, batch, key)
            pen = jnp.where(state.active, weighted_sq_distance(params, state.anchor, state.fisher), 0.0)
            return value + 0.5 * state.strength * pen, {**aux, "learner/ewc_penalty": pen}

        return wrapped

    def end_task(state: OnlineEWCState, params, task_id, data):
        del task_id
        key, k_fisher = jax.random.split(state.key)
        samples, labels, mask = first_rows(fisher_data(data), fisher_samples)
        f = diagonal_fisher(log_probs, params, samples, labels, mask, k_fisher, fisher, value_fn, fisher_batch)
        running = jax.tree.map(lambda old, new: state.gamma * old + new, state.fisher, f)
        return state.replace(anchor=params, fisher=running, active=jnp.ones((), bool), key=key)

    def predict(params, state, x, task_id):
        del state, task_id
        return apply(params, x)

    return Learner(init, loss, end_task, predict, "online_ewc")
