"""Teachers by name, so experiments and the CLI can say ``--teachers random alp_gmm``.

Each teacher module defines a factory ``factory(task_space[, config]) -> Teacher`` and, when it has
options, a frozen config dataclass. :data:`TeacherOptions` has one field per teacher with options,
named after it, so an experiment config that inherits it gets ``--alp-gmm.fit-rate 250`` or
``--riac.max-region-size 100`` on its CLI and records every teacher's options in ``config.json``.
A new teacher is one module plus one line in :data:`TEACHERS`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any

from envs.registry import options_dataclass
from envs.task_space import TaskSpace
from teachers.base import Teacher

# name -> (module, factory function, config class or None)
TEACHERS: dict[str, tuple[str, str, str | None]] = {
    "random": ("teachers.random", "random_teacher", None),
    "alp_gmm": ("teachers.alp_gmm", "alp_gmm", "ALPGMMConfig"),
    "covar_gmm": ("teachers.covar_gmm", "covar_gmm", "CovarGMMConfig"),
    "riac": ("teachers.riac", "riac", "RIACConfig"),
    "oracle": ("teachers.oracle", "oracle", "OracleConfig"),
    "uniform_feasible": ("teachers.uniform_feasible", "uniform_feasible", "UniformFeasibleConfig"),
    "default": ("teachers.self_paced", "default_teacher", None),
    "spdl": ("teachers.self_paced", "spdl", "SPDLConfig"),
    "spdl_delta": ("teachers.self_paced", "spdl_delta", "SPDLDeltaConfig"),
    "currot": ("teachers.currot", "currot", "CurrOTConfig"),
    "active_self_paced": ("teachers.active_self_paced", "active_self_paced", "ActiveSelfPacedConfig"),
}


def _check_name(name: str) -> None:
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}")


def teacher_config_class(name: str) -> type | None:
    _check_name(name)
    module, _, config_cls = TEACHERS[name]
    if config_cls is None:
        return None
    return getattr(importlib.import_module(module), config_cls)


TeacherOptions = options_dataclass(
    "TeacherOptions", "One field per teacher with options, named after it.",
    {name: teacher_config_class(name) for name in TEACHERS},
)


def teacher_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` checked (known, no repeats, at least one), ``all`` standing for every teacher."""
    names = tuple(names)
    if names == ("all",):
        return tuple(TEACHERS)
    if not names:
        raise ValueError("--teachers needs at least one teacher")
    for name in names:
        if name == "all":
            raise ValueError("--teachers all stands alone (it means every registered teacher)")
        _check_name(name)
    if len(set(names)) != len(names):
        raise ValueError(f"--teachers has duplicates: {names}")
    return names


def takes_option(name: str, option: str) -> bool:
    """Whether teacher ``name``'s config class has a field ``option`` (e.g. ``refit_period``)."""
    cls = teacher_config_class(name)
    return cls is not None and option in {f.name for f in dataclasses.fields(cls)}


def teacher_options(config: Any, name: str) -> Any | None:
    """The options of teacher ``name`` held by ``config`` (a :data:`TeacherOptions`), or None."""
    return getattr(config, name) if teacher_config_class(name) is not None else None


def unused_teacher_options(used: Sequence[str]) -> list[str]:
    """The :data:`TeacherOptions` fields of the teachers not in ``used``."""
    return [f.name for f in dataclasses.fields(TeacherOptions) if f.name not in used]


def exact_block(name: str, config: Any | None = None) -> int | None:
    """The largest block of episodes per ``sample``/``update`` call (aligned on its multiples) that
    teacher ``name`` with ``config`` (None: defaults) claims equal to one episode at a time: the
    module's ``exact_block(config)``; None: any block; 1 for a module that defines none."""
    _check_name(name)
    module = importlib.import_module(TEACHERS[name][0])
    rule = getattr(module, "exact_block", None)
    if rule is None:
        return 1
    cls = teacher_config_class(name)
    return rule(config if config is not None else (cls() if cls is not None else None))


def make_teacher(
    name: str,
    task_space: TaskSpace,
    config: Any | None = None,
    *,
    max_episodes: int | None = None,
    **overrides: Any,
) -> Teacher:
    """Build teacher ``name`` over ``task_space`` with ``config`` (an instance of its config class;
    None: the defaults); ``overrides`` replace fields of it. ``max_episodes``: the run's episode
    budget (an upper bound), for teachers whose config sizes itself to the run (a
    ``sized_to_run(max_episodes)`` method, e.g. ALP-GMM's history)."""
    _check_name(name)
    module, factory, _ = TEACHERS[name]
    fn = getattr(importlib.import_module(module), factory)
    config_cls = teacher_config_class(name)
    if config_cls is None:
        if overrides or config is not None:
            raise ValueError(f"teacher {name!r} takes no options, got {config or sorted(overrides)}")
        return fn(task_space)
    if config is not None and not isinstance(config, config_cls):
        raise TypeError(f"teacher {name!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"teacher {name!r} has no options {sorted(unknown)}; known: {sorted(fields)}")
    config = dataclasses.replace(config or config_cls(), **overrides)
    if max_episodes is not None and hasattr(config, "sized_to_run"):
        config = config.sized_to_run(int(max_episodes))
    return fn(task_space, config)
