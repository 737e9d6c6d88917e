"""SPDL: Gaussian KL against closed forms, the trust region as a property, the 1-D optimum by brute force."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from envs.point_mass import POINT_MASS_2D_TASKS
from envs.task_space import TaskSpace
from teachers import gaussian as G
from teachers.self_paced import SPDLConfig, SPDLDeltaConfig, default_teacher, spdl, spdl_delta


def random_gaussian(rng, d, full=True):
    mean = rng.normal(size=d)
    chol = np.tril(rng.normal(size=(d, d)) * 0.5, -1) if full else np.zeros((d, d))
    chol = chol + np.diag(np.exp(rng.normal(size=d) * 0.5))
    return mean, chol


def test_kl_and_log_prob_closed_form():
    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        for _ in range(5):
            (m0, l0), (m1, l1) = random_gaussian(rng, d), random_gaussian(rng, d)
            s0, s1 = l0 @ l0.T, l1 @ l1.T
            inv = np.linalg.inv(s1)
            expected = 0.5 * (np.trace(inv @ s0) + (m1 - m0) @ inv @ (m1 - m0) - d
                              + np.log(np.linalg.det(s1) / np.linalg.det(s0)))
            nu0, nu1 = G.gaussian_params(m0, l0, True), G.gaussian_params(m1, l1, True)
            np.testing.assert_allclose(G.kl_divergence(nu0, nu1, d), expected, rtol=2e-4, atol=1e-5)
            x = rng.normal(size=(7, d))
            np.testing.assert_allclose(G.log_prob(nu0, jnp.asarray(x, jnp.float32)),
                                       multivariate_normal(m0, s0).logpdf(x), rtol=1e-4, atol=1e-4)
    # 1-D: log(s1 / s0) + (s0^2 + (m0 - m1)^2) / (2 s1^2) - 1/2
    nu0 = G.gaussian_params(jnp.array([0.3]), jnp.array([[0.5]]), False)
    nu1 = G.gaussian_params(jnp.array([-1.0]), jnp.array([[2.0]]), False)
    np.testing.assert_allclose(G.kl_divergence(nu0, nu1, 1),
                               np.log(4.0) + (0.25 + 1.69) / 8.0 - 0.5, rtol=1e-5)
    # diagonal parameters equal the full ones with a zero lower triangle
    m, l = random_gaussian(rng, 3, full=False)
    np.testing.assert_allclose(G.unpack(G.gaussian_params(m, l, False), 3)[1], l, atol=1e-6)


N = 48
V1 = SPDLConfig(offset=0, alpha_offset=0, episodes_per_update=N, buffer_size=N)
V2 = SPDLDeltaConfig(offset=0, episodes_per_update=N, buffer_size=N, delta=0.3)


@pytest.fixture(scope="module")
def compiled():
    """One jitted update per variant, shared by the tests (compiling dominates their time)."""
    out = {}
    for name, factory, config in [("v1", spdl, V1), ("v2", spdl_delta, V2),
                                  ("diag", spdl, dataclasses.replace(V1, alpha_offset=100, covariance="diag"))]:
        teacher = factory(POINT_MASS_2D_TASKS, config)
        out[name] = (teacher, jax.jit(teacher.update), config)
    return out


def _random_round(teacher, key):
    """A distribution with a random mean, a round of N episodes from it with random values."""
    k_s, k_v, k_p = jax.random.split(key, 3)
    state = teacher.init(k_s)
    mean = jax.random.uniform(k_p, (2,), minval=-2.0, maxval=2.0)
    state = state.replace(params=state.params.at[:2].set(mean))
    state, tasks = teacher.sample(state, k_s, N)
    values = 5.0 * jax.random.uniform(k_v, (N,)) * jnp.exp(-jnp.abs(tasks[:, 0] - 2.0))
    return state, tasks, values


@pytest.mark.parametrize("variant", ["v1", "v2", pytest.param("diag", marks=pytest.mark.slow)])
def test_trust_region_never_exceeded(compiled, variant):
    teacher, update, config = compiled[variant]
    kls = []
    for seed in range(16):
        state, tasks, values = _random_round(teacher, jax.random.PRNGKey(seed))
        new = update(state, tasks, values / 100, jnp.ones(N, bool), discounted_return=values)
        assert int(new.iteration) == 1
        kls.append(float(G.kl_divergence(state.params, new.params, 2)))
    kls = np.asarray(kls)
    assert np.all(kls <= config.max_kl * (1 + 1e-4)), kls.max()
    assert np.mean(kls > 0.1 * config.max_kl) >= 0.5  # the update does move


def test_one_d_optimum_matches_brute_force():
    space = TaskSpace.box(["c"], [-4.0], [4.0])
    config = SPDLConfig(offset=0, alpha_offset=0, episodes_per_update=200, buffer_size=200, max_kl=0.2)
    teacher = spdl(space, config)
    state = teacher.init(jax.random.PRNGKey(0))
    old = state.params  # N(0, (8/4)^2): the uniform-target rule's initial distribution
    contexts = jnp.linspace(-3.9, 3.9, 200)[:, None]
    values = jnp.exp(-0.5 * (contexts[:, 0] - 1.5) ** 2)
    new_state = jax.jit(teacher.update)(state, contexts, values, jnp.ones(200, bool))  # value = score
    alpha = float(new_state.alpha)
    assert alpha > 0
    target = G.gaussian_params(jnp.array([0.0]), jnp.array([[8.0 / np.sqrt(12.0)]]), False)

    mus, logs = np.meshgrid(np.linspace(-1.0, 2.0, 601), np.linspace(np.log(2.0) - 0.8, np.log(2.0) + 0.5, 521))
    grid = jnp.asarray(np.stack([mus.ravel(), logs.ravel()], 1), jnp.float32)
    old_lp = G.log_prob(old, contexts)

    def objective(nu):
        w = jnp.exp(G.log_prob(nu, contexts) - old_lp)
        return jnp.mean(w * values) - alpha * G.kl_divergence(nu, target, 1)

    f = jax.vmap(objective)(grid)
    kl = jax.vmap(lambda nu: G.kl_divergence(old, nu, 1))(grid)
    f = np.where(np.asarray(kl) <= config.max_kl, np.asarray(f), -np.inf)
    best = np.asarray(grid[np.argmax(f)])
    assert float(G.kl_divergence(old, new_state.params, 1)) <= config.max_kl * (1 + 1e-4)
    assert float(objective(new_state.params)) >= f.max() - 1e-4
    np.testing.assert_allclose(np.asarray(new_state.params), best, atol=0.01)


def test_v2_minimises_kl_subject_to_delta(compiled):
    teacher, update, _ = compiled["v2"]
    state = teacher.init(jax.random.PRNGKey(0))
    state, tasks = teacher.sample(state, jax.random.PRNGKey(1), N)
    target = G.gaussian_params(jnp.array([2.5, 0.5]), jnp.diag(jnp.array([0.004, 0.00375])), True)
    kl_target = lambda nu: float(G.kl_divergence(nu, target, 2))
    # values above delta everywhere: the performance constraint is slack, v2 moves towards the target
    new = update(state, tasks, jnp.ones(N), jnp.ones(N, bool), discounted_return=jnp.full(N, 10.0))
    assert bool(new.perf_reached) and kl_target(new.params) < kl_target(state.params)
    # below delta, never reached: v2 maximises the expected value (towards the good contexts)
    values = 0.2 * jnp.exp(-((tasks[:, 0] + 1.0) ** 2))
    low = update(state, tasks, values, jnp.ones(N, bool), discounted_return=values)
    assert not bool(low.perf_reached)
    old_lp = G.log_prob(state.params, tasks)
    expected = lambda nu: float(jnp.mean(jnp.exp(G.log_prob(nu, tasks) - old_lp) * values))
    assert expected(low.params) > expected(state.params) and float(low.params[0]) < float(state.params[0])
    # reached once, not met now: no update
    again = update(new, tasks, values, jnp.ones(N, bool), discounted_return=values)
    np.testing.assert_array_equal(again.params, new.params)


def test_masking_extras_and_bad_input(compiled):
    teacher, update, _ = compiled["v1"]
    assert teacher.extras == ("discounted_return",)
    state = teacher.init(jax.random.PRNGKey(0))
    tasks = jnp.zeros((N, 2))
    mask = jnp.zeros(N, bool).at[:4].set(jnp.array([True, False, True, True]))
    returns = jnp.zeros(N).at[:4].set(jnp.array([1.0, 2.0, jnp.nan, 3.0]))
    s = update(state, tasks, jnp.zeros(N), mask, discounted_return=returns)
    assert int(s.count) == 2 and int(s.inputs.nonfinite) == 1 and int(s.rounds) == 0
    np.testing.assert_allclose(s.values[:2], [1.0, 3.0])
    with pytest.raises(ValueError, match="discounted_return"):
        teacher.update(state, tasks, jnp.zeros(N), jnp.ones(N, bool))
    with pytest.raises(ValueError):
        spdl(POINT_MASS_2D_TASKS, SPDLConfig(covariance="banded"))
    with pytest.raises(ValueError):
        spdl(TaskSpace.discrete(4))
    # the default teacher samples the narrow target; on other spaces the uniform box
    d = default_teacher(POINT_MASS_2D_TASKS)
    _, x = d.sample(d.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1), 1000)
    assert np.all(np.abs(np.asarray(x) - [2.5, 0.5]) < 0.03)
    assert spdl(TaskSpace.box(["h", "s"], [0.0, 0.0], [3.0, 6.0])).extras == ()  # scores there
