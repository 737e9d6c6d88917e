"""The experiment runner shared by every ``experiments/<name>.py``.

An experiment describes a :class:`Job` (per-seed ``init``, per-seed ``chunk`` of iterations, an
optional ``after_chunk`` hook, how to reduce a chunk's metrics, what to evaluate, what to summarise);
:func:`run` does the rest:

* the chunk plan: the job's own (``Job.chunk_plan``, e.g. a chunk edge on every task switch of a
  continual stream) or ``--chunks`` equal chunks with the remainder in the last one;
* one ``jax.jit(jax.vmap(...))`` chunk function over seeds, compiled once for the longest chunk of the
  plan: a shorter chunk runs the same program with fewer active iterations (a traced int32 scalar,
  shared by all seeds, see :func:`algos.loops.masked_scan`);
* one global mesh (:func:`run_mesh`) over every device of every process, with the axes ``hparams``
  (a ``--sweep`` grid of vmappable hyperparameters), ``seeds`` and ``envs`` (``--env-devices``: the
  environment axis inside each seed, which PPO lays out along it); the leading member axis
  (hyperparameter setting x seed) is sharded over ``hparams`` x ``seeds``, the program is the same;
* several processes (``jax.distributed``, started on the first import by :mod:`envs.distributed`):
  every process runs the same program on its shard; per-seed results are gathered to every process;
  only process 0 writes ``config.json``, ``metrics.jsonl``, ``summary.json``, plots and the lock, and
  shows the progress bar; orbax checkpoints are written and restored by all processes together;
* after every chunk: ``after_chunk`` (consolidation, buffer fill, evaluation of every task seen),
  ``evaluate``, one line of ``metrics.jsonl`` (chunk, iteration, env steps, wall time, per-seed values),
  an orbax checkpoint and the progress bar;
* ``--resume`` checks the config against the saved one (every nested field), restores the newest
  checkpoint that verifies against its checksums (:mod:`experiments.checkpoints`; a damaged one is
  reported and skipped) and cuts ``metrics.jsonl`` back to it (written to a temporary file and
  renamed, so a kill cannot empty it), so the finished run equals an uninterrupted one. On a folder
  where nothing was written yet, ``--resume`` starts the run (a requeued job can always pass it);
* a stall watchdog (:class:`StallWatchdog`, ``--stall-factor``): on the CPU backend a run whose
  process uses no CPU for a minute, on any backend a chunk that runs far longer than the chunks before
  it, ends the process with exit code :data:`STALL_EXIT_CODE` and a message, since a hung XLA runtime
  (the CPU deadlock of ``envs/xla_cpu.py``) cannot be recovered inside the process but the run folder
  can be continued with ``--resume``;
* a run holds a lock on its folder (``RUN_DIR/.lock``): a second run into a busy folder is refused;
  a fresh run refuses a folder that holds another run's metrics, summary or checkpoints;
* ``config.json`` (resolved config, the fields the job did not use, chunk plan, library versions, git
  revision), ``summary.json`` (flat ``name: number``) and ``plots/*.png`` (mean with a band of one
  sample standard deviation across seeds, :func:`seed_std`).

:func:`run_many` runs several jobs (teachers, learners) as children of one parent run folder and
compares them with the first; :func:`default_run_dir` names every run folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, Literal, NamedTuple, TypeVar

import jax
import numpy as np
import tyro
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from envs.distributed import is_main_process, sync_processes
from experiments import plotting
from experiments.checkpoints import Checkpointer, CheckpointError, DiskFullError, disk_full, step_dirs

try:
    import fcntl
except ImportError:  # not POSIX: run folders are not locked
    fcntl = None


class RunFolderError(RuntimeError):
    """A run folder that cannot be used as asked: busy, holding another run, or unreadable."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Options every experiment has (its own config dataclass inherits these)."""

    seeds: int = 1
    """number of seeds, run together with jax.vmap"""
    seed: int = 0
    """base PRNG seed; seed i uses fold_in(PRNGKey(seed), i)"""
    run_dir: str | None = None
    """run folder (default runs/<experiment>-<time>)"""
    resume: bool = False
    """continue from the latest checkpoint in run_dir"""
    quick: bool = False
    """CI-sized configuration (well under a minute on a CPU)"""
    chunks: int = 10
    """number of jitted chunks: logging, evaluation and a checkpoint after each"""
    progress: bool = True
    """show a progress bar"""
    stall_factor: float = 10.0
    """end the process (exit code 3, resumable with --resume) when a chunk runs this many times longer
    per iteration than the slowest chunk before it (and at least 2 minutes), or, on the CPU backend,
    uses no CPU for a minute: XLA's CPU runtime can hang for good (README, 'CPU note'); 0: no watchdog"""
    shard_seeds: bool = True
    """shard the seed axis over all devices (of every process) when it divides evenly"""
    env_devices: int = 1
    """devices the environment axis of each seed is split over (mesh axis 'envs'; the other devices
    shard seeds and hyperparameters); must divide the device count"""
    sweep: tuple[str, ...] = ()
    """grid of vmappable hyperparameters, NAME=V1,V2,... each (e.g. lr=1e-4,3e-4 ent_coef=0,0.01): their
    product runs as one program, on the mesh axis 'hparams', every setting with every seed"""
    coordinator: str | None = None
    """multi-process run: HOST:PORT of process 0's coordinator (with --num-processes, --process-id)"""
    num_processes: int | None = None
    """multi-process run: number of processes"""
    process_id: int | None = None
    """multi-process run: this process's index, 0..N-1"""
    distributed: Literal["off", "auto"] = "off"
    """auto: jax.distributed.initialize() with JAX's cluster detection (SLURM, Open MPI, TPU pods)"""

    def quick_version(self):
        """The ``--quick`` variant of this config (experiments override)."""
        return self

    def validate(self) -> None:
        if self.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {self.seeds}")
        if self.chunks < 1:
            raise ValueError(f"--chunks must be >= 1, got {self.chunks}")
        if self.resume and not self.run_dir:
            raise ValueError("--resume needs --run-dir pointing at the run to continue")
        if self.env_devices < 1:
            raise ValueError(f"--env-devices must be >= 1, got {self.env_devices}")
        if not (self.stall_factor == 0 or self.stall_factor >= 2):
            raise ValueError(f"--stall-factor must be 0 (off) or >= 2, got {self.stall_factor}")
        sweep_grid(self.sweep)
        from envs.distributed import Launch

        Launch(self.coordinator, self.num_processes, self.process_id, self.distributed).validate()


