"""A memory-less core: the feed-forward baseline ("FC" / "MLP" in the POPGym tables) behind the
memory-core interface, so that it runs through the same recurrent policy and PPO as S5 and the GRU.

    core((), (x [T, B, F], reset [T, B])) -> ((), y [T, B, H]),   y = act(W x + b)

The carry is empty and ``reset`` is ignored: each output depends on its own input only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np


class Dense(nn.Module):
    """One dense layer with an activation in place of a memory (orthogonal init, gain sqrt(2))."""

    features: int
    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, carry: tuple, inputs: tuple[jax.Array, jax.Array]):
        x, _ = inputs
        act = {"leaky_relu": nn.leaky_relu, "relu": nn.relu, "tanh": nn.tanh}[self.activation]
        y = act(nn.Dense(self.features, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x))
        return carry, y

    def initial_carry(self, batch: int) -> tuple:
        del batch
        return ()
