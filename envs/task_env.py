"""Task environments: a gymnax 1.0 environment plus a task space and a pure ``params_for(task)``.

The teacher speaks in task vectors; the environment in ``EnvParams``. :class:`TaskEnv` holds the
mapping and how an episodic return becomes a score in [0, 1]. :class:`TaskAutoReset` steps a task
environment and, when an episode ends, resets it *with the next task the teacher handed to that
environment* (the bug minimax #6 fixed: an auto-reset must not fall back to default parameters), and
reports per-episode statistics (task, return, length, score, done mask) out of the jitted rollout.

Wrapped environments (observation flattening, previous action and reward in the observation, the task
in the observation) are the gymnax-level wrappers of :mod:`envs.wrappers`; :meth:`TaskEnv.wrap` applies
them to a task environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace

STEP_ENV_METHODS = ("step_env", "reset_env", "is_truncated")


def check_step_env(env: Any, owner: str) -> None:
    """Raise ``TypeError`` unless ``env``'s class defines ``step_env``, ``reset_env``, ``is_truncated``.

    gymnax's ``GymnaxWrapper`` subclasses (``gymnax.wrappers.purerl``) define only ``reset`` / ``step``
    and forward other attributes to the unwrapped environment, so their ``step_env`` would silently
    skip the wrapper: they are refused here (looked up on the class, not the instance).
    """
    missing = [m for m in STEP_ENV_METHODS if not callable(getattr(type(env), m, None))]
    if not missing:
        return
    forwarded = [m for m in missing if callable(getattr(env, m, None))]
    why = (
        f" ({', '.join(forwarded)} would be forwarded to the environment inside it, skipping the "
        "wrapper)" if forwarded else ""
    )
    raise TypeError(
        f"{owner}: {type(env).__name__} defines no {', '.join(missing)} of its own{why}. curriculax resets "
        "each episode with the teacher's next task, so it needs the gymnax 1.0 Environment methods below "
        "the auto-resetting step(). Wrap the bare environment with the wrappers of envs/wrappers.py "
        "(FlattenObservation, ObservePreviousActionReward, with_context_in_obs), or adapt a wrapper that "
        "only has reset()/step() with envs.wrappers.GymnaxWrapperAdapter(env)."
    )


@dataclasses.dataclass(frozen=True, eq=False)
class TaskEnv:
    """A gymnax environment whose parameters are chosen by a task vector.

    Attributes:
      env: a gymnax 1.0 ``Environment`` (``step_env``, ``reset_env``, ``is_truncated``), possibly
        wrapped by :mod:`envs.wrappers`.
      task_space: the tasks a teacher may propose.
      params_for: pure, vmappable ``task[dim] -> EnvParams``.
      default_task: the task that reproduces the unparameterised environment.
      return_range: ``(low, high)`` of the episodic return, to normalise scores to [0, 1];
        ``None`` leaves scores as raw returns.
      mastery_score: a test task counts as mastered when its score reaches this value.
      name: for logs and plots.
    """

    env: Any
    task_space: TaskSpace
    params_for: Callable[[jax.Array], Any]
    default_task: tuple[float, ...]
    return_range: tuple[float, float] | None = None
    mastery_score: float = 0.9
    name: str = "task_env"

    def __post_init__(self) -> None:
        check_step_env(self.env, f"TaskEnv {self.name!r}")
        self.task_space.validate(self.default_task, what=f"{self.name}.default_task")
        if self.return_range is not None:
            lo, hi = self.return_range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"{self.name}: return_range must be finite (low, high) with low < high, "
                                 f"got {self.return_range}")
            if not 0.0 <= self.mastery_score <= 1.0:
                raise ValueError(
                    f"{self.name}: mastery_score={self.mastery_score} is outside [0, 1]; with a "
                    "return_range scores are returns mapped to [0, 1], so no task could be mastered "
                    "(give the score, not a return)")
        elif not math.isfinite(self.mastery_score):
            raise ValueError(f"{self.name}: mastery_score must be finite, got {self.mastery_score}")

    def score(self, episodic_return: jax.Array) -> jax.Array:
        """Episodic return mapped linearly to [0, 1] (clipped) when the range is known."""
        if self.return_range is None:
            return episodic_return
        lo, hi = self.return_range
        return jnp.clip((episodic_return - lo) / (hi - lo), 0.0, 1.0)

    def default_task_params(self) -> Any:
        """``params_for(default_task)``."""
        return self.params_for(jnp.asarray(self.default_task, jnp.float32))

    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space().shape)

    def observation_space(self):
        """The environment's observation space under the default task's params."""
        return self.env.observation_space(self.default_task_params())

    def action_space(self):
        """The action space under the default task's params: its type and shape (the same for every
        task); for the bounds of a task see :meth:`action_bounds`."""
        return self.env.action_space(self.default_task_params())

    def action_bounds(self, task: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(low, high)`` of a continuous (``Box``) action space under ``params_for(task)``, broadcast
        to the action shape: bounds that follow the task (Pendulum's ``max_torque``). Pure and
        vmappable; PPO's rollout and the evaluation clip sampled actions to them."""
        space = self.env.action_space(self.params_for(task))
        shape = tuple(self.action_space().shape)
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
        return low, high

    def wrap(self, *wrappers: Callable[[Any], Any]) -> TaskEnv:
        """This task environment with ``env`` wrapped: ``wrap(A, B)`` steps ``B(A(env))``.

        Each wrapper is a factory ``env -> env`` that passes params through (the wrappers of
        :mod:`envs.wrappers`), so ``params_for`` and everything else stay as they are.
        """
        env = self.env
        for wrapper in wrappers:
            env = wrapper(env)
        return dataclasses.replace(self, env=env)


