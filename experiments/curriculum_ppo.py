"""PPO with a chosen teacher on a parameterised environment, evaluated on a fixed test set: the
curriculum experiment of Portelas et al. (2019) (teachers compared by the % of test tasks mastered).

Each teacher in ``--teachers`` is its own run (``RUN_DIR/<teacher>/``, the full run-folder contract,
``summary.json`` with ``mastered_pct`` and ``mastered_pct_std`` over seeds); the parent folder gets a
comparison plot and ``summary.json`` with every teacher's figures and, for each teacher against the
first one (Random by default), the difference of mean % mastered, its standard error and a Welch t-test.

    python -m experiments.curriculum_ppo --env stump_track --teachers random alp_gmm --seeds 16
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
from scipy import stats

from algos.ppo import PPOConfig, make_train
from envs.registry import make_task_env
from experiments import plotting
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, parse_config, read_records, run
from teachers.registry import make_teacher


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    env: str = "stump_track"
    """task environment (envs.registry)"""
    teachers: tuple[str, ...] = ("random", "alp_gmm")
    """teachers to compare; the first is the baseline of the differences"""
    test_tasks: int = 100
    """size of the fixed uniform test set"""
    test_seed: int = 4222
    episodes_per_task: int = 4
    """evaluation episodes per test task (mastered = mean score >= the env's mastery score)"""
    ppo: PPOConfig = PPOConfig(num_envs=16, num_steps=128, total_timesteps=3_000_000)
    seeds: int = 16
    chunks: int = 15

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, seeds=2, chunks=2, test_tasks=16, episodes_per_task=1,
            ppo=dataclasses.replace(self.ppo, num_envs=8, total_timesteps=16_384),
        )

    def validate(self) -> None:
        super().validate()
        if not self.teachers:
            raise ValueError("--teachers needs at least one teacher")
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError(f"--teachers has duplicates: {self.teachers}")
        if self.test_tasks < 1 or self.episodes_per_task < 1:
            raise ValueError("--test-tasks and --episodes-per-task must be >= 1")


def compare(records_by_teacher: dict[str, list[dict]], baseline: str) -> dict:
    """Final % mastered per teacher, and each teacher minus ``baseline`` (difference of means, its
    standard error, Welch's t-test p-value)."""
    final = {t: np.asarray(r[-1]["mastered_pct"], np.float64) for t, r in records_by_teacher.items()}
    out = {}
    for t, x in final.items():
        out[f"{t}/mastered_pct"] = float(x.mean())
        out[f"{t}/mastered_pct_std"] = float(x.std())
    base = final[baseline]
    for t, x in final.items():
        if t == baseline:
            continue
        out[f"{t}_minus_{baseline}"] = float(x.mean() - base.mean())
        out[f"{t}_minus_{baseline}_se"] = float(
            np.sqrt(x.var(ddof=1) / len(x) + base.var(ddof=1) / len(base))
        ) if min(len(x), len(base)) > 1 else float("nan")
        if min(len(x), len(base)) > 1 and (x.std() > 0 or base.std() > 0):
            out[f"{t}_vs_{baseline}_welch_p"] = float(stats.ttest_ind(x, base, equal_var=False).pvalue)
    return out


def main(config: Config) -> dict:
    # build everything first so that bad names fail before anything compiles
    task_env = make_task_env(config.env)
    teachers = {name: make_teacher(name, task_env.task_space) for name in config.teachers}
    for name in config.teachers:
        make_train(config.ppo, task_env, teachers[name])
    test_tasks = task_env.task_space.test_set(config.test_tasks, config.test_seed)
    root = config.run_dir or os.path.join("runs", f"curriculum_ppo-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(os.path.join(root, "plots"), exist_ok=True)
    records = {}
    for name in config.teachers:
        sub = dataclasses.replace(config, run_dir=os.path.join(root, name))
        resume = config.resume and os.path.exists(os.path.join(sub.run_dir, "config.json"))
        sub = dataclasses.replace(sub, resume=resume)
        if resume and os.path.exists(os.path.join(sub.run_dir, "summary.json")):
            print(f"{name}: already finished")
        else:
            trainer = make_train(config.ppo, task_env, teachers[name])
            job = ppo_job(f"curriculum_ppo/{config.env}/{name}", trainer, test_tasks,
                          config.episodes_per_task)
            run(job, sub)
        records[name] = read_records(os.path.join(sub.run_dir, "metrics.jsonl"))

    summary = compare(records, config.teachers[0])
    x = {t: np.asarray([r["env_steps"] for r in rs], np.float64) for t, rs in records.items()}
    plotting.plot_compare(
        os.path.join(root, "plots", "mastered_pct.png"),
        {t: (x[t], np.asarray([r["mastered_pct"] for r in rs], np.float64)) for t, rs in records.items()},
        "env steps", f"% of {config.test_tasks} test tasks mastered", f"{config.env}: teachers",
    )
    with open(os.path.join(root, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(parse_config(Config))
