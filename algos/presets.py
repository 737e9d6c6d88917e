"""Named PPO settings of the papers curriculax reproduces (``PPO_PRESETS[name]``).

- ``purejaxrl_cartpole``: PureJaxRL's CartPole-v1 settings (``luchris429/purejaxrl``, ``ppo.py``), the
  :class:`~algos.ppo.PPOConfig` defaults.
- ``popjaxrl_popgym``: the one configuration Lu et al. (2023, "Structured State Space Models for
  In-Context Reinforcement Learning"; ``luchris429/popjaxrl``, ``run_popgym.py``) used for every POPGym
  environment, copied from POPGym's RLlib setup: 64 envs x 1024 steps, 15M steps (228 updates), 30
  epochs x 8 minibatches of whole 1024-step sequences, lr 5e-5 without annealing, gamma 0.99, GAE lambda
  1.0, clip 0.2, entropy 0, value coefficient 1.0, gradient norm 0.5. One deviation: popjaxrl treats
  a truncation as a termination, curriculax bootstraps through it (from the final observation).
"""

from __future__ import annotations

import dataclasses

from algos.ppo import PPOConfig

PPO_PRESETS: dict[str, PPOConfig] = {
    "purejaxrl_cartpole": PPOConfig(),
    "popjaxrl_popgym": PPOConfig(
        num_envs=64, num_steps=1024, total_timesteps=15_000_000, update_epochs=30, num_minibatches=8,
        lr=5e-5, lr_schedule="constant", gamma=0.99, gae_lambda=1.0, clip_eps=0.2, clip_value=True,
        ent_coef=0.0, vf_coef=1.0, max_grad_norm=0.5, minibatch_axis="envs",
    ),
}


def ppo_preset(name: str, **overrides) -> PPOConfig:
    """Preset ``name`` with ``overrides`` (``PPOConfig`` fields); unknown names raise."""
    if name not in PPO_PRESETS:
        raise ValueError(f"unknown PPO preset {name!r}; known: {sorted(PPO_PRESETS)}")
    return dataclasses.replace(PPO_PRESETS[name], **overrides)