def check_task_env(task_env: TaskEnv, *, episodes: int = 0, max_steps: int = 1000,
                   seed: int = 0) -> None:
    """Cheap host-side checks of a user's task environment, with a clear ``ValueError``:

    * every task dimension changes ``EnvParams`` (each dimension moved from ``low`` to ``high`` with
      the others at ``default_task``; a dimension that changes nothing is a typo in ``params_for``);
    * with a ``return_range`` and ``episodes > 0`` (it compiles a rollout: seconds on a CPU): a
      uniformly random policy's episodic returns (``episodes`` episodes on random tasks, skipped when
      the episode cap exceeds ``max_steps``) must not all lie above its high end (every score would
      be 1 before any learning, so the teacher gets no signal) nor all below its low end by more than
      the whole range (a range in other units than the returns). During training
      :func:`experiments.ppo_job.ppo_job` warns when a chunk's mean return lies above the range.
    """
    space = task_env.task_space
    if space.names != ("none",) and not space.is_discrete:
        base = np.asarray(task_env.default_task, np.float32)
        ends = []
        for i in range(space.dim):
            for bound in (space.low[i], space.high[i]):
                ends.append(base.copy())
                ends[-1][i] = bound
        leaves = [np.asarray(x) for x in jax.tree.leaves(jax.jit(jax.vmap(task_env.params_for))(
            jnp.asarray(np.stack(ends))))]
        for i, name in enumerate(space.names):
            if all(np.array_equal(x[2 * i], x[2 * i + 1]) for x in leaves):
                raise ValueError(f"{task_env.name}: task dimension {name!r} never changes the environment "
                                 f"(params_for gives the same EnvParams at {space.low[i]} and {space.high[i]})")
    if task_env.return_range is None or episodes < 1:
        return
    limit = getattr(task_env.default_task_params(), "max_steps_in_episode", None)
    if limit is None or int(limit) > max_steps:
        return
    lo, hi = task_env.return_range
    returns = np.asarray(_random_returns(task_env, episodes, int(limit), seed))
    if np.all(returns > hi):
        raise ValueError(f"{task_env.name}: a random policy's episodic returns ({returns.min():.4g} to "
                         f"{returns.max():.4g}) all lie above return_range {task_env.return_range}: every "
                         "score would be 1 before any learning")
    if np.all(returns < lo - (hi - lo)):
        raise ValueError(f"{task_env.name}: a random policy's episodic returns ({returns.min():.4g} to "
                         f"{returns.max():.4g}) all lie far below return_range {task_env.return_range}; "
                         "is the range in the units of the returns?")


