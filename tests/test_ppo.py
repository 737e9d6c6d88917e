"""PPO: learning on CartPole, config validation, the teacher in the loop, minibatching by env."""

import dataclasses

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.ppo import PPOConfig, make_train
from envs.cartpole_tasks import cartpole_tasks
from envs.task_env import fixed_task_env
from teachers.base import Teacher
from teachers.random import random_teacher
from tests.countdown_env import countdown_task_env

SMALL = PPOConfig(num_envs=8, num_steps=64, total_timesteps=8 * 64 * 60)


def _mean_return(metrics, last):
    return float(metrics["return_sum"][-last:].sum() / metrics["episodes"][-last:].sum())


def test_ppo_learns_cartpole():
    env, params = gymnax.make("CartPole-v1")
    trainer = make_train(dataclasses.replace(SMALL, total_timesteps=8 * 64 * 120), fixed_task_env(env, params))
    _, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    early = float(metrics["return_sum"][:5].sum() / metrics["episodes"][:5].sum())
    late = _mean_return(metrics, 10)
    assert early < 40.0  # a random policy balances ~20 steps
    assert late > 150.0, late


@pytest.mark.parametrize("axis", ["flat", "envs"])
def test_ppo_chunks_equal_one_call(axis):
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 6, minibatch_axis=axis)
    trainer = make_train(config, cartpole_tasks(), random_teacher(cartpole_tasks().task_space))
    key = jax.random.PRNGKey(3)
    full, m_full = jax.jit(trainer.train)(key)
    chunk = jax.jit(trainer.train_chunk, static_argnums=1)
    state = jax.jit(trainer.init)(key)
    state, m1 = chunk(state, 2)
    state, m2 = chunk(state, 4)
    jax.tree.map(np.testing.assert_array_equal, state.train_state.params, full.train_state.params)
    np.testing.assert_array_equal(np.concatenate([m1["return_sum"], m2["return_sum"]]), m_full["return_sum"])


def test_teacher_sees_every_finished_episode_with_its_task():
    """A recording teacher: the tasks/scores reported equal the tasks handed out and their returns."""
    task_env = countdown_task_env()
    space = task_env.task_space
    cap = 512

    def init(key):
        return {"n": jnp.zeros((), jnp.int32), "tasks": jnp.zeros((cap, 1)), "scores": jnp.zeros(cap),
                "key": key}

    def sample(state, key, n):
        return state, jnp.round(space.sample_uniform(key, n))

    def update(state, tasks, scores, mask):
        pos = jnp.where(mask, state["n"] + jnp.cumsum(mask) - 1, cap)
        return {**state, "n": state["n"] + mask.sum(),
                "tasks": state["tasks"].at[pos].set(tasks, mode="drop"),
                "scores": state["scores"].at[pos].set(scores, mode="drop")}

    teacher = Teacher(init, sample, update, space, "recorder")
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2)
    state, metrics = jax.jit(make_train(config, task_env, teacher).train)(jax.random.PRNGKey(0))
    n = int(state.teacher_state["n"])
    assert n == int(metrics["episodes"].sum()) > 10
    tasks, scores = np.asarray(state.teacher_state["tasks"][:n, 0]), np.asarray(state.teacher_state["scores"][:n])
    # Countdown: the return of an episode equals its task (length), score = return / 9
    np.testing.assert_allclose(scores, tasks / 9.0, rtol=1e-6)
    assert set(np.unique(tasks)) <= set(range(1, 10)) and len(np.unique(tasks)) > 3


def test_random_teacher_mask_ignores_invalid_entries():
    teacher = random_teacher(cartpole_tasks().task_space)
    state = teacher.init(jax.random.PRNGKey(0))
    tasks = jnp.full((5, 2), jnp.nan)
    state = teacher.update(state, tasks, jnp.full(5, jnp.nan), jnp.array([True, False, True, False, False]))
    assert int(state.episodes) == 2


def test_extra_loss_is_added_to_the_objective():
    env, params = gymnax.make("CartPole-v1")
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 2)
    anchor = jax.jit(make_train(config, fixed_task_env(env, params)).init)(jax.random.PRNGKey(0))
    anchor_params = anchor.train_state.params
    strong_l2 = lambda p: 1e3 * sum(jnp.sum((a - b) ** 2) for a, b in zip(
        jax.tree.leaves(p), jax.tree.leaves(anchor_params)))
    free, m_free = jax.jit(make_train(config, fixed_task_env(env, params)).train)(jax.random.PRNGKey(0))
    tied, m_tied = jax.jit(make_train(config, fixed_task_env(env, params), extra_loss=strong_l2).train)(
        jax.random.PRNGKey(0))
    dist = lambda s: sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(
        jax.tree.leaves(s.train_state.params), jax.tree.leaves(anchor_params)))
    assert float(m_tied["loss/extra"][-1]) > 0.0 and float(m_free["loss/extra"][-1]) == 0.0
    assert dist(tied) < 0.5 * dist(free)


def test_config_errors_before_compiling():
    env, params = gymnax.make("CartPole-v1")
    te = fixed_task_env(env, params)
    with pytest.raises(ValueError, match="num_minibatches"):
        make_train(PPOConfig(num_envs=4, num_steps=10, num_minibatches=3), te)
    with pytest.raises(ValueError, match="less than one update"):
        make_train(PPOConfig(total_timesteps=100), te)
    with pytest.raises(ValueError, match="gamma"):
        make_train(PPOConfig(gamma=1.5), te)
    with pytest.raises(ValueError, match="different task spaces"):
        make_train(PPOConfig(), te, random_teacher(cartpole_tasks().task_space))
