"""A gated recurrent unit core (Cho et al. 2014) behind curriculax's memory-core interface.

    core(carry [B, H], (x [T, B, F], reset [T, B])) -> (carry [B, H], y [T, B, H])

Where ``reset[t, b]`` is set the carry is zeroed *before* ``x[t, b]`` is read (``reset`` = "this input
starts a new sequence"), so running a sequence in one call or in pieces, one step at a time, gives the
same outputs. The gates follow flax's ``nn.GRUCell`` (PyTorch's convention):

    r = σ(W_ir x + b_r + W_hr h),  z = σ(W_iz x + b_z + W_hz h),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h,

with the same initialisation (LeCun-normal input kernels, orthogonal recurrent kernels, zero biases),
but laid out for speed: the three input projections of all T steps are one ``[T·B, F] x [F, 3H]``
matmul before the scan, and the three recurrent ones one ``[B, H] x [H, 3H]`` matmul per step
(``nn.GRUCell`` does six matmuls per step). :func:`gru_cell_params` maps these parameters onto
``nn.GRUCell``'s, which the tests use as the oracle.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from memory.unroll import resolve_unroll


def _blockwise_orthogonal(blocks: int):
    """Orthogonal init of each ``[H, H]`` block of an ``[H, blocks*H]`` kernel (as three GRUCell kernels)."""
    orthogonal = nn.initializers.orthogonal()

    def init(key, shape, dtype=jnp.float32):
        rows, cols = shape
        keys = jax.random.split(key, blocks)
        return jnp.concatenate([orthogonal(k, (rows, cols // blocks), dtype) for k in keys], axis=1)

    return init


class GRU(nn.Module):
    """GRU over time-major sequences with reset flags; ``y`` is the hidden state at each step."""

    features: int
    unroll: int | None = None
    """time steps per iteration of the scan's loop (``lax.scan(unroll=)``): the same outputs; None picks
    by backend (:func:`memory.unroll.resolve_unroll`: 1 on the CPU, more on a GPU)"""

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: tuple[jax.Array, jax.Array]):
        x, reset = inputs
        h_dim = self.features
        w_i = self.param("input_kernel", nn.initializers.lecun_normal(), (x.shape[-1], 3 * h_dim))
        b_i = self.param("input_bias", nn.initializers.zeros, (3 * h_dim,))
        w_h = self.param("recurrent_kernel", _blockwise_orthogonal(3), (h_dim, 3 * h_dim))
        b_hn = self.param("recurrent_bias_n", nn.initializers.zeros, (h_dim,))
        x_proj = x @ w_i + b_i  # [T, B, 3H]: the input half of every gate, all steps at once

        def step(h, xs):
            x_t, reset_t = xs
            h = jnp.where(reset_t[:, None], jnp.zeros_like(h), h)
            h_proj = h @ w_h
            r = jax.nn.sigmoid(x_t[:, :h_dim] + h_proj[:, :h_dim])
            z = jax.nn.sigmoid(x_t[:, h_dim:2 * h_dim] + h_proj[:, h_dim:2 * h_dim])
            n = jnp.tanh(x_t[:, 2 * h_dim:] + r * (h_proj[:, 2 * h_dim:] + b_hn))
            h = (1.0 - z) * n + z * h
            return h, h

        return jax.lax.scan(step, carry, (x_proj, reset), unroll=resolve_unroll(self.unroll, "GRU"))

    def initial_carry(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.features), jnp.float32)


def gru_cell_params(params: Any) -> dict:
    """The parameters of :class:`GRU` as ``nn.GRUCell``'s (``{"params": {"ir": ..., "hn": ...}}``)."""
    p = params["params"]
    w_i, b_i, w_h = p["input_kernel"], p["input_bias"], p["recurrent_kernel"]
    h_dim = w_h.shape[0]
    cut = lambda a, k: a[..., k * h_dim:(k + 1) * h_dim]  # noqa: E731
    return {"params": {
        "ir": {"kernel": cut(w_i, 0), "bias": cut(b_i, 0)},
        "iz": {"kernel": cut(w_i, 1), "bias": cut(b_i, 1)},
        "in": {"kernel": cut(w_i, 2), "bias": cut(b_i, 2)},
        "hr": {"kernel": cut(w_h, 0)},
        "hz": {"kernel": cut(w_h, 1)},
        "hn": {"kernel": cut(w_h, 2), "bias": p["recurrent_bias_n"]},
    }}
