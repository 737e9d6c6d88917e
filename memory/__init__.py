"""What an agent remembers, knowing nothing about RL.

Sequence cores follow one interface: ``core(carry, (x [T, B, F], reset [T, B])) -> (carry, y [T, B, H])``
and ``core.initial_carry(batch)``; a reset flag zeroes the carry before its step's input is read, so a
whole sequence at once and one step at a time give the same answer. ``algos.networks.recurrent_policy``
turns any core into a PPO policy.

:data:`CORES` maps a name to a factory ``(hidden, **options) -> core``; :func:`make_core` is the entry
point for experiments (``--core gru|lstm|s5|mlp``; ``mlp`` is the memory-less baseline). ``hidden`` is the output width H: the GRU / LSTM size, the
S5 ``d_model`` (its state size is ``ssm_size``, an option, 256 by default).
"""

try:  # first: the XLA CPU deadlock work-around, before JAX starts (envs/xla_cpu.py)
    from envs.xla_cpu import check_packages
except ImportError as error:  # a user's envs/ shadows ours: name both folders (as check_packages does)
    import os
    import sys
    shadow = getattr(sys.modules.get("envs"), "__file__", None)  # None: our envs failed (e.g. no gymnax)
    ours = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "envs")
    if shadow is None or os.path.dirname(os.path.abspath(shadow)) == ours:
        raise
    raise ImportError(f"curriculax: the package 'envs' was imported from {shadow}, not from curriculax ({ours}): a "
                      "folder named 'envs' in your project or the working directory shadows it (README: 'Package "
                      "names')") from error
check_packages()

from collections.abc import Callable

import flax.linen as nn

from memory.dense import Dense
from memory.gru import GRU
from memory.lstm import LSTM
from memory.s5 import S5

CORES: dict[str, Callable[..., nn.Module]] = {
    "gru": lambda hidden, **options: GRU(hidden, **options),
    "lstm": lambda hidden, **options: LSTM(hidden, **options),
    "s5": lambda hidden, **options: S5(d_model=hidden, **options),
    "mlp": lambda hidden, **options: Dense(hidden, **options),  # memory-less baseline
}


def make_core(name: str, hidden: int, **options) -> nn.Module:
    """The memory core ``name`` (a key of :data:`CORES`) with output width ``hidden``; ``options`` go to
    its constructor (e.g. ``make_core("s5", 256, n_layers=4, mode="step")``)."""
    if name not in CORES:
        raise ValueError(f"unknown memory core {name!r}; known: {sorted(CORES)}")
    return CORES[name](hidden, **options)


__all__ = ["CORES", "Dense", "GRU", "LSTM", "S5", "make_core"]
