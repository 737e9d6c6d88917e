"""A work-around for a deadlock of XLA's CPU runtime, applied when ``envs`` is first imported.

With jaxlib 0.10.2 on a 2-core CPU, a compiled PPO update (vmapped seeds, nested ``lax.scan``) often
never finishes: every XLA thread waits for work, the main thread waits in ``block_until_ready``, the
process hangs for good. ``python -m benchmarks.cpu_deadlock`` (figures in benchmarks/RESULTS.md): with
XLA's defaults 4 of 4 processes hung within their first 2 calls; with the concurrency-optimised
scheduler turned off, 0 of 4 hung in 24 calls, each call about 4 % slower. Neither
``--xla_cpu_multi_thread_eigen=false`` nor turning off XNNPACK / YNNPACK helps. The flag names an XLA
*CPU* option and does nothing on a GPU; the option exists in the jaxlib builds of the pinned range
(checked in 0.10.0, 0.10.2 and 0.11.2), so XLA never rejects it as unknown.

gymnax starts JAX's backend when it is imported, so this must run before ``import gymnax``: every
public package (``envs``, ``teachers``, ``memory``, ``algos``, ``experiments``, ``benchmarks``) and the
tests' ``conftest.py`` apply it in their ``__init__``, so whatever a script imports first (``from
algos.ppo import make_train``) it is in effect; a warning says when it came too late (gymnax or JAX
imported before any curriculax module).

Set ``CURRICULAX_KEEP_XLA_FLAGS=1`` to leave ``XLA_FLAGS`` untouched; a scheduler setting already in
``XLA_FLAGS`` is respected.

The same first-import path starts a multi-process run (``jax.distributed.initialize``, which must also
come before JAX starts) when the command line or the environment asks for one: see
:mod:`envs.distributed`.
"""

from __future__ import annotations

import os
import sys
import warnings

SCHEDULER_OPTION = "xla_cpu_enable_concurrency_optimized_scheduler"
FLAG = f"--{SCHEDULER_OPTION}=false"


def apply_cpu_deadlock_workaround() -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` unless the user opted out; returns whether it is in effect.
    Then join a multi-process run when this process was launched as part of one
    (:func:`envs.distributed.initialize_from_launch`)."""
    applied = _add_flag()
    from envs.distributed import initialize_from_launch

    initialize_from_launch()
    return applied


def _add_flag() -> bool:
    if os.environ.get("CURRICULAX_KEEP_XLA_FLAGS"):
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if SCHEDULER_OPTION in flags:
        return FLAG in flags.split()
    try:  # XLA reads XLA_FLAGS once, when the first backend starts
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = False
    if started:
        warnings.warn(
            "curriculax: JAX started before `envs` was imported, so the XLA CPU deadlock work-around "
            f"cannot take effect; import curriculax modules first or set XLA_FLAGS={FLAG}",
            RuntimeWarning,
            stacklevel=4,
        )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True


CURRICULAX_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("envs", "teachers", "memory", "algos", "experiments", "benchmarks")


def check_packages() -> None:
    """Raise a clear ``ImportError`` when a top-level package of curriculax that is already imported
    (``envs``, ``teachers``, ...) is not curriculax's own: a user's folder of the same name (with an
    ``__init__.py``) earlier on ``sys.path``, e.g. in the working directory, shadows it (the error a
    user would otherwise meet: ``cannot import name 'TaskSpace' from 'envs'``)."""
    for name in PACKAGES:
        module = sys.modules.get(name)
        if module is None:
            continue
        origin = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", []) or []), None)
        if origin and not os.path.abspath(origin).startswith(CURRICULAX_ROOT + os.sep):
            raise ImportError(
                f"curriculax: the package {name!r} was imported from {origin}, not from curriculax "
                f"({os.path.join(CURRICULAX_ROOT, name)}): a folder named {name!r} in your project or the "
                "working directory shadows it. Rename your folder (e.g. my_envs/), or run from a "
                "directory that does not contain it (README: 'Package names')."
            )
