"""Memory cores: one call over the whole sequence equals one step at a time, resets included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memory import GRU, LSTM


def test_gru_whole_sequence_equals_step_by_step_with_resets():
    core = GRU(8)
    T, B, F = 12, 3, 5
    kx, kr, kp = jax.random.split(jax.random.PRNGKey(0), 3)
    x = jax.random.normal(kx, (T, B, F))
    reset = jax.random.bernoulli(kr, 0.25, (T, B)).at[0].set(True)
    params = core.init(kp, core.initial_carry(B), (x[:1], reset[:1]))
    carry_all, y_all = core.apply(params, core.initial_carry(B), (x, reset))
    carry, ys = jax.random.normal(kp, (B, 8)), []  # garbage carry: the reset at t=0 must clear it
    for t in range(T):
        carry, y = core.apply(params, carry, (x[t:t + 1], reset[t:t + 1]))
        ys.append(y[0])
    np.testing.assert_allclose(np.stack(ys), y_all, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, carry_all, rtol=1e-5, atol=1e-6)
    # a reset makes the output independent of everything before it
    t0 = int(np.argmax(np.asarray(reset[1:, 0]))) + 1
    if reset[t0, 0]:
        _, y_cut = core.apply(params, core.initial_carry(B), (x[t0:], jnp.ones_like(reset[t0:]).at[1:].set(reset[t0 + 1:])))
        np.testing.assert_allclose(y_cut[:, 0], y_all[t0:, 0], rtol=1e-5, atol=1e-6)


def test_gru_equals_flax_gru_cell_step_by_step():
    """The fused GRU computes nn.GRUCell's recurrence (the oracle) with the mapped parameters."""
    from memory.gru import gru_cell_params
    import flax.linen as nn

    core = GRU(6)
    T, B, F = 9, 4, 3
    kx, kr, kp, kh = jax.random.split(jax.random.PRNGKey(1), 4)
    x = jax.random.normal(kx, (T, B, F))
    reset = jax.random.bernoulli(kr, 0.3, (T, B))
    params = core.init(kp, core.initial_carry(B), (x[:1], reset[:1]))
    # non-zero biases so that every bias is checked
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(kh, p.shape), params)
    h0 = jax.random.normal(kh, (B, 6))
    carry, y = core.apply(params, h0, (x, reset))
    cell, cell_params = nn.GRUCell(features=6), gru_cell_params(params)
    h, ys = h0, []
    for t in range(T):
        h = jnp.where(reset[t][:, None], 0.0, h)
        h, _ = cell.apply(cell_params, h, x[t])
        ys.append(h)
    np.testing.assert_allclose(y, np.stack(ys), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("core_cls", [GRU, LSTM])
def test_unrolled_scan_gives_the_same_outputs_and_gradients(core_cls):
    T, B, F = 13, 2, 4  # T not a multiple of the unroll
    kx, kr, kp = jax.random.split(jax.random.PRNGKey(3), 3)
    x = jax.random.normal(kx, (T, B, F))
    reset = jax.random.bernoulli(kr, 0.3, (T, B))
    params = core_cls(6).init(kp, core_cls(6).initial_carry(B), (x[:1], reset[:1]))

    def loss(p, unroll):
        _, y = core_cls(6, unroll=unroll).apply(p, core_cls(6).initial_carry(B), (x, reset))
        return jnp.sum(y ** 2), y

    (l1, y1), g1 = jax.value_and_grad(loss, has_aux=True)(params, 1)
    (l4, y4), g4 = jax.value_and_grad(loss, has_aux=True)(params, 4)
    assert float(jnp.abs(y1).max()) > 1e-3  # a real output, not zeros
    np.testing.assert_allclose(y4, y1, rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.tree.leaves(g4), jax.tree.leaves(g1)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_unroll_defaults_by_backend_and_refuses_zero():
    from memory.unroll import resolve_unroll
    assert resolve_unroll(None, "GRU") == (1 if jax.default_backend() == "cpu" else 16)
    assert resolve_unroll(4, "GRU") == 4
    x, reset = jnp.zeros((3, 2, 4)), jnp.zeros((3, 2), bool)
    for core_cls in (GRU, LSTM):
        with pytest.raises(ValueError, match=f"{core_cls.__name__}: unroll must be >= 1"):
            core_cls(5, unroll=0).init(jax.random.PRNGKey(0), core_cls(5).initial_carry(2), (x, reset))
