"""EM for Gaussian mixtures in JAX (teachers/em.py): recovery, criteria, selection, masking, refits under vmap."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from teachers import em as G
from teachers import gmm as GT

TRUE_MEANS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
TRUE_WEIGHTS = np.array([0.5, 0.3, 0.2])
TRUE_STD = 0.5


def _mixture_data(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.choice(3, size=n, p=TRUE_WEIGHTS)
    x = TRUE_MEANS[labels] + TRUE_STD * rng.normal(size=(n, 2))
    return x.astype(np.float32), labels


@jax.jit
def _fit_2to6(key, x, mask):
    return G.fit_gmms(key, x, mask, (2, 3, 4, 5, 6))


def test_em_recovers_means_and_weights():
    n = 600
    x, labels = _mixture_data(0, n)
    fit = _fit_2to6(jax.random.key(0), x, np.ones(n, bool))
    i = 1  # ks[1] == 3
    assert fit.ks[i] == 3
    assert bool(fit.converged[i])
    mask = np.asarray(fit.component_mask[i])
    np.testing.assert_array_equal(mask, np.arange(6) < 3)
    np.testing.assert_allclose(np.asarray(fit.weights[i])[3:], 0.0)
    means = np.asarray(fit.means[i])[:3]
    weights = np.asarray(fit.weights[i])[:3]
    # match fitted components to the true ones by nearest mean
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in TRUE_MEANS]
    assert sorted(order) == [0, 1, 2]
    # Clusters are 12 standard deviations apart, so EM's posterior is essentially hard: the fitted
    # means/weights equal the per-cluster sample means/proportions up to float32 round-off.
    for c in range(3):
        np.testing.assert_allclose(means[order[c]], x[labels == c].mean(0), atol=1e-3)
        np.testing.assert_allclose(weights[order[c]], np.mean(labels == c), atol=1e-3)
    # and the truth within sampling error: std of a cluster mean <= 0.5/sqrt(0.2*600) ~ 0.046 per
    # coordinate (tolerance ~4 sigma); std of a proportion <= sqrt(.25/600) ~ 0.02 (tol ~3 sigma).
    np.testing.assert_allclose(means[order], TRUE_MEANS, atol=0.2)
    np.testing.assert_allclose(weights[order], TRUE_WEIGHTS, atol=0.06)
    covs = np.asarray(fit.covs[i])[order]
    np.testing.assert_allclose(covs, np.broadcast_to(TRUE_STD**2 * np.eye(2), covs.shape), atol=0.08)


def _numpy_mean_loglik(weights, means, covs, x):
    comps = [
        np.log(w) + multivariate_normal(m, c).logpdf(x)
        for w, m, c in zip(weights, means, covs)
    ]
    return float(np.mean(logsumexp(np.stack(comps, axis=1), axis=1)))


def test_criteria_match_scipy_and_sklearn():
    n = 300
    x, _ = _mixture_data(1, n)
    # 3-D data (as ALP-GMM's [task, alp] rows): add a third coordinate
    x = np.concatenate([x, np.random.default_rng(5).random((n, 1), np.float32)], axis=1)
    ks = (1, 2, 3, 4)
    fit = jax.jit(lambda k, p, m: G.fit_gmms(k, p, m, ks))(jax.random.key(3), x, np.ones(n, bool))
    aic, bic = np.asarray(G.aic(fit)), np.asarray(G.bic(fit))
    aicc = np.asarray(G.aicc(fit, aicc_dim=2))
    x64 = x.astype(np.float64)
    for i, k in enumerate(ks):
        w = np.asarray(fit.weights[i], np.float64)[:k]
        mu = np.asarray(fit.means[i], np.float64)[:k]
        cov = np.asarray(fit.covs[i], np.float64)[:k]
        ll = _numpy_mean_loglik(w, mu, cov, x64)
        assert fit.mean_loglik[i] == pytest.approx(ll, rel=1e-5, abs=1e-5)
        p = k * 3 * 4 / 2 + k * 3 + (k - 1)
        assert float(fit.n_params[i]) == p
        assert aic[i] == pytest.approx(-2 * n * ll + 2 * p, rel=1e-5)
        assert bic[i] == pytest.approx(-2 * n * ll + p * np.log(n), rel=1e-5)
        # TDRL's AICc: the correction counts parameters with the task dimension d = 2
        pp = k * ((2 * 2 - 2) / 2 + 2 * 2 + 1) - 1
        assert aicc[i] == pytest.approx(-2 * n * ll + 2 * p + 2 * pp * (pp + 1) / (n - pp - 1), rel=1e-5)
        # sklearn's own aic/bic on the same parameters
        sk = GaussianMixture(k, covariance_type="full")
        sk.weights_, sk.means_, sk.covariances_ = w / w.sum(), mu, cov
        sk.precisions_cholesky_ = np.linalg.inv(np.linalg.cholesky(cov)).transpose(0, 2, 1)
        assert aic[i] == pytest.approx(sk.aic(x64), rel=1e-5)
        assert bic[i] == pytest.approx(sk.bic(x64), rel=1e-5)


def test_selects_three_components_on_separated_clusters():
    n = 600
    x, _ = _mixture_data(2, n)
    fit = _fit_2to6(jax.random.key(1), x, np.ones(n, bool))
    for criterion in ("aic", "bic"):
        gmm = G.select(fit, criterion)
        assert int(gmm.k) == 3, criterion
        assert bool(gmm.ok)
        np.testing.assert_array_equal(np.asarray(gmm.component_mask), np.arange(6) < 3)
        values = np.asarray(G.criterion_values(fit, criterion))
        assert int(np.argmin(values)) == 1


def test_masked_points_have_no_effect():
    n = 250
    x, _ = _mixture_data(3, n)
    rng = np.random.default_rng(0)
    extra = 90
    garbage = np.concatenate(
        [np.full((30, 2), np.nan), np.full((30, 2), 1e30), rng.normal(size=(30, 2)) * 50],
        axis=0,
    ).astype(np.float32)
    # interleave the garbage rows at random positions
    total = n + extra
    is_valid = np.zeros(total, bool)
    is_valid[np.sort(rng.choice(total, n, replace=False))] = True
    big = np.empty((total, 2), np.float32)
    big[is_valid] = x
    big[~is_valid] = garbage[rng.permutation(extra)]
    key = jax.random.key(7)
    fit_clean = _fit_2to6(key, x, np.ones(n, bool))
    fit_masked = _fit_2to6(key, big, is_valid)
    assert float(fit_masked.n_points) == n
    chex.assert_trees_all_close(fit_masked, fit_clean, rtol=1e-4, atol=1e-4)


def test_choose_components_and_sampling():
    key = jax.random.key(0)
    mask = jnp.array([True, True, True, False])
    c = np.asarray(G.choose_components(key, jnp.array([0.0, -1.0, 5.0, 9.0]), mask, 500))
    np.testing.assert_array_equal(c, 2)  # negative clamped to 0, masked component never chosen
    c = np.asarray(G.choose_components(key, jnp.array([0.0, 0.0, 0.0, 9.0]), mask, 3000))
    counts = np.bincount(c, minlength=4)
    assert counts[3] == 0
    # uniform over the 3 valid components: each ~1000, std ~26
    assert np.all(np.abs(counts[:3] - 1000) < 130)
    c = np.asarray(G.choose_components(key, jnp.array([1.0, 3.0, 0.0, 0.0]), mask, 4000))
    assert abs(np.mean(c == 1) - 0.75) < 0.03  # std ~0.007

    # draws from one component have its mean and covariance
    x, _ = _mixture_data(4, 400)
    gmm = G.select(_fit_2to6(jax.random.key(2), x, np.ones(400, bool)), "bic")
    draws = G.sample_gmm_components(key, gmm, jnp.ones(5000, jnp.int32))
    np.testing.assert_allclose(np.mean(draws, 0), gmm.means[1], atol=0.05)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), gmm.covs[1], atol=0.05)


def test_sampling_equals_the_inverse_cdf_and_cholesky_transform_in_numpy():
    """The elementwise sampler gives exactly the textbook draws from the same random numbers:
    component = number of cumulative weights at or below u * total (valid, clamped scores), and
    x = mean_c + L_c z."""
    x, _ = _mixture_data(5, 300)
    gmm = G.select(_fit_2to6(jax.random.key(3), x, np.ones(300, bool)), "aic")
    scores = jnp.array([0.3, -2.0, 1.1, 0.0, 0.7, 2.0])[: gmm.weights.shape[0]]
    key_c, key_x = jax.random.key(11), jax.random.key(12)
    comps = np.asarray(G.choose_components(key_c, scores, gmm.component_mask, 2000))
    p = np.where(np.asarray(gmm.component_mask), np.maximum(np.asarray(scores), 0.0), 0.0)
    cdf = np.cumsum(p)
    u = np.asarray(jax.random.uniform(key_c, (2000,))) * cdf[-1]
    want = np.minimum(np.searchsorted(cdf, u, side="right"), np.max(np.nonzero(p)[0]))
    np.testing.assert_array_equal(comps, want)
    draws = np.asarray(G.sample_gmm_components(key_x, gmm, jnp.asarray(comps)))
    z = np.asarray(jax.random.normal(key_x, (2000, x.shape[1])), np.float64)
    chol, means = np.asarray(gmm.chol, np.float64), np.asarray(gmm.means, np.float64)
    np.testing.assert_allclose(draws, means[comps] + np.einsum("nij,nj->ni", chol[comps], z), rtol=1e-5, atol=1e-6)


def test_ring_write_and_window():
    buf = jnp.zeros((5,), jnp.int32)
    vals = jnp.arange(1, 10)
    mask = jnp.array([1, 0, 1, 1, 1, 0, 1, 1, 1], bool)  # valid values 1,3,4,5,7,8,9
    out = np.asarray(GT.ring_write(buf, jnp.asarray(3), vals, mask))
    # episodes 3..9 get values 1,3,4,5,7,8,9; the ring keeps episodes 5..9 at slots e % 5
    expected = np.zeros(5, int)
    for e, v in zip(range(3, 10), [1, 3, 4, 5, 7, 8, 9]):
        expected[e % 5] = v
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.asarray(GT.ring_window(jnp.asarray(out), 10, 4)), [5, 7, 8, 9])


def test_written_out_cholesky_and_inverse_match_numpy():
    rng = np.random.default_rng(0)
    for dim in (1, 3, 5):
        a = rng.normal(size=(4, dim, dim))
        cov = (a @ np.swapaxes(a, 1, 2) + 0.1 * np.eye(dim)).astype(np.float32)
        chol = np.asarray(G._cholesky(jnp.asarray(cov)))
        np.testing.assert_allclose(chol, np.linalg.cholesky(cov.astype(np.float64)), rtol=1e-4, atol=1e-5)
        inv = np.asarray(G._tri_inverse(jnp.asarray(chol)))
        np.testing.assert_allclose(inv @ chol, np.broadcast_to(np.eye(dim), inv.shape), atol=1e-4)
    bad = np.array([[1.0, 2.0], [2.0, 1.0]], np.float32)  # indefinite: NaN, then the jitter retry
    assert np.isnan(np.asarray(G._cholesky(jnp.asarray(bad)))).any()


@pytest.mark.parametrize("due", [
    (True, False, False, True, False),  # 2 of 5 due: two chunks of 1
    (True, False, True, True, False),  # 3 of 5 due: three chunks
])
def test_refit_under_vmap_fits_only_flagged_seeds_and_equals_one_seed_at_a_time(due):
    ks, opts = (2, 3), G.EMOptions(iters=30, vmap_chunk=1)
    windows = np.stack([_mixture_data(s, 40)[0] for s in range(5)])
    seeds = np.arange(5, dtype=np.uint32)
    fitted = np.array(due)
    old = jax.tree.map(lambda a: jnp.stack([a] * 5), G.empty_gmm(3, 2))
    one = jax.jit(lambda s, w, f, g: G.refit(s, w, f, g, ks, opts))
    vgmm, vgood = jax.jit(jax.vmap(lambda s, w, f, g: G.refit(s, w, f, g, ks, opts)))(
        seeds, windows, fitted, old)
    np.testing.assert_array_equal(np.asarray(vgood), fitted)
    for i in range(5):
        gmm, good = one(seeds[i], windows[i], fitted[i], jax.tree.map(lambda a: a[i], old))
        assert bool(good) == fitted[i]
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], vgmm), gmm, rtol=1e-5, atol=1e-5)
        if fitted[i]:
            want = G.fit_and_select(jax.random.key(seeds[i]), windows[i], np.ones(40, bool), ks, opts)
            chex.assert_trees_all_close(gmm, want, rtol=1e-5, atol=1e-5)
        else:
            chex.assert_trees_all_close(gmm, jax.tree.map(lambda a: a[i], old))


def test_a_shift_of_the_points_shifts_the_means_only():
    """EM is translation-equivariant, and the moment-form M-step keeps it so in float32 because the
    points are centred first: tight clusters (std 0.05) far from the origin (+50) give the same
    likelihoods and covariances and means moved by the shift, with sklearn's answer for the variances."""
    rng = np.random.default_rng(3)
    centres = np.array([[0.2, 0.2], [0.8, 0.3], [0.4, 0.9]])
    x = (centres[rng.integers(0, 3, 300)] + 0.05 * rng.normal(size=(300, 2))).astype(np.float32)
    mask = np.ones(300, bool)
    near = _fit_2to6(jax.random.key(1), x, mask)
    far = _fit_2to6(jax.random.key(1), x + np.float32(50.0), mask)
    i = 1  # three components
    np.testing.assert_allclose(far.mean_loglik, near.mean_loglik, atol=2e-3)
    np.testing.assert_allclose(far.means[i, :3], near.means[i, :3] + 50.0, atol=1e-3)
    np.testing.assert_allclose(far.covs[i, :3], near.covs[i, :3], rtol=2e-2, atol=1e-6)
    ref = GaussianMixture(3, covariance_type="full", random_state=0).fit(x.astype(np.float64) + 50.0)
    ours = np.sort(np.asarray(far.covs[i, :3, 0, 0]))
    np.testing.assert_allclose(ours, np.sort(ref.covariances_[:, 0, 0]), rtol=5e-2)


