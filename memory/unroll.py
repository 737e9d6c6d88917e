"""How many time steps one iteration of a recurrent core's ``lax.scan`` takes (``unroll=``).

The choice does not change a core's outputs or gradients, only how XLA lays out the loop. On a GPU every
loop iteration costs a fixed overhead, so a small-batch GRU or LSTM is faster with several steps per
iteration; on a CPU the unrolled body is slower and compiles longer (``benchmarks/memory_cores.py``
times both; the figures are in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import jax

ACCELERATOR_UNROLL = 16
"""steps per iteration on a GPU or TPU when the core's ``unroll`` is None"""


def resolve_unroll(unroll: int | None, owner: str) -> int:
    """``unroll`` itself (>= 1), or for None 1 on the CPU and :data:`ACCELERATOR_UNROLL` elsewhere."""
    if unroll is None:
        return 1 if jax.default_backend() == "cpu" else ACCELERATOR_UNROLL
    if int(unroll) < 1:
        raise ValueError(f"{owner}: unroll must be >= 1 or None (chosen by backend), got {unroll}")
    return int(unroll)
