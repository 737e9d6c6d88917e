"""L2 regularisation to the previous task's parameters (the L2 baseline of Smith et al. 2023, "A Closer
Look at Rehearsal-Free Continual Learning", arXiv 2203.17269, and of Continual World):

    L(theta) = L_t(theta) + lambda * sum_i (theta_i - theta*_{t-1, i})^2,

theta*_{t-1} the parameters at the end of the previous task (uniform importance). ``lambda`` lives in
the state as an array (``state.strength``), so a sweep over it is one vmapped call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.learner import Learner


@struct.dataclass
class L2State:
    anchor: Any  # parameters at the end of the previous task
    active: jax.Array  # bool: a previous task exists
    strength: jax.Array  # lambda


def l2_penalty(params: Any, anchor: Any) -> jax.Array:
    """sum_i (theta_i - anchor_i)^2 over every leaf."""
    return sum(jnp.sum((p - a) ** 2) for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(anchor)))


def l2(apply: Callable[[Any, Any], Any], strength: float = 1.0) -> Learner:
    """``apply(params, x)`` is the model (for ``predict``); ``strength`` is lambda."""

    def init(key, params, example):
        del key, example
        return L2State(jax.tree.map(jnp.zeros_like, params), jnp.zeros((), bool),
                       jnp.asarray(strength, jnp.float32))

    def loss(task_loss):
        def wrapped(params, state: L2State, batch, task_id, key):
            value, aux = task_loss(params, batch, key)
            penalty = jnp.where(state.active, l2_penalty(params, state.anchor), 0.0)
            return value + state.strength * penalty, {**aux, "learner/l2_penalty": penalty}

        return wrapped

    def end_task(state: L2State, params, task_id, data):
        del task_id, data
        return state.replace(anchor=params, active=jnp.ones((), bool))

    def predict(params, state, x, task_id):
        del state, task_id
        return apply(params, x)

    return Learner(init, loss, end_task, predict, "l2")
