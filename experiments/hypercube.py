"""Teachers on the hypercube toy student (Portelas et al. 2019; ``shared/references/teachers.md`` §4).

``python -m experiments.hypercube --teacher alp_gmm --dims 2 --cubes 10 --episodes 20000 --seeds 32``
(``--teacher all`` runs random, alp_gmm, covar_gmm, riac and oracle one after another, each in
``RUN_DIR/<teacher>``, then writes ``RUN_DIR/plots/mastered_pct_all.png`` and a combined
``RUN_DIR/summary.json``).

Per seed the state is ``(teacher state, hypercube state, key)``; one iteration is a block of ``batch``
episodes: ``teacher.sample(state, key, batch)`` -> :func:`envs.hypercube.run_episodes` (the episodes
run one after another) -> ``teacher.update(tasks, scores, mask=all True)``.

The reference teachers see one episode at a time (sample, run, update). A block of ``batch`` episodes
is exactly equivalent when the teacher cannot change its sampling distribution inside the block:

* Random: any batch (it ignores scores);
* ALP-GMM / Covar-GMM: ``batch`` divides ``fit_rate`` (and ALP-GMM's ``n_bootstrap``): the mixture only
  changes at refits, and the batched ALP computation equals the sequential one;
* Oracle: ``batch`` divides ``check_every`` (50): the window only moves at the end of a block;
* RIAC: ``batch = 1``: its regions change after every episode.

``batch=None`` (default) picks the largest exact block: random 250, alp_gmm / covar_gmm their
``fit_rate`` (250), oracle its ``check_every`` (50), riac 1. Another batch runs with a warning when it
breaks exactness (and is refused when it cannot run at all, e.g. more than ``fit_rate`` for a GMM teacher).

Logged per chunk (default one chunk per 1000 episodes): ``mastered_pct`` (per seed), ``explored_pct``
(% of cubes with competence > 0), ``mean_score`` (mean teacher reward of the chunk's episodes) and, for
2-D grids of at most 400 cubes, ``task_hist`` (episodes per cube, summed over seeds).
``summary.json``: ``mastered_pct`` / ``mastered_pct_std`` / ``mastered_pct_median`` (final, across
seeds), ``ceiling_pct`` (best possible at this budget), ``episodes_per_s`` (all seeds together).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs import hypercube as hc
from experiments import plotting
from experiments.runner import Job, RunConfig, mean_and_std, parse_config, read_records, run, run_metadata
from teachers.base import Teacher
from teachers.registry import TEACHERS, make_teacher, teacher_config_class

ALL_TEACHERS = ("random", "alp_gmm", "covar_gmm", "riac", "oracle")
LOG_EVERY = 1000  # episodes per chunk when --chunks is not given
MAX_HIST_CUBES = 400  # task_hist is logged for 2-D grids up to this many cubes


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    teacher: str = "alp_gmm"
    """random, alp_gmm, covar_gmm, riac, oracle, or all (each one after another)"""
    dims: int = 2
    """used dimensions of the hypercube"""
    cubes: int = 10
    """cubes (bins) per used dimension"""
    useless_dims: int = 0
    """extra task dimensions the student ignores"""
    episodes: int = 20_000
    """episodes per seed"""
    batch: int | None = None
    """episodes per teacher sample/update call (None: the largest exact block for the teacher)"""
    chunks: int | None = None  # type: ignore[assignment]
    """jitted chunks, one log line each (None: one per 1000 episodes)"""

    def quick_version(self) -> Config:
        return dataclasses.replace(self, seeds=2, episodes=2000, chunks=4)

    def hypercube_config(self) -> hc.HypercubeConfig:
        return hc.HypercubeConfig(nb_dims=self.dims, nb_cubes=self.cubes, useless_dims=self.useless_dims)

    def teachers(self) -> tuple[str, ...]:
        return ALL_TEACHERS if self.teacher == "all" else (self.teacher,)

    def validate(self) -> None:
        """Host-side checks with clear errors (before anything is compiled)."""
        if self.teacher != "all" and self.teacher not in TEACHERS:
            raise ValueError(f"unknown teacher {self.teacher!r}; known: {sorted(TEACHERS)} or 'all'")
        if self.dims < 1:
            raise ValueError(f"--dims must be >= 1, got {self.dims}")
        if self.cubes < 1:
            raise ValueError(f"--cubes must be >= 1, got {self.cubes}")
        if self.useless_dims < 0:
            raise ValueError(f"--useless-dims must be >= 0, got {self.useless_dims}")
        if self.episodes < 1:
            raise ValueError(f"--episodes must be >= 1, got {self.episodes}")
        if self.batch is not None and self.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {self.batch}")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError(f"--chunks must be >= 1, got {self.chunks}")
        self.hypercube_config()  # its own range checks (e.g. nb_cubes ** nb_dims fits in int32)
        for name in self.teachers():
            batch = self.batch if self.batch is not None else default_batch(name, self.hypercube_config())
            if self.episodes % batch:
                raise ValueError(
                    f"--episodes ({self.episodes}) must be a multiple of the batch ({batch}"
                    f"{'' if self.batch is not None else f', the default for {name}'})"
                )
            check_batch(name, batch, self.hypercube_config(), warn=False)
        RunConfig.validate(dataclasses.replace(self, chunks=self.chunks or 1))

    def resolved(self, teacher: str | None = None) -> Config:
        """The config of one teacher's run: ``teacher``, ``batch`` and ``chunks`` filled in."""
        teacher = teacher or self.teacher
        if teacher == "all":
            raise ValueError("resolved() needs one teacher")
        batch = self.batch if self.batch is not None else default_batch(teacher, self.hypercube_config())
        iterations = self.episodes // batch
        if self.chunks is None:
            per_chunk = max(1, LOG_EVERY // batch)
            chunks = max(1, iterations // per_chunk)
        else:
            chunks = self.chunks
        return dataclasses.replace(self, teacher=teacher, batch=batch, chunks=min(chunks, iterations))


# ----------------------------------------------------------------------------------------------------
# Teachers and their exact block sizes


def teacher_options(name: str, config: hc.HypercubeConfig) -> dict[str, Any]:
    """Options given to ``make_teacher`` on the hypercube (TDRL defaults; the Oracle's own settings)."""
    if name == "oracle":
        from teachers.oracle import hypercube_oracle_config

        return dataclasses.asdict(hypercube_oracle_config(config))
    return {}


def _teacher_defaults(name: str, config: hc.HypercubeConfig):
    cls = teacher_config_class(name)
    return None if cls is None else cls(**teacher_options(name, config))


def default_batch(name: str, config: hc.HypercubeConfig) -> int:
    """The largest block of episodes that keeps teacher ``name`` exact (see the module docstring)."""
    if name not in TEACHERS:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}")
    if name in ("alp_gmm", "covar_gmm"):
        return int(_teacher_defaults(name, config).fit_rate)
    if name == "oracle":
        return int(_teacher_defaults(name, config).check_every)
    if name == "riac":
        return 1
    return 250


def check_batch(name: str, batch: int, config: hc.HypercubeConfig, warn: bool = True) -> str | None:
    """Whether ``batch`` keeps teacher ``name`` equivalent to one episode at a time.

    Returns None when it does, else the reason (also issued as a warning with ``warn=True``).
    Raises ``ValueError`` when the teacher cannot run with it at all.
    """
    reason = None
    defaults = _teacher_defaults(name, config)
    if name in ("alp_gmm", "covar_gmm"):
        fit_rate = int(defaults.fit_rate)
        if batch > fit_rate:
            raise ValueError(
                f"{name}: --batch {batch} exceeds fit_rate {fit_rate}; its fit window (a ring of "
                f"2 x fit_rate rows) would be overwritten inside one update"
            )
        bootstrap = int(getattr(defaults, "bootstrap", fit_rate))
        if fit_rate % batch or (bootstrap and bootstrap % batch):
            reason = (
                f"{name}: --batch {batch} does not divide fit_rate {fit_rate}"
                + (f" / n_bootstrap {bootstrap}" if bootstrap != fit_rate else "")
                + ": a refit can happen inside a block, whose later tasks then come from the old "
                "mixture (not equivalent to one episode at a time)"
            )
    elif name == "oracle":
        every = int(defaults.check_every)
        if every % batch:
            reason = (
                f"oracle: --batch {batch} does not divide check_every {every}: the window can move "
                "inside a block, whose later tasks then come from the old window"
            )
    elif name == "riac":
        if batch != 1:
            reason = (
                f"riac: --batch {batch} > 1: RIAC changes its regions and their ALPs after every "
                "episode, so a block samples from stale regions (exact only with --batch 1)"
            )
    if reason is not None and warn:
        warnings.warn(reason, stacklevel=2)
    return reason


# ----------------------------------------------------------------------------------------------------
# The per-seed functions (shared with benchmarks/teachers.py)


@struct.dataclass
class SeedState:
    teacher: Any  # the teacher's state
    cube: hc.HypercubeState
    key: jax.Array


def build_teacher(name: str, config: hc.HypercubeConfig) -> Teacher:
    return make_teacher(name, hc.task_space(config), **teacher_options(name, config))


def logs_task_hist(config: hc.HypercubeConfig) -> bool:
    return config.nb_dims == 2 and config.num_cubes <= MAX_HIST_CUBES


def make_seed_fns(teacher: Teacher, config: hc.HypercubeConfig, batch: int):
    """Per-seed ``init(key) -> SeedState`` and ``chunk(state, num_iterations) -> (state, metrics)``.

    One iteration = ``batch`` episodes (sample -> run_episodes -> update). ``metrics`` hold a leading
    axis of length 1 (one value per chunk: mastered / explored % at its end, mean score and task
    histogram over its episodes), so the runner's ``[S, K, ...]`` convention holds.
    """
    mask = jnp.ones((batch,), bool)
    with_hist = logs_task_hist(config)

    def init(key: jax.Array) -> SeedState:
        k_teacher, k_loop = jax.random.split(key)
        return SeedState(teacher=teacher.init(k_teacher), cube=hc.init(config), key=k_loop)

    def chunk(state: SeedState, num_iterations: int):
        def body(carry, _):
            tstate, cube, key, score_sum, hist = carry
            key, k_sample = jax.random.split(key)
            tstate, tasks = teacher.sample(tstate, k_sample, batch)
            cube, scores = hc.run_episodes(config, cube, tasks, mask)
            tstate = teacher.update(tstate, tasks, scores, mask)
            score_sum = score_sum + jnp.sum(scores)
            if with_hist:
                hist = hist.at[hc.cube_index(config, tasks)].add(1)
            return (tstate, cube, key, score_sum, hist), None

        hist0 = jnp.zeros((config.num_cubes if with_hist else 1,), jnp.int32)
        carry = (state.teacher, state.cube, state.key, jnp.zeros((), jnp.float32), hist0)
        (tstate, cube, key, score_sum, hist), _ = jax.lax.scan(body, carry, None, length=num_iterations)
        metrics = {
            "mastered_pct": hc.mastered_pct(config, cube)[None],
            "explored_pct": (100.0 * jnp.mean((cube.competence > 0).astype(jnp.float32)))[None],
            "mean_score": (score_sum / (num_iterations * batch))[None],
        }
        if with_hist:
            metrics["task_hist"] = hist[None]
        return SeedState(teacher=tstate, cube=cube, key=key), metrics

    return init, chunk


def make_job(config: Config) -> Job:
    """The runner job of one teacher (``config`` resolved: teacher, batch and chunks set)."""
    name, batch = config.teacher, int(config.batch)
    cube_config = config.hypercube_config()
    check_batch(name, batch, cube_config, warn=True)
    teacher = build_teacher(name, cube_config)
    init, chunk = make_seed_fns(teacher, cube_config, batch)
    with_hist = logs_task_hist(cube_config)
    ceiling = hc.ceiling_pct(cube_config, config.episodes)

    def reduce(metrics: dict) -> dict:
        out = {
            "mastered_pct": metrics["mastered_pct"][:, -1],
            "explored_pct": metrics["explored_pct"][:, -1],
            "mean_score": metrics["mean_score"][:, -1],
        }
        if with_hist:
            out["task_hist"] = metrics["task_hist"].sum(axis=(0, 1)).reshape(config.cubes, config.cubes)
        return out

    def summarise(records: list[dict], final_state) -> dict:
        del final_state
        mean, std = mean_and_std(records, "mastered_pct")
        return {
            "mastered_pct": mean,
            "mastered_pct_std": std,
            "mastered_pct_median": float(np.median(records[-1]["mastered_pct"])),
            "ceiling_pct": ceiling,
            "episodes": config.episodes,
            "batch": batch,
        }

    def extra_plots(plots_dir: str, records: list[dict]) -> None:
        if not with_hist or not records:
            return
        picks = sorted({0, len(records) // 3, 2 * len(records) // 3, len(records) - 1})
        plotting.plot_task_maps(
            os.path.join(plots_dir, "task_distribution.png"),
            [np.asarray(records[i]["task_hist"]) for i in picks],
            [f"{records[i]['env_steps'] / 1e3:g}k episodes" for i in picks],
            (0.0, 1.0, 0.0, 1.0),
            ("x0", "x1"),
        )

    return Job(
        name=f"hypercube {config.dims}d{config.cubes}"
        + (f"+{config.useless_dims}u" if config.useless_dims else "")
        + f" {name}",
        init=init,
        chunk=chunk,
        iterations=config.episodes // batch,
        steps_per_iteration=batch,
        reduce=reduce,
        summarise=summarise,
        curves=("mastered_pct", "explored_pct", "mean_score"),
        extra_plots=extra_plots,
        step_unit="episodes",
    )


# ----------------------------------------------------------------------------------------------------
# main


def _default_run_dir(config: Config) -> str:
    tag = f"{config.dims}d{config.cubes}" + (f"u{config.useless_dims}" if config.useless_dims else "")
    return os.path.join("runs", f"hypercube-{config.teacher}-{tag}-{time.strftime('%Y%m%d-%H%M%S')}")


def run_one(config: Config, verbose: bool = True) -> dict:
    """Run one teacher (``config.teacher`` is not 'all') through the shared runner."""
    resolved = config.resolved()
    if resolved.run_dir is None:
        resolved = dataclasses.replace(resolved, run_dir=_default_run_dir(resolved))
    return run(make_job(resolved), resolved, verbose=verbose)


def main(config: Config) -> dict:
    config.validate()
    if config.teacher != "all":
        return run_one(config)

    run_dir = config.run_dir or _default_run_dir(config)
    os.makedirs(os.path.join(run_dir, "plots"), exist_ok=True)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump({"experiment": "hypercube", "config": dataclasses.asdict(config), **run_metadata()},
                  f, indent=2)
    combined: dict[str, float] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ALL_TEACHERS:
        sub_dir = os.path.join(run_dir, name)
        # --resume: continue the sub-runs that started; start the others afresh.
        resume = config.resume and os.path.exists(os.path.join(sub_dir, "config.json"))
        sub = dataclasses.replace(config, teacher=name, run_dir=sub_dir, resume=resume)
        print(f"== {name} ==", flush=True)
        summary = run_one(sub, verbose=False)
        print(json.dumps({k: summary[k] for k in ("mastered_pct", "mastered_pct_std", "episodes_per_s")}),
              flush=True)
        combined.update({f"{name}/{k}": v for k, v in summary.items()})
        records = read_records(os.path.join(sub_dir, "metrics.jsonl"))
        x = np.asarray([r["env_steps"] for r in records], np.float64)
        y = np.asarray([r["mastered_pct"] for r in records], np.float64)
        curves[name] = (x, y)
    combined["ceiling_pct"] = hc.ceiling_pct(config.hypercube_config(), config.episodes)
    plotting.plot_compare(
        os.path.join(run_dir, "plots", "mastered_pct_all.png"),
        curves,
        "episodes",
        "% mastered cubes",
        f"hypercube {config.dims}d{config.cubes}"
        + (f" + {config.useless_dims} useless dims" if config.useless_dims else "")
        + f", {config.seeds} seeds",
    )
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump(combined, f, indent=2)
    print(f"run folder: {run_dir}")
    width = max(len(n) for n in ALL_TEACHERS)
    for name in ALL_TEACHERS:
        print(f"{name:<{width}}  {combined[f'{name}/mastered_pct']:6.2f} +- "
              f"{combined[f'{name}/mastered_pct_std']:5.2f} %   "
              f"{combined[f'{name}/episodes_per_s']:10.0f} episodes/s")
    return combined


if __name__ == "__main__":
    main(parse_config(Config, sys.argv[1:]))
