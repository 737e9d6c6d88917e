"""Multi-process start-up with JAX's own multi-controller runtime (``jax.distributed``).

Every process of a multi-process run executes the same program; ``jax.distributed.initialize`` joins
them into one JAX runtime whose ``jax.devices()`` are the devices of every process (JAX's guide
"Distributed arrays and automatic parallelization", section multi-process; ``jax/_src/distributed.py``
and ``jax/_src/clusters/`` for the cluster auto-detection of SLURM, Open MPI and Cloud TPU pods).

It must run before JAX starts a backend, and importing gymnax starts one, so it runs on the first
import of any curriculax package (:func:`envs.xla_cpu.apply_cpu_deadlock_workaround` calls
:func:`initialize_from_launch`). It reads how the process was launched from its command line or its
environment (the command line wins):

==========================  ===============================  ===========================================
command line                environment                      meaning
==========================  ===============================  ===========================================
``--coordinator HOST:PORT`` ``CURRICULAX_COORDINATOR``       address of process 0's coordination service
``--num-processes N``       ``CURRICULAX_NUM_PROCESSES``     processes in the run
``--process-id I``          ``CURRICULAX_PROCESS_ID``        this process, ``0 .. N-1``
``--distributed auto``      ``CURRICULAX_DISTRIBUTED=auto``  ``jax.distributed.initialize()`` with JAX's
                                                             cluster auto-detection (SLURM, Open MPI,
                                                             TPU pods)
==========================  ===============================  ===========================================

The same flags are fields of :class:`experiments.runner.RunConfig` (so the experiment CLIs accept and
document them); they describe the launch, not the run, so ``--resume`` ignores them. Without any of
them nothing happens and a run is a single process, as before.

CPU collectives go through gloo (``jax_cpu_collectives_implementation``), so several processes of host
CPU devices on one machine (the tests) work as a GPU cluster does; the option touches only the CPU
client.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence

FLAGS = {  # command-line flag -> Launch field
    "--coordinator": "coordinator",
    "--num-processes": "num_processes",
    "--process-id": "process_id",
    "--distributed": "distributed",
}
ENV_VARS = {  # environment variable -> Launch field
    "CURRICULAX_COORDINATOR": "coordinator",
    "CURRICULAX_NUM_PROCESSES": "num_processes",
    "CURRICULAX_PROCESS_ID": "process_id",
    "CURRICULAX_DISTRIBUTED": "distributed",
}
MODES = ("off", "auto")


@dataclasses.dataclass(frozen=True)
class Launch:
    """How this process was launched (see the module docstring)."""

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    distributed: str = "off"

    @property
    def requested(self) -> bool:
        """Whether the launch asks for a multi-process runtime."""
        return self.distributed == "auto" or self.coordinator is not None

    def validate(self) -> None:
        """Raise ``ValueError`` on an incomplete or contradictory launch."""
        if self.distributed not in MODES:
            raise ValueError(f"--distributed must be one of {MODES}, got {self.distributed!r}")
        explicit = {"--coordinator": self.coordinator, "--num-processes": self.num_processes,
                    "--process-id": self.process_id}
        given = [k for k, v in explicit.items() if v is not None]
        if self.distributed == "auto":
            if given:
                raise ValueError(f"--distributed auto detects the cluster itself; drop {', '.join(given)}")
            return
        if given and len(given) < 3:
            missing = [k for k in explicit if k not in given]
            raise ValueError(f"a multi-process launch needs --coordinator HOST:PORT, --num-processes N and "
                             f"--process-id I; missing {', '.join(missing)}")
        if not given:
            return
        if ":" not in self.coordinator:
            raise ValueError(f"--coordinator must be HOST:PORT, got {self.coordinator!r}")
        if self.num_processes < 1 or not 0 <= self.process_id < self.num_processes:
            raise ValueError(f"--process-id must lie in 0..{self.num_processes - 1} for --num-processes "
                             f"{self.num_processes}, got {self.process_id}")


def _convert(field: str, value: str, where: str):
    if field in ("num_processes", "process_id"):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{where} must be an integer, got {value!r}") from None
    return value


def launch_from(argv: Sequence[str], environ: Mapping[str, str]) -> Launch:
    """The :class:`Launch` described by ``argv`` (``--flag value`` or ``--flag=value``) and
    ``environ``; the command line wins over the environment."""
    values: dict = {}
    for var, field in ENV_VARS.items():
        if environ.get(var):
            values[field] = _convert(field, environ[var], var)
    argv = list(argv)
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in FLAGS:
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise ValueError(f"{name} needs a value")
            value = argv[i + 1]
        values[FLAGS[name]] = _convert(FLAGS[name], value, name)
    return Launch(**values)


def is_initialized() -> bool:
    """Whether ``jax.distributed.initialize`` has run in this process."""
    from jax._src import distributed

    return distributed.global_state.client is not None


def initialize(launch: Launch) -> bool:
    """Join the multi-process runtime that ``launch`` describes (nothing when it asks for none, or
    when this process has already joined); returns whether the process is part of one. Must run
    before JAX starts a backend."""
    launch.validate()
    if not launch.requested:
        return is_initialized() if "jax" in sys.modules else False
    import jax

    if is_initialized():
        return True
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if launch.distributed == "auto":
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(coordinator_address=launch.coordinator,
                                       num_processes=launch.num_processes, process_id=launch.process_id)
    except RuntimeError as e:
        raise RuntimeError(
            f"curriculax: jax.distributed.initialize failed ({e}). It must run before JAX starts: pass "
            "the launch flags on the command line of a curriculax module (python -m experiments.<name> "
            "--coordinator ...), or import a curriculax package before anything that starts JAX"
        ) from e
    return True


def initialize_from_launch() -> bool:
    """:func:`initialize` from this process's command line and environment (the first-import hook)."""
    return initialize(launch_from(sys.argv[1:], os.environ))


def is_main_process() -> bool:
    """Whether this process writes the run folder: process 0 (always, in a single process)."""
    import jax

    return jax.process_index() == 0


def sync_processes(name: str) -> None:
    """Wait until every process of the run reaches the point called ``name`` (nothing in a single
    process)."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(f"curriculax:{name}")
