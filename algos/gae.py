"""Generalised advantage estimation (Schulman et al. 2016) with the gymnax 1.0 done semantics.

    delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}

``s'_t`` is the observation that followed step t *in the same episode*: ``info["final_observation"]``,
which differs from the next rollout observation when the episode ended and the env auto-reset.
Value targets therefore bootstrap through truncation and stop at termination, and the advantage
recursion never crosses an episode boundary (``done = terminated | truncated``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae_advantages(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    done: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets for arrays with time as the leading axis ``[T, ...]``.

    ``next_values[t]`` is V of the observation following step t in its episode (see module doc).
    Returns ``(advantages, targets)`` with ``targets = advantages + values``.
    """
    not_terminated = 1.0 - terminated.astype(values.dtype)
    not_done = 1.0 - done.astype(values.dtype)
    deltas = rewards + gamma * not_terminated * next_values - values
    discounts = gamma * gae_lambda * not_done

    def backward(carry, x):
        delta, discount = x
        adv = delta + discount * carry
        return adv, adv

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(values[0]), (deltas, discounts), reverse=True, unroll=16
    )
    return advantages, advantages + values
