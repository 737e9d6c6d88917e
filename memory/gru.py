"""A gated recurrent unit core (Cho et al. 2014) behind curriculax's memory-core interface.

    core(carry [B, H], (x [T, B, F], reset [T, B])) -> (carry [B, H], y [T, B, H])

Where ``reset[t, b]`` is set the carry is zeroed *before* ``x[t, b]`` is read (``reset`` = "this input
starts a new sequence"), so running a sequence in one call or in pieces, one step at a time, gives the
same outputs. The cell is flax's ``nn.GRUCell`` (PyTorch's gate convention).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class GRU(nn.Module):
    """GRU over time-major sequences with reset flags; ``y`` is the hidden state at each step."""

    features: int

    @nn.compact
    def __call__(self, carry: jax.Array, inputs: tuple[jax.Array, jax.Array]):
        def step(cell, h, xs):
            x_t, reset_t = xs
            h = jnp.where(reset_t[:, None], jnp.zeros_like(h), h)
            return cell(h, x_t)

        scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})
        return scan(nn.GRUCell(features=self.features), carry, inputs)

    def initial_carry(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.features), jnp.float32)
