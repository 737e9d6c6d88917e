"""Covar-GMM teacher (teachers/covar_gmm.py): rows [task, t, r], LP, masking, sampling (the refit
schedule: tests/test_gmm_teacher.py)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.task_space import TaskSpace
from tests.gmm_teacher_helpers import TS, jitted, ks_uniform, random_batches
from teachers import em as G
from teachers.covar_gmm import CovarGMMConfig, covar_gmm, learning_progress
from teachers.registry import make_teacher

CFG = CovarGMMConfig(fit_rate=20, k_min=2, k_max=3)


def teacher(config):
    return jitted("covar_gmm", config)


@pytest.mark.parametrize("normalise", [True, False])
def test_rows_hold_task_time_and_score(normalise):
    config = dataclasses.replace(CFG, normalise_tasks=normalise)
    tj = teacher(config)
    batches = random_batches(0, 8, 16)
    # reference: one row per valid episode, t = (episodes before it mod F) / F
    ref = []
    for tasks, scores, mask in batches:
        for task, score in zip(tasks[mask], scores[mask]):
            u = np.asarray(TS.normalise(jnp.asarray(task))) if normalise else task
            ref.append(np.concatenate([u, [(len(ref) % 20) / 20, score]]))
    state = tj.t.init(jax.random.key(0))
    got = []
    for tasks, scores, mask in batches:
        c0 = int(state.episodes)
        state = tj.update(state, tasks, scores, mask)
        rows = np.asarray(state.rows)
        got.extend(rows[e % rows.shape[0]] for e in range(c0, int(state.episodes)))
    ref = np.asarray(ref)
    assert len(got) == len(ref) > 40
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)
    assert set(np.round(ref[:, 2] * 20).astype(int)) == set(range(20))


def test_learning_progress_is_time_reward_covariance():
    covs = np.tile(np.eye(4, dtype=np.float32), (3, 1, 1))
    covs[0, 2, 3] = covs[0, 3, 2] = 0.3
    covs[1, 2, 3] = covs[1, 3, 2] = -0.2
    covs[2, 2, 3] = covs[2, 3, 2] = 0.7  # masked component
    covs[0, 0, 3] = covs[0, 3, 0] = 0.9  # other entries are irrelevant
    gmm = G.empty_gmm(3, 4).replace(covs=jnp.asarray(covs), component_mask=jnp.array([True, True, False]))
    np.testing.assert_allclose(learning_progress(gmm), [0.3, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(learning_progress(gmm, absolute_lp=True), [0.3, 0.2, 0.0], atol=1e-7)


def test_samples_in_bounds_and_uniform_before_first_fit():
    tj = teacher(CFG)
    state = tj.t.init(jax.random.key(0))
    assert ks_uniform(tj.sample(state, jax.random.key(1), 4000)[1]) > 1e-3
    for tasks, scores, mask in random_batches(4, 2, 8, p_valid=0.7):
        state = tj.update(state, tasks, scores, mask)
    assert 0 < int(state.episodes) < CFG.fit_rate and not bool(state.has_gmm)
    state2, tasks = tj.sample(state, jax.random.key(2), 4000)
    chex.assert_trees_all_close(state2, state)
    assert ks_uniform(tasks) > 1e-3
    assert np.all(tasks >= np.asarray(TS.low)) and np.all(tasks <= np.asarray(TS.high))


def _in_region(tasks):  # [0, 1/2]^2 of the normalised box
    return (tasks[:, 0] < 1.0) & (tasks[:, 1] < 3.0)


@pytest.mark.parametrize("normalise", [True, False])
def test_samples_concentrate_where_reward_grows_with_time(normalise):
    config = CovarGMMConfig(fit_rate=150, k_min=2, k_max=4, random_task_ratio=0.0, normalise_tasks=normalise)
    tj = teacher(config)
    state = tj.t.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    tasks = np.asarray(tj.sample(state, jax.random.key(1), 4000)[1])[:150]  # bootstrap: uniform
    t = np.arange(150) / 150
    # inside the region the score grows over the block (progress), outside it is flat noise
    scores = np.where(_in_region(tasks), t, 0.5 + 0.05 * rng.standard_normal(150)).astype(np.float32)
    state = tj.update(state, tasks, scores, np.ones(150, bool))
    assert bool(state.has_gmm) and int(state.n_fits) == 1
    lp = np.asarray(learning_progress(state.gmm))
    cov_tr = np.asarray(state.gmm.covs)[:, -2, -1]
    k = int(state.gmm.k)
    np.testing.assert_allclose(lp[:k], np.maximum(cov_tr[:k], 0.0))
    _, samples = tj.sample(state, jax.random.key(2), 4000)
    samples = np.asarray(samples)
    assert np.all(samples >= np.asarray(TS.low)) and np.all(samples <= np.asarray(TS.high))
    frac = _in_region(samples).mean()
    assert frac > 0.6, frac  # uniform sampling would give 1/4


def test_registry_and_config_validation():
    assert make_teacher("covar_gmm", TS, fit_rate=30, absolute_lp=True).name == "covar_gmm"
    bad = [
        dict(fit_rate=0),
        dict(fit_rate=5, k_max=10),
        dict(k_min=0),
        dict(k_min=5, k_max=4),
        dict(random_task_ratio=-0.1),
        dict(em=G.EMOptions(iters=0)),
        dict(em=G.EMOptions(reg_covar=float("nan"))),
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            covar_gmm(TS, CovarGMMConfig(**kw))
    with pytest.raises(ValueError, match="discrete"):
        covar_gmm(TaskSpace.discrete(5))
