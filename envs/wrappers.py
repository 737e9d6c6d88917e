"""Wrappers that are gymnax 1.0 environments, so they compose with :class:`~envs.task_env.TaskAutoReset`.

:class:`~envs.task_env.TaskAutoReset` owns the auto-reset (it resets with the teacher's *next* task),
so it calls ``step_env / reset_env / is_truncated`` of the environment, the level *below* gymnax's
auto-resetting ``step``. Every wrapper here is a gymnax ``Environment`` at that level: it wraps
``step_env``, ``reset_env``, ``is_truncated``, ``observation_space``, ``action_space`` and
``default_params`` of the environment it holds, so wrappers nest in any order and still get gymnax's
own ``reset`` / ``step`` for free.

* :class:`FlattenObservation`: the observation as a 1-D vector.
* :class:`ObservePreviousActionReward`: the flat observation followed by the previous action, the
  previous reward and a first-step flag (POPGym / popjaxrl agents, Lu et al. 2023).
* :func:`with_context_in_obs`: a :class:`~envs.task_env.TaskEnv` whose observation ends with the task
  vector of the running episode (SPDL's point mass appends its context the same way).
* :class:`GymnaxWrapperAdapter`: gymnax's ``purerl`` wrappers (``GymnaxWrapper`` subclasses such as
  ``FlattenObservationWrapper``, ``LogWrapper``, ``StickyActionWrapper``) define only ``reset`` /
  ``step`` and forward every other attribute to the *unwrapped* environment, so calling their
  ``step_env`` would silently skip them; :class:`~envs.task_env.TaskEnv` refuses them with a message
  pointing here, and this adapter makes them usable.

Episode logging: ``TaskAutoReset`` already reports every finished episode in ``info["episode"]``
(:class:`~envs.task_env.EpisodeStats`: task, return, length, score, done), so there is no episode-log
wrapper here: its running return and length would be ``TaskEnvState.episode_return`` /
``episode_length`` again. A gymnax ``LogWrapper`` inside :class:`GymnaxWrapperAdapter` still works: its
info keys reach ``TaskAutoReset``'s info, exact at steps where ``info["returned_episode"]`` is true
(how PureJaxRL reads them); between episodes its counters restart from zero, because ``TaskAutoReset``
resets the whole wrapped stack with the next task.

The wrappers pass ``params`` through unchanged, so ``TaskEnv.params_for`` keeps returning the inner
environment's ``EnvParams``; only :func:`with_context_in_obs` puts the task into a params pytree of
its own (:class:`ContextParams`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv, check_step_env
from envs.task_space import TaskSpace


StepEnvOut = tuple[Any, Any, jax.Array, jax.Array, dict]
"""What ``step_env`` returns: ``(obs, state, reward, terminated, info)``."""


def _time_of(state: Any) -> Any:
    """``time`` of the innermost environment state (wrapper states hold the inner one as ``env_state``)."""
    while not hasattr(state, "time"):
        if not hasattr(state, "env_state"):
            raise AttributeError(f"{type(state).__name__} has no 'time' and wraps no 'env_state'")
        state = state.env_state
    return state.time


def _box(space: Any, what: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise TypeError(f"{what} needs a Box observation space, got {type(space).__name__}")
    return space


def _flat_bounds(space: spaces.Box) -> tuple[jax.Array, jax.Array]:
    """``low``, ``high`` of a Box broadcast to its shape and flattened, as float32."""
    shape = tuple(space.shape)
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape).reshape(-1)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape).reshape(-1)
    return low, high


class EnvWrapper(environment.Environment):
    """A gymnax 1.0 environment around ``env``: every method passes through unless overridden.

    ``env`` must have ``step_env``, ``reset_env`` and ``is_truncated`` of its own (a gymnax
    ``Environment`` or another wrapper of this module).
    """

    def __init__(self, env: Any):
        self._check(env)
        self._env = env

    def _check(self, env: Any) -> None:
        check_step_env(env, type(self).__name__)

    @property
    def inner(self) -> Any:
        """The wrapped environment."""
        return self._env

    @property
    def default_params(self) -> Any:
        return self._env.default_params

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any) -> StepEnvOut:
        return self._env.step_env(key, state, action, params)

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        return self._env.reset_env(key, params)

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return self._env.is_truncated(state, params)

    def observation_space(self, params: Any) -> Any:
        return self._env.observation_space(params)

    def action_space(self, params: Any = None) -> Any:
        return self._env.action_space(params)

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self._env.name})"

    @property
    def num_actions(self) -> int:
        return self._env.num_actions


class FlattenObservation(EnvWrapper):
    """The observation reshaped to 1-D (dtype kept); the Box space's bounds flattened with it."""

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any) -> StepEnvOut:
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params)
        return jnp.reshape(obs, (-1,)), state, reward, terminated, info

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset_env(key, params)
        return jnp.reshape(obs, (-1,)), state

    def observation_space(self, params: Any) -> spaces.Box:
        space = _box(self._env.observation_space(params), "FlattenObservation")
        low, high = _flat_bounds(space)
        return spaces.Box(low, high, (int(np.prod(space.shape)),), space.dtype)


