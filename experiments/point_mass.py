"""PPO on SPDL's point mass with a choice of curricula, evaluated on the target distribution.

The experiment of Klink et al. (NeurIPS 2020 / JMLR 2021, SPDL; ICML 2022, CURROT): PPO with the
reference's settings (2048 steps per iteration, 400 iterations = 819,200 steps, [64, 64] tanh
networks, 8 epochs of 32 minibatches, gamma 0.95, GAE lambda 0.99, value coefficient 1, no entropy
bonus; stable-baselines PPO2's learning rate 2.5e-4, clip range 0.2 and gradient-norm clip 0.5) on the
point mass (``envs/point_mass.py``; 2-D contexts by default, ``--context-dim 3``), each teacher of
``--teachers`` its own run under ``RUN_DIR/<teacher>/`` (``experiments.runner.run_many``):

* ``default``: training on the target distribution directly (the papers' baseline);
* ``random``: uniform over the context box; ``alp_gmm`` (with SPDL's point-mass ALP-GMM settings:
  fit rate 100, 10 % random tasks, 500 history entries); ``spdl``; ``spdl_delta``; ``currot``;
  ``active_self_paced``.

After every chunk each seed plays 50 episodes on contexts drawn from the target distribution with the
stochastic policy (as the reference evaluates): ``target_return`` is their mean discounted return
(gamma 0.95, the reference's metric), ``success_rate`` the fraction that end within 0.25 of the goal.
The teacher's context distribution is summarised by the mean and std of 512 of its samples (and 64
kept for the figure). ``summary.json``: ``target_return``, ``target_return_std`` (mean and std over
seeds at the end), ``success_rate``, ``success_rate_std``; the parent adds every teacher's difference
to the first teacher (``default``) with its standard error and Welch p-value, for both metrics
(``<t>_minus_default[_se]`` for the return, ``success_rate/<t>_minus_default[_se]`` for success). Plots: the two metrics
over environment steps with a band of one std across seeds, and the context distributions over the box.

    python -m experiments.point_mass --seeds 16
    python -m experiments.point_mass --teachers spdl currot --seeds 16 --run-dir runs/pm
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from algos.networks import Policy, policy_step
from algos.ppo import PPOConfig, make_train
from envs.point_mass import POINT_MASS_2D, POINT_MASS_3D, point_mass_tasks
from envs.task_env import TaskAutoReset, TaskEnv
from experiments import plotting
from experiments.context_plots import plot_context_evolution
from experiments.ppo_job import ppo_job
from experiments.runner import (
    Job, RunConfig, cli, compare_to_baseline, default_run_dir, mean_and_std, read_records, run_many,
)
from teachers.alp_gmm import ALPGMMConfig
from teachers.gaussian import context_prior, sample_prior_target
from teachers.registry import TeacherOptions, make_teacher, teacher_names, teacher_options, unused_teacher_options

TEACHERS = ("default", "random", "spdl", "spdl_delta", "currot", "alp_gmm", "active_self_paced")
QUICK_TEACHERS = ("default", "spdl", "currot")
REFERENCE_PPO = PPOConfig(
    num_envs=1, num_steps=2048, total_timesteps=819_200, update_epochs=8, num_minibatches=32,
    lr=2.5e-4, lr_schedule="constant", gamma=0.95, gae_lambda=0.99, clip_eps=0.2, ent_coef=0.0,
    vf_coef=1.0, max_grad_norm=0.5, hidden=(64, 64), activation="tanh",
)


@dataclasses.dataclass(frozen=True)
class Config(RunConfig, TeacherOptions):
    teachers: tuple[str, ...] = TEACHERS
    """teachers to compare (teachers.registry); the first is the baseline of the differences"""
    context_dim: int = 2
    """2: (gate position, gate width); 3: with friction"""
    eval_episodes: int = 50
    """target-distribution episodes per seed after every chunk"""
    ppo: PPOConfig = REFERENCE_PPO
    alp_gmm: ALPGMMConfig = ALPGMMConfig(fit_rate=100, random_task_ratio=0.1, history_capacity=500)
    seeds: int = 16
    chunks: int = 20

    def quick_version(self) -> Config:
        # the three headline teachers unless --teachers was given: each teacher is its own compiled
        # program (7-15 s on a 2-core CPU), and all seven take about two minutes
        teachers = QUICK_TEACHERS if self.teachers == TEACHERS else self.teachers
        return dataclasses.replace(
            self, teachers=teachers, seeds=2, chunks=2, eval_episodes=8,
            ppo=dataclasses.replace(self.ppo, num_steps=512, total_timesteps=2048, update_epochs=2,
                                    num_minibatches=4),
        )

    def validate(self) -> None:
        super().validate()
        teacher_names(self.teachers)
        if self.context_dim not in (2, 3):
            raise ValueError(f"--context-dim must be 2 or 3, got {self.context_dim}")
        if self.eval_episodes < 1:
            raise ValueError("--eval-episodes must be >= 1")
        if self.ppo.context_in_obs:
            raise ValueError("the point mass shows its context already; leave --ppo.context-in-obs off")
        self.ppo.validate()


def evaluate_contexts(policy: Policy, params, task_env: TaskEnv, contexts: jax.Array, key: jax.Array,
                      gamma: float, deterministic: bool = False) -> tuple[jax.Array, jax.Array]:
    """One episode per context (in parallel): ``(discounted_return[m], success[m])``; success = the
    episode's last state within the goal radius (``info["success"]`` of its final step)."""
    env = TaskAutoReset(task_env)
    m = contexts.shape[0]
    horizon = int(task_env.default_task_params().max_steps_in_episode)
    key, k_reset = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, m), contexts)
    carry = policy.initial_carry(m)

    def step(c, t):
        obs, state, carry, reset, finished, ret, success, key = c
        key, k_act, k_step = jax.random.split(key, 3)
        carry, dist, _ = policy_step(policy, params, carry, obs, reset, state.task)
        action = jnp.clip(dist.mode() if deterministic else dist.sample(k_act), -10.0, 10.0)
        obs, state, reward, term, trunc, info = jax.vmap(env.step)(
            jax.random.split(k_step, m), state, action, contexts)
        live = ~finished
        ret = ret + jnp.where(live, gamma**t * reward, 0.0)
        done = term | trunc
        success = jnp.where(live & done, info["success"], success)
        return (obs, state, carry, done, finished | done, ret, success, key), None

    init = (obs, state, carry, jnp.ones(m, bool), jnp.zeros(m, bool), jnp.zeros(m), jnp.zeros(m, bool), key)
    (_, _, _, _, _, ret, success, _), _ = jax.lax.scan(step, init, jnp.arange(horizon, dtype=jnp.float32))
    return ret, success.astype(jnp.float32)


