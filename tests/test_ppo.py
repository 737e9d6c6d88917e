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


def test_extra_loss_reads_the_per_seed_learner_state():
    """A continual learner's regulariser, ``strength * ||params - anchor||^2``, with its state per
    seed: seed 0 is tied to its initial parameters, seed 1 has strength 0 and must train exactly
    like the run without a regulariser."""
    env, params = gymnax.make("CartPole-v1")
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 2)
    leaves = jax.tree.leaves

    def l2(p, learner):
        return learner["strength"] * sum(jnp.sum((a - b) ** 2) for a, b in zip(leaves(p), leaves(learner["anchor"])))

    free = make_train(config, fixed_task_env(env, params))
    tied = make_train(config, fixed_task_env(env, params), extra_loss=l2,
                      learner_init=lambda p: {"anchor": p, "strength": jnp.float32(1e3)})
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    s_free, m_free = jax.jit(jax.vmap(free.train))(keys)
    start = jax.jit(jax.vmap(tied.init))(keys)
    start = start.replace(learner_state={**start.learner_state, "strength": jnp.array([1e3, 0.0])})
    s_tied, m_tied = jax.jit(jax.vmap(lambda s: tied.train_chunk(s, config.num_updates)))(start)

    def dist(a, b, seed):
        return sum(float(jnp.sum((x[seed] - y[seed]) ** 2)) for x, y in zip(leaves(a), leaves(b)))

    anchor = start.learner_state["anchor"]
    assert float(m_tied["loss/extra"][0, -1]) > 0.0 and float(m_tied["loss/extra"][1, -1]) == 0.0
    assert float(jnp.abs(m_free["loss/extra"]).max()) == 0.0
    assert dist(s_tied.train_state.params, anchor, 0) < 0.5 * dist(s_free.train_state.params, anchor, 0)
    assert dist(s_tied.train_state.params, s_free.train_state.params, 1) < 1e-10


def test_learner_init_needs_extra_loss():
    env, params = gymnax.make("CartPole-v1")
    with pytest.raises(ValueError, match="learner_init without extra_loss"):
        make_train(SMALL, fixed_task_env(env, params), learner_init=lambda p: p)


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