class Job(NamedTuple):
    """What an experiment hands to :func:`run`. Functions are per seed unless said otherwise.

    Attributes:
      name: experiment name (also the default run folder's, see :func:`default_run_dir`).
      init: ``key -> state``.
      chunk: ``(state, num_iterations, active) -> (state, metrics)``. ``num_iterations`` is a static
        Python int (the scan length); ``active`` is None (run all of them) or a traced int32 scalar,
        the same for every seed: run only the first ``active`` iterations and leave the state as it
        is for the others (:func:`algos.loops.masked_scan`). ``metrics`` have a leading iteration axis
        of ``num_iterations`` of which the first ``active`` are valid; the runner keeps only those.
      iterations: iterations in the whole run (PPO updates, episode blocks, ...).
      steps_per_iteration: environment steps (or episodes) per iteration and seed.
      reduce: host side, ``metrics [S, K, ...] -> {name: value}`` (K = the chunk's active
        iterations); values of shape ``[S]`` are per-seed curves (plotted when named in ``curves``),
        anything else is stored as-is.
      summarise: host side, ``(records, final_state) -> {name: number}`` for ``summary.json``.
      curves: metric names to plot against steps with a band across seeds.
      evaluate: optional per-seed ``state -> {name: scalar}`` run after every chunk (after
        ``after_chunk``).
      extra_plots: optional ``(plots_dir, records) -> None`` for experiment-specific figures.
      step_unit: label of the x axis.
      chunk_plan: optional iterations per chunk (summing to ``iterations``), e.g. with a chunk edge
        on every task switch; None: ``--chunks`` equal chunks (which is then recorded as unused).
      after_chunk: optional pure per-seed ``(state, chunk_index) -> state`` run after every chunk and
        before its checkpoint (consolidation at a task end, buffer fill, evaluation of every task
        seen); ``chunk_index`` is a traced int32 scalar shared by all seeds.
      metrics_per_chunk: the chunk aggregates its own metrics over the active iterations and returns
        a leading axis of length 1 (the runner then does not slice them).
      unused: dotted config fields the job does not use (``"ppo.hidden"`` under a custom policy,
        the options of teachers that do not run): ``config.json`` records them as null and lists
        them under ``"unused"``; ``--resume`` ignores them.
      record: more of what ``config.json`` records (and ``--resume`` checks), e.g. ``{"env":
        envs.registry.env_record(...)}``: how to rebuild a custom environment.
      trainer: the object the job's functions come from (a PPO ``Trainer``), for
        :func:`experiments.evaluate.load_run`; not recorded.
      plot_title: the plots' title (default: ``name``), e.g. naming the environment and teacher.
      curve_meta: per curve ``(y label with its unit, (low, high) or None)``: the band is clipped
        to that range (``mastered_pct``: 0-100).
      hyperparams: optional ``(**overrides) -> pytree`` of the float hyperparameters that ``init(key,
        hparams)`` takes as arrays (PPO: ``functools.partial(PPOHyperparams.from_config, config)``),
        what ``--sweep`` builds its grid with; None: the job cannot be swept.
    """

    name: str
    init: Callable[[jax.Array], Any]
    chunk: Callable[[Any, int, jax.Array | None], tuple[Any, dict]]
    iterations: int
    steps_per_iteration: int
    reduce: Callable[[dict], dict]
    summarise: Callable[[list[dict], Any], dict]
    curves: Sequence[str] = ()
    evaluate: Callable[[Any], dict] | None = None
    extra_plots: Callable[[str, list[dict]], None] | None = None
    step_unit: str = "env_steps"
    chunk_plan: Sequence[int] | None = None
    after_chunk: Callable[[Any, jax.Array], Any] | None = None
    metrics_per_chunk: bool = False
    unused: Sequence[str] = ()
    record: dict | None = None
    trainer: Any = None
    plot_title: str | None = None
    curve_meta: dict | None = None
    hyperparams: Callable[..., Any] | None = None


C = TypeVar("C", bound=RunConfig)


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None) -> C:
    """CLI derived from the config dataclass (tyro); ``--quick`` switches the defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    default = config_cls()
    if "--quick" in argv:
        default = default.quick_version()
    with warnings.catch_warnings():
        # A None default that means "derived from other fields" (e.g. the hypercube's Oracle window)
        # on a field typed without None: tyro warns but parses it correctly.
        warnings.filterwarnings("ignore", message=".*NoneType.* does not match any type in Union")
        config = tyro.cli(config_cls, default=default, args=argv)
    check_finite_fields(config, default)
    config.validate()
    return config


def check_finite_fields(config: Any, default: Any = None, prefix: str = "--") -> None:
    """Raise ``ValueError`` naming the flag (``--ppo.ent-coef``) of every float field of the (nested)
    config dataclass that is NaN or infinite, unless its default is too."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        base = getattr(default, f.name, None) if default is not None else None
        flag = f"{prefix}{f.name.replace('_', '-')}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_finite_fields(value, base if dataclasses.is_dataclass(base) else None, flag + ".")
            continue
        items = value if isinstance(value, (tuple, list)) else (value,)
        bases = base if isinstance(base, (tuple, list)) else (base,)
        for x in items:
            if isinstance(x, float) and not math.isfinite(x) and not any(
                    isinstance(b, float) and not math.isfinite(b) and (b == x or x != x and b != b)
                    for b in bases):
                raise ValueError(f"{flag} is {x}: numeric flags must be finite")


