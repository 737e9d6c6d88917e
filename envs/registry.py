"""Task environments by name, for the experiment CLIs (``--env stump_track``), with their options.

An environment's options are the keyword parameters of its factory that have defaults (e.g.
``stump_track_tasks(max_steps_in_episode=130)``; a ``**kwargs`` catch-all is not exposed).
:data:`EnvOptions` has one field per environment with options, so an experiment config that inherits
it gets ``--stump-track.max-steps-in-episode 200`` on its CLI and records the options in
``config.json``. A new environment is one module plus one line in :data:`TASK_ENVS`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from envs.task_env import TaskEnv

TASK_ENVS: dict[str, tuple[str, str]] = {
    "cartpole_tasks": ("envs.cartpole_tasks", "cartpole_tasks"),
    "stump_track": ("envs.stump_track", "stump_track_tasks"),
}


def options_dataclass(name: str, doc: str, classes: dict[str, type | None]) -> type:
    """A frozen dataclass ``name`` with one field per entry of ``classes`` that is not None, named
    after its key and defaulting to that class's defaults (the option groups of a registry)."""
    fields = [(key, cls, dataclasses.field(default=cls())) for key, cls in classes.items() if cls]
    out = dataclasses.make_dataclass(name, fields, frozen=True)
    out.__doc__ = doc
    return out


def _factory(name: str) -> Callable[..., TaskEnv]:
    if name not in TASK_ENVS:
        raise ValueError(f"unknown task environment {name!r}; known: {sorted(TASK_ENVS)}")
    module, factory = TASK_ENVS[name]
    return getattr(importlib.import_module(module), factory)


@functools.cache
def env_options_class(name: str) -> type | None:
    """A frozen dataclass of the options of environment ``name`` (None when it has none)."""
    fn = _factory(name)
    hints = typing.get_type_hints(fn)
    fields = [
        (p.name, hints.get(p.name, Any), dataclasses.field(default=p.default))
        for p in inspect.signature(fn).parameters.values()
        if p.default is not inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    if not fields:
        return None
    camel = "".join(part.title() for part in name.split("_"))
    cls = dataclasses.make_dataclass(f"{camel}Options", fields, frozen=True)
    cls.__doc__ = f"Options of the {name} task environment ({fn.__module__}.{fn.__name__})."
    return cls


EnvOptions = options_dataclass(
    "EnvOptions", "One field per task environment with options, named after it.",
    {name: env_options_class(name) for name in TASK_ENVS},
)


def env_options(config: Any, name: str) -> Any | None:
    """The options of environment ``name`` held by ``config`` (an :data:`EnvOptions`), or None."""
    return getattr(config, name) if env_options_class(name) is not None else None


def unused_env_options(used: Sequence[str]) -> list[str]:
    """The :data:`EnvOptions` fields of the environments not in ``used``."""
    return [f.name for f in dataclasses.fields(EnvOptions) if f.name not in used]


def make_task_env(name: str, options: Any | None = None) -> TaskEnv:
    """Build environment ``name``; ``options`` (its options dataclass) default to the factory's."""
    fn = _factory(name)
    cls = env_options_class(name)
    if options is None:
        return fn()
    if cls is None or not isinstance(options, cls):
        raise TypeError(f"options of {name!r} must be a {cls.__name__ if cls else 'None'}, got {options!r}")
    return fn(**dataclasses.asdict(options))
