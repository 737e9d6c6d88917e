"""The GMM teacher's refit schedule (teachers/gmm.py), shared by ALP-GMM and Covar-GMM: a fresh fit
exactly when a batch crosses a multiple of fit_rate at or after the bootstrap, equal to a direct fit
on the fit_rate rows ending there."""

from __future__ import annotations

import dataclasses

import chex
import jax
import pytest

from tests.gmm_teacher_helpers import jitted, random_batches
from teachers.alp_gmm import ALPGMMConfig
from teachers.covar_gmm import CovarGMMConfig
from teachers.registry import takes_option

ALP = ALPGMMConfig(fit_rate=20, k_min=2, k_max=3, history_capacity=12)
COVAR = CovarGMMConfig(fit_rate=20, k_min=2, k_max=3)
CASES = [("alp_gmm", ALP), ("alp_gmm", dataclasses.replace(ALP, n_bootstrap=50)), ("covar_gmm", COVAR)]


@pytest.mark.parametrize("name,config", CASES, ids=["alp_gmm", "alp_gmm_bootstrap50", "covar_gmm"])
def test_refit_exactly_at_multiples_of_fit_rate(name, config):
    tj = jitted(name, config)
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
        if crossed:  # a fresh fit on the fit_rate rows ending at the multiple crossed
            chex.assert_trees_all_close(state.gmm, tj.window_fit(state), rtol=1e-5, atol=1e-5)
    assert fits >= 2


@pytest.mark.parametrize("name,config", [CASES[0], CASES[2]], ids=["alp_gmm", "covar_gmm"])
def test_refit_period_adopts_the_same_mixtures_later(name, config):
    """With refit_period 3 only every third call refits (calls 2, 5, 8, ...), on the window ending at
    the last multiple reached: at such a call the mixture equals the exact (period 1) teacher's after
    the same rows; between them it stays the one of the last opportunity."""
    exact, late = jitted(name, config), jitted(name, dataclasses.replace(config, refit_period=3))
    s1, s3 = exact.t.init(jax.random.key(0)), late.t.init(jax.random.key(0))
    held, fits = s3.gmm, 0
    for call, (tasks, scores, mask) in enumerate(random_batches(3, 18, 16, p_valid=0.5)):
        before = int(s3.fitted_to)
        s1, s3 = exact.update(s1, tasks, scores, mask), late.update(s3, tasks, scores, mask)
        chex.assert_trees_all_equal(s3.rows, s1.rows)
        last = (int(s3.episodes) // config.fit_rate) * config.fit_rate
        if call % 3 == 2:
            assert int(s3.fitted_to) == last
            if last > before and last >= config.bootstrap:
                fits += 1
                chex.assert_trees_all_close(s3.gmm, s1.gmm, rtol=1e-5, atol=1e-5)
                held = s3.gmm
        else:
            assert int(s3.fitted_to) == before
        chex.assert_trees_all_equal(s3.gmm, held)
        assert int(s3.n_fits) == fits
    assert fits >= 2 and int(s1.n_fits) > fits  # some multiples were skipped


@pytest.mark.parametrize("name,config", [CASES[0], CASES[2]], ids=["alp_gmm", "covar_gmm"])
def test_deferred_refit_at_every_third_call_equals_update(name, config):
    """Teacher.deferred: recording every call and refitting after calls 2, 5, 8, ... gives the states
    of ``update`` (which decides with its counter), including every refit."""
    tj = jitted(name, dataclasses.replace(config, refit_period=3))
    assert tj.t.deferred is not None and tj.t.deferred.period == 3
    assert jitted(name, config).t.deferred is None  # refit_period 1: nothing to place
    record, refit = jax.jit(tj.t.deferred.update), jax.jit(tj.t.deferred.refit)
    s_update = s_deferred = tj.t.init(jax.random.key(1))
    for call, (tasks, scores, mask) in enumerate(random_batches(4, 15, 16, p_valid=0.5)):
        s_update = tj.update(s_update, tasks, scores, mask)
        s_deferred = record(s_deferred, tasks, scores, mask)
        if call % 3 == 2:
            s_deferred = refit(s_deferred)
        chex.assert_trees_all_equal(s_deferred, s_update)
    assert int(s_update.n_fits) >= 2


def test_refit_period_is_checked():
    assert takes_option("alp_gmm", "refit_period") and takes_option("covar_gmm", "refit_period")
    assert not takes_option("random", "refit_period") and not takes_option("riac", "refit_period")
    with pytest.raises(ValueError, match="alp_gmm: refit_period must be >= 1"):
        jitted("alp_gmm", dataclasses.replace(ALP, refit_period=0))
