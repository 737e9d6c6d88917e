"""Actor-critic networks and the policy interface PPO talks to.

PPO sees a :class:`Policy`: ``apply(params, carry, obs, reset) -> (carry, dist, value)``. A feed-forward
policy has an empty carry and ignores ``reset``; a recurrent policy (memory issue) resets its carry where
``reset`` is set *before* consuming ``obs`` (flag = "this observation starts an episode"). PPO stores the
carry at the start of each rollout and replays whole per-environment sequences when ``recurrent``.

The MLP follows PureJaxRL's ``ppo.py``: separate actor and critic towers, orthogonal init with gain
sqrt(2) on hidden layers, 0.01 on the policy head and 1.0 on the value head; continuous actions use a
state-independent learned log-std initialised at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from algos.distributions import Categorical, DiagGaussian

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}


class ActorCriticMLP(nn.Module):
    """Separate actor and critic MLPs; a Categorical head or a diagonal Gaussian head."""

    action_dim: int
    discrete: bool
    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array):
        act = ACTIVATIONS[self.activation]
        hidden_init = nn.initializers.orthogonal(np.sqrt(2))
        x = obs.reshape(obs.shape[:-1] + (-1,)) if obs.ndim > 1 else obs
        a = x
        for width in self.hidden:
            a = act(nn.Dense(width, kernel_init=hidden_init)(a))
        head = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01))(a)
        if self.discrete:
            dist = Categorical(logits=head)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
            dist = DiagGaussian(mean=head, log_std=jnp.broadcast_to(log_std, head.shape))
        v = x
        for width in self.hidden:
            v = act(nn.Dense(width, kernel_init=hidden_init)(v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(v)
        return dist, value[..., 0]


class Policy(NamedTuple):
    """What PPO needs from a network. ``carry`` is ``()`` for feed-forward policies."""

    init: Callable[[jax.Array, jax.Array], Any]
    apply: Callable[[Any, Any, jax.Array, jax.Array], tuple[Any, Any, jax.Array]]
    initial_carry: Callable[[int], Any]
    recurrent: bool


def feedforward_policy(module: nn.Module) -> Policy:
    """Wrap a module ``obs -> (dist, value)`` as a :class:`Policy` with an empty carry."""

    def init(key, obs_example):
        return module.init(key, obs_example)

    def apply(params, carry, obs, reset):
        del reset
        dist, value = module.apply(params, obs)
        return carry, dist, value

    return Policy(init, apply, lambda batch: (), recurrent=False)


def mlp_policy(
    action_dim: int, discrete: bool, hidden: Sequence[int] = (64, 64), activation: str = "tanh"
) -> Policy:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
    return feedforward_policy(ActorCriticMLP(action_dim, discrete, tuple(hidden), activation))
