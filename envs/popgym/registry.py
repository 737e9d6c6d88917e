"""POPGym variants by name (``RepeatPreviousHard``), as gymnax environments and as one-task TaskEnvs.

A family is one module of this package exporting ``VARIANTS: dict[str, Callable[[], PopGymEnv]]``;
adding a family is a new module plus its name in :data:`FAMILY_MODULES`.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from envs.popgym.base import PopGymEnv
from envs.task_env import TaskEnv, fixed_task_env

FAMILY_MODULES: tuple[str, ...] = (
    "envs.popgym.autoencode",
    "envs.popgym.battleship",
    "envs.popgym.cartpole",
    "envs.popgym.concentration",
    "envs.popgym.count_recall",
    "envs.popgym.higher_lower",
    "envs.popgym.memory_chain",
    "envs.popgym.meta_cartpole",
    "envs.popgym.minesweeper",
    "envs.popgym.multiarmed_bandit",
    "envs.popgym.pendulum",
    "envs.popgym.repeat_first",
    "envs.popgym.repeat_previous",
)


@functools.cache
def variants() -> dict[str, Callable[[], PopGymEnv]]:
    """Every registered variant name and its factory."""
    out: dict[str, Callable[[], PopGymEnv]] = {}
    for module in FAMILY_MODULES:
        for name, factory in importlib.import_module(module).VARIANTS.items():
            if name in out:
                raise ValueError(f"POPGym variant {name!r} is registered twice ({module})")
            out[name] = factory
    return out


def popgym_names() -> list[str]:
    return sorted(variants())


def make_popgym(name: str) -> PopGymEnv:
    """The gymnax environment of variant ``name``; unknown names raise with the known ones."""
    table = variants()
    if name not in table:
        raise ValueError(f"unknown POPGym environment {name!r}; known: {sorted(table)}")
    return table[name]()


def popgym_task_env(name: str) -> TaskEnv:
    """Variant ``name`` as a one-task TaskEnv (what PPO trains on without a teacher)."""
    env = make_popgym(name)
    return fixed_task_env(env, name=name)
