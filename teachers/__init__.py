"""Curricula: who decides which task comes next."""

import envs.xla_cpu  # noqa: F401  (first: the XLA CPU deadlock work-around, before JAX starts)
