"""ALP-GMM teacher (teachers/alp_gmm.py): ALP semantics, masking, refit schedule, sampling."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import kstest

from envs.task_space import TaskSpace
from teachers import gmm as G
from teachers.alp_gmm import ALPGMMConfig, alp_gmm
from teachers.registry import make_teacher

TS = TaskSpace.box(["height", "spacing"], [0.0, 0.0], [2.0, 6.0])  # not a unit box on purpose
CFG = ALPGMMConfig(fit_rate=20, k_min=2, k_max=3, history_capacity=12)  # small DB: sliding window
CFG_RAW = dataclasses.replace(CFG, history_capacity=1000, normalise_tasks=False)


class Jitted:
    """A teacher with its jitted functions (compiled once per test module)."""

    def __init__(self, config):
        self.config = config
        self.t = alp_gmm(TS, config)
        self.update = jax.jit(self.t.update)
        self.sample = jax.jit(self.t.sample, static_argnums=2)
        self.vupdate = jax.jit(jax.vmap(self.t.update))
        self.vsample = jax.jit(jax.vmap(self.t.sample, in_axes=(0, 0, None)), static_argnums=2)
        self.window_fit = jax.jit(lambda state: _window_fit(config, state))


_CACHE: dict = {}


def teacher(config) -> Jitted:
    if config not in _CACHE:
        _CACHE[config] = Jitted(config)
    return _CACHE[config]


def random_batches(seed, n_batches, n, p_valid=0.6):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        tasks = rng.uniform(TS.low, TS.high, size=(n, TS.dim)).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        mask = rng.random(n) < p_valid
        out.append((tasks, scores, mask))
    return out


def reference_alps(batches, capacity, normalise):
    """TDRL's ALP computed one episode at a time, with a database of at most `capacity` entries."""
    db_tasks, db_scores, alps = [], [], []
    low, high = np.asarray(TS.low), np.asarray(TS.high)
    for tasks, scores, mask in batches:
        for task, score, valid in zip(tasks, scores, mask):
            if not valid:
                continue
            u = (task.astype(np.float64) - low) / (high - low) if normalise else task.astype(np.float64)
            window_t, window_s = db_tasks[-capacity:], db_scores[-capacity:]
            if len(window_t) > 5:
                j = int(np.argmin([np.linalg.norm(u - v) for v in window_t]))
                alps.append(abs(float(score) - window_s[j]))
            else:
                alps.append(0.0)
            db_tasks.append(u)
            db_scores.append(float(score))
    return np.asarray(alps)


@pytest.mark.parametrize("config", [CFG, CFG_RAW], ids=["normalised_cap12", "raw_units"])
def test_alp_matches_nearest_previous_task(config):
    tj = teacher(config)
    batches = random_batches(0, 10, 16)
    state = tj.t.init(jax.random.key(0))
    got = []
    for tasks, scores, mask in batches:
        c0 = int(state.episodes)
        state = tj.update(state, tasks, scores, mask)
        c1 = int(state.episodes)
        assert c1 - c0 == mask.sum()
        rows = np.asarray(state.rows)
        got.extend(rows[e % rows.shape[0], -1] for e in range(c0, c1))
    ref = reference_alps(batches, config.history_capacity, config.normalise_tasks)
    assert len(got) == len(ref) > 20
    np.testing.assert_array_equal(ref[:6], 0.0)  # "more than 5 entries" rule
    assert np.all(ref[6:] > 0)  # random continuous scores: the rule is the only source of zeros
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)


def test_capacity_changes_the_reference():
    # guard that the two parametrisations above test different things
    batches = random_batches(0, 10, 16)
    assert not np.allclose(reference_alps(batches, 12, True), reference_alps(batches, 1000, True))
    assert not np.allclose(reference_alps(batches, 1000, True), reference_alps(batches, 1000, False))


def test_batched_updates_equal_one_episode_at_a_time():
    # batches of 48 with fit_rate 20 can cross two refit points in one update
    tj = teacher(CFG)
    batches = random_batches(1, 4, 48, p_valid=0.8)
    s_batch = tj.t.init(jax.random.key(3))
    s_seq = s_batch
    for tasks, scores, mask in batches:
        s_batch = tj.update(s_batch, tasks, scores, mask)
        for i in np.flatnonzero(mask):
            s_seq = tj.update(s_seq, tasks[i : i + 1], scores[i : i + 1], mask[i : i + 1])
    assert int(s_batch.episodes) == int(s_seq.episodes) > 100
    assert bool(s_batch.has_gmm)
    chex.assert_trees_all_close(s_batch.replace(n_fits=0), s_seq.replace(n_fits=0), atol=1e-6)
    # one refit per update that crossed a multiple, one per multiple when episode by episode
    assert int(s_seq.n_fits) == int(s_seq.episodes) // CFG.fit_rate