def _random_returns(task_env: TaskEnv, episodes: int, limit: int, seed: int) -> jax.Array:
    """Episodic returns of uniformly random actions on ``episodes`` uniformly random tasks."""
    env, space = TaskAutoReset(task_env), task_env.action_space()
    key = jax.random.PRNGKey(seed)
    tasks = task_env.task_space.sample_uniform(key, episodes)

    @jax.jit
    def run(key):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, episodes), tasks)

        def step(c, _):
            state, finished, ret, key = c
            key, k_act, k_step = jax.random.split(key, 3)
            actions = jax.vmap(space.sample)(jax.random.split(k_act, episodes))
            _, state, reward, term, trunc, _ = jax.vmap(env.step)(
                jax.random.split(k_step, episodes), state, actions, tasks)
            ret = ret + jnp.where(finished, 0.0, reward)
            return (state, finished | term | trunc, ret, key), None

        init = (state, jnp.zeros(episodes, bool), jnp.zeros(episodes), key)
        (_, _, ret, _), _ = jax.lax.scan(step, init, None, limit)
        return ret

    return run(jax.random.fold_in(key, 1))


def fixed_task_env(env: Any, params: Any = None, name: str | None = None) -> TaskEnv:
    """A plain gymnax environment as a one-task TaskEnv (the task vector is ignored)."""
    params = env.default_params if params is None else params
    return TaskEnv(
        env=env,
        task_space=TaskSpace.box(["none"], [0.0], [1.0]),
        params_for=lambda task: params,
        default_task=(0.0,),
        name=name or getattr(env, "name", "env"),
    )


@struct.dataclass
class TaskEnvState:
    env_state: Any
    task: jax.Array  # [dim] task of the running episode
    episode_return: jax.Array
    episode_length: jax.Array


@struct.dataclass
class EpisodeStats:
    """Per-step record of finished episodes; rows with ``done == False`` carry no episode."""

    done: jax.Array
    task: jax.Array
    episodic_return: jax.Array
    length: jax.Array
    score: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class TaskAutoReset:
    """Steps a :class:`TaskEnv`; on ``terminated | truncated`` resets with ``next_task``.

    ``step`` returns the gymnax 1.0 six values. ``info`` is the environment's own info of the step
    (from ``step_env``; an episode that ends has no info of its reset) merged with curriculax's keys:
    ``terminated``, ``truncated``, ``final_observation`` (the observation before the reset) and
    ``episode`` (:class:`EpisodeStats` for the episode that just ended). The environment's keys come
    first; on a name clash curriculax's key wins.
    """

    task_env: TaskEnv

    def reset(self, key: jax.Array, task: jax.Array) -> tuple[Any, TaskEnvState]:
        obs, env_state = self.task_env.env.reset_env(key, self.task_env.params_for(task))
        zero = jnp.zeros((), jnp.float32)
        return obs, TaskEnvState(env_state, task, zero, jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: TaskEnvState, action: jax.Array, next_task: jax.Array
    ) -> tuple[Any, TaskEnvState, jax.Array, jax.Array, jax.Array, dict]:
        env = self.task_env.env
        key_step, key_reset = jax.random.split(key)
        params = self.task_env.params_for(state.task)
        obs_st, env_state_st, reward, terminated, env_info = env.step_env(
            key_step, state.env_state, action, params
        )
        if not isinstance(env_info, Mapping):
            raise TypeError(f"{type(env).__name__}.step_env returned info of type "
                            f"{type(env_info).__name__}; a dict is needed")
        truncated = jnp.logical_and(env.is_truncated(env_state_st, params), ~terminated)
        done = jnp.logical_or(terminated, truncated)
        reward = reward.astype(jnp.float32)
        episode_return = state.episode_return + reward
        episode_length = state.episode_length + 1

        task = jnp.where(done, next_task, state.task)
        obs_re, env_state_re = env.reset_env(key_reset, self.task_env.params_for(next_task))
        env_state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), env_state_re, env_state_st)
        obs = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), obs_re, obs_st)

        stats = EpisodeStats(
            done=done,
            task=state.task,
            episodic_return=episode_return,
            length=episode_length,
            score=self.task_env.score(episode_return),
        )
        new_state = TaskEnvState(
            env_state=env_state,
            task=task,
            episode_return=jnp.where(done, 0.0, episode_return),
            episode_length=jnp.where(done, 0, episode_length),
        )
        info = {
            **env_info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
            "episode": stats,
        }
        return obs, new_state, reward, terminated, truncated, info