@struct.dataclass
class PreviousActionRewardState:
    """State of :class:`ObservePreviousActionReward`: the inner state and what the next obs shows."""

    env_state: Any
    prev_action: jax.Array  # [action_dim] float32: one-hot (Discrete) or the raw action (Box)
    prev_reward: jax.Array  # [] float32
    first: jax.Array  # [] float32: 1.0 at an episode's first observation

    @property
    def time(self) -> Any:
        return _time_of(self.env_state)


class ObservePreviousActionReward(EnvWrapper):
    """Observation ``[flat obs, previous action, previous reward, first]``, all float32.

    As POPGym / popjaxrl agents see it: the previous action is one-hot for a ``Discrete`` action space
    and the raw (flattened) action for a ``Box``; ``first`` is 1.0 at the first observation of an
    episode, where the previous action and reward are zeros. The inner observation is flattened.
    ``is_truncated`` reads the inner state. ``reward=False`` leaves the reward out (``[obs, previous
    action, first]``, popjaxrl's ``AliasPrevActionV2``).
    """

    def __init__(self, env: Any, reward: bool = True):
        super().__init__(env)
        self._with_reward = reward

    def _action_dim(self, params: Any) -> int:
        space = self._env.action_space(params)
        if isinstance(space, spaces.Discrete):
            return int(space.n)
        if isinstance(space, spaces.Box):
            return int(np.prod(space.shape))
        raise TypeError(
            f"ObservePreviousActionReward supports Discrete and Box action spaces, got {type(space).__name__}"
        )

    def _encode(self, action: jax.Array, params: Any) -> jax.Array:
        space = self._env.action_space(params)
        if isinstance(space, spaces.Discrete):
            return jax.nn.one_hot(jnp.asarray(action).astype(jnp.int32), int(space.n), dtype=jnp.float32)
        self._action_dim(params)  # raises for spaces other than Discrete and Box
        return jnp.reshape(jnp.asarray(action, jnp.float32), (-1,))

    def _obs(self, obs: jax.Array, state: PreviousActionRewardState) -> jax.Array:
        reward = [state.prev_reward[None]] if self._with_reward else []
        return jnp.concatenate([
            jnp.reshape(obs, (-1,)).astype(jnp.float32),
            state.prev_action,
            *reward,
            state.first[None],
        ])

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, env_state = self._env.reset_env(key, params)
        state = PreviousActionRewardState(
            env_state=env_state,
            prev_action=jnp.zeros((self._action_dim(params),), jnp.float32),
            prev_reward=jnp.zeros((), jnp.float32),
            first=jnp.ones((), jnp.float32),
        )
        return self._obs(obs, state), state

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any) -> StepEnvOut:
        obs, env_state, reward, terminated, info = self._env.step_env(
            key, state.env_state, action, params
        )
        state = PreviousActionRewardState(
            env_state=env_state,
            prev_action=self._encode(action, params),
            prev_reward=jnp.asarray(reward, jnp.float32),
            first=jnp.zeros((), jnp.float32),
        )
        return self._obs(obs, state), state, reward, terminated, info

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return self._env.is_truncated(state.env_state, params)

    def observation_space(self, params: Any) -> spaces.Box:
        low, high = _flat_bounds(_box(self._env.observation_space(params), "ObservePreviousActionReward"))
        space = self._env.action_space(params)
        n = self._action_dim(params)
        if isinstance(space, spaces.Discrete):
            a_low, a_high = jnp.zeros((n,), jnp.float32), jnp.ones((n,), jnp.float32)
        else:
            a_low, a_high = _flat_bounds(space)
        inf = jnp.full((1,) if self._with_reward else (0,), jnp.inf, jnp.float32)
        low = jnp.concatenate([low, a_low, -inf, jnp.zeros((1,), jnp.float32)])
        high = jnp.concatenate([high, a_high, inf, jnp.ones((1,), jnp.float32)])
        return spaces.Box(low, high, (int(low.shape[0]),), jnp.float32)


@struct.dataclass
class ContextParams:
    """Params of :class:`ContextInObservation`: the inner ``EnvParams`` and the episode's task."""

    env_params: Any
    task: jax.Array  # [dim] float32, the raw task vector

    @property
    def max_steps_in_episode(self) -> Any:
        return self.env_params.max_steps_in_episode


