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
    return jax.lax.scan(_indexed_step(body, init, active), init, jnp.arange(length))


def _indexed_step(body, init, active):
    """``step(carry, i)``: ``body(carry, None)`` while ``i < active``, else the carry unchanged and
    zero outputs (``active`` None: always ``body``)."""
    if active is None:
        return lambda carry, i: body(carry, None)
    active = jnp.asarray(active, jnp.int32)
    _, out_shape = jax.eval_shape(body, init, None)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)

    def step(carry, i):
        return jax.lax.cond(i < active, lambda c: body(c, None), lambda c: (c, zeros), carry)

    return step


def periodic_scan(
    body: Callable[[Any, Any], tuple[Any, Any]],
    every: Callable[[Any], Any],
    init: Any,
    length: int,
    period: int,
    active: jax.Array | int | None = None,
) -> tuple[Any, Any]:
    """:func:`masked_scan` of ``body`` that also applies ``every(carry)`` after iterations
    ``period - 1``, ``2 period - 1``, ... and after the last one, at static places of the program.

    The iterations run in blocks of ``period`` (one ``lax.scan`` each, inside a scan over blocks), so
    ``every`` is not traced inside ``body`` and the iterations between its calls hold none of its
    code: the place for periodic work with data-dependent control flow, which on a GPU makes the host
    wait for the device wherever it appears (``teachers.base.Deferred``). With ``active``, iterations
    from ``active`` on are skipped as in :func:`masked_scan` and so is ``every`` after a block that
    ran none of its iterations.
    """
    if period < 1:
        raise ValueError(f"periodic_scan: period must be >= 1, got {period}")
    step = _indexed_step(body, init, active)
    limit = None if active is None else jnp.asarray(active, jnp.int32)

    def block(carry, start, n):
        carry, out = jax.lax.scan(step, carry, start + jnp.arange(n))
        if limit is None:
            return every(carry), out
        return jax.lax.cond(start < limit, every, lambda c: c, carry), out

    full, rest = divmod(length, period)
    outs = []
    carry = init
    if full:
        carry, out = jax.lax.scan(lambda c, b: block(c, b * period, period), carry, jnp.arange(full))
        outs.append(jax.tree.map(lambda x: x.reshape((full * period,) + x.shape[2:]), out))
    if rest:
        carry, out = block(carry, full * period, rest)
        outs.append(out)
    return carry, jax.tree.map(lambda *xs: jnp.concatenate(xs), *outs)
