"""What an agent remembers, knowing nothing about RL.

Sequence cores follow one interface: ``core(carry, (x [T, B, F], reset [T, B])) -> (carry, y [T, B, H])``
and ``core.initial_carry(batch)``; a reset flag zeroes the carry before its step's input is read, so a
whole sequence at once and one step at a time give the same answer. ``algos.networks.recurrent_policy``
turns any core into a PPO policy.
"""

import envs.xla_cpu  # noqa: F401  (first: the XLA CPU deadlock work-around, before JAX starts)

from memory.gru import GRU

__all__ = ["GRU"]
