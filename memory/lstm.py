"""A long short-term memory core (Hochreiter & Schmidhuber 1997) behind curriculax's memory-core interface.

    core(carry (c [B, H], h [B, H]), (x [T, B, F], reset [T, B])) -> (carry, y [T, B, H])

Where ``reset[t, b]`` is set both the cell state and the hidden state are zeroed *before* ``x[t, b]`` is
read (``reset`` = "this input starts a new sequence"), so running a sequence in one call or in pieces,
one step at a time, gives the same outputs. The cell is flax's ``nn.OptimizedLSTMCell`` (the gates of
``nn.LSTMCell`` computed in fused matmuls; the carry is flax's ``(c, h)``); ``y`` is ``h`` at each step.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from memory.unroll import resolve_unroll


class LSTM(nn.Module):
    """LSTM over time-major sequences with reset flags."""

    features: int
    unroll: int | None = None
    """time steps per iteration of the scan's loop (``nn.scan(unroll=)``): the same outputs; None picks
    by backend (:func:`memory.unroll.resolve_unroll`: 1 on the CPU, more on a GPU)"""

    @nn.compact
    def __call__(self, carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]):
        def step(cell, c_h, xs):
            x_t, reset_t = xs
            c_h = jax.tree.map(lambda a: jnp.where(reset_t[:, None], jnp.zeros_like(a), a), c_h)
            return cell(c_h, x_t)

        scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False},
                       unroll=resolve_unroll(self.unroll, "LSTM"))
        x, reset = inputs
        return scan(nn.OptimizedLSTMCell(features=self.features), tuple(carry), (x, reset.astype(bool)))

    def initial_carry(self, batch: int) -> tuple[jax.Array, jax.Array]:
        zeros = jnp.zeros((batch, self.features), jnp.float32)
        return zeros, zeros
