"""Continual RL: a stream of CartPole task variants trained one after another with the one PPO
(``algos/ppo.py``) and a continual learner wrapping its loss (``algos/continual/``).

    python -m experiments.continual_rl --learners finetune ewc hnet --seeds 5
    python -m experiments.continual_rl --learner l2 --stream cartpole_tasks --quick

Streams:

* ``cartpole_physics`` (default): gymnax CartPole-v1 with changed physics, task = (pole half-length,
  force magnitude, gravity). The force's sign alternates between tasks (push direction reversed: the
  same observation calls for the opposite action), so the tasks interfere and forgetting is visible:
  (0.5, +10, 9.8), (0.5, -10, 9.8), (0.25, +10, 12.0), (1.0, -10, 9.8).
* ``cartpole_tasks``: the parameterised CartPole of ``envs/cartpole_tasks.py`` (pole half-length,
  failure angle): (0.5, 12), (0.1, 6), (1.0, 4), (0.25, 8).

The chunk plan has an edge at every task switch. There ``after_chunk`` evaluates every task of the
stream (greedy episodes; the learner's ``model_params`` gives the policy of each task, e.g. the
hypernetwork's weights for that task's embedding), writes row k of R (the score, return / 500), hands
the learner a fresh rollout of task k for ``end_task`` (the Fisher of the policy over its actions,
plus the critic's (dV/dtheta)^2), moves the teacher and the task id to task k + 1 and resets every
environment there. Learners: finetune, l2, ewc, online_ewc, hnet (the hypernetwork generates the
whole actor-critic per task); replay and HyperInterval are supervised-only here. ``summary.json``:
``avg_return`` (mean final score over the stream's tasks), ``forgetting``, ``bwt``, ``fwt`` and their
``_std``; plots: the R heat map with numbers and each task's score over the stream.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments.classic_control.cartpole import CartPole

from algos.continual import LEARNERS, LearnerOptions, ModelSpec, make_learner
from algos.continual import metrics as cl_metrics
from algos.evaluation import evaluate_tasks
from algos.learner import model_params
from algos.ppo import PPOConfig, make_train
from envs.cartpole_tasks import cartpole_tasks
from envs.task_env import TaskAutoReset, TaskEnv
from envs.task_space import TaskSpace
from experiments import continual_plots
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, cli, default_run_dir, run_many, seed_std
from teachers.base import Teacher

RL_LEARNERS = ("finetune", "l2", "ewc", "online_ewc", "hnet")
SUMMARY_KEYS = ("avg_return", "forgetting", "bwt", "fwt", "bwt_gem", "fwt_gem")

CARTPOLE_PHYSICS = TaskSpace.box(["pole_length", "force_mag", "gravity"], [0.05, -20.0, 1.0], [2.0, 20.0, 20.0])


def cartpole_physics(max_steps_in_episode: int = 500) -> TaskEnv:
    """gymnax CartPole-v1 with (pole half-length, signed force magnitude, gravity) as the task."""
    env = CartPole()
    base = env.default_params.replace(max_steps_in_episode=max_steps_in_episode)

    def params_for(task):
        length = task[0]
        return base.replace(length=length, polemass_length=base.masspole * length, force_mag=task[1],
                            gravity=task[2])

    return TaskEnv(env=env, task_space=CARTPOLE_PHYSICS, params_for=params_for, default_task=(0.5, 10.0, 9.8),
                   return_range=(0.0, float(max_steps_in_episode)), mastery_score=0.9, name="cartpole_physics")


STREAMS = {
    "cartpole_physics": (cartpole_physics, ((0.5, 10.0, 9.8), (0.5, -10.0, 9.8), (0.25, 10.0, 12.0),
                                            (1.0, -10.0, 9.8))),
    "cartpole_tasks": (cartpole_tasks, ((0.5, 12.0), (0.1, 6.0), (1.0, 4.0), (0.25, 8.0))),
}


def stream_teacher(task_space: TaskSpace, first: jax.Array) -> Teacher:
    """Hands out the current task of the stream, held in its state (``after_chunk`` moves it)."""

    def init(key):
        del key
        return jnp.asarray(first, jnp.float32)

    def sample(state, key, n):
        del key
        return state, jnp.broadcast_to(state, (n, state.shape[0]))

    def update(state, tasks, scores, mask, **extras):
        del tasks, scores, mask, extras
        return state

    return Teacher(init, sample, update, task_space, "stream")


@dataclasses.dataclass(frozen=True)
class Config(RunConfig, LearnerOptions):
    seeds: int = 5
    learner: str = "finetune"
    learners: tuple[str, ...] = ()
    """several learners side by side (the first is the baseline)"""
    stream: str = "cartpole_physics"
    """cartpole_physics or cartpole_tasks"""
    num_tasks: int = 4
    steps_per_task: int = 131_072
    eval_episodes: int = 8
    """greedy episodes per task and evaluation"""
    fisher_rows: int = 256
    """rollout steps (evenly spaced) that estimate the policy's Fisher at a task end"""
    ppo: PPOConfig = PPOConfig(num_envs=16, num_steps=64, lr=2.5e-4, lr_schedule="constant")
    ewc_strength: float = 1000.0
    l2_strength: float = 1.0
    hnet_beta: float = 0.1

    def quick_version(self) -> Config:
        return dataclasses.replace(self, seeds=2, num_tasks=2, steps_per_task=8192, eval_episodes=2)

    def names(self) -> tuple[str, ...]:
        return tuple(self.learners) or (self.learner,)

    def validate(self) -> None:
        super().validate()
        LearnerOptions.validate(self)
        for name in self.names():
            if name not in RL_LEARNERS:
                known = "" if name in LEARNERS else f" (not a learner at all; known: {list(LEARNERS)})"
                raise ValueError(f"learner {name!r} does not run on the RL stream; RL learners: "
                                 f"{list(RL_LEARNERS)}{known}")
        if self.stream not in STREAMS:
            raise ValueError(f"--stream {self.stream!r} unknown; known: {sorted(STREAMS)}")
        if not 1 <= self.num_tasks <= len(STREAMS[self.stream][1]):
            raise ValueError(f"--num-tasks must lie in 1..{len(STREAMS[self.stream][1])}")
        if self.eval_episodes < 1 or self.fisher_rows < 1:
            raise ValueError("--eval-episodes and --fisher-rows must be >= 1")
        self.ppo.validate()
        if self.steps_per_task < self.ppo.steps_per_update:
            raise ValueError("--steps-per-task is less than one PPO update")