def cli(config_cls: type[C], main: Callable[[C], Any], argv: Sequence[str] | None = None) -> Any:
    """``main(parse_config(config_cls, argv))`` for an experiment's ``__main__``, with one-line errors:
    a bad value (``ValueError`` / ``TypeError``, raised before anything compiles) prints
    ``<prog>: error: ...`` and exits with status 2 (as a flag tyro cannot parse does); a run folder
    that cannot be used (busy, holding another run, damaged checkpoints, a full disk) exits with 1.
    ``CURRICULAX_TRACEBACK=1`` shows the traceback instead."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = f"python -m {spec.name}" if spec is not None else "curriculax"
    try:
        return main(parse_config(config_cls, argv))
    except (ValueError, TypeError) as e:
        status = 2
        err = e
    except (RunFolderError, CheckpointError, DiskFullError, FileExistsError, FileNotFoundError,
            FloatingPointError) as e:
        status = 1
        err = e
    if os.environ.get("CURRICULAX_TRACEBACK"):
        raise err
    message = " ".join(str(err).split()) or type(err).__name__
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def default_run_dir(name: str) -> str:
    """``runs/<name>-<time>``, with every character of ``name`` outside ``[A-Za-z0-9_.]`` as ``-``."""
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-") or "run"
    return os.path.join("runs", f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}")


def seed_keys(config: RunConfig) -> jax.Array:
    base = jax.random.PRNGKey(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(config.seeds))


MESH_AXES = ("hparams", "seeds", "envs")
"""The named axes of a run's global mesh; PPO lays its environment axis along ``envs``."""


def run_mesh(num_seeds: int, enabled: bool = True, env_devices: int = 1,
             num_hparams: int = 1) -> Mesh | None:
    """The global mesh of a run over every device of every process: ``(hparams, seeds, envs)`` of
    sizes ``(h, s, env_devices)``, where ``h`` is the largest common divisor of the hyperparameter
    settings and the devices left over by ``env_devices``, and ``s`` the rest. None (everything on
    one device) for a single device, or in a single process when ``enabled`` is off or the seeds do not
    divide over ``s``; a multi-process run or ``env_devices > 1`` raises ``ValueError`` instead."""
    n = jax.device_count()
    multi = jax.process_count() > 1
    if n % env_devices:
        raise ValueError(f"--env-devices {env_devices} must divide the {n} devices of the run")
    rest = n // env_devices
    h = math.gcd(num_hparams, rest)
    s = rest // h
    fits = enabled and num_seeds % s == 0
    if not fits:
        if multi or env_devices > 1:
            why = "--no-shard-seeds" if not enabled else (
                f"{num_seeds} seeds do not divide over {s} devices ({n} devices / {env_devices} "
                f"--env-devices / {h} for the {num_hparams} hyperparameter settings)")
            raise ValueError(f"this run must shard its seeds over every device ({jax.process_count()} "
                             f"process(es), {n} devices), but {why}: choose --seeds as a multiple of "
                             f"{s} (or a larger --env-devices)")
        return None
    if n == 1:
        return None
    # Auto axes: XLA propagates the shardings through the vmapped program.
    return jax.make_mesh((h, s, env_devices), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3)


def member_sharding(mesh: Mesh | None) -> NamedSharding | None:
    """A leading member axis (hyperparameter setting x seed, setting-major) over ``hparams`` x
    ``seeds`` of ``mesh``."""
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(("hparams", "seeds")))


def seed_sharding(num_seeds: int, enabled: bool = True) -> NamedSharding | None:
    """Shard a leading seed axis over all devices of every process (None when there is one device or
    the seed count does not divide evenly in a single process)."""
    return member_sharding(run_mesh(num_seeds, enabled))


def sweep_grid(sweep: Sequence[str]) -> list[dict[str, float]]:
    """The settings of a ``--sweep`` (``["lr=1e-4,3e-4", "ent_coef=0,0.01"]``): the product of the
    values, the first name varying slowest; ``[{}]`` without a sweep."""
    names, values = [], []
    for item in sweep:
        name, eq, rest = item.partition("=")
        name = name.strip().replace("-", "_")
        try:
            vals = [float(v) for v in rest.split(",") if v.strip()]
        except ValueError:
            vals = []
        if not eq or not name or not vals:
            raise ValueError(f"--sweep {item!r}: expected NAME=V1,V2,... with numbers (e.g. lr=1e-4,3e-4)")
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"--sweep {item!r}: values must be finite")
        if name in names:
            raise ValueError(f"--sweep names {name!r} twice")
        names.append(name)
        values.append(vals)
    grid = [{}]
    for name, vals in zip(names, values):
        grid = [{**g, name: v} for g in grid for v in vals]
    return grid


def sweep_label(setting: dict[str, float]) -> str:
    """``lr=0.0001,ent_coef=0``: the summary prefix and plot folder of one setting."""
    return ",".join(f"{k}={v:g}" for k, v in setting.items())


def job_hyperparams(job: Job) -> Callable[..., Any]:
    """How ``job`` builds its hyperparameter pytree from overrides (:attr:`Job.hyperparams`)."""
    if job.hyperparams is None:
        raise ValueError(f"{job.name}: --sweep needs vmappable hyperparameters (Job.hyperparams); this "
                         "job has none")
    return job.hyperparams


def init_args(job: Job, config: RunConfig) -> tuple:
    """The host arrays ``jax.vmap(job.init)`` takes, one row per member of the run (setting-major:
    member ``h * seeds + i`` is seed ``i`` of setting ``h`` of ``config.sweep``): ``(keys,)``, and with
    a sweep ``(keys, hparams)`` where a swept value has one entry per member and the others are
    broadcast. The runner and :func:`experiments.evaluate.load_run` build the state from these."""
    settings = sweep_grid(config.sweep)
    members = len(settings) * config.seeds
    keys = np.tile(np.asarray(seed_keys(config)), (len(settings), 1))
    if not config.sweep:
        return (keys,)
    columns = {name: np.repeat(np.asarray([g[name] for g in settings], np.float32), config.seeds)
               for name in settings[0]}

    def per_member(x):
        x = np.asarray(x)
        return x if x.shape[:1] == (members,) else np.broadcast_to(x, (members, *x.shape)).copy()

    return keys, jax.tree.map(per_member, job_hyperparams(job)(**columns))


