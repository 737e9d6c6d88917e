"""EWC: the exact Fisher of a linear-softmax model equals its closed form; the per-sample empirical
Fisher is not the squared batch-mean gradient; the EWC / online-EWC penalty equals a direct
computation on a tiny network; L2 equals its formula; the strength is vmappable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.continual.ewc import diagonal_fisher, ewc
from algos.continual.l2 import l2
from algos.continual.online_ewc import online_ewc


class Rows:
    """A minimal supervised batch (x, y) for the learners."""

    def __init__(self, x, y):
        self.x, self.y = x, y


jax.tree_util.register_pytree_node(Rows, lambda r: ((r.x, r.y), None), lambda _, c: Rows(*c))


def linear(params, x):
    return x @ params["W"] + params["b"]


def log_probs(params, sample):
    return jax.nn.log_softmax(linear(params, sample.x[None])[0])


def _problem(n=37, d=4, k=3, seed=0):
    kx, kw, kb, ky = jax.random.split(jax.random.PRNGKey(seed), 4)
    params = {"W": jax.random.normal(kw, (d, k)), "b": jax.random.normal(kb, (k,))}
    x = jax.random.normal(kx, (n, d))
    y = jax.random.randint(ky, (n,), 0, k)
    return params, Rows(x, y)


def test_exact_fisher_equals_the_linear_softmax_closed_form():
    params, data = _problem()
    F = diagonal_fisher(log_probs, params, data, data.y, jnp.ones(data.y.shape, bool), jax.random.PRNGKey(0), "exact",
                        batch_size=8)  # 37 rows: the last chunk is padded and masked
    p = jax.nn.softmax(linear(params, data.x))
    var = p * (1 - p)  # [n, k]: sum_y p_y (delta_yk - p_k)^2 = p_k (1 - p_k)
    np.testing.assert_allclose(np.asarray(F["W"]), np.asarray((data.x[:, :, None] ** 2 * var[:, None, :]).mean(0)),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(F["b"]), np.asarray(var.mean(0)), rtol=1e-5, atol=1e-7)


def test_empirical_fisher_is_per_sample_and_sampled_fisher_is_unbiased():
    params, data = _problem(n=16)
    mask = jnp.ones(16, bool)
    F = diagonal_fisher(log_probs, params, data, data.y, mask, jax.random.PRNGKey(0), "empirical", batch_size=4)
    p = jax.nn.softmax(linear(params, data.x))
    g_b = jax.nn.one_hot(data.y, 3) - p  # d log p_y / d b
    np.testing.assert_allclose(np.asarray(F["b"]), np.asarray((g_b**2).mean(0)), rtol=1e-5)
    batched = g_b.mean(0) ** 2  # what a squared mean-gradient estimate would give: much smaller
    assert np.all(np.asarray(F["b"]) > 2 * np.asarray(batched))
    # sampled labels: averaged over many draws it approaches the exact Fisher
    many = Rows(jnp.repeat(data.x, 200, 0), jnp.repeat(data.y, 200))
    Fs = diagonal_fisher(log_probs, params, many, many.y, jnp.ones(3200, bool), jax.random.PRNGKey(1), "sampled",
                         batch_size=320)
    Fe = diagonal_fisher(log_probs, params, data, data.y, mask, jax.random.PRNGKey(0), "exact", batch_size=4)
    np.testing.assert_allclose(np.asarray(Fs["b"]), np.asarray(Fe["b"]), rtol=0.1, atol=5e-3)


def test_batched_fisher_is_the_mean_of_squared_minibatch_mean_gradients():
    """Avalanche's estimate: each minibatch's mean gradient squared, averaged over the minibatches
    that hold a valid row (a partial last minibatch averages its valid rows only)."""
    params, data = _problem(n=22)
    mask = jnp.ones(22, bool).at[20:].set(False)  # 20 valid rows: batches of 8, 8 and 4 valid
    F = diagonal_fisher(log_probs, params, data, data.y, mask, jax.random.PRNGKey(0), "batched", batch_size=8)
    p = jax.nn.softmax(linear(params, data.x))
    g_b = np.asarray(jax.nn.one_hot(data.y, 3) - p)  # per-row d log p_y / d b
    g_w = np.asarray(data.x)[:, :, None] * g_b[:, None, :]
    batches = [slice(0, 8), slice(8, 16), slice(16, 20)]
    np.testing.assert_allclose(np.asarray(F["b"]), np.mean([g_b[b].mean(0) ** 2 for b in batches], 0), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(F["W"]), np.mean([g_w[b].mean(0) ** 2 for b in batches], 0), rtol=1e-5,
                               atol=1e-8)
    # with one row per minibatch it is the per-sample empirical Fisher
    F1 = diagonal_fisher(log_probs, params, data, data.y, mask, jax.random.PRNGKey(0), "batched", batch_size=1)
    Fe = diagonal_fisher(log_probs, params, data, data.y, mask, jax.random.PRNGKey(0), "empirical", batch_size=2)
    np.testing.assert_allclose(np.asarray(F1["W"]), np.asarray(Fe["W"]), rtol=1e-5, atol=1e-8)


def _task_loss(params, batch, key):
    logp = jax.nn.log_softmax(linear(params, batch.x))
    return -jnp.take_along_axis(logp, batch.y[:, None], 1).mean(), {}


def _mlp_tiny():
    def apply(params, x):
        return jnp.tanh(x @ params["W1"]) @ params["W2"]

    def lp(params, sample):
        return jax.nn.log_softmax(apply(params, sample.x[None])[0])

    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    return apply, lp, {"W1": jax.random.normal(k1, (3, 5)), "W2": jax.random.normal(k2, (5, 2))}


def _direct_fisher(apply, params, data):
    """Exact Fisher by a Python loop over samples and labels."""
    total = jax.tree.map(jnp.zeros_like, params)
    for i in range(data.y.shape[0]):
        logp = lambda q: jax.nn.log_softmax(apply(q, data.x[i:i + 1])[0])
        p = np.exp(np.asarray(logp(params)))
        for c in range(p.shape[0]):
            g = jax.grad(lambda q: logp(q)[c])(params)
            total = jax.tree.map(lambda t, gg: t + p[c] * gg**2, total, g)
    return jax.tree.map(lambda t: t / data.y.shape[0], total)


def test_ewc_penalty_equals_a_direct_computation_on_a_tiny_network():
    apply, lp, theta0 = _mlp_tiny()
    task_loss = lambda p, b, k: (jnp.sum(apply(p, b.x)) * 0.0, {})
    lam = 7.0
    learner = ewc(apply, lp, strength=lam, fisher="exact", fisher_batch=4)
    state = learner.init(jax.random.PRNGKey(0), theta0, None)
    data_a = Rows(jax.random.normal(jax.random.PRNGKey(5), (6, 3)), jnp.zeros(6, jnp.int32))
    data_b = Rows(jax.random.normal(jax.random.PRNGKey(6), (6, 3)), jnp.zeros(6, jnp.int32))
    data_c = Rows(jax.random.normal(jax.random.PRNGKey(7), (6, 3)), jnp.zeros(6, jnp.int32))
    theta1 = jax.tree.map(lambda x: x + 0.3, theta0)
    theta2 = jax.tree.map(lambda x: 1.5 * x - 0.2, theta0)
    state = learner.end_task(state, theta0, jnp.int32(0), data_a)
    state = learner.end_task(state, theta1, jnp.int32(1), data_b)
    theta = jax.tree.map(lambda x: x * 0.7 - 0.1, theta0)
    fa, fb = _direct_fisher(apply, theta0, data_a), _direct_fisher(apply, theta1, data_b)
    fc = _direct_fisher(apply, theta2, data_c)

    def direct(pairs, at):
        return sum(lam / 2 * float(jnp.sum(f[n] * (at[n] - anchor[n]) ** 2)) for anchor, f in pairs for n in at)

    got, aux = learner.loss(task_loss)(theta, state, data_a, jnp.int32(2), jax.random.PRNGKey(0))
    assert float(got) == pytest.approx(direct(((theta0, fa), (theta1, fb)), theta), rel=1e-4)
    # a third task is folded into the same quadratic: value and gradient equal the sum of three terms
    state = learner.end_task(state, theta2, jnp.int32(2), data_c)
    pairs = ((theta0, fa), (theta1, fb), (theta2, fc))
    got = learner.loss(task_loss)(theta, state, data_a, jnp.int32(3), jax.random.PRNGKey(0))[0]
    assert float(got) == pytest.approx(direct(pairs, theta), rel=1e-4)
    grad = jax.grad(lambda p: learner.loss(task_loss)(p, state, data_a, jnp.int32(3), jax.random.PRNGKey(0))[0])(theta)
    for n in theta:
        want_g = sum(lam * f[n] * (theta[n] - anchor[n]) for anchor, f in pairs)
        np.testing.assert_allclose(grad[n], want_g, rtol=1e-4, atol=1e-6)
    # online EWC with gamma: F~ = gamma F_a + F_b around the last anchor only
    gamma = 0.5
    on = online_ewc(apply, lp, strength=lam, gamma=gamma, fisher="exact", fisher_batch=4)
    s = on.end_task(on.end_task(on.init(jax.random.PRNGKey(0), theta0, None), theta0, jnp.int32(0), data_a),
                    theta1, jnp.int32(1), data_b)
    got_on, _ = on.loss(task_loss)(theta, s, data_a, jnp.int32(2), jax.random.PRNGKey(0))
    want_on = sum(lam / 2 * float(jnp.sum((gamma * fa[n] + fb[n]) * (theta[n] - theta1[n]) ** 2)) for n in theta)
    assert float(got_on) == pytest.approx(want_on, rel=1e-4)
    # before any consolidation there is no penalty
    fresh, _ = learner.loss(task_loss)(theta, learner.init(jax.random.PRNGKey(0), theta0, None), data_a,
                                      jnp.int32(0), jax.random.PRNGKey(0))
    assert float(fresh) == 0.0


def test_l2_penalty_and_a_vmapped_strength_sweep():
    params, data = _problem()
    learner = l2(linear, strength=1.0)
    state = learner.end_task(learner.init(jax.random.PRNGKey(0), params, None), params, jnp.int32(0), data)
    moved = jax.tree.map(lambda x: x + 0.5, params)
    base, _ = _task_loss(moved, data, None)
    lams = jnp.array([0.0, 0.1, 1.0, 10.0])
    sweep = jax.vmap(lambda lam: learner.loss(_task_loss)(moved, state.replace(strength=lam), data, jnp.int32(1),
                                                          jax.random.PRNGKey(0))[0])(lams)
    n_params = 4 * 3 + 3
    np.testing.assert_allclose(np.asarray(sweep), float(base) + np.asarray(lams) * 0.25 * n_params, rtol=1e-5)


def test_unknown_fisher_is_refused():
    with pytest.raises(ValueError, match="unknown Fisher"):
        ewc(linear, log_probs, fisher="fisherman")
