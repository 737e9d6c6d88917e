"""Load a run folder and evaluate its policy: the trainer and the final (or any checkpointed) state
rebuilt from ``config.json`` and ``checkpoints/``.

    python -m experiments.evaluate RUN_DIR                          # the run's own test set
    python -m experiments.evaluate RUN_DIR --tasks 1.0,1.0 2.0,1.5  # tasks given as vectors
    python -m experiments.evaluate RUN_DIR --test-tasks 200 --checkpoint 5 --out eval200

A sweep's parent folder evaluates every child. Written to ``RUN_DIR/eval/`` (or ``--out``):
``evaluation.json`` (per task the mean return and score over seeds; per seed the % of tasks mastered,
and its mean and std over seeds) and ``plots/task_scores.png``. From Python::

    from experiments.evaluate import load_run, evaluate_run
    run = load_run("runs/curriculum_demo-...")           # run.trainer, run.state (seeds first), run.step
    out = evaluate_run(run, tasks)                        # returns / scores [seeds, tasks]

A run can be loaded when its experiment module has ``jobs(config) -> [(child, job, child_config)]``
(``ppo_cartpole``, ``curriculum_ppo``, ``curriculum_demo``) and its jobs are PPO jobs
(:func:`experiments.ppo_job.ppo_job`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from algos.evaluation import evaluate_tasks
from experiments import plotting
from experiments.checkpoints import Checkpointer, CheckpointError
from experiments.runner import RunFolderError, _to_json, init_args, read_records, seed_std


class LoadedRun(NamedTuple):
    """A run folder rebuilt: ``state`` has the seed axis first (one entry per seed)."""

    run_dir: str
    config: Any
    job: Any
    trainer: Any
    state: Any
    step: int
    meta: dict
    records: list[dict]
    saved: dict  # config.json


def config_from_record(cls: type, values: dict) -> Any:
    """The config dataclass ``cls`` with the values of a ``config.json`` record (nested dataclasses,
    tuples); fields recorded as null (unused by the run) keep ``cls``'s defaults."""
    default = cls()
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values or values[f.name] is None or not f.init:
            continue
        base, value = getattr(default, f.name), values[f.name]
        if dataclasses.is_dataclass(base) and isinstance(value, dict):
            value = config_from_record(type(base), value)
        elif isinstance(base, tuple) or isinstance(value, list):
            value = _tuples(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def _config_class(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def load_run(run_dir: str, step: int | None = None) -> LoadedRun:
    """Rebuild the trainer of ``run_dir`` and restore checkpoint ``step`` (default: the newest one
    that verifies against its checksums). ``run_dir`` is one run's folder (a sweep's child, or a
    single run); a sweep's parent raises, naming its children."""
    config_path = os.path.join(run_dir, "config.json")
    if not os.path.exists(config_path):
        raise RunFolderError(f"{run_dir} holds no config.json: not a run folder")
    with open(config_path) as f:
        saved = json.load(f)
    if saved.get("children"):
        raise ValueError(f"{run_dir} is a sweep; load one of its children: "
                         + ", ".join(os.path.join(run_dir, c) for c in saved["children"]))
    if "config_class" not in saved:
        raise RunFolderError(f"{config_path} does not record its config class (written by an older "
                             "curriculax); it cannot be rebuilt")
    cls = _config_class(saved["config_class"])
    module = importlib.import_module(cls.__module__)
    if not hasattr(module, "jobs"):
        raise ValueError(f"experiment {cls.__module__} has no jobs(config): its runs cannot be loaded")
    config = dataclasses.replace(config_from_record(cls, saved["config"]), run_dir=run_dir, resume=False,
                                 progress=False)
    runs = module.jobs(config)
    if len(runs) != 1:
        raise ValueError(f"{run_dir}: its config builds {len(runs)} runs, expected one")
    (_, job, child_config), = runs
    if job.trainer is None:
        raise ValueError(f"{run_dir}: its job has no trainer to evaluate")
    recorded_env = saved.get("env")
    rebuilt_env = json.loads(json.dumps(_to_json((job.record or {}).get("env"))))
    if recorded_env is not None and rebuilt_env != recorded_env:
        raise ValueError(f"{run_dir}: the environment rebuilt from {recorded_env['factory']} differs from "
                         "the recorded one (task space, return range or mastery score)")
    like = jax.vmap(job.init)(*init_args(job, child_config))
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
    try:
        if step is None:
            found, state, meta = ckpt.restore_latest(like, report=lambda m: print(m, file=sys.stderr))
            if found is None:
                raise RunFolderError(f"{run_dir} has no checkpoint yet")
            step = found
        else:
            if step not in ckpt.all_steps():
                raise ValueError(f"{run_dir} has no checkpoint {step}; it has {ckpt.all_steps()}")
            problem = ckpt.verify(step)
            if problem is not None:
                raise CheckpointError(f"checkpoint {step} in {ckpt.directory} is damaged: {problem}")
            state, meta = ckpt.restore(step, like)
    finally:
        ckpt.close()
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    return LoadedRun(run_dir, child_config, job, job.trainer, state, step, meta, records, saved)


def run_test_tasks(run: LoadedRun, n: int | None = None, seed: int | None = None) -> np.ndarray:
    """The run's own test set (its ``test_tasks`` / ``test_seed``; ``n``/``seed`` override), or the
    environment's default task when the run has none."""
    space = run.trainer.task_env.task_space
    n = n if n is not None else getattr(run.config, "test_tasks", None)
    if n is None:
        return np.asarray([run.trainer.task_env.default_task], np.float32)
    seed = seed if seed is not None else getattr(run.config, "test_seed", 4222)
    return space.test_set(n, seed)


def evaluate_run(run: LoadedRun, tasks: np.ndarray, episodes_per_task: int = 4,
                 deterministic: bool = True, seed: int | None = None) -> dict:
    """Every seed's policy on ``tasks [m, d]``: ``returns``, ``scores`` and ``mastered`` of shape
    ``[seeds, m]`` (mean over ``episodes_per_task`` episodes with different initial states;
    mastered: mean score >= the environment's mastery score). ``seed=None`` draws the episodes' keys
    as the run's own evaluation did (:func:`experiments.ppo_job.ppo_job`), so the run's test set
    gives back the ``mastered_pct`` and ``test_return`` of its checkpoint's chunk."""
    task_env, policy = run.trainer.task_env, run.trainer.policy
    tasks = jnp.asarray(task_env.task_space.validate(tasks, "tasks"), jnp.float32)
    if tasks.shape[0] < 1 or episodes_per_task < 1:
        raise ValueError("evaluation needs >= 1 task and episodes_per_task >= 1")
    params = run.state.train_state.params
    seeds = jax.tree.leaves(params)[0].shape[0]
    keys = (jax.vmap(lambda k: jax.random.fold_in(k, 7))(run.state.key) if seed is None
            else jax.random.split(jax.random.PRNGKey(seed), seeds))
    fn = jax.jit(jax.vmap(lambda p, k: evaluate_tasks(policy, p, task_env, tasks, k, deterministic,
                                                      episodes_per_task)))
    returns, scores = jax.device_get(fn(params, keys))
    return {"tasks": np.asarray(tasks), "returns": np.asarray(returns), "scores": np.asarray(scores),
            "mastered": np.asarray(scores) >= task_env.mastery_score}


def write_evaluation(run: LoadedRun, result: dict, out_dir: str) -> dict:
    """``out_dir/evaluation.json`` and ``out_dir/plots/task_scores.png``; returns the JSON."""
    task_env = run.trainer.task_env
    mastered_pct = 100.0 * result["mastered"].mean(axis=1)  # [seeds]
    summary = {
        "run_dir": run.run_dir,
        "checkpoint": run.step,
        "env": task_env.name,
        "mastery_score": task_env.mastery_score,
        "tasks": result["tasks"].tolist(),
        "task_names": list(task_env.task_space.names),
        "return_mean": result["returns"].mean(axis=0).tolist(),
        "score_mean": result["scores"].mean(axis=0).tolist(),
        "mastered_pct_per_seed": mastered_pct.tolist(),
        "mastered_pct": float(mastered_pct.mean()),
        "mastered_pct_std": seed_std(mastered_pct),  # ddof=1, as in summary.json
        "test_return": float(result["returns"].mean()),
    }
    os.makedirs(os.path.join(out_dir, "plots"), exist_ok=True)
    with open(os.path.join(out_dir, "evaluation.json"), "w") as f:
        json.dump(summary, f, indent=2)
    teacher = (getattr(run.config, "teachers", None) or ("",))[0]
    plotting.plot_task_scores(
        os.path.join(out_dir, "plots", "task_scores.png"), result["tasks"], result["scores"].mean(axis=0),
        task_env.task_space, task_env.mastery_score,
        f"{task_env.name}{', ' + teacher if teacher else ''}: score per task, mean of "
        f"{result['scores'].shape[0]} seeds (checkpoint {run.step})",
    )
    return summary


def _parse_task(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a task is comma-separated numbers, got {text!r}") from None


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m experiments.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a run folder (a sweep's parent: every child)")
    parser.add_argument("--tasks", type=_parse_task, nargs="+", help="tasks as comma-separated vectors")
    parser.add_argument("--test-tasks", type=int, help="size of a uniform test set (default: the run's)")
    parser.add_argument("--test-seed", type=int, help="numpy seed of that test set (default: the run's)")
    parser.add_argument("--episodes-per-task", type=int, default=4)
    parser.add_argument("--checkpoint", type=int, help="checkpoint step (default: the newest that verifies)")
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    parser.add_argument("--seed", type=int, help="PRNG seed of the episodes (default: the run's own)")
    parser.add_argument("--out", help="output folder (default RUN_DIR/eval)")
    args = parser.parse_args(argv)
    try:
        if args.test_tasks is not None and args.test_tasks < 1 or args.episodes_per_task < 1:
            raise ValueError("--test-tasks and --episodes-per-task must be >= 1")
        with open(os.path.join(args.run_dir, "config.json")) as f:
            children = json.load(f).get("children") or [None]
        outs = []
        for child in children:
            run_dir = os.path.join(args.run_dir, child) if child else args.run_dir
            run = load_run(run_dir, args.checkpoint)
            tasks = (np.asarray(args.tasks, np.float32) if args.tasks
                     else run_test_tasks(run, args.test_tasks, args.test_seed))
            result = evaluate_run(run, tasks, args.episodes_per_task, not args.stochastic, args.seed)
            out_dir = args.out or os.path.join(args.run_dir, "eval")
            out_dir = os.path.join(out_dir, child) if child else out_dir
            summary = write_evaluation(run, result, out_dir)
            print(f"{run_dir} (checkpoint {run.step}): {len(tasks)} tasks x {args.episodes_per_task} "
                  f"episodes, mastered {summary['mastered_pct']:.1f} +- {summary['mastered_pct_std']:.1f} % "
                  f"(std over {len(summary['mastered_pct_per_seed'])} seeds), mean return "
                  f"{summary['test_return']:.4g} -> {out_dir}")
            outs.append(summary)
        return outs
    except (ValueError, TypeError, OSError, RunFolderError, CheckpointError) as e:
        if os.environ.get("CURRICULAX_TRACEBACK"):
            raise
        print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
        sys.exit(2 if isinstance(e, (ValueError, TypeError)) else 1)


if __name__ == "__main__":
    main()
