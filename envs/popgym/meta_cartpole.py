"""Randomly-projected StatelessCartPole for in-context RL (Lu et al., "Structured State Space Models for
In-Context Reinforcement Learning", NeurIPS 2023; ``luchris429/popjaxrl``, ``envs/environments/meta_cartpole.py``,
``NoisyStatelessMetaCartPole``).

A *meta-episode* is ``trials`` trials of a position-only cart-pole. At the meta-reset a random linear
observation projection is drawn and an initial cart state is sampled and stored; every trial restarts
from that **same** stored cart state and is seen through the **same** projection, so an agent with
memory can improve from trial to trial (in-context learning); the next meta-reset draws a new
projection and a new initial state. The meta-episode terminates at the step that ends the
``trials``-th trial (maximum meta-return ``trials``: each trial returns at most 1).

Dynamics: gymnax's ``CartPole-v1`` (``gymnax.environments.classic_control.cartpole.CartPole``); a
trial ends when gymnax's cart-pole terminates (pole or cart out of bounds) or after
``max_steps_in_trial`` (200) steps. Each step pays POPGym's ``1 / max_steps_in_trial``. The base
observation is POPGym's stateless one, ``(x, theta)``, clipped to ``±(2·x_threshold,
2·theta_threshold)`` as popjaxrl's ``NoisyStatelessCartPole.get_obs`` does (noise σ = 0).

Observation (float32, ``proj_dim + action_obs_dim + 2``; 7 by default)::

    [ (x, theta) @ K   (proj_dim = 4),   previous action,   trial-ended flag,   first-step flag ]

* ``K`` is the ``[2, proj_dim]`` kernel of popjaxrl's ``MetaAugNetwork`` (a Flax ``Dense(4)`` with
  ``orthogonal(√2)`` kernel init and zero bias, so the zero bias is left out here), drawn with the same
  initializer at every meta-reset. It is stored in the state (``obs_proj``).
* previous action: the action of the step that produced this observation, as a float (0 or 1);
  ``action_projection=True`` puts the agent's 2-vector there instead. Zeros at the meta-reset.
* trial-ended: 1.0 when the step ended a trial; the observation is then the *first observation of the
  next trial* (the restarted cart seen through ``K``), as in popjaxrl.
* first-step: 1.0 only at the meta-reset observation.

``info`` of each step: ``trial`` (index of the trial this step belongs to, 0-based), ``trial_done``
(this step ended that trial), ``trial_return`` (that trial's return including this step; its final
value where ``trial_done``), ``trial_length`` (steps of that trial so far), ``discount``. An experiment
gets the return per trial index from the steps where ``info["trial_done"]``.

Deviations from popjaxrl (all behind options whose defaults are popjaxrl's behaviour unless stated):

* gymnax 1.0 splits terminated / truncated; popjaxrl's cart-pole counted the 200-step limit as a
  termination. Here both end a trial (as in popjaxrl), and the meta-episode's end (after ``trials``
  trial ends) is reported as ``terminated``; ``is_truncated`` is always false (the meta-episode has at
  most ``trials · max_steps_in_trial`` steps).
* ``trials`` is a constructor argument (popjaxrl: ``MetaEnvParams.num_trials_per_episode = 16``, 32 for
  the evaluation); variants ``MetaStatelessCartPole`` (16) and ``MetaStatelessCartPoleEval32`` (32).
* popjaxrl's ``reward_transform`` pays -1 on a step taken from a terminal state; that never happens
  (a trial restarts at its end), so every step pays exactly ``1 / max_steps_in_trial``.
* ``action_projection=True`` (not popjaxrl; the paper's Algorithm 1 text, which projects the agent's
  A = 2 action too): the action space becomes ``Box(-1, 1, (2,))``, a ``[2, 2]`` orthogonal matrix
  ``M_a`` is drawn at the meta-reset and the cart receives ``argmax(M_a · clip(a, -1, 1))`` (the same
  convention as :mod:`envs.meta_projection` for discrete environments). Variant
  ``MetaStatelessCartPoleActionProjection``. Default off (popjaxrl's code has no action projection).
* ``same_initial_state=False`` (not popjaxrl) restarts each trial from a fresh random cart state;
  default true (popjaxrl).
* Random-number streams differ from popjaxrl's (Flax ``Module.init`` splits keys its own way), so the
  same seed gives a different (identically distributed) projection and start state.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.linen.initializers import orthogonal
from gymnax.environments import spaces
from gymnax.environments.classic_control.cartpole import CartPole, EnvParams as CartPoleParams
from gymnax.environments.classic_control.cartpole import EnvState as CartState

from envs.popgym.base import PopGymEnv, PopGymParams

POPJAXRL_TRIALS = 16
POPJAXRL_EVAL_TRIALS = 32


@struct.dataclass
class MetaCartPoleState:
    """State of :class:`MetaStatelessCartPole`.

    ``cart`` is gymnax's cart-pole state of the running trial (its ``time`` counts the trial's steps);
    ``init_cart`` the cart state stored at the meta-reset, where every trial restarts.
    """

    cart: CartState
    init_cart: CartState
    obs_proj: jax.Array  # [2, proj_dim] float32: projected obs = (x, theta) @ obs_proj
    act_proj: jax.Array  # [2, 2] float32: used only with action_projection=True
    trial: jax.Array  # [] int32: index of the running trial, 0 .. trials-1
    trial_return: jax.Array  # [] float32: return of the running trial so far
    trial_length: jax.Array  # [] int32: steps of the running trial so far
    time: jax.Array  # [] int32: steps of the meta-episode so far


class MetaStatelessCartPole(PopGymEnv):
    """popjaxrl's randomly-projected StatelessCartPole with ``trials`` trials per meta-episode."""

    def __init__(
        self,
        trials: int = POPJAXRL_TRIALS,
        max_steps_in_trial: int = 200,
        proj_dim: int = 4,
        proj_scale: float = float(np.sqrt(2.0)),
        action_projection: bool = False,
        same_initial_state: bool = True,
    ):
        super().__init__()
        if trials < 1 or max_steps_in_trial < 1 or proj_dim < 1:
            raise ValueError("trials, max_steps_in_trial and proj_dim must be >= 1")
        self.trials = int(trials)
        self.max_steps_in_trial = int(max_steps_in_trial)
        self.proj_dim = int(proj_dim)
        self.proj_scale = float(proj_scale)
        self.action_projection = bool(action_projection)
        self.same_initial_state = bool(same_initial_state)
        self.cartpole = CartPole()
        self.cart_params = CartPoleParams(max_steps_in_episode=self.max_steps_in_trial)
        self.action_obs_dim = 2 if self.action_projection else 1
        self.obs_shape = (self.proj_dim + self.action_obs_dim + 2,)

    # -- pieces -----------------------------------------------------------------------------------
    def base_obs(self, cart: CartState) -> jax.Array:
        """POPGym's stateless observation ``(x, theta)``, clipped as popjaxrl does."""
        p = self.cart_params
        high = jnp.array([p.x_threshold * 2, p.theta_threshold_radians * 2], jnp.float32)
        obs = jnp.stack([cart.x, cart.theta]).astype(jnp.float32)
        return jnp.clip(obs, -high, high)

    def _project(self, cart: CartState, obs_proj: jax.Array) -> jax.Array:
        return self.base_obs(cart) @ obs_proj

    def _obs(self, cart: CartState, state: MetaCartPoleState, prev_action: jax.Array,
             trial_done: jax.Array, first: jax.Array) -> jax.Array:
        return jnp.concatenate([
            self._project(cart, state.obs_proj),
            jnp.reshape(prev_action, (-1,)).astype(jnp.float32),
            jnp.reshape(trial_done, (1,)).astype(jnp.float32),
            jnp.reshape(first, (1,)).astype(jnp.float32),
        ])

    def cart_action(self, action: Any, state: MetaCartPoleState) -> jax.Array:
        """The cart's discrete action (0 push left, 1 push right) for the agent's ``action``."""
        if self.action_projection:
            a = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (2,)), -1.0, 1.0)
            return jnp.argmax(state.act_proj @ a).astype(jnp.int32)
        return jnp.asarray(action).astype(jnp.int32)

    @staticmethod
    def _canon(cart: CartState) -> CartState:
        return CartState(
            x=jnp.asarray(cart.x, jnp.float32),
            x_dot=jnp.asarray(cart.x_dot, jnp.float32),
            theta=jnp.asarray(cart.theta, jnp.float32),
            theta_dot=jnp.asarray(cart.theta_dot, jnp.float32),
            time=jnp.asarray(cart.time, jnp.int32),
        )

    # -- gymnax API -------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, MetaCartPoleState]:
        key_cart, key_obs, key_act = jax.random.split(key, 3)
        _, cart = self.cartpole.reset_env(key_cart, self.cart_params)
        cart = self._canon(cart)
        init = orthogonal(self.proj_scale)
        state = MetaCartPoleState(
            cart=cart,
            init_cart=cart,
            obs_proj=init(key_obs, (2, self.proj_dim), jnp.float32),
            act_proj=(orthogonal(1.0)(key_act, (2, 2), jnp.float32) if self.action_projection
                      else jnp.eye(2, dtype=jnp.float32)),
            trial=jnp.zeros((), jnp.int32),
            trial_return=jnp.zeros((), jnp.float32),
            trial_length=jnp.zeros((), jnp.int32),
            time=jnp.zeros((), jnp.int32),
        )
        zero_action = jnp.zeros((self.action_obs_dim,), jnp.float32)
        return self._obs(cart, state, zero_action, jnp.zeros(()), jnp.ones(())), state

    def step_env(
        self, key: jax.Array, state: MetaCartPoleState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, MetaCartPoleState, jax.Array, jax.Array, dict]:
        key_step, key_restart = jax.random.split(key)
        cart_action = self.cart_action(action, state)
        _, cart_st, reward, terminated, _ = self.cartpole.step_env(
            key_step, state.cart, cart_action, self.cart_params
        )
        cart_st = self._canon(cart_st)
        trial_done = jnp.logical_or(terminated, self.cartpole.is_truncated(cart_st, self.cart_params))
        # gymnax pays 1 - prev_terminal (= 1: a trial never steps from a terminal state); POPGym 1/max
        reward = jnp.asarray(reward, jnp.float32) / self.max_steps_in_trial

        if self.same_initial_state:
            cart_re = state.init_cart
        else:
            _, cart_re = self.cartpole.reset_env(key_restart, self.cart_params)
            cart_re = self._canon(cart_re)
        cart = jax.tree.map(lambda r, s: jax.lax.select(trial_done, r, s), cart_re, cart_st)

        trial_return = state.trial_return + reward
        trial_length = state.trial_length + 1
        next_trial = state.trial + trial_done.astype(jnp.int32)
        meta_done = next_trial >= self.trials

        new_state = state.replace(
            cart=cart,
            trial=next_trial,
            trial_return=jnp.where(trial_done, 0.0, trial_return),
            trial_length=jnp.where(trial_done, 0, trial_length),
            time=state.time + 1,
        )
        if self.action_projection:
            prev_action = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (2,)), -1.0, 1.0)
        else:
            prev_action = cart_action.astype(jnp.float32)
        obs = self._obs(cart, new_state, prev_action, trial_done, jnp.zeros(()))
        info = {
            "trial": state.trial,
            "trial_done": trial_done,
            "trial_return": trial_return,
            "trial_length": trial_length,
            "discount": 1.0 - meta_done.astype(jnp.float32),
        }
        return jax.lax.stop_gradient(obs), jax.lax.stop_gradient(new_state), reward, meta_done, info

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return jnp.asarray(False)

    @property
    def default_params(self) -> PopGymParams:
        return PopGymParams(max_steps_in_episode=self.trials * self.max_steps_in_trial)

    def observation_space(self, params: Any = None) -> spaces.Box:
        # popjaxrl declares Box(-1, 1); the projected (x, theta) can exceed 1, so the bounds here are
        # the projection's: |((x, θ) @ K)_j| <= scale · |(x, θ)|_2 for orthogonal K.
        p = self.cart_params
        bound = self.proj_scale * float(np.hypot(p.x_threshold * 2, p.theta_threshold_radians * 2))
        low = jnp.concatenate([
            jnp.full((self.proj_dim,), -bound, jnp.float32),
            jnp.full((self.action_obs_dim,), -1.0 if self.action_projection else 0.0, jnp.float32),
            jnp.zeros((2,), jnp.float32),
        ])
        high = jnp.concatenate([
            jnp.full((self.proj_dim,), bound, jnp.float32),
            jnp.ones((self.action_obs_dim + 2,), jnp.float32),
        ])
        return spaces.Box(low, high, self.obs_shape, jnp.float32)

    def action_space(self, params: Any = None) -> Any:
        if self.action_projection:
            return spaces.Box(-1.0, 1.0, (2,), jnp.float32)
        return spaces.Discrete(2)

    @property
    def num_actions(self) -> int:
        return 2

    @property
    def name(self) -> str:
        return f"MetaStatelessCartPole(trials={self.trials})"


VARIANTS = {
    "MetaStatelessCartPole": lambda: MetaStatelessCartPole(trials=POPJAXRL_TRIALS),
    "MetaStatelessCartPoleEval32": lambda: MetaStatelessCartPole(trials=POPJAXRL_EVAL_TRIALS),
    "MetaStatelessCartPoleActionProjection": lambda: MetaStatelessCartPole(
        trials=POPJAXRL_TRIALS, action_projection=True
    ),
}
