"""The point mass against hand-worked trajectories (a pass through the gate and a crash)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import (POINT_MASS_2D, POINT_MASS_3D_TASKS, PointMass, PointMassParams,
                             point_mass_tasks, sample_target)
from envs.task_env import TaskAutoReset


def reference_step(state, action, context, substeps=10, dt=0.01):
    """SPDL's ContextualPointMass.step without noise, transcribed in numpy (float64)."""
    action = np.clip(action, -10, 10)
    low, high = np.array([-4, -np.inf, -4, -np.inf]), np.array([4, np.inf, 4, np.inf])
    crash = False
    for _ in range(substeps):
        der = np.zeros(4)
        der[0::2] = state[1::2]
        der[1::2] = 1.5 * action - context[2] * state[1::2]
        new = np.clip(state + dt * der, low, high)
        if state[2] >= 0 > new[2]:
            alpha = (0.0 - state[2]) / (new[2] - state[2])
            x_crit = alpha * new[0] + (1 - alpha) * state[0]
            if abs(x_crit - context[0]) > 0.5 * context[1]:
                new = np.array([x_crit, 0.0, 0.0, 0.0])
                crash = True
        state = new
        if crash:
            break
    reward = np.exp(-0.6 * np.linalg.norm(np.array([0.0, -3.0]) - state[0::2]))
    return state, reward, crash


def run(env, params, actions):
    _, state = env.reset_env(jax.random.PRNGKey(0), params)
    step = jax.jit(env.step_env)
    out = []
    for a in actions:
        obs, state, reward, terminated, info = step(jax.random.PRNGKey(1), state, jnp.asarray(a), params)
        out.append((np.asarray(obs), float(reward), bool(terminated), bool(info["success"])))
        if terminated:
            break
    return out


def test_first_step_by_hand():
    # a = (0, -10): vy' = -15, so vy_k = -0.15 k and y_10 = 3 - 0.01 * 0.15 * (0 + ... + 9) = 2.9325
    env = PointMass(2, noise_std=0.0)
    (obs, reward, terminated, _), = run(env, PointMassParams(gate_position=0.0, gate_width=2.0), [(0.0, -10.0)])
    np.testing.assert_allclose(obs[:4], [0.0, 0.0, 2.9325, -1.5], atol=1e-5)
    np.testing.assert_allclose(obs[4:], [0.0, 2.0])  # the context is in the observation
    np.testing.assert_allclose(reward, np.exp(-0.6 * 5.9325), rtol=1e-5)
    assert not terminated


def test_pass_through_the_gate():
    # straight down through a gate at x = 0 of width 2, then braking towards the goal at y = -3
    env = PointMass(2, noise_std=0.0)
    ctx = np.array([0.0, 2.0, 0.0])
    actions = [(0.0, -10.0)] * 6 + [(0.0, 10.0)] * 4 + [(0.0, 0.0)] * 5
    out = run(env, PointMassParams(gate_position=0.0, gate_width=2.0), actions)
    state = np.array([0.0, 0.0, 3.0, 0.0])
    crossed = False
    for (obs, reward, terminated, _), a in zip(out, actions):
        state, ref_reward, crash = reference_step(state, np.asarray(a), ctx)
        np.testing.assert_allclose(obs[:4], state, atol=1e-4)
        np.testing.assert_allclose(reward, ref_reward, rtol=1e-4)
        assert terminated == crash == False  # noqa: E712
        crossed |= state[2] < 0
    assert crossed and len(out) == len(actions)


def test_crash_into_the_wall():
    # gate at x = 3 of width 0.5; moving down and right, the point meets the wall at x_c < 2.75
    env = PointMass(2, noise_std=0.0)
    ctx = np.array([3.0, 0.5, 0.0])
    actions = [(4.0, -10.0)] * 20
    out = run(env, PointMassParams(gate_position=3.0, gate_width=0.5), actions)
    state = np.array([0.0, 0.0, 3.0, 0.0])
    for i, (obs, reward, terminated, _) in enumerate(out):
        state, ref_reward, crash = reference_step(state, np.asarray(actions[i]), ctx)
        np.testing.assert_allclose(obs[:4], state, atol=1e-4)
        assert terminated == crash
    assert out[-1][2], "the episode must end in a crash"
    final = out[-1][0]
    assert final[1] == final[2] == final[3] == 0.0 and 0.0 < final[0] < 2.75
    # hand check of the crash step: y_k and x_k follow constant accelerations (-15, 6); the crossing x
    # interpolates the two sub-steps around y = 0
    t = np.arange(0, 2000) * 0.01
    k = np.arange(2000)
    y = 3.0 - 0.01 * 0.15 * k * (k - 1) / 2
    x = 0.01 * 0.06 * k * (k - 1) / 2
    j = int(np.argmax(y < 0))
    a = (0 - y[j - 1]) / (y[j] - y[j - 1])
    np.testing.assert_allclose(final[0], a * x[j] + (1 - a) * x[j - 1], rtol=1e-4)
    assert len(out) == (j - 1) // 10 + 1 and t[j] > 0


def test_success_truncation_and_vmap():
    task_env = point_mass_tasks(2)
    env = TaskAutoReset(task_env)
    tasks = jnp.array([[0.0, 2.0], [2.5, 0.5], [-3.0, 7.0]])
    obs, state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 3), tasks)
    np.testing.assert_allclose(obs[:, 4:], tasks)
    step = jax.jit(jax.vmap(env.step))

    done_at = np.full(3, -1)
    for t in range(100):
        obs, state, r, term, trunc, info = step(jax.random.split(jax.random.PRNGKey(t), 3), state,
                                                jnp.zeros((3, 2)), tasks)
        done = np.asarray(term | trunc)
        done_at[(done_at < 0) & done] = t
    assert np.all(done_at == 99)  # standing still: no crash, truncated at the horizon of 100 steps
    assert not np.any(np.asarray(info["success"]))
    # a state at the goal succeeds
    env2 = PointMass(2, noise_std=0.0)
    s = env2.reset_env(jax.random.PRNGKey(0), PointMassParams())[1].replace(x=jnp.float32(0.1), y=jnp.float32(-3.0))
    *_, info = env2.step_env(jax.random.PRNGKey(0), s, jnp.zeros(2), PointMassParams())
    assert bool(info["success"])


def test_three_d_context_and_target():
    task_env = point_mass_tasks(3)
    assert task_env.task_space == POINT_MASS_3D_TASKS
    obs, _ = task_env.env.reset_env(jax.random.PRNGKey(0), task_env.params_for(jnp.array([1.0, 2.0, 3.0])))
    np.testing.assert_allclose(obs, [0, 0, 3, 0, 1, 2, 3])
    x = sample_target(POINT_MASS_2D, jax.random.PRNGKey(0), 4000)
    # the width is clipped at its lower bound 0.5 = the target mean: E[max(z, 0)] = 1 / sqrt(2 pi)
    np.testing.assert_allclose(x.mean(0), [2.5, 0.5 + 0.00375 / np.sqrt(2 * np.pi)], atol=2e-4)
    with pytest.raises(ValueError):
        point_mass_tasks(4)
