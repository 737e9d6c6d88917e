"""Loops shared by every trainer: a ``lax.scan`` whose number of active iterations is traced.

A runner splits a run into chunks; when the chunk sizes differ (a remainder, chunk edges on task
switches) a plain ``lax.scan(body, length=n)`` compiles once per distinct ``n``. :func:`masked_scan`
compiles once for a fixed ``length`` and runs only the first ``active`` iterations: ``active`` is a
traced int32 scalar *without* a seed axis, so under ``jax.vmap`` over seeds the ``lax.cond`` keeps a
real branch (a batched predicate would turn it into a select that runs both sides).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def masked_scan(
    body: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    length: int,
    active: jax.Array | int | None = None,
) -> tuple[Any, Any]:
    """``lax.scan(body, init, None, length)`` that stops changing the carry after ``active`` steps.

    Outputs of the inactive iterations are zeros of the right shape; callers slice ``[:active]``.
    ``active=None`` is a plain scan of ``length`` iterations.
    """
    if active is None:
        return jax.lax.scan(body, init, None, length)
    active = jnp.asarray(active, jnp.int32)
    _, out_shape = jax.eval_shape(body, init, None)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)

    def step(carry, i):
        return jax.lax.cond(i < active, lambda c: body(c, None), lambda c: (c, zeros), carry)

    return jax.lax.scan(step, init, jnp.arange(length))
