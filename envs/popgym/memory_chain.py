"""The bsuite memory-length task (Osband et al., "Behaviour Suite for Reinforcement Learning", ICLR 2020),
as Lu et al. (2023) ran it for S5 vs LSTM: gymnax's ``MemoryChain-bsuite``
(``gymnax/environments/bsuite/memory_chain.py``) at a fixed memory length.

The context bit is shown at the first step only; after ``memory_length`` steps the agent must name it
(reward +1, else -1; 0 before). ``MemoryChain<L>`` for L = 4, 8, ..., 1024 (the paper's x axis goes
to 2048; add a line below for more). gymnax's step limit (1000) is raised to ``L + 2`` so that long
chains are not truncated before their end. Not POPGym, but registered with it so that
``experiments.popgym --env MemoryChain64`` runs it with the same agent.
"""

from __future__ import annotations

import functools

from gymnax.environments.bsuite.memory_chain import EnvParams, MemoryChain as GymnaxMemoryChain


class MemoryChain(GymnaxMemoryChain):
    """gymnax's MemoryChain whose default parameters are memory length ``memory_length``."""

    def __init__(self, memory_length: int, num_bits: int = 1):
        if memory_length < 1:
            raise ValueError(f"memory_length must be >= 1, got {memory_length}")
        super().__init__(num_bits=num_bits)
        self.memory_length = int(memory_length)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(memory_length=self.memory_length, max_steps_in_episode=self.memory_length + 2)

    @property
    def name(self) -> str:
        return f"MemoryChain{self.memory_length}"


VARIANTS = {f"MemoryChain{n}": functools.partial(MemoryChain, n) for n in (4, 8, 16, 32, 64, 128, 256, 512, 1024)}
