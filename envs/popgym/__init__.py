"""POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023; ``proroklab/popgym`` 1.0.7) in JAX, with the gymnax 1.0 API and the original's semantics.
See :mod:`envs.popgym.base` for the observation and action conventions."""

from envs.popgym.registry import make_popgym, popgym_names, popgym_task_env, variants

__all__ = ["make_popgym", "popgym_names", "popgym_task_env", "variants"]
