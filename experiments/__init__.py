"""Runnable experiments: python -m experiments.<name>."""

import envs  # noqa: F401  (first: applies the XLA CPU deadlock work-around before gymnax starts JAX)
