"""Evaluation of a policy on a fixed set of tasks: one episode per task, run in parallel."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from algos.networks import Policy, policy_step
from envs.task_env import TaskAutoReset, TaskEnv


def episode_limit(task_env: TaskEnv) -> int:
    """The environment's episode cap (``max_steps_in_episode`` of the default task's params)."""
    params = task_env.params_for(jnp.asarray(task_env.default_task, jnp.float32))
    return int(params.max_steps_in_episode)


def evaluate_tasks(
    policy: Policy,
    params: Any,
    task_env: TaskEnv,
    tasks: jax.Array,
    key: jax.Array,
    deterministic: bool = True,
    episodes_per_task: int = 1,
) -> tuple[jax.Array, jax.Array]:
    """Run ``episodes_per_task`` episodes on each task ``tasks[m]`` (different initial states), all in
    parallel; returns the mean ``(episodic_return[m], score[m])`` per task.

    Uses the policy's mode when ``deterministic``. The episode cap of the environment bounds the loop,
    so every episode finishes (terminated or truncated).
    """
    num_tasks = tasks.shape[0]
    tasks = jnp.repeat(tasks, episodes_per_task, axis=0)
    env = TaskAutoReset(task_env)
    discrete = isinstance(task_env.action_space(), spaces.Discrete)

    def clip(action, task):  # to the bounds of each episode's own task
        if discrete:
            return action
        low, high = jax.vmap(task_env.action_bounds)(task)
        return jnp.clip(action, low, high)

    m = tasks.shape[0]
    key, k_reset = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, m), tasks)
    carry = policy.initial_carry(m)

    def step(c, _):
        obs, state, carry, reset, finished, ret, key = c
        key, k_act, k_step = jax.random.split(key, 3)
        carry, dist, _ = policy_step(policy, params, carry, obs, reset, state.task)
        action = clip(dist.mode() if deterministic else dist.sample(k_act), state.task)
        obs, state, reward, term, trunc, _ = jax.vmap(env.step)(
            jax.random.split(k_step, m), state, action, tasks
        )
        done = term | trunc
        ret = ret + jnp.where(finished, 0.0, reward)
        return (obs, state, carry, done, finished | done, ret, key), None

    init = (obs, state, carry, jnp.ones(m, bool), jnp.zeros(m, bool), jnp.zeros(m), key)
    (_, _, _, _, _, returns, _), _ = jax.lax.scan(step, init, None, episode_limit(task_env))
    returns = returns.reshape(num_tasks, episodes_per_task)
    return returns.mean(axis=1), task_env.score(returns).mean(axis=1)
