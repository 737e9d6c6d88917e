"""In-context meta-RL with recurrent PPO (Lu et al., 2023, "Structured State Space Models for In-Context
Reinforcement Learning", the randomly projected environments; ``luchris429/popjaxrl``,
``envs/environments/meta_cartpole.py``).

    python -m experiments.meta_rl --core s5 --seeds 8                           # popjaxrl's meta cart-pole
    python -m experiments.meta_rl --train classic_train --heldout classic_heldout --trials 4
    python -m experiments.meta_rl --quick                                       # CPU-sized

``--train`` / ``--heldout`` name a POPGym-registry meta environment (``MetaStatelessCartPole``: every
meta-episode a new random observation projection, 16 trials from one initial state) or a split of
``envs/meta_projection.py`` (``classic_train``: a random gymnax environment seen through random
observation and action projections). PPO trains on ``--train`` only; after every chunk the policy
(sampling) runs ``--eval-episodes`` fresh meta-episodes on each of the two, and the return of every
trial index is recorded. ``summary.json``: ``train_return`` / ``heldout_return`` (mean meta-episode
return at the end), ``train_trial_returns`` / ``heldout_trial_returns`` (mean return per trial index),
``*_improvement`` (mean of the later half of the trials minus the first trial) and
``*_improvement_after_first`` (the same minus trial 1 instead of trial 0), ``mmer`` as POPGym. Trial 0
alone begins at the meta-reset observation (first-step flag), which even a memory-less policy plays
worse, so ``*_improvement`` is no evidence of in-context learning without a ``--core mlp`` run beside
it; the gap from trial 1 on has no such confound (benchmarks/RESULTS.md);
``plots/trial_returns.png`` shows the return per trial index at the end.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from algos.networks import Policy, policy_step, recurrent_policy
from algos.ppo import PPOConfig, action_spec, make_train
from algos.presets import ppo_preset
from envs.meta_projection import SPLITS, make_meta_projection
from envs.popgym import make_popgym, popgym_names
from envs.task_env import fixed_task_env
from experiments import plotting
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, cli, run, seed_std
from memory import CORES, make_core


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    train: str = "MetaStatelessCartPole"
    """meta environment trained on: a POPGym-registry name or a meta_projection split"""
    heldout: str = "MetaStatelessCartPole"
    """evaluated without training on it (MetaStatelessCartPole: fresh random projections)"""
    trials: int = 16
    """trials per meta-episode of a meta_projection split (the registry's envs fix their own)"""
    core: str = "s5"
    hidden: int = 256
    s5_layers: int = 4
    encoder: tuple[int, ...] = (128, 256)
    head_hidden: tuple[int, ...] = (128, 128)
    eval_episodes: int = 64
    """meta-episodes per environment in each evaluation"""
    ppo: PPOConfig = ppo_preset("popjaxrl_popgym", total_timesteps=50_000_000)
    seeds: int = 8
    chunks: int = 10

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, core="gru", hidden=64, encoder=(64,), head_hidden=(64,), seeds=2, chunks=4,
            eval_episodes=16,
            ppo=dataclasses.replace(self.ppo, num_envs=16, num_steps=256, total_timesteps=16 * 256 * 40,
                                    update_epochs=4, num_minibatches=4, lr=1e-3),
        )

    def validate(self) -> None:
        super().validate()
        for env in (self.train, self.heldout):
            meta_env(env, self.trials)  # raises for unknown names
        if self.core not in CORES:
            raise ValueError(f"unknown core {self.core!r}; known: {sorted(CORES)}")
        if self.trials < 1 or self.eval_episodes < 1:
            raise ValueError("--trials and --eval-episodes must be >= 1")
        self.ppo.validate()


def meta_env(name: str, trials: int) -> Any:
    if name in SPLITS:
        return make_meta_projection(name, trials=trials)
    if name in popgym_names() and hasattr(make_popgym(name), "trials"):
        return make_popgym(name)
    raise ValueError(f"{name!r} is no meta environment; known: POPGym "
                     f"{[n for n in popgym_names() if n.startswith('Meta')]}, splits {sorted(SPLITS)}")


def meta_episode_steps(env: Any) -> int:
    per_trial = getattr(env, "max_steps_in_trial", None) or env.max_trial_steps
    return env.trials * per_trial


