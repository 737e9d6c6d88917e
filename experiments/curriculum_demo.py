"""PPO on the parameterised CartPole (pole half-length x failure angle limit,
``envs/cartpole_tasks.py``) with a teacher choosing each episode's task — the Random teacher by
default — evaluated after every chunk on a fixed test set of 50 tasks. ``summary.json`` reports
``mastered_pct`` (% of test tasks with score >= 0.9, mean over seeds) and ``mastered_pct_std``;
``plots/task_distribution.png`` shows the tasks handed out over time.

    python -m experiments.curriculum_demo --seeds 4 --teacher random
"""

from __future__ import annotations

import dataclasses

from algos.ppo import PPOConfig, make_train
from envs.cartpole_tasks import cartpole_tasks
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, parse_config, run
from teachers.registry import make_teacher


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    teacher: str = "random"
    """teacher name (teachers.registry)"""
    test_tasks: int = 50
    """size of the fixed uniform test set"""
    test_seed: int = 4222
    """numpy seed of the test set"""
    ppo: PPOConfig = PPOConfig(num_envs=16, num_steps=128, total_timesteps=1_000_000)
    seeds: int = 4
    chunks: int = 10

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, seeds=2, chunks=3,
            ppo=dataclasses.replace(self.ppo, num_envs=8, total_timesteps=49_152),
        )


def main(config: Config) -> dict:
    task_env = cartpole_tasks()
    teacher = make_teacher(config.teacher, task_env.task_space)
    trainer = make_train(config.ppo, task_env, teacher)
    test_tasks = task_env.task_space.test_set(config.test_tasks, config.test_seed)
    return run(ppo_job("curriculum_demo", trainer, test_tasks), config)


if __name__ == "__main__":
    main(parse_config(Config))
