"""Speed and reproduction benchmarks: python -m benchmarks.<name>."""

import envs  # noqa: F401  (first: applies the XLA CPU deadlock work-around before gymnax starts JAX)