def trial_returns(policy: Policy, params: Any, env: Any, key: jax.Array, episodes: int) -> jax.Array:
    """Mean return per trial index ``[trials]`` of ``episodes`` fresh meta-episodes of ``env`` (the
    policy samples; a trial's return is read where ``info["trial_done"]``)."""
    env_params = env.default_params
    key, k_reset = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, episodes), env_params)

    def step(c, _):
        obs, state, carry, reset, finished, totals, key = c
        key, k_act, k_step = jax.random.split(key, 3)
        carry, dist, _ = policy_step(policy, params, carry, obs, reset, jnp.zeros((episodes, 1)))
        action = dist.sample(k_act)
        obs, state, _, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, episodes), state, action, env_params)
        counted = info["trial_done"] & ~finished
        totals = totals + jax.nn.one_hot(info["trial"], env.trials) * jnp.where(counted, info["trial_return"],
                                                                               0.0)[:, None]
        done = term | trunc
        return (obs, state, carry, done, finished | done, totals, key), None

    init = (obs, state, policy.initial_carry(episodes), jnp.ones(episodes, bool), jnp.zeros(episodes, bool),
            jnp.zeros((episodes, env.trials)), key)
    (*_, totals, _), _ = jax.lax.scan(step, init, None, meta_episode_steps(env))
    return totals.mean(axis=0)


def main(config: Config) -> dict:
    config.validate()
    train_env, heldout_env = meta_env(config.train, config.trials), meta_env(config.heldout, config.trials)
    task_env = fixed_task_env(train_env, name=config.train)
    action_dim, discrete, _, _ = action_spec(task_env)
    options = {"n_layers": config.s5_layers} if config.core == "s5" else {}
    policy = recurrent_policy(make_core(config.core, config.hidden, **options), action_dim, discrete,
                              encoder=config.encoder, head_hidden=config.head_hidden, activation="leaky_relu",
                              head_gain=2.0)
    trainer = make_train(config.ppo, task_env, policy=policy)
    unused = [] if config.core == "s5" else ["s5_layers"]
    if config.train not in SPLITS and config.heldout not in SPLITS:
        unused.append("trials")
    job = ppo_job(f"meta_rl-{config.train}-{config.core}", trainer, unused=unused)

    def evaluate(state):
        key = jax.random.fold_in(state.key, 11)
        params = state.train_state.params
        train = trial_returns(policy, params, train_env, key, config.eval_episodes)
        heldout = trial_returns(policy, params, heldout_env, jax.random.fold_in(key, 1), config.eval_episodes)
        return {"train_return": train.sum(), "heldout_return": heldout.sum(),
                "train_trial_returns": train, "heldout_trial_returns": heldout}

    base_summarise, base_plots = job.summarise, job.extra_plots

    def summarise(records, final_state):
        summary = base_summarise(records, final_state)
        for split in ("train", "heldout"):
            per_trial = np.asarray(records[-1][f"{split}_trial_returns"], np.float64)  # [S, trials]
            mean = per_trial.mean(axis=0)
            later = mean[len(mean) // 2:].mean() if len(mean) > 1 else mean[0]
            summary[f"{split}_return"] = float(per_trial.sum(axis=1).mean())
            summary[f"{split}_return_std"] = float(seed_std(per_trial.sum(axis=1)))
            summary[f"{split}_trial_returns"] = [float(v) for v in mean]
            summary[f"{split}_improvement"] = float(later - mean[0])
            if len(mean) > 2:
                summary[f"{split}_improvement_after_first"] = float(later - mean[1])
        return summary

    def extra_plots(plots_dir, records):
        base_plots(plots_dir, records)
        last = records[-1]
        plotting.plot_trial_returns(
            os.path.join(plots_dir, "trial_returns.png"),
            {split: np.asarray(last[f"{split}_trial_returns"], np.float64) for split in ("train", "heldout")},
            f"{config.train} / {config.heldout}, {config.core}, {config.seeds} seeds, {last['env_steps']:,} steps")

    job = job._replace(evaluate=evaluate, summarise=summarise, extra_plots=extra_plots,
                       curves=["episodic_return", "train_return", "heldout_return"])
    return run(job, config)


if __name__ == "__main__":
    cli(Config, main)
