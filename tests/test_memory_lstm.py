"""The LSTM core (whole sequence = one step at a time, resets) and the memory-core registry."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memory import CORES, GRU, LSTM, S5, make_core

T, B, F, H = 12, 3, 5, 8


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, B, F)).astype(np.float32)
    reset = rng.random((T, B)) < 0.25
    reset[0, 0], reset[0, 1] = True, False  # b=1: the initial carry matters
    reset[4:7, 2] = True  # several in a row
    carry = tuple(rng.normal(size=(B, H)).astype(np.float32) for _ in range(2))
    return x, reset, carry


def test_lstm_whole_sequence_equals_step_by_step_and_the_flax_cell():
    core = LSTM(H)
    x, reset, carry = inputs()
    params = jax.jit(core.init)(jax.random.PRNGKey(0), core.initial_carry(B), (x[:1], reset[:1]))
    apply = jax.jit(core.apply)
    carry_all, y_all = apply(params, carry, (x, reset))
    assert y_all.shape == (T, B, H) and [c.shape for c in carry_all] == [(B, H), (B, H)]
    c, ys = carry, []
    for t in range(T):
        c, y = apply(params, c, (x[t:t + 1], reset[t:t + 1]))
        ys.append(y[0])
    np.testing.assert_allclose(np.stack(ys), y_all, rtol=1e-5, atol=1e-6)
    for a, b in zip(c, carry_all):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the same as flax's cell stepped by hand, zeroing (c, h) where a reset is set
    cell = nn.OptimizedLSTMCell(H)
    cell_params = {"params": params["params"]["OptimizedLSTMCell_0"]}
    step = jax.jit(lambda ch, x_t: cell.apply(cell_params, ch, x_t))
    ch, ref = carry, []
    for t in range(T):
        ch = tuple(np.where(reset[t][:, None], 0.0, a) for a in ch)
        ch, y = step(ch, x[t])
        ref.append(y)
    np.testing.assert_allclose(np.stack(ref), y_all, rtol=1e-5, atol=1e-6)
    # the carry is (c, h): h is the last output
    np.testing.assert_allclose(carry_all[1], y_all[-1], rtol=1e-6)


def test_lstm_reset_makes_output_independent_of_the_past():
    core = LSTM(H)
    x, _, carry = inputs(1)
    t0 = 6
    reset = np.zeros((T, B), bool)
    reset[t0] = True
    params = jax.jit(core.init)(jax.random.PRNGKey(1), core.initial_carry(B), (x[:1], reset[:1]))
    apply = jax.jit(core.apply)
    x_other = x.copy()
    x_other[:t0] = 3.0 * np.random.default_rng(2).normal(size=x[:t0].shape)
    carry_other = tuple(2.0 * a[::-1] + 1.0 for a in carry)
    _, y = apply(params, carry, (x, reset))
    _, y_other = apply(params, carry_other, (x_other, reset))
    np.testing.assert_allclose(y_other[t0:], y[t0:], rtol=1e-6, atol=1e-6)
    no_reset = np.zeros_like(reset)
    _, y_nr = apply(params, carry, (x, no_reset))
    _, y_nr_other = apply(params, carry_other, (x_other, no_reset))
    assert np.max(np.abs(y_nr_other[t0:] - y_nr[t0:])) > 1e-3  # without the reset the past reaches them


def test_core_registry():
    assert sorted(CORES) == ["gru", "lstm", "mlp", "s5"]
    gru, lstm, s5 = make_core("gru", 16), make_core("lstm", 16), make_core("s5", 16, ssm_size=8, n_layers=2)
    mlp = make_core("mlp", 16)
    assert isinstance(gru, GRU) and gru.features == 16
    assert isinstance(lstm, LSTM) and lstm.features == 16
    assert isinstance(s5, S5) and s5.d_model == 16 and s5.n_layers == 2 and s5.mode == "parallel"
    assert make_core("s5", 256) == S5()  # the defaults are the paper's POPGym configuration
    with pytest.raises(ValueError, match=r"unknown memory core 'mamba'; known: \['gru', 'lstm', 'mlp', 's5'\]"):
        make_core("mamba", 16)
    for name, core in (("gru", gru), ("lstm", lstm), ("s5", s5), ("mlp", mlp)):  # every core keeps the interface
        x, reset = jnp.ones((3, 2, 16)), jnp.zeros((3, 2), bool)
        params = jax.eval_shape(core.init, jax.random.PRNGKey(0), core.initial_carry(2), (x, reset))
        carry, y = jax.eval_shape(core.apply, params, core.initial_carry(2), (x, reset))
        assert y.shape == (3, 2, 16), name
        assert jax.tree.structure(carry) == jax.tree.structure(core.initial_carry(2)), name
