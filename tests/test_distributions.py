"""The two in-house action distributions against closed forms and scipy."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from algos.distributions import Categorical, DiagGaussian


def test_categorical_log_prob_entropy_mode():
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]])
    d = Categorical(logits=jnp.log(jnp.asarray(p)) + 3.0)  # logits are shift-invariant
    np.testing.assert_allclose(d.log_prob(jnp.array([2, 0])), np.log([0.7, 0.5]), rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), stats.entropy(p, axis=-1), rtol=1e-5)
    np.testing.assert_array_equal(d.mode(), [2, 0])


def test_categorical_sampling_frequencies():
    p = jnp.array([0.1, 0.2, 0.7])
    d = Categorical(logits=jnp.broadcast_to(jnp.log(p), (20000, 3)))
    counts = np.bincount(np.asarray(d.sample(jax.random.PRNGKey(0))), minlength=3) / 20000
    np.testing.assert_allclose(counts, p, atol=0.015)


def test_diag_gaussian_matches_scipy():
    mean, log_std = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.7]])
    d = DiagGaussian(mean, log_std)
    a = jnp.array([[0.1, 0.3]])
    ref = stats.norm(np.asarray(mean), np.exp(np.asarray(log_std)))
    np.testing.assert_allclose(d.log_prob(a), ref.logpdf(np.asarray(a)).sum(-1), rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), ref.entropy().sum(-1), rtol=1e-5)
    np.testing.assert_array_equal(d.mode(), mean)
    big = DiagGaussian(jnp.broadcast_to(mean, (20000, 2)), jnp.broadcast_to(log_std, (20000, 2)))
    x = np.asarray(big.sample(jax.random.PRNGKey(1)))
    np.testing.assert_allclose(x.mean(0), mean[0], atol=0.03)
    np.testing.assert_allclose(x.std(0), np.exp(log_std[0]), rtol=0.03)
