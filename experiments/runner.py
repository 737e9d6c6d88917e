"""The experiment runner shared by every ``experiments/<name>.py``.

An experiment describes a :class:`Job` (per-seed ``init``, per-seed ``chunk`` of K iterations, how to
reduce a chunk's metrics, what to evaluate, what to summarise); :func:`run` does the rest:

* one ``jax.jit(jax.vmap(...))`` over seeds, the seed axis sharded over the available devices;
* a host loop over chunks with a progress bar, ``metrics.jsonl`` (one object per chunk: chunk,
  iteration, env steps, wall time, per-seed values), orbax checkpoints after every chunk;
* ``--resume`` restores the latest checkpoint and cuts ``metrics.jsonl`` back to it, so the finished
  run equals an uninterrupted one;
* ``config.json`` (resolved config, library versions, git revision), ``summary.json`` (flat
  ``name: number``) and ``plots/*.png`` (mean with a band of one standard deviation across seeds).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib import metadata
from typing import Any, NamedTuple, TypeVar

import jax
import numpy as np
import tyro
from jax.sharding import NamedSharding, PartitionSpec

from experiments import plotting
from experiments.checkpoints import Checkpointer


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
    shard_seeds: bool = True
    """shard the seed axis over all local devices when it divides evenly"""

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


class Job(NamedTuple):
    """What an experiment hands to :func:`run`. Functions are per seed unless said otherwise.

    Attributes:
      name: experiment name.
      init: ``key -> state``.
      chunk: ``(state, num_iterations) -> (state, metrics)``, metrics with a leading iteration axis.
      iterations: iterations in the whole run (PPO updates, episode blocks, ...).
      steps_per_iteration: environment steps (or episodes) per iteration and seed.
      reduce: host side, ``metrics [S, K, ...] -> {name: value}``; values of shape ``[S]`` are
        per-seed curves (plotted when named in ``curves``), anything else is stored as-is.
      evaluate: optional per-seed ``state -> {name: scalar}`` run after every chunk.
      summarise: host side, ``(records, final_state) -> {name: number}`` for ``summary.json``.
      curves: metric names to plot against steps with a band across seeds.
      extra_plots: optional ``(plots_dir, records) -> None`` for experiment-specific figures.
      step_unit: label of the x axis.
    """

    name: str
    init: Callable[[jax.Array], Any]
    chunk: Callable[[Any, int], tuple[Any, dict]]
    iterations: int
    steps_per_iteration: int
    reduce: Callable[[dict], dict]
    summarise: Callable[[list[dict], Any], dict]
    curves: Sequence[str] = ()
    evaluate: Callable[[Any], dict] | None = None
    extra_plots: Callable[[str, list[dict]], None] | None = None
    step_unit: str = "env_steps"


C = TypeVar("C", bound=RunConfig)


def parse_config(config_cls: type[C], argv: Sequence[str] | None = None) -> C:
    """CLI derived from the config dataclass (tyro); ``--quick`` switches the defaults."""
    argv = list(sys.argv[1:] if argv is None else argv)
    default = config_cls()
    if "--quick" in argv:
        default = default.quick_version()
    config = tyro.cli(config_cls, default=default, args=argv)
    config.validate()
    return config


def seed_keys(config: RunConfig) -> jax.Array:
    base = jax.random.PRNGKey(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(config.seeds))


def seed_sharding(num_seeds: int, enabled: bool = True) -> NamedSharding | None:
    """Shard a leading seed axis over all local devices (None when there is one device or the
    seed count does not divide evenly)."""
    n = jax.local_device_count()
    if not enabled or n == 1 or num_seeds % n:
        return None
    # Auto axes: XLA propagates the seed sharding through the vmapped program.
    mesh = jax.make_mesh((n,), ("seeds",), axis_types=(jax.sharding.AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec("seeds"))


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
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(_to_json(obj), f, indent=2, sort_keys=False)
    os.replace(tmp, path)


def _chunk_plan(iterations: int, chunks: int) -> list[int]:
    """Iterations per chunk: equal chunks, with the remainder in the last one."""
    chunks = min(chunks, iterations)
    size = iterations // chunks
    plan = [size] * chunks
    plan[-1] += iterations - size * chunks
    return plan


def run(job: Job, config: RunConfig, *, verbose: bool = True) -> dict:
    """Run (or resume) ``job`` for ``config.seeds`` seeds; returns the summary dict."""
    config.validate()
    if job.iterations < 1:
        raise ValueError(f"{job.name}: the run has no iterations")
    run_dir = config.run_dir or os.path.join("runs", f"{job.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
    config_path = os.path.join(run_dir, "config.json")
    metrics_path = os.path.join(run_dir, "metrics.jsonl")
    resolved = {"experiment": job.name, "config": dataclasses.asdict(config)}

    if config.resume:
        if not os.path.exists(config_path):
            raise FileNotFoundError(f"--resume: no config.json in {run_dir}")
        with open(config_path) as f:
            saved = json.load(f)
        ignore = {"resume", "progress", "run_dir"}
        old = {k: v for k, v in saved["config"].items() if k not in ignore}
        new = {k: v for k, v in _to_json(resolved["config"]).items() if k not in ignore}
        if old != new:
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"--resume: config differs from the saved run in {diff}")
    else:
        if os.path.exists(metrics_path) and os.path.getsize(metrics_path) > 0:
            raise FileExistsError(f"{run_dir} already holds a run; use --resume or a new --run-dir")
        _write_json(config_path, {**resolved, **run_metadata()})

    plan = _chunk_plan(job.iterations, config.chunks)
    sharding = seed_sharding(config.seeds, config.shard_seeds)
    keys = seed_keys(config)
    if sharding is not None:
        keys = jax.device_put(keys, sharding)
    # Every leaf of the state and of the metrics has the seed axis first: pin it to the seed
    # sharding so that each chunk's output matches the input sharding it was compiled for.
    shard_out = {} if sharding is None else {"out_shardings": sharding}
    state = jax.jit(jax.vmap(job.init), **shard_out)(keys)

    checkpointer = Checkpointer(os.path.join(run_dir, "checkpoints"))
    start_chunk, records = 0, []
    if config.resume:
        step = checkpointer.latest_step()
        if step is not None:
            state, meta = checkpointer.restore(step, state)
            start_chunk = int(meta["chunks_done"])
            records = [r for r in read_records(metrics_path) if r["chunk"] < start_chunk]
            if len(records) != start_chunk:
                raise RuntimeError(f"--resume: metrics.jsonl has {len(records)} of {start_chunk} chunks")
        with open(metrics_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    compiled: dict[int, Any] = {}
    evaluate = jax.jit(jax.vmap(job.evaluate)) if job.evaluate is not None else None
    compile_time = 0.0
    wall = records[-1]["wall_time_s"] if records else 0.0
    run_time = records[-1].get("run_time_s", 0.0) if records else 0.0
    iterations_done = sum(plan[:start_chunk])
    bar = _progress(len(plan), start_chunk, job.name, config.progress and verbose)
    for c in range(start_chunk, len(plan)):
        t0 = time.perf_counter()
        size = plan[c]
        if size not in compiled:
            fn = jax.jit(jax.vmap(partial(job.chunk, num_iterations=size)), **shard_out)
            compiled[size] = fn.lower(state).compile()
            compile_time += time.perf_counter() - t0
        t1 = time.perf_counter()
        state, metrics = compiled[size](state)
        metrics = jax.device_get(metrics)
        run_time += time.perf_counter() - t1
        iterations_done += size
        record = {
            "chunk": c,
            "iteration": iterations_done,
            "env_steps": iterations_done * job.steps_per_iteration,
            **job.reduce(metrics),
        }
        if evaluate is not None:
            record.update(jax.device_get(evaluate(state)))
        wall += time.perf_counter() - t0
        record["wall_time_s"] = wall
        record["run_time_s"] = run_time
        record = _to_json(record)
        _check_finite(record, job.name)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        records.append(record)
        checkpointer.save(c + 1, state, {"chunks_done": c + 1})
        bar.update(record, job.curves)
    bar.close()
    checkpointer.close()

    summary = dict(job.summarise(records, state))
    total_steps = job.iterations * job.steps_per_iteration * config.seeds
    summary.setdefault("seeds", config.seeds)
    summary["wall_time_s"] = wall
    summary["compile_time_s"] = compile_time
    rate_key = "steps_per_s" if job.step_unit == "env_steps" else f"{job.step_unit}_per_s"
    summary[rate_key] = total_steps / max(run_time, 1e-9)
    summary = {k: (float(v) if isinstance(v, (int, float, np.number)) else v) for k, v in summary.items()}
    _write_json(os.path.join(run_dir, "summary.json"), summary)
    plotting.plot_curves(os.path.join(run_dir, "plots"), records, job.curves, job.step_unit, job.name)
    if job.extra_plots is not None:
        job.extra_plots(os.path.join(run_dir, "plots"), records)
    if verbose:
        print(f"run folder: {run_dir}")
        print(json.dumps(summary, indent=2))
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


def mean_and_std(records: list[dict], name: str, last: int = 1) -> tuple[float, float]:
    """Mean over seeds (and std across seeds) of metric ``name`` averaged over the ``last`` chunks."""
    per_seed = np.mean([np.asarray(r[name], np.float64) for r in records[-last:]], axis=0)
    return float(np.mean(per_seed)), float(np.std(per_seed))

