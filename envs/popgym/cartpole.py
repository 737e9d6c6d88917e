"""POPGym's partially observable CartPoles in JAX: StatelessCartPole, NoisyStatelessCartPole and
VelocityOnlyCartPole, each Easy / Medium / Hard.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR 2023), original files ``proroklab/popgym``: ``popgym/envs/position_only_cartpole.py``
(``PositionOnlyCartPole``), ``popgym/envs/noisy_position_only_cartpole.py``
(``NoisyPositionOnlyCartPole``) and ``popgym/envs/velocity_only_cartpole.py``
(``VelocityOnlyCartPole``), which subclass gymnasium's ``CartPoleEnv``.

The physics are gymnax's ``CartPole-v1`` (``gymnax.environments.classic_control.cartpole``), the same
Euler-integrated equations and constants as gymnasium's; its ``step_env`` is called and its state
(``x, x_dot, theta, theta_dot, time``) is this environment's state, ``time`` counting the original's
``num_steps``.

Semantics kept from the original:

* observation ``[x, theta]`` (Stateless, Noisy) or ``[x_dot, theta_dot]`` (VelocityOnly), float32;
  the VelocityOnly *reset* observation is ``[x, theta]`` as in the original (its ``reset`` picks
  indices 0 and 2), only its step observations are velocities;
* reward ``1 / max_episode_length`` on every step, including the terminating one; ``-1`` on a step
  taken from an already terminal state (gymnasium's reward 0 there, mapped to -1 by the original's
  ``reward_transform``);
* ``terminated`` when ``|x| > 2.4`` or ``|theta| > 12 deg``; ``truncated`` when the step count reaches
  ``max_episode_length`` (also on a step that terminates: the original sets both);
* max episode lengths 200 / 400 / 600 (Easy / Medium / Hard) for Stateless and VelocityOnly; the
  Noisy variants keep the original's default length 200 at every difficulty and differ only in the
  noise sigma 0.1 / 0.2 / 0.3;
* Noisy: ``clip(obs + N(0, sigma^2), -high, high)`` with ``high = [4.8, 24 deg]`` (float32), on the
  reset observation and on every step observation.

Deviations from the original:

* dynamics in float32 (gymnasium integrates in float64 and casts the observation to float32): one
  step from the same state agrees to ~1e-6; free-running trajectories drift apart over long episodes
  (the upright pole amplifies rounding differences exponentially, by about 100x in 50 steps), so the
  same action sequence can end an episode at a different step late in it; the same code run under
  ``jax.enable_x64`` follows gymnasium's float64 trajectory;
* the reward on steps taken *after* termination (undefined behaviour in gymnasium, never reached with
  gymnax's auto-reset): gymnax rewards 0 (-> -1 here) whenever the state before the step is terminal,
  gymnasium whenever termination was reported before and the new state is terminal again;
* randomness comes from ``jax.random`` (the reset state, uniform in [-0.05, 0.05]^4 as in gymnasium,
  and the Noisy Gaussian noise), so values differ from the original's seeded ``np_random``; the noise
  of a step is :meth:`NoisyStatelessCartPole.noise` of the step key (of the second half of the reset
  key at reset), separable from the noiseless observation for testing;
* ``info`` is empty.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces
from gymnax.environments.classic_control import cartpole as gx_cartpole

from envs.popgym.base import GaussianObservationNoise, PopGymEnv, PopGymParams

# The hidden state: gymnax's CartPole state (x, x_dot, theta, theta_dot, time = number of steps).
CartPoleState = gx_cartpole.EnvState

_X_THRESHOLD = 2.4
_THETA_THRESHOLD = 12 * 2 * math.pi / 360


class StatelessCartPole(PopGymEnv):
    """CartPole observing ``[x, theta]`` only (the original's ``PositionOnlyCartPole``)."""

    obs_indices: tuple[int, int] = (0, 2)
    reset_obs_indices: tuple[int, int] = (0, 2)

    def __init__(self, max_episode_length: int = 200):
        super().__init__()
        self.max_episode_length = int(max_episode_length)
        self._cartpole = gx_cartpole.CartPole()
        self._cartpole_params = gx_cartpole.EnvParams()

    # --- observation bounds (the original's observation_space) ---
    def _obs_high(self) -> jax.Array:
        return jnp.array([_X_THRESHOLD * 2, _THETA_THRESHOLD * 2], dtype=jnp.float32)

    def _pick(self, state: CartPoleState, indices: tuple[int, int]) -> jax.Array:
        full = jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot]).astype(jnp.float32)
        return full[jnp.array(indices)]

    def observation(self, state: CartPoleState) -> jax.Array:
        """The noiseless observation of a step that reached ``state``."""
        return self._pick(state, self.obs_indices)

    def reset_observation(self, state: CartPoleState) -> jax.Array:
        """The noiseless observation of a reset to ``state``."""
        return self._pick(state, self.reset_obs_indices)

    def reward_transform(self, reward: jax.Array) -> jax.Array:
        return jnp.where(reward == 0.0, -1.0, 1.0 / self.max_episode_length).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, CartPoleState]:
        _, state = self._cartpole.reset_env(key, self._cartpole_params)
        state = state.replace(time=jnp.zeros((), jnp.int32))
        return self.reset_observation(state), state

    def step_env(
        self, key: jax.Array, state: CartPoleState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, CartPoleState, jax.Array, jax.Array, dict]:
        action = jnp.asarray(action, jnp.int32).reshape(())
        _, new_state, reward, terminated, _ = self._cartpole.step_env(
            key, state, action, self._cartpole_params
        )
        new_state = new_state.replace(time=jnp.asarray(new_state.time, jnp.int32))
        obs = self.observation(new_state)
        return obs, new_state, self.reward_transform(reward), jnp.asarray(terminated), {}

    def is_truncated(self, state: CartPoleState, params: PopGymParams) -> jax.Array:
        return state.time >= self.max_episode_length

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        high = self._obs_high()
        return spaces.Box(-high, high, (2,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)

    @property
    def num_actions(self) -> int:
        return 2


class VelocityOnlyCartPole(StatelessCartPole):
    """CartPole observing ``[x_dot, theta_dot]`` after each step (the reset observation is
    ``[x, theta]``, as in the original)."""

    obs_indices = (1, 3)
    reset_obs_indices = (0, 2)

    def _obs_high(self) -> jax.Array:
        return jnp.full((2,), jnp.inf, jnp.float32)


class NoisyStatelessCartPole(GaussianObservationNoise, StatelessCartPole):
    """StatelessCartPole with Gaussian observation noise, clipped to the observation bounds (the
    original's ``NoisyPositionOnlyCartPole``)."""

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length)
        self.noise_sigma = float(noise_sigma)

    def noise_bound(self) -> jax.Array:
        return self._obs_high()


VARIANTS = {
    "StatelessCartPoleEasy": lambda: StatelessCartPole(max_episode_length=200),
    "StatelessCartPoleMedium": lambda: StatelessCartPole(max_episode_length=400),
    "StatelessCartPoleHard": lambda: StatelessCartPole(max_episode_length=600),
    "NoisyStatelessCartPoleEasy": lambda: NoisyStatelessCartPole(noise_sigma=0.1),
    "NoisyStatelessCartPoleMedium": lambda: NoisyStatelessCartPole(noise_sigma=0.2),
    "NoisyStatelessCartPoleHard": lambda: NoisyStatelessCartPole(noise_sigma=0.3),
    "VelocityOnlyCartPoleEasy": lambda: VelocityOnlyCartPole(max_episode_length=200),
    "VelocityOnlyCartPoleMedium": lambda: VelocityOnlyCartPole(max_episode_length=400),
    "VelocityOnlyCartPoleHard": lambda: VelocityOnlyCartPole(max_episode_length=600),
}
