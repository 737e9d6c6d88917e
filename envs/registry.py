"""Task environments by name, for the experiment CLIs (``--env stump_track``), with their options.

An environment's options are the keyword parameters of its factory that have defaults (e.g.
``stump_track_tasks(max_steps_in_episode=130)``; a ``**kwargs`` catch-all is not exposed).
:data:`EnvOptions` has one field per environment with options, so an experiment config that inherits
it gets ``--stump-track.max-steps-in-episode 200`` on its CLI and records the options in
``config.json``. A new environment is one module plus one line in :data:`TASK_ENVS`.

Beside the registered names, ``--env module:function`` names a user's own factory on the Python path
(``--env mymodule:make_acrobot_tasks``): a function of no required arguments returning a
:class:`~envs.task_env.TaskEnv`. It is checked by :func:`~envs.task_env.check_task_env` and
:func:`env_record` is what ``config.json`` keeps to rebuild it (the factory path, the task space, the
return range, the mastery score).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from envs.task_env import TaskEnv, check_task_env

TASK_ENVS: dict[str, tuple[str, str]] = {
    "cartpole_tasks": ("envs.cartpole_tasks", "cartpole_tasks"),
    "stump_track": ("envs.stump_track", "stump_track_tasks"),
    "point_mass": ("envs.point_mass", "point_mass_tasks"),
}


def options_dataclass(name: str, doc: str, classes: dict[str, type | None]) -> type:
    """A frozen dataclass ``name`` with one field per entry of ``classes`` that is not None, named
    after its key and defaulting to that class's defaults (the option groups of a registry)."""
    fields = [(key, cls, dataclasses.field(default=cls())) for key, cls in classes.items() if cls]
    out = dataclasses.make_dataclass(name, fields, frozen=True)
    out.__doc__ = doc
    return out


def is_factory_path(name: str) -> bool:
    """Whether ``name`` is a user's ``module:function`` rather than a registered name."""
    return ":" in name


def load_factory(path: str, flag: str = "--env") -> Callable[..., Any]:
    """The function ``path`` = ``module:function`` (``function`` may be dotted), imported; a clear
    ``ValueError`` when the module cannot be imported or has no such function."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ValueError(f"{flag} {path!r}: a custom environment is given as module:function")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{flag} {path!r}: cannot import module {module!r} ({e}); it must be on the "
                         "Python path (run from its folder, or set PYTHONPATH)") from None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise ValueError(f"{flag} {path!r}: module {module!r} has no function {attr!r}")
    return obj


def check_env_name(name: str, flag: str = "--env") -> None:
    """Raise ``ValueError`` unless ``name`` is registered or a ``module:function`` that imports."""
    if is_factory_path(name):
        load_factory(name, flag)
    elif name not in TASK_ENVS:
        raise ValueError(f"unknown task environment {name!r} ({flag}); known: {sorted(TASK_ENVS)}, or "
                         "module:function for your own TaskEnv factory")


def _factory(name: str) -> Callable[..., TaskEnv]:
    check_env_name(name)
    if is_factory_path(name):
        return load_factory(name)
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
    """The options of environment ``name`` held by ``config`` (an :data:`EnvOptions`), or None
    (also for a ``module:function`` factory)."""
    if is_factory_path(name):
        return None
    return getattr(config, name) if env_options_class(name) is not None else None


def env_record(name: str, task_env: TaskEnv, options: Any | None = None) -> dict:
    """What ``config.json`` keeps to rebuild ``task_env`` built from ``name``: the factory
    (``module:function``), its options, and the task space, return range, mastery score and
    default task it gave (checked against a rebuild)."""
    if is_factory_path(name):
        factory = name
    else:
        module, fn = TASK_ENVS[name]
        factory = f"{module}:{fn}"
    return {
        "name": name,
        "factory": factory,
        "options": dataclasses.asdict(options) if options is not None else None,
        "env_name": task_env.name,
        "task_space": task_env.task_space.to_json(),
        "default_task": [float(x) for x in task_env.default_task],
        "return_range": None if task_env.return_range is None else [float(x) for x in task_env.return_range],
        "mastery_score": float(task_env.mastery_score),
    }


def task_env_from_record(record: dict) -> TaskEnv:
    """Rebuild the task environment of :func:`env_record`, checking that it still gives the
    recorded task space, return range and mastery score."""
    fn = load_factory(record["factory"], "factory")
    task_env = fn(**(record.get("options") or {}))
    rebuilt = env_record(record["name"], task_env, None)
    for key in ("task_space", "return_range", "mastery_score", "default_task"):
        if json_equal(rebuilt[key], record[key]) is False:
            raise ValueError(f"{record['factory']} now gives {key} {rebuilt[key]}, the run recorded "
                             f"{record[key]}")
    return task_env


def json_equal(a: Any, b: Any) -> bool:
    import json

    norm = lambda x: json.loads(json.dumps(x, default=lambda v: list(v) if hasattr(v, "__iter__") else v))  # noqa: E731
    return norm(a) == norm(b)


def unused_env_options(used: Sequence[str]) -> list[str]:
    """The :data:`EnvOptions` fields of the environments not in ``used``."""
    return [f.name for f in dataclasses.fields(EnvOptions) if f.name not in used]


def make_task_env(name: str, options: Any | None = None) -> TaskEnv:
    """Build environment ``name`` (registered, or ``module:function``); ``options`` (its options
    dataclass) default to the factory's. A ``module:function`` factory is called without arguments
    and its environment checked (:func:`~envs.task_env.check_task_env`)."""
    fn = _factory(name)
    if is_factory_path(name):
        if options is not None:
            raise TypeError(f"--env {name!r}: a module:function factory takes no options")
        task_env = fn()
        if not isinstance(task_env, TaskEnv):
            raise TypeError(f"--env {name!r} returned a {type(task_env).__name__}, not an envs.TaskEnv")
        check_task_env(task_env)
        return task_env
    cls = env_options_class(name)
    if options is None:
        return fn()
    if cls is None or not isinstance(options, cls):
        raise TypeError(f"options of {name!r} must be a {cls.__name__ if cls else 'None'}, got {options!r}")
    return fn(**dataclasses.asdict(options))
