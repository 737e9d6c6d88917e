"""Imported by pytest before any test module: start JAX with curriculax's XLA CPU work-around."""

import envs  # noqa: F401
