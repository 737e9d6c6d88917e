"""POPGym's episodic multi-armed bandit in JAX: MultiarmedBanditEasy / Medium / Hard.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR 2023), original file ``proroklab/popgym``: ``popgym/envs/multiarmed_bandit.py``
(``MultiarmedBandit``).

Each episode draws a payout probability per arm; pulling an arm pays out with that probability.
Semantics kept from the original:

* 10 arms over 200 steps, 20 over 400, 30 over 600 (Easy / Medium / Hard); payout probabilities
  ``U[0, 1)`` in float32, drawn at reset;
* observation ``Discrete(2)`` one-hot (the base CONVENTIONS): 1 on a payout, else 0; the reset
  observation is 0; action ``Discrete(num_bandits)``;
* reward ``+1 / max_episode_length`` on a payout, ``-1 / max_episode_length`` otherwise;
* never terminated; ``truncated`` on the ``max_episode_length``-th step (the original's
  ``num_steps >= max_episode_length - 1`` before its increment).

Deviations from the original: randomness comes from ``jax.random``: the payout probabilities at
reset (same distribution, different values from the seeded ``np_random``) and the payout draw of a
step, :meth:`MultiarmedBandit.payout_draw` of the step key, a float32 ``U[0, 1)`` where the original
draws a float64 (a payout is ``draw < probability`` in both); ``info`` is empty (the original's
``info`` carries the payout probabilities, which are in the state here).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class MultiarmedBanditState:
    bandits: jax.Array  # [num_bandits] float32: payout probability of each arm
    num_steps: jax.Array  # int32: steps taken


class MultiarmedBandit(PopGymEnv):
    def __init__(self, num_bandits: int = 10, episode_length: int = 200):
        super().__init__()
        self.num_bandits = int(num_bandits)
        self.max_episode_length = int(episode_length)

    def payout_draw(self, key: jax.Array) -> jax.Array:
        """The uniform draw of a step (the original's ``np_random.random()``)."""
        return jax.random.uniform(key, (), jnp.float32)

    def reset_env(
        self, key: jax.Array, params: PopGymParams
    ) -> tuple[jax.Array, MultiarmedBanditState]:
        bandits = jax.random.uniform(key, (self.num_bandits,), jnp.float32)
        state = MultiarmedBanditState(bandits=bandits, num_steps=jnp.zeros((), jnp.int32))
        return one_hot(0, 2), state

    def step_env(
        self, key: jax.Array, state: MultiarmedBanditState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, MultiarmedBanditState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.int32).reshape(())
        payout = self.payout_draw(key) < state.bandits[action]
        scale = 1.0 / self.max_episode_length
        reward = jnp.where(payout, scale, -scale).astype(jnp.float32)
        new_state = state.replace(num_steps=state.num_steps + 1)
        return one_hot(payout, 2), new_state, reward, jnp.asarray(False), {}

    def is_truncated(self, state: MultiarmedBanditState, params: PopGymParams) -> jax.Array:
        return state.num_steps >= self.max_episode_length

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_bandits)

    @property
    def num_actions(self) -> int:
        return self.num_bandits


VARIANTS = {
    "MultiarmedBanditEasy": lambda: MultiarmedBandit(num_bandits=10, episode_length=200),
    "MultiarmedBanditMedium": lambda: MultiarmedBandit(num_bandits=20, episode_length=400),
    "MultiarmedBanditHard": lambda: MultiarmedBandit(num_bandits=30, episode_length=600),
}
