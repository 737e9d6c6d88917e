"""POPGym's partially observable Pendulums in JAX: StatelessPendulum and NoisyStatelessPendulum,
each Easy / Medium / Hard.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR 2023), original files ``proroklab/popgym``: ``popgym/envs/position_only_pendulum.py``
(``PositionOnlyPendulum``) and ``popgym/envs/noisy_position_only_pendulum.py``
(``NoisyPositionOnlyPendulum``), which subclass gymnasium's ``PendulumEnv``.

The physics are gymnax's ``Pendulum-v1`` (``gymnax.environments.classic_control.pendulum``), the same
equations and constants as gymnasium's (g = 10, dt = 0.05, max speed 8, max torque 2); its
``step_env`` is called and its state (``theta, theta_dot, last_u, time``) is this environment's
state, ``time`` counting the original's ``num_steps``.

Semantics kept from the original:

* observation ``[cos(theta), sin(theta)]`` (float32; the angular velocity is dropped);
* action ``Box(-2, 2, (1,))``, clipped to the torque limit;
* reward ``(r + 8.1368022) / 8.1368022 / max_episode_length`` of gymnasium's reward
  ``r = -(angle_normalize(theta)^2 + 0.1 theta_dot^2 + 0.001 u^2)`` (the original maps
  ``[-16.2736044, 0]`` to ``[-1, 1]`` and divides by the episode length);
* never terminated; ``truncated`` when the step count reaches ``max_episode_length``;
* max episode lengths 200 / 150 / 100 (Easy / Medium / Hard) for Stateless; the Noisy variants keep
  the original's default length 200 at every difficulty and differ only in the noise sigma
  0.1 / 0.2 / 0.3;
* Noisy: ``clip(obs + N(0, sigma^2), -1, 1)`` on the reset observation and on every step
  observation.

Deviations from the original:

* dynamics and reward in float32 (gymnasium uses float64 and casts the observation to float32): one
  step from the same state agrees to ~1e-6; free-running float32 trajectories drift from gymnasium's
  over an episode (up to ~1e-3 in the observation after 200 random-torque steps); the same code run
  under ``jax.enable_x64`` follows gymnasium's float64 trajectory;
* randomness comes from ``jax.random`` (the reset state, theta ~ U[-pi, pi], theta_dot ~ U[-1, 1] as
  in gymnasium, and the Noisy Gaussian noise), so values differ from the original's seeded
  ``np_random``; the noise of a step is :meth:`NoisyStatelessPendulum.noise` of the step key (of the
  second half of the reset key at reset), separable from the noiseless observation for testing;
* ``info`` is empty.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from gymnax.environments.classic_control import pendulum as gx_pendulum

from envs.popgym.base import GaussianObservationNoise, PopGymEnv, PopGymParams

# The hidden state: gymnax's Pendulum state (theta, theta_dot, last_u, time = number of steps).
PendulumState = gx_pendulum.EnvState

_REWARD_LOW, _REWARD_HIGH = -16.2736044, 0.0


class StatelessPendulum(PopGymEnv):
    """Pendulum observing ``[cos(theta), sin(theta)]`` (the original's ``PositionOnlyPendulum``)."""

    def __init__(self, max_episode_length: int = 200):
        super().__init__()
        self.max_episode_length = int(max_episode_length)
        self._pendulum = gx_pendulum.Pendulum()
        self._pendulum_params = gx_pendulum.EnvParams()

    def observation(self, state: PendulumState) -> jax.Array:
        """The noiseless observation of ``state`` (after a reset or a step)."""
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta)]).astype(jnp.float32)

    def reward_transform(self, reward: jax.Array) -> jax.Array:
        half = (_REWARD_HIGH - _REWARD_LOW) / 2
        return ((reward + half) / half / self.max_episode_length).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, PendulumState]:
        _, state = self._pendulum.reset_env(key, self._pendulum_params)
        state = state.replace(
            last_u=jnp.asarray(state.last_u, jnp.float32), time=jnp.zeros((), jnp.int32)
        )
        return self.observation(state), state

    def step_env(
        self, key: jax.Array, state: PendulumState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, PendulumState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.float32).reshape(())
        _, new_state, reward, _, _ = self._pendulum.step_env(
            key, state, action, self._pendulum_params
        )
        new_state = new_state.replace(time=jnp.asarray(new_state.time, jnp.int32))
        return self.observation(new_state), new_state, self.reward_transform(reward), jnp.asarray(False), {}

    def is_truncated(self, state: PendulumState, params: PopGymParams) -> jax.Array:
        return state.time >= self.max_episode_length

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(-2.0, 2.0, (1,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return 1


class NoisyStatelessPendulum(GaussianObservationNoise, StatelessPendulum):
    """StatelessPendulum with Gaussian observation noise, clipped to [-1, 1] (the original's
    ``NoisyPositionOnlyPendulum``)."""

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length)
        self.noise_sigma = float(noise_sigma)

    def noise_bound(self) -> jax.Array:
        return jnp.ones((2,), jnp.float32)


VARIANTS = {
    "StatelessPendulumEasy": lambda: StatelessPendulum(max_episode_length=200),
    "StatelessPendulumMedium": lambda: StatelessPendulum(max_episode_length=150),
    "StatelessPendulumHard": lambda: StatelessPendulum(max_episode_length=100),
    "NoisyStatelessPendulumEasy": lambda: NoisyStatelessPendulum(noise_sigma=0.1),
    "NoisyStatelessPendulumMedium": lambda: NoisyStatelessPendulum(noise_sigma=0.2),
    "NoisyStatelessPendulumHard": lambda: NoisyStatelessPendulum(noise_sigma=0.3),
}
