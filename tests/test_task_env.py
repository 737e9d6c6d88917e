"""The task environment, the auto-reset wrapper and the task space."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.cartpole_tasks import CARTPOLE_TASKS, cartpole_params_for, cartpole_tasks
from envs.task_env import TaskAutoReset
from envs.task_space import TaskSpace
from tests.countdown_env import countdown_task_env


def test_auto_reset_hands_each_episode_the_next_task():
    env = TaskAutoReset(countdown_task_env())
    handed = [2.0, 4.0, 1.0, 3.0, 5.0, 2.0, 6.0]
    obs, state = env.reset(jax.random.PRNGKey(0), jnp.array([handed[0]]))
    step = jax.jit(env.step)
    queue, finished = list(handed[1:]), []
    for t in range(16):  # 5 episodes end by then (2+4+1+3+5 = 15 steps)
        next_task = jnp.array([queue[0]])
        obs, state, reward, term, trunc, info = step(jax.random.PRNGKey(t), state, 0, next_task)
        ep = info["episode"]
        if bool(ep.done):
            finished.append((float(ep.task[0]), int(ep.length), float(ep.episodic_return)))
            queue.pop(0)
            # the new episode starts on the handed task: its first observation is that length
            assert float(obs[0]) == float(next_task[0])
            assert float(info["final_observation"][0]) == 0.0
    tasks = [f[0] for f in finished]
    assert tasks == handed[: len(tasks)] and len(tasks) >= 5
    for task, length, ret in finished:
        assert length == task and ret == task  # episode length = its own task, reward 1 per step


def test_truncation_is_reported_and_not_termination():
    env = TaskAutoReset(countdown_task_env(max_steps=2))
    obs, state = env.reset(jax.random.PRNGKey(0), jnp.array([5.0]))
    _, state, _, term, trunc, info = env.step(jax.random.PRNGKey(1), state, 0, jnp.array([5.0]))
    assert not bool(term) and not bool(trunc)
    obs, state, _, term, trunc, info = env.step(jax.random.PRNGKey(2), state, 0, jnp.array([5.0]))
    assert bool(trunc) and not bool(term)
    assert float(info["final_observation"][0]) == 3.0  # 5 - 2 steps left when cut
    assert float(obs[0]) == 5.0  # reset observation
    assert bool(info["episode"].done) and int(info["episode"].length) == 2


def test_episode_score_is_normalised_return():
    te = countdown_task_env()
    np.testing.assert_allclose(te.score(jnp.array([0.0, 4.5, 9.0, 20.0])), [0.0, 0.5, 1.0, 1.0])


def test_cartpole_tasks_params_are_consistent():
    p = cartpole_params_for(jnp.array([0.25, 3.0]))
    assert float(p.length) == 0.25
    np.testing.assert_allclose(float(p.theta_threshold_radians), 3.0 * np.pi / 180, rtol=1e-6)
    np.testing.assert_allclose(float(p.polemass_length), 0.1 * 0.25)
    te = cartpole_tasks()
    default = te.params_for(jnp.asarray(te.default_task))
    from gymnax.environments.classic_control.cartpole import CartPole

    ref = CartPole().default_params
    for field in ["length", "polemass_length", "total_mass", "force_mag", "theta_threshold_radians",
                  "max_steps_in_episode"]:
        np.testing.assert_allclose(float(getattr(default, field)), float(getattr(ref, field)), rtol=1e-6)
    # vmappable over tasks
    ps = jax.vmap(te.params_for)(jnp.array([[0.1, 1.0], [0.9, 12.0]]))
    np.testing.assert_allclose(ps.length, [0.1, 0.9])


def test_task_space_validation_messages():
    space = TaskSpace.box(["a", "b"], [0.0, -1.0], [1.0, 1.0])
    space.validate(np.array([[0.5, 0.0], [1.0, -1.0]]))
    with pytest.raises(ValueError, match="b=2.0 outside"):
        space.validate(np.array([[0.5, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        space.validate(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        space.validate(np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="low < high"):
        TaskSpace.box(["a"], [1.0], [0.0])
    with pytest.raises(ValueError, match="duplicate"):
        TaskSpace.box(["a", "a"], [0.0, 0.0], [1.0, 1.0])
    d = TaskSpace.discrete(5)
    d.validate(np.array([[0.0], [4.0]]))
    with pytest.raises(ValueError, match="integers"):
        d.validate(np.array([[1.5]]))


def test_task_space_sampling_and_normalisation():
    space = CARTPOLE_TASKS
    x = space.sample_uniform(jax.random.PRNGKey(0), 2000)
    space.validate(x)
    u = space.normalise(x)
    np.testing.assert_allclose(space.denormalise(u), x, rtol=1e-5)
    assert abs(float(u.mean()) - 0.5) < 0.03
    ids = TaskSpace.discrete(4).sample_uniform(jax.random.PRNGKey(1), 400)
    assert set(np.unique(np.asarray(ids)).tolist()) == {0.0, 1.0, 2.0, 3.0}
    ts = space.test_set(50)
    np.testing.assert_array_equal(ts, space.test_set(50))
    space.validate(ts)


def test_info_holds_curriculax_keys_and_wrap_keeps_the_rest():
    te = countdown_task_env(max_steps=7)
    env = TaskAutoReset(te)
    _, state = env.reset(jax.random.PRNGKey(0), jnp.array([2.0]))
    info = env.step(jax.random.PRNGKey(1), state, 0, jnp.array([2.0]))[-1]
    assert set(info) == {"terminated", "truncated", "final_observation", "episode"}  # Countdown adds none
    from envs.wrappers import FlattenObservation

    wrapped = te.wrap(FlattenObservation, FlattenObservation)
    assert isinstance(wrapped.env, FlattenObservation) and isinstance(wrapped.env.inner, FlattenObservation)
    assert wrapped.env.inner.inner is te.env and te.env.__class__.__name__ == "Countdown"  # te unchanged
    for field in ["task_space", "params_for", "default_task", "return_range", "mastery_score", "name"]:
        assert getattr(wrapped, field) == getattr(te, field)
    assert wrapped.observation_space().shape == (1,) and int(wrapped.action_space().n) == 2
