"""Actor-critic networks and the policy interface PPO talks to.

PPO sees a :class:`Policy`: ``apply(params, carry, obs, reset, task) -> (carry, dist, value)``. The
policy sees the task of the running episode (``task [..., d]``, as the teacher gave it), so multi-head
and task-conditioned policies need no change to PPO; the MLP ignores it. A feed-forward policy has an
empty carry and ignores ``reset``; a recurrent policy takes time-major inputs ``[T, B, ...]`` and resets
its carry where ``reset`` is set *before* consuming ``obs`` (flag = "this observation starts an
episode"). PPO stores the carry at the start of each rollout and replays whole per-environment
sequences when ``recurrent``. :func:`recurrent_policy` turns any memory core
(``core(carry, (x[T, B, F], reset[T, B])) -> (carry, y[T, B, H])`` with ``initial_carry(batch)``,
``memory/``) into such a policy.

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

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "leaky_relu": nn.leaky_relu}


def action_head(module: nn.Module, x: jax.Array, action_dim: int, discrete: bool):
    """The policy head, built inside ``module``'s compact call (so its parameters are the module's
    own): a linear layer (orthogonal init, gain 0.01) giving Categorical logits, or a diagonal
    Gaussian mean with a state-independent learned ``log_std`` initialised at 0."""
    head = nn.Dense(action_dim, kernel_init=nn.initializers.orthogonal(0.01))(x)
    if discrete:
        return Categorical(logits=head)
    log_std = module.param("log_std", nn.initializers.zeros, (action_dim,))
    return DiagGaussian(mean=head, log_std=jnp.broadcast_to(log_std, head.shape))


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
        dist = action_head(self, a, self.action_dim, self.discrete)
        v = x
        for width in self.hidden:
            v = act(nn.Dense(width, kernel_init=hidden_init)(v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(v)
        return dist, value[..., 0]


class Policy(NamedTuple):
    """What PPO needs from a network. ``carry`` is ``()`` for feed-forward policies.

    ``init(key, obs_example [1, ...], task_example [1, d]) -> params``;
    ``apply(params, carry, obs, reset, task) -> (carry, dist, value)``.
    """

    init: Callable[[jax.Array, jax.Array, jax.Array], Any]
    apply: Callable[[Any, Any, jax.Array, jax.Array, jax.Array], tuple[Any, Any, jax.Array]]
    initial_carry: Callable[[int], Any]
    recurrent: bool


def feedforward_policy(module: nn.Module, sees_task: bool = False) -> Policy:
    """Wrap a module ``obs -> (dist, value)`` (or ``(obs, task) -> (dist, value)`` with
    ``sees_task``) as a :class:`Policy` with an empty carry."""

    def init(key, obs_example, task_example):
        return module.init(key, obs_example, task_example) if sees_task else module.init(key, obs_example)

    def apply(params, carry, obs, reset, task):
        del reset
        dist, value = module.apply(params, obs, task) if sees_task else module.apply(params, obs)
        return carry, dist, value

    return Policy(init, apply, lambda batch: (), recurrent=False)


def policy_step(policy: Policy, params, carry, obs, reset, task):
    """One environment step of ``policy`` on a batch ``[B, ...]`` (recurrent: as a length-1 sequence)."""
    if not policy.recurrent:
        return policy.apply(params, carry, obs, reset, task)
    carry, dist, value = policy.apply(params, carry, obs[None], reset[None], task[None])
    return carry, jax.tree.map(lambda x: x[0], dist), value[0]


def mlp_policy(
    action_dim: int, discrete: bool, hidden: Sequence[int] = (64, 64), activation: str = "tanh"
) -> Policy:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
    return feedforward_policy(ActorCriticMLP(action_dim, discrete, tuple(hidden), activation))


class RecurrentActorCritic(nn.Module):
    """Encoder MLP -> memory core -> actor and critic heads, over time-major ``[T, B, ...]`` inputs."""

    core: nn.Module
    action_dim: int
    discrete: bool
    encoder: Sequence[int] = (64,)
    head_hidden: Sequence[int] = ()
    activation: str = "tanh"
    head_gain: float = float(np.sqrt(2))

    @nn.compact
    def __call__(self, carry, obs: jax.Array, reset: jax.Array):
        act = ACTIVATIONS[self.activation]
        hidden_init = nn.initializers.orthogonal(np.sqrt(2))
        head_init = nn.initializers.orthogonal(self.head_gain)
        x = obs.reshape(obs.shape[:2] + (-1,))
        for width in self.encoder:
            x = act(nn.Dense(width, kernel_init=hidden_init)(x))
        carry, y = self.core(carry, (x, reset))
        a, v = y, y
        for width in self.head_hidden:
            a = act(nn.Dense(width, kernel_init=head_init)(a))
            v = act(nn.Dense(width, kernel_init=head_init)(v))
        dist = action_head(self, a, self.action_dim, self.discrete)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0))(v)
        return carry, dist, value[..., 0]


def recurrent_policy(
    core: nn.Module,
    action_dim: int,
    discrete: bool,
    encoder: Sequence[int] = (64,),
    head_hidden: Sequence[int] = (),
    activation: str = "tanh",
    head_gain: float = float(np.sqrt(2)),
) -> Policy:
    """Turn a memory core (``memory/``) into a recurrent :class:`Policy` (time-major inputs).

    ``core(carry, (x [T, B, F], reset [T, B])) -> (carry, y [T, B, H])`` must reset its carry where
    ``reset`` is set before reading ``x``; ``core.initial_carry(batch)`` gives the carry of a fresh
    episode. The task is not read (append it to the observation with ``PPOConfig.context_in_obs``).
    ``head_gain`` is the orthogonal-init gain of the actor and critic hidden layers (popjaxrl: 2).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
    module = RecurrentActorCritic(core, action_dim, discrete, tuple(encoder), tuple(head_hidden),
                                  activation, head_gain)

    def init(key, obs_example, task_example):
        del task_example
        carry = core.initial_carry(obs_example.shape[0])
        return module.init(key, carry, obs_example[None], jnp.zeros((1, obs_example.shape[0]), bool))

    def apply(params, carry, obs, reset, task):
        del task
        return module.apply(params, carry, obs, reset)

    return Policy(init, apply, core.initial_carry, recurrent=True)