@pytest.mark.parametrize("static", [False, True, None])
def test_unrolled_while_takes_the_same_steps_as_while_loop(static):
    """Several steps per loop iteration, the ones past the stop keeping the carry, with an early exit or
    a static trip count: the same result as lax.while_loop on an exact (integer) loop, under vmap too
    (lanes stopping at different steps)."""
    def cond(c):
        return (c[0] != 1) & (c[1] < 200)

    def body(c):
        n, i = c
        return jnp.where(n % 2 == 0, n // 2, 3 * n + 1), i + 1

    starts = jnp.arange(1, 40, dtype=jnp.int32)
    want = jax.vmap(lambda n: jax.lax.while_loop(cond, body, (n, jnp.int32(0))))(starts)
    for unroll in (1, 2, 3, 8):
        got = jax.vmap(lambda n: G._while_unrolled(cond, body, (n, jnp.int32(0)), unroll, 200, static))(starts)
        np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
        np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))


def test_em_unroll_option_runs_the_same_algorithm():
    """EM with 4 iterations per loop step: the same iteration counts up to rounding (XLA compiles the
    unrolled body differently), the same selected k on separated clusters, and refused if < 1."""
    import dataclasses
    key = jax.random.PRNGKey(0)
    centres = jnp.asarray([[0.1, 0.1], [0.9, 0.2], [0.5, 0.9]])
    x = (centres[jnp.arange(150) % 3] + 0.03 * jax.random.normal(key, (150, 2)))
    mask = jnp.ones(150, bool)
    fits = [G.fit_and_select(jax.random.key(1), x, mask, tuple(range(2, 7)),
                             dataclasses.replace(G.EMOptions(), unroll=u)) for u in (1, 4)]
    assert int(fits[0].k) == int(fits[1].k) == 3
    np.testing.assert_allclose(float(fits[0].mean_loglik), float(fits[1].mean_loglik), rtol=1e-4)
    with pytest.raises(ValueError, match="unroll"):
        dataclasses.replace(G.EMOptions(), unroll=0).validate("test")


def test_static_loops_give_the_same_fits_as_the_early_exit():
    """EM and Lloyd run to their maximum step count with stopped fits frozen: the same iteration counts,
    convergence flags and parameters as leaving the loops at the stop, for every k (some k converge
    early, some run all iterations)."""
    import dataclasses
    key = jax.random.PRNGKey(3)
    x = jax.random.uniform(key, (200, 3))
    mask = jnp.arange(200) < 180
    ks = tuple(range(2, 9))
    fits = [G.fit_gmms(jax.random.key(2), x, mask, ks, G.EMOptions(iters=30, tol=1e-4, static_loops=s))
            for s in (False, True, None)]
    assert not bool(jnp.all(fits[0].converged)) and bool(jnp.any(fits[0].converged))
    for other in fits[1:]:
        np.testing.assert_array_equal(np.asarray(other.n_iter), np.asarray(fits[0].n_iter))
        np.testing.assert_array_equal(np.asarray(other.converged), np.asarray(fits[0].converged))
        for a, b in ((other.means, fits[0].means), (other.covs, fits[0].covs), (other.weights, fits[0].weights)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="static_loops"):
        dataclasses.replace(G.EMOptions(), static_loops=1).validate("test")
