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

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from algos.evaluation import evaluate_tasks
from algos.ppo import Trainer
from experiments import plotting
from experiments.runner import Job, mean_and_std


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
    return out


def ppo_job(
    name: str,
    trainer: Trainer,
    test_tasks: np.ndarray | None = None,
    episodes_per_task: int = 4,
    *,
    unused: Sequence[str] = (),
) -> Job:
    """A runner job for ``trainer``; with ``test_tasks [m, d]`` also the mastery of that set after
    every chunk: a task is mastered when its mean score over ``episodes_per_task`` greedy episodes
    (different initial states) reaches the environment's ``mastery_score``.

    ``unused``: dotted config fields the run does not use (:attr:`Job.unused`); the PPO fields the
    trainer ignored (``Trainer.unused_config``, e.g. the MLP's under a custom ``policy=``) are added
    as ``ppo.<field>`` of the experiment's ``ppo: PPOConfig``.
    """
    config = trainer.config
    task_env = trainer.task_env
    evaluate = None
    curves = ["episodic_return", "score"]
    if test_tasks is not None:
        test_tasks = jnp.asarray(task_env.task_space.validate(test_tasks, "test_tasks"), jnp.float32)

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

    def summarise(records, final_state):
        ret, ret_std = mean_and_std(records, "episodic_return")
        # POPGym's MMER: per seed, the max over updates of the update's mean episodic return
        mmer = np.max([np.asarray(r["best_update_return"], np.float64) for r in records], axis=0)
        summary = {"final_return": ret, "final_return_std": ret_std,
                   "mmer": float(mmer.mean()), "mmer_std": float(mmer.std())}
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
        plotting.plot_task_maps(
            f"{plots_dir}/task_distribution.png",
            [records[i]["task_hist"] for i in picks],
            [f"{records[i]['env_steps'] / 1e3:.0f}k steps" for i in picks],
            (space.low[0], space.high[0], *second),
            (space.names[0], space.names[1] if space.dim > 1 else ""),
        )

    return Job(
        name=name,
        init=trainer.init,
        chunk=trainer.train_chunk,  # (state, num_updates, active)
        iterations=config.num_updates,
        steps_per_iteration=config.steps_per_update,
        reduce=_reduce,
        summarise=summarise,
        curves=curves,
        evaluate=evaluate,
        extra_plots=extra_plots,
        unused=(*unused, *(f"ppo.{f}" for f in trainer.unused_config)),
    )
