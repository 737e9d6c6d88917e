"""PPO on gymnax CartPole-v1 with PureJaxRL's settings (4 envs x 128 steps, 500k steps, lr 2.5e-4
annealed, 4 epochs x 4 minibatches). ``python -m experiments.ppo_cartpole --seeds 8``.

``--env`` takes any gymnax id (``--env Acrobot-v1``) or ``module:function``, a user's own
:class:`~envs.task_env.TaskEnv` factory, trained on its default task.
"""

from __future__ import annotations

import dataclasses

import gymnax

from algos.ppo import PPOConfig, make_train
from envs.registry import env_record, is_factory_path, load_factory, make_task_env
from envs.task_env import TaskEnv, fixed_task_env
from experiments.ppo_job import ppo_job
from experiments.runner import Job, RunConfig, cli, run


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    env: str = "CartPole-v1"
    """a gymnax environment id, or module:function (your own TaskEnv factory, run on its default task)"""
    ppo: PPOConfig = PPOConfig()
    chunks: int = 16

    def quick_version(self) -> Config:
        return dataclasses.replace(self, ppo=dataclasses.replace(self.ppo, total_timesteps=32_768),
                                   chunks=4)

    def validate(self) -> None:
        super().validate()
        if is_factory_path(self.env):
            load_factory(self.env)
        elif self.env not in gymnax.registered_envs:
            raise ValueError(f"unknown gymnax environment {self.env!r} (--env); known: "
                             f"{sorted(gymnax.registered_envs)}, or module:function for your own TaskEnv "
                             "factory")
        self.ppo.validate()


def task_env_for(config: Config) -> tuple[TaskEnv, dict | None]:
    """The environment of ``config.env`` and, for a ``module:function`` factory, its record."""
    if is_factory_path(config.env):
        task_env = make_task_env(config.env)
        return task_env, {"env": env_record(config.env, task_env)}
    env, params = gymnax.make(config.env)
    return fixed_task_env(env, params), None


def jobs(config: Config) -> list[tuple[str, Job, Config]]:
    """The run of ``config`` (what :func:`experiments.evaluate.load_run` rebuilds)."""
    task_env, record = task_env_for(config)
    trainer = make_train(config.ppo, task_env)
    return [("ppo_cartpole", ppo_job("ppo_cartpole", trainer, record=record), config)]


def main(config: Config) -> dict:
    config.validate()
    (_, job, _), = jobs(config)
    return run(job, config)


if __name__ == "__main__":
    cli(Config, main)