def rl_learner(name: str, options: LearnerOptions, trainer_policy, params_example, num_tasks: int,
               fisher_rows: int):
    """The learner ``name`` for PPO's policy: the Fisher of its action distribution (and of the critic
    as a unit-variance Gaussian) on evenly spaced steps of a rollout."""

    def split(params, sample):
        obs, task = sample
        _, dist, value = trainer_policy.apply(params, (), obs[None], jnp.zeros((1,), bool), task[None])
        return dist, value[0]

    def log_probs(params, sample):
        return jax.nn.log_softmax(split(params, sample)[0].logits[0])

    def value_fn(params, sample):
        return split(params, sample)[1]

    def fisher_data(traj):
        flat = lambda x: x.reshape((-1,) + x.shape[2:])
        n = traj.obs.shape[0] * traj.obs.shape[1]
        rows = np.linspace(0, n - 1, min(fisher_rows, n)).astype(np.int32)
        obs, task, action = flat(traj.obs)[rows], flat(traj.task)[rows], flat(traj.action)[rows]
        return (obs, task), action.astype(jnp.int32), jnp.ones(rows.shape, bool)

    spec = ModelSpec(apply=lambda p, x: trainer_policy.apply(p, (), x, jnp.zeros(x.shape[:1], bool), None),
                     params_example=params_example, max_tasks=num_tasks, log_probs=log_probs,
                     fisher_data=fisher_data, value_fn=value_fn)
    return make_learner(name, spec, dataclasses.replace(options, fisher_samples=0))


def learner_options(config: Config) -> LearnerOptions:
    return LearnerOptions(**{f.name: getattr(config, f.name) for f in dataclasses.fields(LearnerOptions)})