def test_masked_rows_change_nothing():
    tj = teacher(CFG)
    state = tj.t.init(jax.random.key(1))
    for tasks, scores, mask in random_batches(2, 2, 16):
        state = tj.update(state, tasks, scores, mask)
    rng = np.random.default_rng(9)
    n_valid = 6
    tasks = rng.uniform(TS.low, TS.high, size=(n_valid, 2)).astype(np.float32)
    scores = rng.random(n_valid).astype(np.float32)
    before = int(state.episodes)
    assert before // CFG.fit_rate < (before + n_valid) // CFG.fit_rate  # this batch triggers a refit
    # without garbage: the valid episodes first, then 10 harmless masked rows (same batch shape)
    pad = lambda a: np.concatenate([a, np.zeros((10,) + a.shape[1:], a.dtype)])  # noqa: E731
    clean = tj.update(state, pad(tasks), pad(scores), np.arange(n_valid + 10) < n_valid)
    # the same episodes with 10 garbage rows (NaN / inf / finite) interleaved and masked out
    pos = np.sort(rng.choice(n_valid + 10, n_valid, replace=False))
    big_t = rng.uniform(-50, 50, size=(n_valid + 10, 2)).astype(np.float32)
    big_s = rng.uniform(-50, 50, size=n_valid + 10).astype(np.float32)
    big_t[pos], big_s[pos] = tasks, scores
    garbage = np.setdiff1d(np.arange(n_valid + 10), pos)
    big_t[garbage[:3]], big_s[garbage[:3]] = np.nan, np.inf
    big_m = np.zeros(n_valid + 10, bool)
    big_m[pos] = True
    dirty = tj.update(state, big_t, big_s, big_m)
    assert int(clean.n_fits) == int(state.n_fits) + 1
    chex.assert_trees_all_close(dirty, clean)
    # an all-masked batch is a no-op
    chex.assert_trees_all_close(tj.update(state, big_t, big_s, np.zeros_like(big_m)), state)


def test_vmap_over_seeds_equals_one_seed_at_a_time():
    tj = teacher(CFG)
    keys = jax.random.split(jax.random.key(42), 3)
    per_seed = [random_batches(10 + s, 6, 16, p_valid=0.7) for s in range(3)]
    vstate = jax.vmap(tj.t.init)(keys)
    states = [tj.t.init(k) for k in keys]
    for b in range(6):
        stacked = [np.stack([per_seed[s][b][j] for s in range(3)]) for j in range(3)]
        vstate = tj.vupdate(vstate, *stacked)
        states = [tj.update(states[s], *per_seed[s][b]) for s in range(3)]
    assert np.all(np.asarray(vstate.n_fits) >= 2)
    chex.assert_trees_all_close(vstate, jax.tree.map(lambda *a: jnp.stack(a), *states), rtol=1e-4, atol=1e-5)
    skeys = jax.random.split(jax.random.key(5), 3)
    _, vtasks = tj.vsample(vstate, skeys, 7)
    for s in range(3):
        _, tasks = tj.sample(states[s], skeys[s], 7)
        np.testing.assert_allclose(vtasks[s], tasks, rtol=1e-5, atol=1e-5)


