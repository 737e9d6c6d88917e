"""Teachers by name, so experiments and the CLI can say ``--teacher alp_gmm``.

Each teacher module defines a frozen config dataclass and a factory
``factory(task_space, config) -> Teacher``. The registry imports modules lazily.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from envs.task_space import TaskSpace
from teachers.base import Teacher

# name -> (module, factory function, config class or None)
TEACHERS: dict[str, tuple[str, str, str | None]] = {
    "random": ("teachers.random", "random_teacher", None),
    "alp_gmm": ("teachers.alp_gmm", "alp_gmm", "ALPGMMConfig"),
    "covar_gmm": ("teachers.covar_gmm", "covar_gmm", "CovarGMMConfig"),
    "riac": ("teachers.riac", "riac", "RIACConfig"),
    "oracle": ("teachers.oracle", "oracle", "OracleConfig"),
}


def teacher_config_class(name: str) -> type | None:
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}")
    module, _, config_cls = TEACHERS[name]
    if config_cls is None:
        return None
    return getattr(importlib.import_module(module), config_cls)


def make_teacher(name: str, task_space: TaskSpace, **overrides: Any) -> Teacher:
    """Build teacher ``name`` over ``task_space``; ``overrides`` replace fields of its config."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}")
    module, factory, _ = TEACHERS[name]
    fn = getattr(importlib.import_module(module), factory)
    config_cls = teacher_config_class(name)
    if config_cls is None:
        if overrides:
            raise ValueError(f"teacher {name!r} takes no options, got {sorted(overrides)}")
        return fn(task_space)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"teacher {name!r} has no options {sorted(unknown)}; known: {sorted(fields)}")
    return fn(task_space, config_cls(**overrides))