def continual_ppo_job(name: str, config: Config, learner_name: str):
    factory, stream_tasks = STREAMS[config.stream]
    task_env = factory()
    tasks = jnp.asarray(stream_tasks[: config.num_tasks], jnp.float32)
    T = config.num_tasks
    updates_per_task = config.steps_per_task // config.ppo.steps_per_update
    ppo = dataclasses.replace(config.ppo, total_timesteps=updates_per_task * T * config.ppo.steps_per_update)
    teacher = stream_teacher(task_env.task_space, tasks[0])
    # the policy network and its parameter shapes, for the learners (PPO builds the same default MLP)
    probe = make_train(ppo, task_env, teacher)
    seen_env = probe.task_env  # what the policy sees: with the task appended when context_in_obs
    example = jax.eval_shape(probe.policy.init, jax.random.PRNGKey(0),
                             jnp.zeros((1,) + seen_env.observation_shape()), tasks[:1])
    learner = rl_learner(learner_name, learner_options(config), probe.policy, example, T, config.fisher_rows)
    trainer = make_train(ppo, task_env, teacher, learner=learner)
    env = TaskAutoReset(seen_env)

    def scores_of_every_task(state):
        key = jax.random.fold_in(state.key, 11)

        def one(j):
            params = model_params(learner, state.train_state.params, state.learner_state, j)
            _, score = evaluate_tasks(trainer.policy, params, seen_env, tasks[j][None], jax.random.fold_in(key, j),
                                      episodes_per_task=config.eval_episodes)
            return score[0]

        return jax.lax.map(one, jnp.arange(T, dtype=jnp.int32))

    def init(key):
        state = trainer.init(key)
        b = scores_of_every_task(state)
        return {"ppo": state, "R": jnp.zeros((T, T)), "b": b, "last": b}

    def chunk(state, n, active):
        ppo_state, metrics = trainer.train_chunk(state["ppo"], n, active)
        return {**state, "ppo": ppo_state}, metrics

    def after_chunk(state, chunk_index):
        s = state["ppo"]
        scores = scores_of_every_task(s)
        k = s.task_id
        R = cl_metrics.record_row(state["R"], k, scores)
        s, traj = trainer.rollout(s)
        s = s.replace(learner_state=learner.end_task(s.learner_state, s.train_state.params, k, traj))
        nxt = jnp.minimum(k + 1, T - 1)
        key, k_reset = jax.random.split(s.key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, ppo.num_envs),
                                             jnp.broadcast_to(tasks[nxt], (ppo.num_envs, tasks.shape[1])))
        s = s.replace(task_id=nxt, teacher_state=tasks[nxt], obs=obs, env_state=env_state, key=key,
                      last_done=jnp.ones_like(s.last_done), carry=trainer.policy.initial_carry(ppo.num_envs))
        return {**state, "ppo": s, "R": R, "last": scores}

    base = ppo_job(name, trainer)

    def evaluate(state):
        s = state["ppo"]
        finished = s.update // updates_per_task  # tasks trained so far
        seen = (jnp.arange(T) < jnp.maximum(finished, 1)).astype(jnp.float32)
        out = {"task_score": state["last"], "R": state["R"], "task": s.task_id.astype(jnp.float32),
               "avg_return": jnp.sum(state["last"] * seen) / jnp.sum(seen)}
        out.update({k: v for k, v in cl_metrics.summary(state["R"], state["b"]).items() if k != "avg_accuracy"})
        return out

    def summarise(records, final_state):
        per_seed = jax.vmap(cl_metrics.summary)(jnp.asarray(final_state["R"]), jnp.asarray(final_state["b"]))
        per_seed = {("avg_return" if k == "avg_accuracy" else k): v for k, v in per_seed.items()}
        out = {}
        for key in SUMMARY_KEYS:
            v = np.asarray(per_seed[key], np.float64)
            out[key], out[f"{key}_std"] = float(v.mean()), seed_std(v)
        out["num_tasks"] = T
        return out

    def extra_plots(plots_dir, records):
        continual_plots.continual_figures(plots_dir, records, name, "task_score", "score (return / 500)",
                                          "env_steps")

    record = {"stream": {"name": config.stream, "tasks": np.asarray(tasks).tolist(),
                         "task_names": list(task_env.task_space.names)}}
    return base._replace(init=init, chunk=chunk, chunk_plan=(updates_per_task,) * T, after_chunk=after_chunk,
                         evaluate=evaluate, summarise=summarise, extra_plots=extra_plots,
                         iterations=updates_per_task * T, curves=("avg_return", "episodic_return"), record=record)


def learner_runs(name: str, config: Config):
    return [(learner, continual_ppo_job(f"{name}/{learner}", config, learner),
             dataclasses.replace(config, learner=learner, learners=())) for learner in config.names()]


def main(config: Config) -> dict:
    config.validate()
    name = f"continual_rl {config.stream}"
    if config.run_dir is None:
        config = dataclasses.replace(config, run_dir=default_run_dir(name))
    summary = run_many(name, learner_runs(name, config), config, metric="avg_return")
    if len(config.names()) > 1:
        mats = {}
        for child in config.names():
            with open(os.path.join(config.run_dir, child, "metrics.jsonl")) as f:
                last = [json.loads(line) for line in f if line.strip()][-1]
            mats[child] = np.asarray(last["R"], np.float64).mean(axis=0)
        continual_plots.plot_heatmaps(os.path.join(config.run_dir, "plots", "R_heatmaps.png"), mats,
                                      "score (return / 500)")
    return summary


if __name__ == "__main__":
    cli(Config, main)
