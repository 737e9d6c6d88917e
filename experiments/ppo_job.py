"""Turns a PPO :class:`~algos.ppo.Trainer` into a runner :class:`~experiments.runner.Job`.

Shared by every PPO experiment: per-chunk metrics (mean episodic return and score of the episodes
that finished, losses, the histogram of tasks the teacher handed out), optional evaluation on a fixed
test set of tasks (mastery = score >= the environment's ``mastery_score``), and the summary keys
``final_return`` / ``final_return_std``, ``mmer`` / ``mmer_std`` (POPGym's max-mean episodic return:
per seed the best update's mean return, then mean and std across seeds) (and ``mastered_pct`` / ``mastered_pct_std`` with a test set).
The job's chunk is ``trainer.train_chunk(state, num_updates, active)``: a chunk plan of uneven chunks
compiles once (see :class:`experiments.runner.Job`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algos.evaluation import evaluate_tasks
from algos.ppo import PPOHyperparams, Trainer
from experiments import plotting
from experiments.runner import Job, mean_and_std, seed_std


def best_update_return(metrics: dict) -> np.ndarray:
    """Per seed, the highest mean episodic return of one update's finished episodes in this chunk
    (updates where no episode finished are skipped; a chunk without any falls back to 0)."""
    per_update = metrics["return_sum"] / np.maximum(metrics["episodes"], 1)  # [S, K]
    masked = np.where(metrics["episodes"] > 0, per_update, -np.inf).max(axis=1)
    return np.where(np.isfinite(masked), masked, 0.0)


def _reduce(metrics: dict) -> dict:
    episodes = metrics["episodes"].sum(axis=1)  # [S]
    out = {
        "episodic_return": metrics["return_sum"].sum(axis=1) / np.maximum(episodes, 1),
        "best_update_return": best_update_return(metrics),
        "score": metrics["score_sum"].sum(axis=1) / np.maximum(episodes, 1),
        "episode_length": metrics["length_sum"].sum(axis=1) / np.maximum(episodes, 1),
        "episodes": episodes,
        # summed over seeds and iterations: the distribution of tasks handed out in this chunk
        "task_hist": metrics["task_hist"].sum(axis=(0, 1)),
    }
    for name, value in metrics.items():
        if name.startswith("loss/"):
            out[name] = value.mean(axis=1)
        elif name.startswith("teacher/"):  # running counts: the value after the chunk's last update
            out[name] = value[:, -1]
    return out


def ppo_job(
    name: str,
    trainer: Trainer,
    test_tasks: np.ndarray | None = None,
    episodes_per_task: int = 4,
    *,
    unused: Sequence[str] = (),
    record: dict | None = None,
) -> Job:
    """A runner job for ``trainer``; with ``test_tasks [m, d]`` also the mastery of that set after
    every chunk: a task is mastered when its mean score over ``episodes_per_task`` greedy episodes
    (different initial states) reaches the environment's ``mastery_score``.

    ``unused``: dotted config fields the run does not use (:attr:`Job.unused`); the PPO fields the
    trainer ignored (``Trainer.unused_config``, e.g. the MLP's under a custom ``policy=``) are added
    as ``ppo.<field>`` of the experiment's ``ppo: PPOConfig``. ``record``: more for ``config.json``
    (:attr:`Job.record`, e.g. how to rebuild the environment).
    """
    config = trainer.config
    task_env = trainer.task_env
    evaluate = None
    curves = ["episodic_return", "score"]
    if test_tasks is not None:
        test_tasks = jnp.asarray(task_env.task_space.validate(test_tasks, "test_tasks"), jnp.float32)
        if test_tasks.shape[0] < 1 or episodes_per_task < 1:
            raise ValueError(f"{name}: the test set needs >= 1 task and episodes_per_task >= 1, got "
                             f"{test_tasks.shape[0]} tasks x {episodes_per_task}")

        def evaluate(state):
            key = jax.random.fold_in(state.key, 7)
            returns, scores = evaluate_tasks(
                trainer.policy, state.train_state.params, task_env, test_tasks, key,
                episodes_per_task=episodes_per_task,
            )
            return {
                "test_return": returns.mean(),
                "mastered_pct": 100.0 * (scores >= task_env.mastery_score).mean(),
            }

        curves = ["mastered_pct", "episodic_return", "score", "test_return"]
    training = "training episodes, on the teacher's tasks"
    score_range = (0.0, 1.0) if task_env.return_range is not None else None
    curve_meta = {
        "episodic_return": (f"episodic return ({training})", None),
        "score": (f"score in [0, 1] ({training})" if score_range else f"score = return ({training})",
                  score_range),
        "mastered_pct": (f"% of the {0 if test_tasks is None else len(test_tasks)} test tasks mastered "
                         f"(score >= {task_env.mastery_score:g}, greedy)", (0.0, 100.0)),
        "test_return": ("episodic return on the test tasks (greedy)", None),
    }
    teacher = trainer.teacher.name
    experiment = name.split("/")[0].split()[0]  # "curriculum_ppo stump_track/alp_gmm" -> curriculum_ppo
    plot_title = f"{experiment}: {task_env.name}, teacher {teacher}" if teacher != "fixed" else \
        f"{experiment}: {task_env.name} (default task)"

    def reduce(metrics):
        out = _reduce(metrics)
        if task_env.return_range is not None and not warned:
            lo, hi = task_env.return_range
            mean = float(np.max(out["episodic_return"]))
            if mean > hi + 1e-6 * max(1.0, abs(hi)):
                warned.append(True)
                warnings.warn(f"{task_env.name}: the mean episodic return of a chunk ({mean:.4g}) lies above "
                              f"return_range {task_env.return_range}: the range cannot contain the returns "
                              "and scores saturate at 1", RuntimeWarning, stacklevel=2)
        return out

    warned: list = []

    def summarise(records, final_state):
        ret, ret_std = mean_and_std(records, "episodic_return")
        # POPGym's MMER: per seed, the max over updates of the update's mean episodic return
        mmer = np.max([np.asarray(r["best_update_return"], np.float64) for r in records], axis=0)
        summary = {"final_return": ret, "final_return_std": ret_std,
                   "mmer": float(mmer.mean()), "mmer_std": seed_std(mmer)}
        if test_tasks is not None:
            m, s = mean_and_std(records, "mastered_pct")
            summary.update(mastered_pct=m, mastered_pct_std=s)
            summary["test_return"] = mean_and_std(records, "test_return")[0]
        return summary

    def extra_plots(plots_dir, records):
        space = task_env.task_space
        if space.dim > 2 or space.names == ("none",):
            return
        picks = sorted({0, len(records) // 3, 2 * len(records) // 3, len(records) - 1})
        second = (space.low[1], space.high[1]) if space.dim > 1 else (0.0, 1.0)
        seeds = len(np.asarray(records[-1]["episodic_return"]).reshape(-1))
        plotting.plot_task_maps(
            f"{plots_dir}/task_distribution.png",
            [records[i]["task_hist"] for i in picks],
            [f"chunk {i}, {records[i]['env_steps'] / 1e3:.0f}k steps" for i in picks],
            (space.low[0], space.high[0], *second),
            (space.names[0], space.names[1] if space.dim > 1 else ""),
            f"{task_env.name}: tasks the {teacher} teacher handed out in each chunk, pooled over "
            f"{seeds} seeds",
        )

    return Job(
        name=name,
        init=trainer.init,
        chunk=trainer.train_chunk,  # (state, num_updates, active)
        iterations=config.num_updates,
        steps_per_iteration=config.steps_per_update,
        reduce=reduce,
        summarise=summarise,
        curves=curves,
        evaluate=evaluate,
        extra_plots=extra_plots,
        unused=(*unused, *(f"ppo.{f}" for f in trainer.unused_config)),
        record=record,
        trainer=trainer,
        hyperparams=functools.partial(PPOHyperparams.from_config, trainer.config),
        plot_title=plot_title,
        curve_meta=curve_meta,
    )