def point_mass_job(name: str, teacher_name: str, config: Config, unused=()) -> Job:
    """The runner job of one teacher: PPO on the point mass plus the target evaluation."""
    task_env = point_mass_tasks(config.context_dim)
    teacher = make_teacher(teacher_name, task_env.task_space, teacher_options(config, teacher_name))
    trainer = make_train(config.ppo, task_env, teacher)
    base = ppo_job(name, trainer, unused=unused)
    prior = context_prior(task_env.task_space)
    gamma = config.ppo.gamma

    def evaluate(state):
        k_ctx, k_run, k_dist, k_keep = jax.random.split(jax.random.fold_in(state.key, 11), 4)
        contexts = sample_prior_target(prior, task_env.task_space, k_ctx, config.eval_episodes)
        ret, success = evaluate_contexts(trainer.policy, state.train_state.params, trainer.task_env,
                                         contexts, k_run, gamma)
        _, tasks = teacher.sample(state.teacher_state, k_dist, 512)
        return {
            "target_return": ret.mean(), "success_rate": success.mean(),
            "ctx_mean": tasks.mean(axis=0), "ctx_std": tasks.std(axis=0), "ctx_samples": tasks[:64],
        }

    def summarise(records, final_state):
        summary = base.summarise(records, final_state)
        for key in ("target_return", "success_rate"):
            m, s = mean_and_std(records, key)
            summary[key], summary[f"{key}_std"] = m, s
        return summary

    space = task_env.task_space

    def extra_plots(plots_dir, records):
        base.extra_plots(plots_dir, records)
        plot_context_evolution(os.path.join(plots_dir, "context_distribution.png"), {teacher_name: records},
                               (space.low[0], space.high[0], space.low[1], space.high[1]), space.names,
                               prior.target_mean)

    return base._replace(evaluate=evaluate, summarise=summarise, extra_plots=extra_plots,
                         curves=["target_return", "success_rate", "episodic_return"])


def main(config: Config) -> dict:
    config.validate()
    name = f"point_mass {config.context_dim}d"
    names = teacher_names(config.teachers)
    if len(names) > 1 and config.run_dir is None:
        config = dataclasses.replace(config, run_dir=default_run_dir(name))
    runs = []
    for teacher in names:
        child = dataclasses.replace(config, teachers=(teacher,))
        runs.append((teacher, point_mass_job(f"{name}/{teacher}", teacher, child,
                                             unused=unused_teacher_options([teacher])), child))
    summary = run_many(name, runs, config, metric="target_return")
    if len(names) == 1:
        return summary
    root = config.run_dir
    records = {t: read_records(os.path.join(root, t, "metrics.jsonl")) for t in names}
    finals = {t: np.asarray(rs[-1]["success_rate"], np.float64) for t, rs in records.items()}
    # run_many's difference keys (``<child>_minus_<baseline>``) are target_return's; success_rate's
    # get the metric as a prefix
    for key, val in compare_to_baseline(finals, names[0], "success_rate").items():
        summary[key if "/" in key else f"success_rate/{key}"] = val
    with open(os.path.join(root, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    steps = lambda rs: np.asarray([r["env_steps"] for r in rs], np.float64)
    plotting.plot_compare(
        os.path.join(root, "plots", "success_rate.png"),
        {t: (steps(rs), np.asarray([r["success_rate"] for r in rs], np.float64)) for t, rs in records.items()},
        "env steps", "success rate on the target", f"{name}, {config.seeds} seeds",
    )
    space = point_mass_tasks(config.context_dim).task_space
    target = (POINT_MASS_2D if config.context_dim == 2 else POINT_MASS_3D).target_mean
    plot_context_evolution(os.path.join(root, "plots", "context_distribution.png"), records,
                           (space.low[0], space.high[0], space.low[1], space.high[1]), space.names, target)
    for t in names:
        line = f"{t:<18} success_rate {summary[f'{t}/success_rate']:.3f} +- {summary[f'{t}/success_rate_std']:.3f}"
        if t != names[0]:
            line += f"   minus {names[0]}: {summary[f'success_rate/{t}_minus_{names[0]}']:+.3f}"
            if f"success_rate/{t}_minus_{names[0]}_se" in summary:
                line += f" (SE {summary[f'success_rate/{t}_minus_{names[0]}_se']:.3f})"
        print(line)
    return summary


if __name__ == "__main__":
    cli(Config, main)
