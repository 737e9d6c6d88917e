"""Learners: PPO and, later, continual learners and model-based RL."""

import envs.xla_cpu  # noqa: F401  (first: the XLA CPU deadlock work-around, before JAX starts)
