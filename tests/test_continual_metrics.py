"""Continual metrics on a hand-made R against values computed by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.continual import metrics

R = jnp.array([[0.90, 0.10, 0.20],
               [0.60, 0.80, 0.30],
               [0.50, 0.70, 0.95]])
B = jnp.array([0.10, 0.12, 0.15])


def test_metrics_equal_hand_computed_values():
    assert float(metrics.average_accuracy(R)) == pytest.approx((0.50 + 0.70 + 0.95) / 3)
    # BWT = ((0.50 - 0.90) + (0.70 - 0.80)) / 2
    assert float(metrics.backward_transfer(R)) == pytest.approx(-0.25)
    # FWT = ((R[0,1] - b1) + (R[1,2] - b2)) / 2 = ((0.10 - 0.12) + (0.30 - 0.15)) / 2
    assert float(metrics.forward_transfer(R, B)) == pytest.approx(0.065)
    # forgetting after the last task: task 0: max(0.9, 0.6) - 0.5 = 0.4; task 1: max(0.1, 0.8) - 0.7 = 0.1
    assert float(metrics.forgetting(R)) == pytest.approx(0.25)
    # after task 1: task 0 only: 0.9 - 0.6
    assert float(metrics.forgetting(R, 1)) == pytest.approx(0.3)
    # GEM prints the mean over all T entries: (T-1)/T of the formula
    assert float(metrics.gem_scaled(metrics.backward_transfer(R), 3)) == pytest.approx(-0.25 * 2 / 3)
    s = metrics.summary(R, B)
    assert float(s["fwt_gem"]) == pytest.approx(0.065 * 2 / 3)


def test_forgetting_uses_the_best_earlier_score_not_the_diagonal():
    R2 = jnp.array([[0.5, 0.0], [0.3, 0.9]]).at[0, 0].set(0.5)
    R3 = jnp.array([[0.4, 0.1, 0.0], [0.8, 0.5, 0.0], [0.6, 0.5, 0.9]])
    assert float(metrics.forgetting(R3)) == pytest.approx(((0.8 - 0.6) + (0.5 - 0.5)) / 2)
    assert float(metrics.backward_transfer(R3)) == pytest.approx(((0.6 - 0.4) + (0.5 - 0.5)) / 2)
    assert float(metrics.forgetting(R2)) == pytest.approx(0.2)


def test_metrics_vmap_over_seeds_and_record_rows_in_jit():
    Rs = jnp.stack([R, R * 0.5])
    s = jax.vmap(metrics.summary)(Rs, jnp.stack([B, B]))
    np.testing.assert_allclose(np.asarray(s["bwt"]), [-0.25, -0.125], rtol=1e-6)
    filled = jax.jit(metrics.record_row)(jnp.zeros((3, 3)), jnp.int32(1), R[1])
    np.testing.assert_array_equal(np.asarray(filled[1]), np.asarray(R[1]))
    assert float(jnp.abs(filled[0]).sum() + jnp.abs(filled[2]).sum()) == 0.0
    single = jnp.array([[0.7]])
    assert float(metrics.forgetting(single)) == 0.0 and float(metrics.backward_transfer(single)) == 0.0
    with pytest.raises(ValueError, match="square"):
        metrics.average_accuracy(jnp.zeros((2, 3)))