def to_host(tree: Any) -> Any:
    """``tree`` as numpy arrays, the whole global value on every process (gathered across processes
    in a multi-process run)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(one, tree)


def _global_array(host: np.ndarray, sharding: NamedSharding | None) -> jax.Array:
    """A host array (the same on every process) placed with ``sharding``: each process supplies its
    own shards."""
    if sharding is None:
        return jax.numpy.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def config_class_path(config: Any) -> str:
    """``module:Class`` of ``config`` (the module's import name also when it runs as ``__main__``),
    what :func:`experiments.evaluate.load_run` rebuilds the config with."""
    cls = type(config)
    module = cls.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return f"{module}:{cls.__qualname__}"


def run_metadata() -> dict:
    versions = {}
    for pkg in ["jax", "jaxlib", "flax", "optax", "gymnax", "chex", "orbax-checkpoint", "numpy"]:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()) if rev else None
    except (OSError, subprocess.SubprocessError):
        rev, dirty = None, None
    return {
        "versions": versions,
        "python": platform.python_version(),
        "git_revision": rev,
        "git_dirty": dirty,
        "devices": [str(d) for d in jax.devices()],
    }


def _to_json(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_json(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    return x


def read_records(path: str) -> list[dict]:
    """The records of a ``metrics.jsonl``. A last line that is not JSON (cut by a kill or a full disk
    mid-write) is left out with a warning; a bad line before others raises :class:`RunFolderError`."""
    if not os.path.exists(path):
        return []
    with open(path, errors="replace") as f:
        lines = f.read().split("\n")
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[i + 1:]):
                raise RunFolderError(f"{path}: line {i + 1} is not JSON (the file was edited or "
                                     "damaged)") from None
            warnings.warn(f"{path}: leaving out its partial last line {i + 1} (a kill or a full disk "
                          "while it was written)", RuntimeWarning, stacklevel=2)
    return records


def _write_records(path: str, records: list[dict]) -> None:
    """``metrics.jsonl`` rewritten atomically (a temporary file, then a rename)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _holds_data(run_dir: str) -> str | None:
    """What in ``run_dir`` belongs to a run (metrics, summary, checkpoints), or None."""
    metrics = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(metrics) and os.path.getsize(metrics) > 0:
        return "metrics.jsonl"
    if os.path.exists(os.path.join(run_dir, "summary.json")):
        return "summary.json"
    steps = step_dirs(os.path.join(run_dir, "checkpoints"))
    if steps:
        return f"checkpoints {steps}"
    return None


class _RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock`` (released by the OS when the process dies)."""

    def __init__(self, run_dir: str):
        self._file = None
        if fcntl is None:
            return
        os.makedirs(run_dir, exist_ok=True)
        f = open(os.path.join(run_dir, ".lock"), "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise RunFolderError(f"{run_dir} is in use by another run (pid {holder}); wait for it to "
                                 "finish or use another --run-dir") from None
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_to_json(obj), f, indent=2, sort_keys=False)
    os.replace(tmp, path)


def even_plan(iterations: int, chunks: int) -> list[int]:
    """Iterations per chunk: equal chunks, with the remainder in the last one."""
    chunks = min(chunks, iterations)
    size = iterations // chunks
    plan = [size] * chunks
    plan[-1] += iterations - size * chunks
    return plan


def _job_plan(job: Job) -> list[int] | None:
    """The job's own chunk plan, checked (None when it has none)."""
    if job.chunk_plan is None:
        return None
    plan = [int(n) for n in job.chunk_plan]
    if not plan or min(plan) < 1 or sum(plan) != job.iterations:
        raise ValueError(
            f"{job.name}: chunk_plan {plan} must be chunks of >= 1 iterations summing to "
            f"iterations={job.iterations}"
        )
    return plan


def config_record(config: Any, unused: Sequence[str] = ()) -> dict:
    """``config`` as JSON, with each dotted field in ``unused`` (``"ppo.hidden"``) set to null."""
    out = _to_json(dataclasses.asdict(config))
    for path in unused:
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ValueError(f"unused config field {path!r} is not a field of {type(config).__name__}")
        node[leaf] = None
    return out


# What may change on --resume: how the run is continued, not what it computes.
# The launch (processes, coordinator) and the layout of the environment axis over devices are free
# too: a requeued job may resume on other hosts; a layout changes float rounding only.
_RESUME_FREE = ("config.resume", "config.progress", "config.stall_factor", "config.run_dir",
                "config.coordinator", "config.num_processes", "config.process_id", "config.distributed",
                "config.env_devices")


# Fields added to RunConfig after run folders were written, with the value those runs had.
_ADDED = {"config.sweep": []}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_run_dir(run_dir: str, record: dict, resume: bool) -> bool:
    """Whether the run resumes. ``--resume``: the saved ``config.json`` must describe the same run
    (every nested field, the chunk plan, the unused fields); a folder where nothing was written yet
    starts the run. A fresh run must not touch a folder that holds a run (its metrics, summary,
    checkpoints, or for a sweep those of its children)."""
    config_path = os.path.join(run_dir, "config.json")
    held = _holds_data(run_dir)
    children = record.get("children") or ()
    if os.path.exists(config_path) and not held:
        try:
            with open(config_path) as f:
                children = [*children, *(json.load(f).get("children") or ())]
        except (OSError, ValueError):
            pass  # an unreadable config.json names no children; the fresh run rewrites it
    for child in children if not held else ():
        sub = os.path.join(run_dir, child)
        if _holds_data(sub):
            held = f"{child}/{_holds_data(sub)}"
            break
    if not resume or not os.path.exists(config_path):
        if held and resume:
            raise RunFolderError(f"--resume: {run_dir} holds {held} but no config.json; it cannot be "
                                 "checked against this run")
        if held:
            raise FileExistsError(f"{run_dir} already holds a run ({held}); use --resume or a new "
                                  "--run-dir")
        return False
    try:
        with open(config_path) as f:
            saved = json.load(f)
    except ValueError:
        raise RunFolderError(f"--resume: {config_path} is not JSON") from None
    old = _flatten({k: saved.get(k) for k in record})
    new = _flatten(_to_json(record))
    diffs = []
    for key in sorted(set(old) | set(new)):
        if key in _RESUME_FREE or old.get(key) == new.get(key):
            continue
        if key not in old and key in _ADDED and new.get(key) == _ADDED[key]:
            continue  # a run folder from before the field existed ran with its default
        field = key.removeprefix("config.")
        flag = f" (--{field.replace('_', '-')})" if key.startswith("config.") else ""
        diffs.append(f"{field}{flag}: saved {old.get(key)!r}, now {new.get(key)!r}")
    if diffs:
        raise ValueError(f"--resume: {run_dir} was run with other settings: " + "; ".join(diffs))
    return True


class _Prepared(NamedTuple):
    """A run checked and ready to start: nothing compiled, nothing written."""

    job: Job
    config: RunConfig
    run_dir: str
    plan: list[int]
    record: dict  # what config.json holds besides the run metadata
    resume: bool  # whether there is a run to continue


def _check_launch(config: RunConfig) -> None:
    """A config that asks for a multi-process run needs the process to have joined it on its first
    import of curriculax (:mod:`envs.distributed`), before JAX started."""
    from envs.distributed import Launch, is_initialized

    launch = Launch(config.coordinator, config.num_processes, config.process_id, config.distributed)
    if launch.requested and not is_initialized():
        raise ValueError("--coordinator / --distributed must be on the process's command line (or in "
                         "CURRICULAX_COORDINATOR, CURRICULAX_NUM_PROCESSES, CURRICULAX_PROCESS_ID, "
                         "CURRICULAX_DISTRIBUTED): curriculax joins the run when it is first imported, "
                         "before JAX starts")
    if launch.coordinator is not None and jax.process_count() != launch.num_processes:
        raise ValueError(f"--num-processes {launch.num_processes}, but JAX runs {jax.process_count()} "
                         "processes")


def _prepare(job: Job, config: RunConfig) -> _Prepared:
    config.validate()
    _check_launch(config)
    if config.sweep:  # unknown hyperparameter names fail here, before anything is written
        job_hyperparams(job)(**sweep_grid(config.sweep)[0])
    if job.iterations < 1:
        raise ValueError(f"{job.name}: the run has no iterations")
    own_plan = _job_plan(job)
    plan = own_plan if own_plan is not None else even_plan(job.iterations, config.chunks)
    unused = sorted(set(job.unused) | ({"chunks"} if own_plan is not None else set()))
    record = {
        "experiment": job.name,
        "config": config_record(config, unused),
        "unused": unused,
        "chunk_plan": plan,
        **_to_json(dict(job.record or {})),
    }
    run_dir = config.run_dir or default_run_dir(job.name)
    resume = _check_run_dir(run_dir, record, config.resume)
    return _Prepared(job, config, run_dir, plan, record, resume)


def run(job: Job, config: RunConfig, *, verbose: bool = True) -> dict:
    """Run (or resume) ``job`` for ``config.seeds`` seeds; returns the summary dict."""
    return _execute(_prepare(job, config), verbose)


def _compile_chunk(job: Job, state: Any, length: int, masked: bool, shard_out: dict):
    """The chunk of ``length`` iterations, jitted and vmapped over seeds: ``(state, active) ->
    (state, metrics)``. ``masked=False`` (every chunk of the plan has ``length`` iterations) compiles
    a plain scan and ignores ``active``."""
    if masked:
        fn = jax.vmap(lambda s, a: job.chunk(s, length, a), in_axes=(0, None))
        return jax.jit(fn, **shard_out).lower(state, np.int32(length)).compile()
    compiled = jax.jit(jax.vmap(lambda s: job.chunk(s, length, None)), **shard_out).lower(state).compile()
    return lambda s, active: compiled(s)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _execute(prepared: _Prepared, verbose: bool) -> dict:
    lock = _RunLock(prepared.run_dir) if is_main_process() else None
    try:
        watchdog = StallWatchdog(prepared.config.stall_factor, prepared.run_dir)
        with watchdog.idle_watch():
            return _execute_locked(prepared, verbose, watchdog)
    except OSError as e:
        if disk_full(e) and not isinstance(e, DiskFullError):
            raise DiskFullError(e.errno, f"no space left on the device while writing {prepared.run_dir}; "
                                "free some space and continue with --resume") from None
        raise
    finally:
        if lock is not None:
            lock.release()


def _execute_locked(prepared: _Prepared, verbose: bool, watchdog: StallWatchdog) -> dict:
    job, config, run_dir, plan = prepared.job, prepared.config, prepared.run_dir, prepared.plan
    main = is_main_process()
    verbose = verbose and main
    say = _say if main else (lambda message: None)
    # checked again under the lock: another run may have written here since _prepare
    resume = _check_run_dir(run_dir, prepared.record, config.resume)
    sync_processes("checked")  # every process has read the folder before process 0 writes to it
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    if config.resume and not resume:
        say(f"--resume: nothing to resume in {run_dir} yet; starting the run")
    if main:
        os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
        if not resume:
            _write_json(os.path.join(run_dir, "config.json"),
                        {**prepared.record, "config_class": config_class_path(config), **run_metadata()})
            _write_records(metrics_path, [])

    settings = sweep_grid(config.sweep)
    members = len(settings) * config.seeds  # setting-major: member h * seeds + i is seed i of setting h
    mesh = run_mesh(config.seeds, config.shard_seeds, config.env_devices, len(settings))
    sharding = member_sharding(mesh)
    args = tuple(jax.tree.map(lambda x: _global_array(x, sharding), init_args(job, config)))
    with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        # Every leaf of the state and of the metrics has the member axis first. Without an env axis on
        # the mesh, all of it is pinned to the member sharding; with one, the state keeps the layout
        # the program gives it (the environments' leaves split along ``envs``). Each chunk's output is
        # pinned to its input's layout, the one it was compiled for.
        pin = {"out_shardings": sharding} if sharding is not None and config.env_devices == 1 else {}
        state = jax.jit(jax.vmap(job.init), **pin)(*args)
        return _train(prepared, state, sharding, resume, members, settings, verbose, say, watchdog)


STALL_EXIT_CODE = 3
STALL_FLOOR_S = 120.0
"""the shortest time a chunk may take before the watchdog's factor test ends the process"""
IDLE_WINDOW_S = 60.0
IDLE_CPU_FRACTION = 0.05
"""on the CPU backend: a run whose process used less than this fraction of one core over the last
``IDLE_WINDOW_S`` seconds is deadlocked (a running XLA CPU program keeps at least one core busy)"""


class StallWatchdog:
    """Ends the process when a run hangs, by either of two tests, each checked by a thread:

    * *idle* (:meth:`idle_watch` around the whole run; on by default on the CPU backend): the process
      used almost no CPU time for :data:`IDLE_WINDOW_S` seconds, which is how XLA's CPU deadlock looks
      (the main thread waiting for a result no thread computes). Seen in a chunk and in the tiny
      computation of a run's seed keys, so it watches compiling, chunks and writing alike;
    * *too long* (:meth:`watching` around each chunk; any backend): the chunk takes ``factor`` times
      longer per iteration than the slowest chunk before it, and at least :data:`STALL_FLOOR_S` (the
      first chunk is not tested).

    ``on_stall(message)`` defaults to printing the message and ``os._exit(STALL_EXIT_CODE)``: a hung
    XLA runtime holds the main thread, so nothing short of ending the process frees it; the checkpoint
    and metrics of every finished chunk are on disk already. ``factor`` 0 turns both tests off."""

    def __init__(self, factor: float, where: str, on_stall: Callable[[str], None] | None = None,
                 floor_s: float | None = None, idle_window_s: float | None = None,
                 watch_cpu: bool | None = None):
        self.factor, self.where = factor, where
        self.floor_s = STALL_FLOOR_S if floor_s is None else floor_s
        self.idle_window_s = IDLE_WINDOW_S if idle_window_s is None else idle_window_s
        self.watch_cpu = bool(factor) and (jax.default_backend() == "cpu" if watch_cpu is None else watch_cpu)
        self.on_stall = on_stall or _end_stalled_process
        self.slowest_per_iteration = None

    @contextlib.contextmanager
    def idle_watch(self):
        """The idle test over the block (nothing where ``watch_cpu`` is off)."""
        with self._thread(self._idle, "the run") if self.watch_cpu else contextlib.nullcontext():
            yield

    @contextlib.contextmanager
    def watching(self, chunk: int, iterations: int):
        """The too-long test over one chunk; the chunk's time sets later chunks' limits (an exception
        inside the block stops the watch and is not timed)."""
        limit = None
        if self.factor and self.slowest_per_iteration is not None:
            limit = max(self.floor_s, self.factor * self.slowest_per_iteration * iterations)
        t0 = time.perf_counter()
        with self._thread(self._too_long, f"chunk {chunk}", limit) if limit else contextlib.nullcontext():
            yield
        per_iteration = (time.perf_counter() - t0) / max(iterations, 1)
        self.slowest_per_iteration = max(per_iteration, self.slowest_per_iteration or 0.0)

    @contextlib.contextmanager
    def _thread(self, test: Callable, *args):
        stop = threading.Event()
        threading.Thread(target=test, args=(stop, *args), daemon=True).start()
        try:
            yield
        finally:
            stop.set()

    def _stalled(self, what: str, why: str) -> None:
        self.on_stall(f"curriculax: {what} of {self.where} {why}. The run folder holds every finished chunk; "
                      f"continue with --resume (--stall-factor 0 turns this check off).")

    def _too_long(self, stop: threading.Event, what: str, limit: float) -> None:
        if not stop.wait(limit):
            self._stalled(what, f"made no progress for {limit:.0f} s ({self.factor:g}x the slowest earlier "
                                f"chunk): the process is taken to be hung")

    def _idle(self, stop: threading.Event, what: str) -> None:
        samples = [(time.monotonic(), time.process_time())]  # process_time: CPU seconds of every thread
        while not stop.wait(min(5.0, self.idle_window_s / 4)):
            now, cpu = time.monotonic(), time.process_time()
            samples.append((now, cpu))
            while len(samples) > 1 and now - samples[1][0] >= self.idle_window_s:
                samples.pop(0)  # keep the newest sample that is at least a window old
            then, cpu_then = samples[0]
            if now - then >= self.idle_window_s and cpu - cpu_then < IDLE_CPU_FRACTION * (now - then):
                return self._stalled(what, f"used no CPU for {now - then:.0f} s on the CPU backend: XLA's "
                                           f"CPU runtime is deadlocked (README, 'CPU note')")


def _end_stalled_process(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    os._exit(STALL_EXIT_CODE)


def _train(prepared: _Prepared, state: Any, sharding: NamedSharding | None, resume: bool, members: int,
           settings: list[dict], verbose: bool, say: Callable[[str], None], watchdog: StallWatchdog) -> dict:
    job, config, run_dir, plan = prepared.job, prepared.config, prepared.run_dir, prepared.plan
    main = is_main_process()
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    state_shardings = None if sharding is None else jax.tree.map(lambda x: x.sharding, state)
    shard_out = {} if sharding is None else {"out_shardings": (state_shardings, sharding)}
    shard_state = {} if sharding is None else {"out_shardings": state_shardings}

    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    start_chunk, records = 0, []
    if resume:
        step, state, meta = checkpointer.restore_latest(state, report=say)
        if step is not None:
            start_chunk = int(meta["chunks_done"])
            records = [r for r in read_records(metrics_path) if r["chunk"] < start_chunk]
            if [r["chunk"] for r in records] != list(range(start_chunk)):
                raise RunFolderError(f"--resume: {metrics_path} has {len(records)} of the "
                                     f"{start_chunk} chunks of checkpoint {step}")
        sync_processes("resume-read")  # every process has read metrics.jsonl before it is cut back
        if main:
            _write_records(metrics_path, records)
        where = (f"from chunk {start_chunk} of {len(plan)} (checkpoint {step})" if step is not None
                 else "from the start (no checkpoint yet)")
        say(f"resuming {run_dir} {where}")

    chunk_fn = after_fn = None
    evaluate = None
    last = records[-1] if records else {}
    wall, run_time = last.get("wall_time_s", 0.0), last.get("run_time_s", 0.0)
    compile_time = last.get("compile_time_s", 0.0)
    iterations_done = sum(plan[:start_chunk])
    bar = _progress(len(plan), start_chunk, job.name, config.progress and verbose)
    for c in range(start_chunk, len(plan)):
        t0 = time.perf_counter()
        if chunk_fn is None:  # one program for every chunk of the plan
            chunk_fn = _compile_chunk(job, state, max(plan), len(set(plan)) > 1, shard_out)
            if job.after_chunk is not None:
                after = jax.vmap(job.after_chunk, in_axes=(0, None))
                after_fn = jax.jit(after, **shard_state).lower(state, np.int32(0)).compile()
            if job.evaluate is not None:  # compiled here too, so that compile_time_s counts it
                evaluate = jax.jit(jax.vmap(job.evaluate)).lower(state).compile()
            compile_time += time.perf_counter() - t0
        t1 = time.perf_counter()
        size = plan[c]
        with watchdog.watching(c, size):
            state, metrics = chunk_fn(state, np.int32(size))
            if after_fn is not None:
                state = after_fn(state, np.int32(c))
            metrics = to_host(metrics)
            run_time += time.perf_counter() - t1
            if not job.metrics_per_chunk:
                metrics = jax.tree.map(lambda m: m[:, :size], metrics)
            iterations_done += size
            record = {
                "chunk": c,
                "iteration": iterations_done,
                "env_steps": iterations_done * job.steps_per_iteration,
                **job.reduce(metrics),
            }
            if evaluate is not None:
                record.update(to_host(evaluate(state)))
        wall += time.perf_counter() - t0
        record.update(wall_time_s=wall, run_time_s=run_time, compile_time_s=compile_time)
        record = _to_json(record)
        _check_finite(record, job.name)
        if main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        records.append(record)
        checkpointer.save(c + 1, state, {"chunks_done": c + 1})
        bar.update(record, job.curves)
    bar.close()
    checkpointer.close()

    final_state = to_host(state) if jax.process_count() > 1 else state
    # each setting's members, with its records: its summary keys and its plots
    parts = [(sweep_label(g), slice(h * config.seeds, (h + 1) * config.seeds)) for h, g in enumerate(settings)]
    parts = [(label, part, _member_records(records, part, members)) for label, part in parts]
    if config.sweep:
        summary = {}
        for label, part, part_records in parts:
            summary.update({f"{label}/{k}": v for k, v in job.summarise(
                part_records, jax.tree.map(lambda x: x[part], final_state)).items()})
    else:
        summary = dict(job.summarise(records, final_state))
    total_steps = job.iterations * job.steps_per_iteration * members
    summary.setdefault("seeds", config.seeds)
    if config.sweep:
        summary["settings"] = len(settings)
    summary["wall_time_s"] = wall
    summary["compile_time_s"] = compile_time
    rate_key = "steps_per_s" if job.step_unit == "env_steps" else f"{job.step_unit}_per_s"
    summary[rate_key] = total_steps / max(run_time, 1e-9)
    summary = {k: (float(v) if isinstance(v, (int, float, np.number)) else v) for k, v in summary.items()}
    if main:
        _write_json(os.path.join(run_dir, "summary.json"), summary)
        plots = os.path.join(run_dir, "plots")
        groups = [(plots, records)] if not config.sweep else [
            (os.path.join(plots, label), part_records) for label, _, part_records in parts]
        for where, rs in groups:
            plotting.plot_curves(where, rs, job.curves, job.step_unit, job.plot_title or job.name,
                                 job.curve_meta)
        if job.extra_plots is not None:
            job.extra_plots(plots, records)
    sync_processes("written")  # the run folder is complete when any process returns
    if verbose:
        print(f"run folder: {run_dir}")
        print(json.dumps(summary, indent=2))
    return summary


def _member_records(records: list[dict], part: slice, members: int) -> list[dict]:
    """The records of the members in ``part``: every per-member value (a list of length ``members``)
    cut to them; everything else as it is."""
    def cut(v):
        return v[part] if isinstance(v, list) and len(v) == members else v

    return [{k: cut(v) for k, v in r.items()} for r in records]


# ----------------------------------------------------------------------------------------------------
# Several runs compared: run_many


def compare_to_baseline(finals: dict[str, np.ndarray], baseline: str, metric: str) -> dict:
    """Per child, the mean and std over seeds of ``metric`` (``finals[child]``: its final per-seed
    values), and for each child but ``baseline``: the difference of means, its standard error and
    Welch's t-test p-value.

    Conventions (one for every figure): ``std`` is the sample standard deviation over seeds
    (:func:`seed_std`, ddof=1, as in every ``summary.json``); the standard error is
    ``sqrt(std_a^2 / n_a + std_b^2 / n_b)`` with the same stds. The standard error needs two seeds
    on both sides; the p-value (scipy's
    ``ttest_ind(equal_var=False)``) also some spread on one side; otherwise they are left out.
    Keys: ``<child>/<metric>``, ``<child>/<metric>_std``, ``<child>_minus_<baseline>``,
    ``<child>_minus_<baseline>_se``, ``<child>_vs_<baseline>_welch_p``.
    """
    from scipy import stats

    finals = {k: np.asarray(v, np.float64) for k, v in finals.items()}
    out = {}
    for name, x in finals.items():
        out[f"{name}/{metric}"] = float(x.mean())
        out[f"{name}/{metric}_std"] = seed_std(x)
    base = finals[baseline]
    for name, x in finals.items():
        if name == baseline:
            continue
        out[f"{name}_minus_{baseline}"] = float(x.mean() - base.mean())
        if min(len(x), len(base)) < 2:
            continue
        out[f"{name}_minus_{baseline}_se"] = float(
            np.sqrt(seed_std(x) ** 2 / len(x) + seed_std(base) ** 2 / len(base))
        )
        if x.std() > 0 or base.std() > 0:
            out[f"{name}_vs_{baseline}_welch_p"] = float(stats.ttest_ind(x, base, equal_var=False).pvalue)
    return out


def run_many(
    name: str,
    children: Sequence[tuple[str, Job, RunConfig]],
    config: RunConfig,
    *,
    metric: str,
    verbose: bool = True,
) -> dict:
    """Run every ``(child, job, child_config)`` into ``RUN_DIR/<child>/`` and compare them.

    ``config`` is the parent's: its ``run_dir`` (default :func:`default_run_dir` of ``name``),
    ``resume`` and ``progress`` replace the children's. Everything is checked first (every child's
    config, and on ``--resume`` every child's saved config, finished children included); then the
    parent ``config.json`` is written (the parent config, with the fields no child uses as null),
    each child runs (or resumes, or, when finished, is only re-summarised) with the full run-folder
    contract, and the parent gets ``summary.json`` (every child's figures as ``<child>/<key>`` and
    :func:`compare_to_baseline` of ``metric`` against the first child) and ``plots/<metric>.png``
    (mean with a band of one std across seeds per child). Returns the parent summary.

    A single child is not a comparison: it runs into ``RUN_DIR`` itself, as ``name``, and its own
    summary is returned.
    """
    names = [child for child, _, _ in children]
    if not names:
        raise ValueError(f"{name}: run_many needs at least one child")
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: child names repeat: {names}")
    for child in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", child) or child in ("plots", "checkpoints", ".", ".."):
            raise ValueError(f"{name}: {child!r} cannot name a child run folder")
    config.validate()
    take = dict(resume=config.resume, progress=config.progress)
    if len(children) == 1:
        _, job, child_config = children[0]
        single = dataclasses.replace(child_config, run_dir=config.run_dir, **take)
        return run(job._replace(name=name), single, verbose=verbose)

    root = config.run_dir or default_run_dir(name)
    prepared = []
    for child, job, child_config in children:
        sub = os.path.join(root, child)
        prepared.append(_prepare(job, dataclasses.replace(
            child_config, run_dir=sub, resume=config.resume, progress=config.progress)))
    unused = sorted(set.intersection(*(set(p.record["unused"]) for p in prepared)))
    record = {"experiment": name, "config": config_record(config, unused), "unused": unused,
              "children": names, "metric": metric}
    _check_run_dir(root, record, config.resume)
    lock = _RunLock(root) if is_main_process() else None
    try:
        return _run_children(root, names, prepared, record, config, metric, verbose)
    finally:
        if lock is not None:
            lock.release()


def _run_children(root, names, prepared, record, config, metric, verbose) -> dict:
    name = record["experiment"]
    main = is_main_process()
    verbose = verbose and main
    resume = _check_run_dir(root, record, config.resume)  # again, under the lock
    sync_processes("checked-parent")
    if main:
        os.makedirs(os.path.join(root, "plots"), exist_ok=True)
    if main and not resume:
        _write_json(os.path.join(root, "config.json"),
                    {**record, "config_class": config_class_path(config), **run_metadata()})

    summary: dict[str, Any] = {}
    records: dict[str, list[dict]] = {}
    for child, p in zip(names, prepared):
        if verbose:
            print(f"== {child} ==", flush=True)
        child_summary = _execute(p, verbose=False)
        summary.update({f"{child}/{k}": v for k, v in child_summary.items()})
        records[child] = read_records(os.path.join(p.run_dir, "metrics.jsonl"))
    finals = {child: np.asarray(rs[-1][metric], np.float64) for child, rs in records.items()}
    summary.update(compare_to_baseline(finals, names[0], metric))
    if not main:
        return summary
    _write_json(os.path.join(root, "summary.json"), summary)
    ylabel, value_range = (prepared[0].job.curve_meta or {}).get(metric, (metric, None))
    plotting.plot_compare(
        os.path.join(root, "plots", f"{metric.replace('/', '_')}.png"),
        {child: (np.asarray([r["env_steps"] for r in rs], np.float64),
                 np.asarray([r[metric] for r in rs], np.float64)) for child, rs in records.items()},
        plotting.axis_label(prepared[0].job.step_unit), ylabel, f"{name}, {config.seeds} seeds",
        value_range,
    )
    if verbose:
        print(f"run folder: {root}")
        width = max(len(n) for n in names)
        for child in names:
            line = f"{child:<{width}}  {metric} {summary[f'{child}/{metric}']:8.3f} +- " \
                   f"{summary[f'{child}/{metric}_std']:.3f}"
            if child != names[0]:
                line += f"   minus {names[0]}: {summary[f'{child}_minus_{names[0]}']:+.3f}"
                if f"{child}_minus_{names[0]}_se" in summary:
                    line += f" (SE {summary[f'{child}_minus_{names[0]}_se']:.3f})"
            print(line)
    return summary


def _check_finite(record: dict, name: str) -> None:
    for k, v in record.items():
        arr = np.asarray(v, dtype=object)
        if arr.dtype == object:
            try:
                arr = np.asarray(v, dtype=np.float64)
            except (TypeError, ValueError):
                continue
        if arr.size and not np.all(np.isfinite(arr.astype(np.float64))):
            raise FloatingPointError(f"{name}: metric {k!r} is not finite in chunk {record['chunk']}")


class _progress:
    """A tqdm bar over chunks showing the mean of the first curve."""

    def __init__(self, total: int, done: int, name: str, enabled: bool):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=done, desc=name, unit="chunk")

    def update(self, record: dict, curves: Sequence[str]) -> None:
        if self._bar is None:
            return
        post = {}
        for name in list(curves)[:2]:
            if name in record:
                post[name] = f"{np.mean(record[name]):.3g}"
        self._bar.set_postfix(post)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def seed_std(x: Any, axis: int | None = None) -> Any:
    """The standard deviation across seeds used by every summary, plot band and standard error:
    the sample std (ddof=1); 0 for a single seed."""
    x = np.asarray(x, np.float64)
    n = x.size if axis is None else x.shape[axis]
    if n < 2:
        return 0.0 if axis is None else np.zeros(np.delete(x.shape, axis))
    out = np.std(x, axis=axis, ddof=1)
    return float(out) if axis is None else out


def mean_and_std(records: list[dict], name: str, last: int = 1) -> tuple[float, float]:
    """Mean over seeds (and :func:`seed_std` across seeds) of metric ``name`` averaged over the
    ``last`` chunks."""
    per_seed = np.mean([np.asarray(r[name], np.float64) for r in records[-last:]], axis=0)
    return float(np.mean(per_seed)), seed_std(per_seed)
