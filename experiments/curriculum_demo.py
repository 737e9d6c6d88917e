"""PPO on the parameterised CartPole (pole half-length x failure angle limit,
``envs/cartpole_tasks.py``) with a teacher choosing each episode's task — the Random teacher by
default — evaluated after every chunk on a fixed test set of 50 tasks. ``summary.json`` reports
``mastered_pct`` (% of test tasks with score >= 0.9, mean over seeds) and ``mastered_pct_std``;
``plots/task_distribution.png`` shows the tasks handed out over time.

It is :mod:`experiments.curriculum_ppo` with CartPole-sized defaults: ``--teachers random alp_gmm``
compares teachers (one child run folder each), teacher options are ``--alp-gmm.fit-rate 250`` etc.

    python -m experiments.curriculum_demo --seeds 4 --teachers random
"""

from __future__ import annotations

import dataclasses

from algos.ppo import PPOConfig
from experiments import curriculum_ppo
from experiments.runner import Job, cli


@dataclasses.dataclass(frozen=True)
class Config(curriculum_ppo.Config):
    # curriculum_ppo's fields with CartPole-sized defaults (their help is curriculum_ppo's)
    env: str = "cartpole_tasks"
    teachers: tuple[str, ...] = ("random",)
    test_tasks: int = 50
    ppo: PPOConfig = PPOConfig(num_envs=16, num_steps=128, total_timesteps=1_000_000)
    seeds: int = 4
    chunks: int = 10

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, seeds=2, chunks=3,
            ppo=dataclasses.replace(self.ppo, num_envs=8, total_timesteps=49_152),
        )


def jobs(config: Config) -> list[tuple[str, Job, Config]]:
    """The runs of ``config`` (what :func:`experiments.evaluate.load_run` rebuilds)."""
    return curriculum_ppo.teacher_runs("curriculum_demo", config)


def main(config: Config) -> dict:
    return curriculum_ppo.main(config, name="curriculum_demo")


if __name__ == "__main__":
    cli(Config, main)
