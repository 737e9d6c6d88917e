"""algos/loops.py: periodic_scan against a Python loop (blocks, the tail, and ``active``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.loops import periodic_scan


def _reference(length, period, active, c0):
    """The carry and outputs periodic_scan must give for body c -> 2c + 1 (output c), every c -> c - 3."""
    limit = length if active is None else active
    c, outs = c0, []
    for i in range(length):
        if i < limit:
            outs.append(c)
            c = 2 * c + 1
        else:
            outs.append(0)
        block_ran = (i // period) * period < limit
        if (i % period == period - 1 or i == length - 1) and block_ran:
            c = c - 3
    return c, outs


@pytest.mark.parametrize("length,period,active", [
    (12, 3, None), (10, 3, None), (10, 3, 7), (10, 4, 2), (10, 4, 0), (5, 1, None), (4, 8, None), (6, 3, 6),
])
def test_periodic_scan_equals_a_python_loop(length, period, active):
    fn = jax.jit(lambda a: periodic_scan(lambda c, _: (2 * c + 1, c), lambda c: c - 3, jnp.int32(1), length,
                                         period, a))
    carry, outs = fn(active)
    want_c, want_outs = _reference(length, period, active, 1)
    assert int(carry) == want_c
    np.testing.assert_array_equal(np.asarray(outs), want_outs)


def test_periodic_scan_refuses_a_bad_period():
    with pytest.raises(ValueError, match="period must be >= 1"):
        periodic_scan(lambda c, _: (c, c), lambda c: c, jnp.int32(0), 4, 0)
