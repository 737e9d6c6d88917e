"""What every POPGym environment in JAX shares.

Each environment is a gymnax 1.0 ``Environment`` (``step_env``, ``reset_env``, ``is_truncated``,
spaces) with the semantics of the original POPGym (Morad et al., ICLR 2023; ``proroklab/popgym``
1.0.7, ``popgym/envs/*.py``): the same episode lengths, reward scales and terminated/truncated split.

Observations are float32 vectors equal to ``gymnasium.spaces.flatten(original.observation_space,
original_obs)``: a ``Discrete`` part becomes its one-hot, a ``MultiDiscrete`` part the concatenation of
one-hots, a ``Box`` part itself. ``MultiDiscrete`` action spaces (Battleship, MineSweeper) become one
``Discrete(rows * cols)`` whose action ``a`` is the original's ``(a // cols, a % cols)``.

A variant (``RepeatPreviousHard``) is a zero-argument factory in its module's ``VARIANTS``;
:mod:`envs.popgym.registry` collects them.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment


@struct.dataclass
class PopGymParams(environment.EnvParams):
    """POPGym variants carry their difficulty in the environment object (static shapes), so the
    params only hold the step limit that gymnax's truncation reads."""

    max_steps_in_episode: int = 1_000_000


def one_hot(index: jax.Array, n: int) -> jax.Array:
    """``gymnasium.spaces.flatten`` of a ``Discrete(n)`` value, as float32."""
    return jax.nn.one_hot(jnp.asarray(index, jnp.int32), n, dtype=jnp.float32)


class PopGymEnv(environment.Environment):
    """Base class: no truncation unless a subclass says so; ``default_params`` is :class:`PopGymParams`."""

    @property
    def default_params(self) -> PopGymParams:
        return PopGymParams()

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return jnp.asarray(False)

    @property
    def name(self) -> str:
        return type(self).__name__


class GaussianObservationNoise:
    """Mixin for POPGym's noisy variants (``NoisyPositionOnly*``): ``clip(obs + noise, -bound, bound)``
    on the reset observation and on every step observation, ``noise = sigma * N(0, 1)``.

    The noise of a step is :meth:`noise` of the step key (of the second half of the reset key at a
    reset), so a test can rebuild it and compare the noiseless part with the original. Put it before
    the noiseless environment class (``class Noisy(GaussianObservationNoise, Stateless)``) and set
    ``noise_sigma``; the subclass gives :meth:`noise_bound`.
    """

    noise_sigma: float

    def noise_bound(self) -> jax.Array:
        """The clip bound ``[obs_dim]`` of the noisy observation; every noisy variant defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define noise_bound() (abstract hook)")

    def noise(self, key: jax.Array) -> jax.Array:
        """The observation noise drawn from ``key``: ``sigma * N(0, 1)``, float32."""
        shape = self.noise_bound().shape
        return (self.noise_sigma * jax.random.normal(key, shape)).astype(jnp.float32)

    def add_noise(self, obs: jax.Array, noise: jax.Array) -> jax.Array:
        bound = self.noise_bound()
        return jnp.clip(obs + noise, -bound, bound)

    def reset_env(self, key: jax.Array, params: Any):
        key_state, key_noise = jax.random.split(key)
        obs, state = super().reset_env(key_state, params)
        return self.add_noise(obs, self.noise(key_noise)), state

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return self.add_noise(obs, self.noise(key)), state, reward, terminated, info