class ContextInObservation(EnvWrapper):
    """Observation ``[flat obs, task]``: the task is read from :class:`ContextParams`.

    ``TaskAutoReset`` steps with ``params_for(running task)`` and resets with ``params_for(next
    task)``, so the observation shows the task of the episode it belongs to. Build it through
    :func:`with_context_in_obs`.
    """

    def __init__(self, env: Any, task_space: TaskSpace, default_task: tuple[float, ...]):
        super().__init__(env)
        self.task_space = task_space
        self._default_task = tuple(float(x) for x in default_task)

    @property
    def default_params(self) -> ContextParams:
        return ContextParams(self._env.default_params, jnp.asarray(self._default_task, jnp.float32))

    @staticmethod
    def _obs(obs: jax.Array, params: ContextParams) -> jax.Array:
        task = jnp.asarray(params.task, jnp.float32)
        return jnp.concatenate([jnp.reshape(obs, (-1,)).astype(jnp.float32), task])

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset_env(key, params.env_params)
        return self._obs(obs, params), state

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any) -> StepEnvOut:
        obs, state, reward, terminated, info = self._env.step_env(key, state, action, params.env_params)
        return self._obs(obs, params), state, reward, terminated, info

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return self._env.is_truncated(state, params.env_params)

    def observation_space(self, params: Any) -> spaces.Box:
        low, high = _flat_bounds(_box(self._env.observation_space(params.env_params), "with_context_in_obs"))
        low = jnp.concatenate([low, self.task_space.low_array])
        high = jnp.concatenate([high, self.task_space.high_array])
        return spaces.Box(low, high, (int(low.shape[0]),), jnp.float32)

    def action_space(self, params: Any = None) -> Any:
        return self._env.action_space(None if params is None else params.env_params)


def with_context_in_obs(task_env: TaskEnv) -> TaskEnv:
    """``task_env`` whose observation is ``[flat obs, task of the running episode]`` (float32).

    The task is the raw vector as the teacher hands it (task-space units; a discrete space's id as a
    float), not normalised. ``params_for(task)`` returns :class:`ContextParams` holding the inner params
    and the task; the observation space gains the task space's bounds. Name, task space, scores and
    default task are unchanged. Pure: ``task_env`` itself is not modified.
    """
    inner_params_for = task_env.params_for

    def params_for(task: jax.Array) -> ContextParams:
        task = jnp.asarray(task, jnp.float32)
        return ContextParams(inner_params_for(task), task)

    env = ContextInObservation(task_env.env, task_env.task_space, task_env.default_task)
    return dataclasses.replace(task_env, env=env, params_for=params_for)


@struct.dataclass
class AdapterState:
    """State of :class:`GymnaxWrapperAdapter`: the wrapped stack's state and its last truncation."""

    env_state: Any
    truncated: jax.Array

    @property
    def time(self) -> Any:
        return _time_of(self.env_state)


class GymnaxWrapperAdapter(EnvWrapper):
    """A gymnax environment that only has an auto-resetting 6-value ``reset`` / ``step`` (e.g. gymnax's
    ``purerl`` wrappers: ``FlattenObservationWrapper``, ``LogWrapper``, ``StickyActionWrapper``) as a
    ``step_env / reset_env / is_truncated`` environment.

    ``step_env`` calls the stack's ``step`` and returns its ``info["final_observation"]`` (the
    observation before the stack's own auto-reset) with the remaining info keys; ``is_truncated`` reports
    the truncation that ``step`` computed. The stack's own reset (with the running task's params) is
    computed and thrown away when ``TaskAutoReset`` resets with the next task, one extra reset per
    step; state the stack carries across episodes (``LogWrapper``'s returned-episode counters,
    ``StickyActionWrapper``'s last action) restarts at every episode boundary.
    """

    def _check(self, env: Any) -> None:
        for method in ("reset", "step"):
            if not callable(getattr(env, method, None)):
                raise TypeError(f"GymnaxWrapperAdapter: {type(env).__name__} has no {method}()")

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset(key, params)
        return obs, AdapterState(state, jnp.zeros((), jnp.bool_))

    def step_env(self, key: jax.Array, state: Any, action: Any, params: Any) -> StepEnvOut:
        out = self._env.step(key, state.env_state, action, params)
        if len(out) != 6:
            raise TypeError(
                f"GymnaxWrapperAdapter: {type(self._env).__name__}.step returned {len(out)} values; "
                "the gymnax 1.0 step returns 6 (obs, state, reward, terminated, truncated, info)"
            )
        _, env_state, reward, terminated, truncated, info = out
        info = dict(info)
        if "final_observation" not in info:
            raise KeyError(
                f"GymnaxWrapperAdapter: {type(self._env).__name__}.step gave no info['final_observation']"
            )
        final_obs = info.pop("final_observation")
        info.pop("terminated", None)
        info.pop("truncated", None)
        return final_obs, AdapterState(env_state, jnp.asarray(truncated)), reward, terminated, info

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return state.truncated

    @property
    def name(self) -> str:
        return f"GymnaxWrapperAdapter({type(self._env).__name__})"
