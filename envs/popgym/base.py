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