def _window_fit(config, state):
    """The mixture a refit at the last multiple of fit_rate must produce (direct fit + select)."""
    f = config.fit_rate
    last = (state.episodes // f) * f
    window = G.ring_window(state.rows, last, f)
    fit = G.fit_gmms(
        jax.random.key(state.fit_seed), window, jnp.ones(f, bool), config.ks,
        iters=config.em_iters, reg_covar=config.reg_covar,
    )
    return G.select(fit, config.criterion, aicc_dim=TS.dim)


@pytest.mark.parametrize("n_bootstrap", [None, 50])
def test_refit_exactly_at_multiples_of_fit_rate(n_bootstrap):
    config = dataclasses.replace(CFG, n_bootstrap=n_bootstrap)
    tj = teacher(config)
    f, boot = config.fit_rate, config.bootstrap
    state = tj.t.init(jax.random.key(0))
    fits = 0
    for tasks, scores, mask in random_batches(3, 12, 16, p_valid=0.5):
        c0 = int(state.episodes)
        state = tj.update(state, tasks, scores, mask)
        c1 = int(state.episodes)
        crossed = c1 // f > c0 // f and (c1 // f) * f >= boot
        fits += crossed
        assert int(state.n_fits) == fits
        assert bool(state.has_gmm) == (c1 >= max(f, -(-boot // f) * f))
        if crossed:
            chex.assert_trees_all_close(state.gmm, tj.window_fit(state), rtol=1e-5, atol=1e-5)
    assert fits >= 2


def _ks_uniform(tasks):
    u = np.asarray(TS.normalise(jnp.asarray(tasks)))
    return min(kstest(u[:, i], "uniform").pvalue for i in range(TS.dim))


def test_samples_in_bounds_and_uniform_before_first_fit():
    tj = teacher(CFG)
    state = tj.t.init(jax.random.key(0))
    _, tasks = tj.sample(state, jax.random.key(1), 4000)
    assert _ks_uniform(tasks) > 1e-3
    for tasks_b, scores, mask in random_batches(4, 2, 8, p_valid=0.7):
        state = tj.update(state, tasks_b, scores, mask)
    assert 0 < int(state.episodes) < CFG.fit_rate and not bool(state.has_gmm)
    state2, tasks = tj.sample(state, jax.random.key(2), 4000)
    chex.assert_trees_all_close(state2, state)  # sample does not change the state
    assert _ks_uniform(tasks) > 1e-3
    assert np.all(tasks >= np.asarray(TS.low)) and np.all(tasks <= np.asarray(TS.high))


# Region of high ALP: height < 0.5 and spacing < 1.5, i.e. [0, 1/4]^2 of the normalised box (1/16).
def _in_region(tasks):
    return (tasks[:, 0] < 0.5) & (tasks[:, 1] < 1.5)


@pytest.mark.parametrize("normalise", [True, False])
def test_samples_concentrate_where_alp_is_high(normalise):
    config = ALPGMMConfig(
        fit_rate=150, k_min=2, k_max=4, random_task_ratio=0.0, normalise_tasks=normalise
    )
    tj = teacher(config)
    state = tj.t.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    tasks = np.asarray(tj.sample(state, jax.random.key(1), 4000)[1])[:150]  # bootstrap: uniform
    # random scores inside the region (high ALP), a constant score outside (ALP 0)
    scores = np.where(_in_region(tasks), rng.random(150), 0.5).astype(np.float32)
    state = tj.update(state, tasks, scores, np.ones(150, bool))
    assert bool(state.has_gmm) and int(state.n_fits) == 1
    _, samples = tj.sample(state, jax.random.key(2), 4000)
    samples = np.asarray(samples)
    assert np.all(samples >= np.asarray(TS.low)) and np.all(samples <= np.asarray(TS.high))
    frac = _in_region(samples).mean()
    assert frac > 0.4, frac  # uniform sampling would give 1/16
    # with random_task_ratio = 1 the teacher is uniform again
    tj1 = teacher(dataclasses.replace(config, random_task_ratio=1.0))
    _, samples = tj1.sample(state, jax.random.key(3), 4000)
    assert _ks_uniform(samples) > 1e-3


def test_registry_and_config_validation():
    t = make_teacher("alp_gmm", TS, fit_rate=30)
    assert t.name == "alp_gmm"
    bad = [
        dict(fit_rate=0),
        dict(fit_rate=5, k_max=10),
        dict(k_min=0),
        dict(k_min=5, k_max=4),
        dict(criterion="waic"),
        dict(random_task_ratio=1.5),
        dict(n_bootstrap=-1),
        dict(history_capacity=5),
        dict(em_iters=0),
        dict(reg_covar=-1.0),
        dict(fit_rate=2.5),
        dict(criterion="aicc", fit_rate=60),  # P'(k=10, d=2) = 59: N - P' - 1 <= 0
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            alp_gmm(TS, ALPGMMConfig(**kw))
    with pytest.raises(ValueError, match="discrete"):
        alp_gmm(TaskSpace.discrete(5), ALPGMMConfig())
    alp_gmm(TS, ALPGMMConfig(criterion="aicc", fit_rate=61))  # just enough
