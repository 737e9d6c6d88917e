"""GAE against a plain Python reference on random trajectories with terminations and truncations."""

import jax
import jax.numpy as jnp
import numpy as np

from algos.gae import gae_advantages


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    T, N = rewards.shape
    adv = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            done = terminated[t, n] or truncated[t, n]
            bootstrap = 0.0 if terminated[t, n] else next_values[t, n]
            delta = rewards[t, n] + gamma * bootstrap - values[t, n]
            running = delta + (0.0 if done else gamma * lam * running)
            adv[t, n] = running
    return adv, adv + values


def test_gae_matches_python_reference():
    rng = np.random.default_rng(0)
    T, N = 37, 5
    rewards = rng.normal(size=(T, N))
    values = rng.normal(size=(T, N))
    next_values = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < 0.1
    truncated = (rng.random((T, N)) < 0.1) & ~terminated
    assert terminated.any() and truncated.any()
    gamma, lam = 0.97, 0.9
    adv, targets = gae_advantages(
        jnp.asarray(rewards, jnp.float32), jnp.asarray(values, jnp.float32),
        jnp.asarray(next_values, jnp.float32), jnp.asarray(terminated),
        jnp.asarray(terminated | truncated), gamma, lam,
    )
    ref_adv, ref_targets = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-4, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # One step, gamma = 0.5: truncation keeps 0.5 * V(final_obs), termination drops it.
    r, v, nv = jnp.array([[1.0, 1.0]]), jnp.array([[0.0, 0.0]]), jnp.array([[4.0, 4.0]])
    terminated = jnp.array([[True, False]])
    done = jnp.array([[True, True]])
    adv, _ = gae_advantages(r, v, nv, terminated, done, 0.5, 1.0)
    np.testing.assert_allclose(adv, [[1.0, 3.0]])


def test_lambda_one_no_dones_is_discounted_return_minus_value():
    T = 6
    r = jnp.arange(1.0, T + 1.0)[:, None]
    v = jnp.zeros((T, 1))
    nv = jnp.zeros((T, 1)).at[-1].set(10.0)
    zeros = jnp.zeros((T, 1), bool)
    adv, _ = gae_advantages(r, v, nv, zeros, zeros, 0.9, 1.0)
    expected = [sum(0.9**k * float(r[t + k, 0]) for k in range(T - t)) + 0.9 ** (T - t) * 10.0
                for t in range(T)]
    np.testing.assert_allclose(adv[:, 0], expected, rtol=1e-5)


def test_gae_is_jittable_and_vmappable():
    f = jax.jit(jax.vmap(lambda r: gae_advantages(r, r, r, r > 1, r > 1, 0.9, 0.9)[0]))
    assert f(jnp.ones((3, 8, 2))).shape == (3, 8, 2)
