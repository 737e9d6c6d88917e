"""PPO on gymnax CartPole-v1 with PureJaxRL's settings (4 envs x 128 steps, 500k steps, lr 2.5e-4
annealed, 4 epochs x 4 minibatches). ``python -m experiments.ppo_cartpole --seeds 8``.
"""

from __future__ import annotations

import dataclasses

import gymnax

from algos.ppo import PPOConfig, make_train
from envs.task_env import fixed_task_env
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, parse_config, run


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    env: str = "CartPole-v1"
    """a gymnax environment id"""
    ppo: PPOConfig = PPOConfig()
    chunks: int = 16

    def quick_version(self) -> Config:
        return dataclasses.replace(self, ppo=dataclasses.replace(self.ppo, total_timesteps=32_768),
                                   chunks=4)


def main(config: Config) -> dict:
    if config.env not in gymnax.registered_envs:
        raise ValueError(f"unknown gymnax environment {config.env!r}")
    env, params = gymnax.make(config.env)
    trainer = make_train(config.ppo, fixed_task_env(env, params))
    return run(ppo_job("ppo_cartpole", trainer), config)


if __name__ == "__main__":
    main(parse_config(Config))
