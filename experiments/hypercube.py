"""Teachers on the hypercube toy student (Portelas et al. 2019; ``flowersteam/teachDeepRL``, ``teachDRL/toy_env``).

``python -m experiments.hypercube --teachers alp_gmm --dims 2 --cubes 10 --episodes 20000 --seeds 32``
(several teachers, or ``--teachers all`` for random, alp_gmm, covar_gmm, riac and oracle, run one after
another, each in ``RUN_DIR/<teacher>``, then ``RUN_DIR/plots/mastered_pct.png`` and a combined
``RUN_DIR/summary.json`` with the differences to the first teacher: :func:`experiments.runner.run_many`;
a single teacher runs into ``RUN_DIR`` itself). Teacher options are fields of the config
(``--alp-gmm.fit-rate 125``); the Oracle's defaults here are the hypercube's own
(:data:`HYPERCUBE_ORACLE`).

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
``fit_rate`` (250, or ``--alp-gmm.fit-rate``), oracle its ``check_every`` (50), riac 1. Another batch
runs with a warning when it breaks exactness (and is refused when it cannot run at all, e.g. more than
``fit_rate`` for a GMM teacher).

Logged per chunk (default one chunk per 1000 episodes): ``mastered_pct`` (per seed), ``explored_pct``
(% of cubes with competence > 0), ``mean_score`` (mean teacher reward of the chunk's episodes) and, for
2-D grids of at most 400 cubes, ``task_hist`` (episodes per cube, summed over seeds).
``summary.json``: ``mastered_pct`` / ``mastered_pct_std`` / ``mastered_pct_median`` (final, across
seeds), ``ceiling_pct`` (best possible at this budget), ``episodes_per_s`` (all seeds together).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from algos.loops import masked_scan
from envs import hypercube as hc
from experiments import plotting
from experiments.runner import Job, RunConfig, cli, mean_and_std, run_many
from teachers.base import Teacher
from teachers.oracle import OracleConfig, hypercube_oracle_config
from teachers.registry import (
    TEACHERS,
    TeacherOptions,
    make_teacher,
    teacher_config_class,
    teacher_names,
    teacher_options,
    unused_teacher_options,
)

ALL_TEACHERS = tuple(TEACHERS)
LOG_EVERY = 1000  # episodes per chunk when --chunks is not given
MAX_HIST_CUBES = 400  # task_hist is logged for 2-D grids up to this many cubes
# The Oracle's window on the hypercube (curriculax's own, see teachers.oracle.hypercube_oracle_config):
# one cube wide and moving one cube per passed block of 50 episodes, in raster order. The fields
# left None take the grid's values when a run is resolved (they depend on --dims / --cubes /
# --useless-dims): window_fraction 1/cubes on used dims and 1 on useless ones, window_start the
# origin, step 1/cubes on used dims and 0 on useless ones.
HYPERCUBE_ORACLE = OracleConfig(
    window_fraction=None, window_start=None, step=None, check_every=50, threshold=0.75, path="sweep"
)
_GRID_FIELDS = ("window_fraction", "window_start", "step")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig, TeacherOptions):
    teachers: tuple[str, ...] = ("alp_gmm",)
    """random, alp_gmm, covar_gmm, riac, oracle (several: one after another), or all"""
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
    oracle: OracleConfig = HYPERCUBE_ORACLE
    """the Oracle on the hypercube; window fields left None: one cube of the grid"""

    def quick_version(self) -> Config:
        return dataclasses.replace(self, seeds=2, episodes=2000, chunks=4)

    def hypercube_config(self) -> hc.HypercubeConfig:
        return hc.HypercubeConfig(nb_dims=self.dims, nb_cubes=self.cubes, useless_dims=self.useless_dims)

    def teacher_config(self, name: str):
        """The options teacher ``name`` runs with (None for a teacher without options)."""
        return hypercube_teacher_config(name, self.hypercube_config(), teacher_options(self, name))

    def validate(self) -> None:
        """Host-side checks with clear errors (before anything is compiled)."""
        teachers = teacher_names(self.teachers)
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
        cube_config = self.hypercube_config()  # its own range checks (nb_cubes ** nb_dims in int32)
        for name in teachers:
            options = self.teacher_config(name)
            batch = self.batch if self.batch is not None else default_batch(name, cube_config, options)
            if self.episodes % batch:
                raise ValueError(
                    f"--episodes ({self.episodes}) must be a multiple of the batch ({batch}"
                    f"{'' if self.batch is not None else f', the default for {name}'})"
                )
            check_batch(name, batch, cube_config, warn=False, options=options)
        RunConfig.validate(dataclasses.replace(self, chunks=self.chunks or 1))

    def resolved(self, teacher: str) -> Config:
        """The config of one teacher's run: ``teachers``, ``batch``, ``chunks`` and the Oracle's
        window filled in."""
        teacher_names([teacher])
        oracle = self.teacher_config("oracle")
        batch = self.batch if self.batch is not None else default_batch(
            teacher, self.hypercube_config(), self.teacher_config(teacher))
        iterations = self.episodes // batch
        if self.chunks is None:
            per_chunk = max(1, LOG_EVERY // batch)
            chunks = max(1, iterations // per_chunk)
        else:
            chunks = self.chunks
        return dataclasses.replace(
            self, teachers=(teacher,), batch=batch, chunks=min(chunks, iterations), oracle=oracle
        )


# ----------------------------------------------------------------------------------------------------
# Teachers and their exact block sizes


def hypercube_teacher_config(name: str, config: hc.HypercubeConfig, options: Any | None = None):
    """The options teacher ``name`` runs with on the ``config`` grid: ``options`` (None: the class
    defaults, :data:`HYPERCUBE_ORACLE` for the Oracle) with the Oracle's window fields that are None
    set to one cube of the grid (:func:`teachers.oracle.hypercube_oracle_config`)."""
    cls = teacher_config_class(name)
    if cls is None:
        return None
    if options is None:
        options = HYPERCUBE_ORACLE if name == "oracle" else cls()
    if name == "oracle":
        grid = hypercube_oracle_config(config)
        options = dataclasses.replace(
            options, **{f: getattr(grid, f) for f in _GRID_FIELDS if getattr(options, f) is None}
        )
    return options


def default_batch(name: str, config: hc.HypercubeConfig, options: Any | None = None) -> int:
    """The largest block of episodes that keeps teacher ``name`` (with ``options``, None: the
    hypercube's defaults) exact (see the module docstring)."""
    teacher_names([name])
    options = hypercube_teacher_config(name, config, options)
    if name in ("alp_gmm", "covar_gmm"):
        return int(options.fit_rate)
    if name == "oracle":
        return int(options.check_every)
    if name == "riac":
        return 1
    return 250


def check_batch(
    name: str, batch: int, config: hc.HypercubeConfig, warn: bool = True, options: Any | None = None
) -> str | None:
    """Whether ``batch`` keeps teacher ``name`` (with ``options``, None: the hypercube's defaults)
    equivalent to one episode at a time.

    Returns None when it does, else the reason (also issued as a warning with ``warn=True``).
    Raises ``ValueError`` when the teacher cannot run with it at all.
    """
    reason = None
    defaults = hypercube_teacher_config(name, config, options)
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


def build_teacher(
    name: str, config: hc.HypercubeConfig, options: Any | None = None, episodes: int | None = None
) -> Teacher:
    """Teacher ``name`` over the grid's task space with ``options`` (None: the hypercube's defaults),
    sized to a run of ``episodes`` (ALP-GMM keeps its whole history, as the reference)."""
    return make_teacher(name, hc.task_space(config), hypercube_teacher_config(name, config, options),
                        max_episodes=episodes)


def logs_task_hist(config: hc.HypercubeConfig) -> bool:
    return config.nb_dims == 2 and config.num_cubes <= MAX_HIST_CUBES


def make_seed_fns(teacher: Teacher, config: hc.HypercubeConfig, batch: int):
    """Per-seed ``init(key) -> SeedState`` and ``chunk(state, num_iterations, active=None) ->
    (state, metrics)`` (the runner's protocol: only the first ``active`` iterations run).

    One iteration = ``batch`` episodes (sample -> run_episodes -> update). ``metrics`` hold a leading
    axis of length 1 (one value per chunk: mastered / explored % at its end, mean score and task
    histogram over its active episodes): the job says ``metrics_per_chunk``.
    """
    mask = jnp.ones((batch,), bool)
    with_hist = logs_task_hist(config)

    def init(key: jax.Array) -> SeedState:
        k_teacher, k_loop = jax.random.split(key)
        return SeedState(teacher=teacher.init(k_teacher), cube=hc.init(config), key=k_loop)

    def chunk(state: SeedState, num_iterations: int, active: jax.Array | None = None):
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
        (tstate, cube, key, score_sum, hist), _ = masked_scan(body, carry, num_iterations, active)
        episodes = batch * (num_iterations if active is None else active)
        metrics = {
            "mastered_pct": hc.mastered_pct(config, cube)[None],
            "explored_pct": (100.0 * jnp.mean((cube.competence > 0).astype(jnp.float32)))[None],
            "mean_score": (score_sum / episodes)[None],
        }
        if with_hist:
            metrics["task_hist"] = hist[None]
        return SeedState(teacher=tstate, cube=cube, key=key), metrics

    return init, chunk


def make_job(config: Config, experiment: str) -> Job:
    """The runner job ``<experiment>/<teacher>`` of one teacher (``config`` resolved: one teacher,
    batch, chunks and the Oracle's window set)."""
    (name,), batch = config.teachers, int(config.batch)
    cube_config = config.hypercube_config()
    options = config.teacher_config(name)
    check_batch(name, batch, cube_config, warn=True, options=options)
    teacher = build_teacher(name, cube_config, options, episodes=config.episodes)
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
        name=f"{experiment}/{name}",
        init=init,
        chunk=chunk,
        iterations=config.episodes // batch,
        steps_per_iteration=batch,
        reduce=reduce,
        summarise=summarise,
        curves=("mastered_pct", "explored_pct", "mean_score"),
        extra_plots=extra_plots,
        step_unit="episodes",
        metrics_per_chunk=True,
        unused=unused_teacher_options([name]),
    )


# ----------------------------------------------------------------------------------------------------
# main


def main(config: Config) -> dict:
    """Run every teacher of ``config.teachers`` (:func:`experiments.runner.run_many`)."""
    config.validate()
    name = f"hypercube {config.dims}d{config.cubes}" + (
        f"+{config.useless_dims}u" if config.useless_dims else "")
    resolved = [config.resolved(t) for t in teacher_names(config.teachers)]
    runs = [(c.teachers[0], make_job(c, name), c) for c in resolved]
    return run_many(name, runs, config, metric="mastered_pct")


if __name__ == "__main__":
    cli(Config, main, sys.argv[1:])
