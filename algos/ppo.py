"""Proximal Policy Optimisation (Schulman et al. 2017, arXiv:1707.06347), one implementation for
every curriculax experiment, in PureJaxRL's ``make_train(config) -> train(key)`` shape.

Per update: a ``lax.scan`` of ``num_steps`` vectorised environment steps (a teacher's ``sample`` hands
every environment the task for its next episode), GAE (``algos/gae.py``: bootstraps through truncation,
stops at termination), then ``update_epochs`` passes over ``num_minibatches`` minibatches of

    L = -E[min(rho A, clip(rho, 1-eps, 1+eps) A)] + c_v L_V - c_e H[pi] + extra_loss(params, learner_state),
    rho = pi(a|s) / pi_old(a|s),  L_V = 0.5 E[max((V-R)^2, (V_clip-R)^2)]  (or unclipped),

with Adam (eps 1e-5) after global-norm clipping and optional linear learning-rate annealing; then the
teacher's ``update`` with the tasks, scores and done mask of the episodes that finished.

``extra_loss`` is a continual learner's regulariser; its own state (anchors, Fisher diagonals, ...) lives
per seed in ``PPOState.learner_state``, starts as ``learner_init(params)`` and is replaced between tasks
(``state.replace(learner_state=learner.end_task(...))``) without recompiling.

For long runs the same code is split into ``init(key)`` and ``train_chunk(state, num_updates)``;
``train(key)`` is both in one call. Everything is pure: ``jax.jit(jax.vmap(train))`` runs many seeds.
Recurrent policies (``Policy.recurrent``) keep the carry at the start of each rollout and use
``minibatch_axis="envs"`` so that sequences stay whole per environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState
from gymnax.environments import spaces

from algos.gae import gae_advantages
from algos.networks import Policy, mlp_policy
from envs.task_env import EpisodeStats, TaskAutoReset, TaskEnv
from teachers.base import Teacher


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters; defaults are PureJaxRL's CartPole-v1 settings."""

    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_value: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    minibatch_axis: Literal["flat", "envs"] = "flat"
    task_hist_bins: int = 10

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_timesteps // self.steps_per_update

    def validate(self) -> None:
        """Raise ``ValueError`` on settings that cannot run (before anything compiles)."""
        positive = ["num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches",
                    "task_hist_bins"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"PPOConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.num_updates < 1:
            raise ValueError(
                f"PPOConfig.total_timesteps={self.total_timesteps} is less than one update of "
                f"num_envs*num_steps={self.steps_per_update} steps"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"PPOConfig.lr must be a positive number, got {self.lr}")
        for name in ["gamma", "gae_lambda"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PPOConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.clip_eps <= 0 or self.max_grad_norm <= 0:
            raise ValueError("PPOConfig.clip_eps and max_grad_norm must be > 0")
        if self.minibatch_axis not in ("flat", "envs"):
            raise ValueError(f"PPOConfig.minibatch_axis must be 'flat' or 'envs', got {self.minibatch_axis!r}")
        rows = self.num_envs if self.minibatch_axis == "envs" else self.steps_per_update
        if rows % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.num_minibatches={self.num_minibatches} must divide "
                f"{'num_envs' if self.minibatch_axis == 'envs' else 'num_envs*num_steps'}={rows}"
            )


@struct.dataclass
class PPOState:
    """Everything a run needs to continue: checkpoint this and training resumes exactly."""

    train_state: TrainState
    env_state: Any
    obs: jax.Array
    last_done: jax.Array  # [num_envs] the current observation starts an episode
    carry: Any  # policy carry (recurrent policies); () for feed-forward
    learner_state: Any  # what extra_loss reads besides params (a continual learner's); () if none
    teacher_state: Any
    key: jax.Array
    update: jax.Array  # number of updates done


class Transition(NamedTuple):
    obs: jax.Array
    reset: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array
    next_value: jax.Array  # V(final_obs); filled after the rollout for feed-forward policies
    episode: EpisodeStats


class Trainer(NamedTuple):
    """What :func:`make_train` returns. ``init``/``train_chunk``/``train`` are pure, per seed."""

    init: Callable[[jax.Array], PPOState]
    train_chunk: Callable[..., tuple[PPOState, dict]]
    train: Callable[[jax.Array], tuple[PPOState, dict]]
    config: PPOConfig
    policy: Policy
    task_env: TaskEnv


def _action_spec(task_env: TaskEnv) -> tuple[int, bool, Any, Any]:
    space = task_env.action_space()
    if isinstance(space, spaces.Discrete):
        return int(space.n), True, None, None
    if isinstance(space, spaces.Box):
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
        return int(space.shape[0]) if space.shape else 1, False, low, high
    raise ValueError(f"PPO supports Discrete and Box action spaces, got {type(space).__name__}")


def task_histogram(tasks: jax.Array, mask: jax.Array, task_env: TaskEnv, bins: int) -> jax.Array:
    """Counts of masked tasks on a ``bins x bins`` grid over the first two task dimensions."""
    unit = task_env.task_space.normalise(tasks)
    idx = jnp.clip((unit * bins).astype(jnp.int32), 0, bins - 1)
    second = idx[:, 1] if tasks.shape[1] > 1 else jnp.zeros_like(idx[:, 0])
    flat = idx[:, 0] * bins + second
    counts = jnp.zeros(bins * bins, jnp.float32).at[flat].add(mask.astype(jnp.float32))
    return counts.reshape(bins, bins)


def make_train(
    config: PPOConfig,
    task_env: TaskEnv,
    teacher: Teacher | None = None,
    policy: Policy | None = None,
    extra_loss: Callable[[Any, Any], jax.Array] | None = None,
    learner_init: Callable[[Any], Any] | None = None,
) -> Trainer:
    """Build PPO for ``task_env``; ``teacher`` (optional) chooses each episode's task.

    Without a teacher every episode runs ``task_env.default_task``. ``extra_loss(params,
    learner_state)`` is added to the PPO loss (a continual learner's regulariser); ``learner_state``
    starts as ``learner_init(initial_params)`` (``()`` without ``learner_init``).
    """
    if learner_init is not None and extra_loss is None:
        raise ValueError("learner_init without extra_loss: nothing would read the learner state")
    config.validate()
    if teacher is not None and teacher.task_space != task_env.task_space:
        raise ValueError(
            f"teacher {teacher.name!r} and environment {task_env.name!r} use different task spaces"
        )
    action_dim, discrete, act_low, act_high = _action_spec(task_env)
    if policy is None:
        policy = mlp_policy(action_dim, discrete, config.hidden, config.activation)
    if policy.recurrent and config.minibatch_axis != "envs":
        raise ValueError("a recurrent policy needs PPOConfig.minibatch_axis='envs'")
    env = TaskAutoReset(task_env)
    num_envs, num_steps = config.num_envs, config.num_steps
    default_task = jnp.asarray(task_env.default_task, jnp.float32)

    def learning_rate(count):
        if not config.anneal_lr:
            return config.lr
        per_update = config.num_minibatches * config.update_epochs
        return config.lr * (1.0 - (count // per_update) / config.num_updates)

    tx = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(learning_rate, eps=1e-5),
    )

    def draw_tasks(teacher_state, key):
        if teacher is None:
            return teacher_state, jnp.broadcast_to(default_task, (num_envs, default_task.shape[0]))
        return teacher.sample(teacher_state, key, num_envs)

    def init(key: jax.Array) -> PPOState:
        key, k_net, k_teacher, k_task, k_reset = jax.random.split(key, 5)
        teacher_state = teacher.init(k_teacher) if teacher is not None else ()
        teacher_state, tasks = draw_tasks(teacher_state, k_task)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs), tasks)
        params = policy.init(k_net, obs[:1])
        train_state = TrainState.create(apply_fn=policy.apply, params=params, tx=tx)
        return PPOState(
            train_state=train_state,
            env_state=env_state,
            obs=obs,
            last_done=jnp.ones((num_envs,), bool),
            carry=policy.initial_carry(num_envs),
            learner_state=learner_init(params) if learner_init is not None else (),
            teacher_state=teacher_state,
            key=key,
            update=jnp.zeros((), jnp.int32),
        )

    def env_step(state: PPOState, _):
        key, k_act, k_task, k_step = jax.random.split(state.key, 4)
        params = state.train_state.params
        carry, dist, value = apply_one_step(params, state.carry, state.obs, state.last_done)
        action = dist.sample(k_act)
        log_prob = dist.log_prob(action)
        env_action = action if discrete else jnp.clip(action, act_low, act_high)
        teacher_state, next_tasks = draw_tasks(state.teacher_state, k_task)
        obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step)(
            jax.random.split(k_step, num_envs), state.env_state, env_action, next_tasks
        )
        done = jnp.logical_or(terminated, truncated)
        if policy.recurrent:  # V(final_obs) needs the carry before the reset: compute it here
            _, _, next_value = apply_one_step(
                params, carry, info["final_observation"], jnp.zeros_like(done)
            )
        else:  # feed-forward: computed after the rollout in one batched call
            next_value = jnp.zeros_like(value)
        transition = Transition(
            obs=state.obs, reset=state.last_done, action=action, log_prob=log_prob, value=value,
            reward=reward, terminated=terminated, done=done,
            final_obs=info["final_observation"], next_value=next_value, episode=info["episode"],
        )
        state = state.replace(
            env_state=env_state, obs=obs, last_done=done, carry=carry,
            teacher_state=teacher_state, key=key,
        )
        return state, transition

    def apply_one_step(params, carry, obs, reset):
        """One environment step of the policy; recurrent policies take ``[T=1, B, ...]`` inputs."""
        if not policy.recurrent:
            return policy.apply(params, carry, obs, reset)
        carry, dist, value = policy.apply(params, carry, obs[None], reset[None])
        return carry, jax.tree.map(lambda x: x[0], dist), value[0]

    def next_values(params, traj: Transition):
        """V of the observation following each step in its episode (``final_observation``)."""
        if policy.recurrent:
            return traj.next_value
        _, _, v = policy.apply(params, (), traj.final_obs, traj.done)
        return v

    def loss_fn(params, batch: Transition, carry, advantages, targets, learner_state):
        _, dist, value = policy.apply(params, carry, batch.obs, batch.reset)
        log_prob = dist.log_prob(batch.action)
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = jnp.exp(log_prob - batch.log_prob)
        pg1 = ratio * advantages
        pg2 = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps) * advantages
        actor_loss = -jnp.minimum(pg1, pg2).mean()
        if config.clip_value:
            v_clipped = batch.value + jnp.clip(value - batch.value, -config.clip_eps, config.clip_eps)
            value_loss = 0.5 * jnp.maximum((value - targets) ** 2, (v_clipped - targets) ** 2).mean()
        else:
            value_loss = 0.5 * ((value - targets) ** 2).mean()
        entropy = dist.entropy().mean()
        total = actor_loss + config.vf_coef * value_loss - config.ent_coef * entropy
        extra = extra_loss(params, learner_state) if extra_loss is not None else jnp.zeros(())
        total = total + extra
        aux = {
            "loss/actor": actor_loss,
            "loss/value": value_loss,
            "loss/entropy": entropy,
            "loss/extra": extra,
            "loss/approx_kl": ((ratio - 1.0) - jnp.log(ratio)).mean(),
            "loss/clip_frac": (jnp.abs(ratio - 1.0) > config.clip_eps).mean(),
        }
        return total, aux

    def epoch(carry, _):
        train_state, key, traj, start_carry, adv, targets, learner_state = carry

        def minibatch_step(train_state, minibatch):
            batch, mb_carry, mb_adv, mb_targets = minibatch
            grads, aux = jax.grad(loss_fn, has_aux=True)(
                train_state.params, batch, mb_carry, mb_adv, mb_targets, learner_state
            )
            return train_state.apply_gradients(grads=grads), aux

        key, k_perm = jax.random.split(key)
        nmb = config.num_minibatches
        if config.minibatch_axis == "flat":
            perm = jax.random.permutation(k_perm, num_envs * num_steps)
            split = lambda x: x.reshape((num_envs * num_steps,) + x.shape[2:])[perm].reshape(
                (nmb, -1) + x.shape[2:]
            )
            minibatches = jax.tree.map(split, (traj, adv, targets))
            mb_carry = jax.tree.map(lambda c: jnp.broadcast_to(c, (nmb,) + jnp.shape(c)), start_carry)
            minibatches = (minibatches[0], mb_carry, minibatches[1], minibatches[2])
        else:
            perm = jax.random.permutation(k_perm, num_envs)
            split_t = lambda x: jnp.swapaxes(
                x[:, perm].reshape((num_steps, nmb, -1) + x.shape[2:]), 0, 1
            )
            split_c = lambda c: c[perm].reshape((nmb, -1) + c.shape[1:])
            t, a, r = jax.tree.map(split_t, (traj, adv, targets))
            minibatches = (t, jax.tree.map(split_c, start_carry), a, r)
        train_state, aux = jax.lax.scan(minibatch_step, train_state, minibatches)
        return (train_state, key, traj, start_carry, adv, targets, learner_state), aux

    def update_step(state: PPOState, _):
        start_carry = state.carry
        state, traj = jax.lax.scan(env_step, state, None, num_steps)
        params = state.train_state.params
        adv, targets = gae_advantages(
            traj.reward, traj.value, next_values(params, traj),
            traj.terminated, traj.done, config.gamma, config.gae_lambda,
        )
        key, k_epochs = jax.random.split(state.key)
        (train_state, *_), aux = jax.lax.scan(
            epoch,
            (state.train_state, k_epochs, traj, start_carry, adv, targets, state.learner_state),
            None,
            config.update_epochs,
        )
        ep = traj.episode
        flat = lambda x: x.reshape((num_steps * num_envs,) + x.shape[2:])
        ep_tasks, ep_scores, ep_done = flat(ep.task), flat(ep.score), flat(ep.done)
        teacher_state = state.teacher_state
        if teacher is not None:
            teacher_state = teacher.update(teacher_state, ep_tasks, ep_scores, ep_done)
        done_f = ep.done.astype(jnp.float32)
        metrics = {
            "episodes": done_f.sum(),
            "return_sum": (ep.episodic_return * done_f).sum(),
            "score_sum": (ep.score * done_f).sum(),
            "length_sum": (ep.length * done_f).sum(),
            "task_hist": task_histogram(ep_tasks, ep_done, task_env, config.task_hist_bins),
            **jax.tree.map(jnp.mean, aux),
        }
        state = state.replace(
            train_state=train_state, teacher_state=teacher_state, key=key, update=state.update + 1
        )
        return state, metrics

    def train_chunk(state: PPOState, num_updates: int) -> tuple[PPOState, dict]:
        """Run ``num_updates`` PPO updates; metrics have a leading axis of that length."""
        return jax.lax.scan(update_step, state, None, num_updates)

    def train(key: jax.Array) -> tuple[PPOState, dict]:
        return train_chunk(init(key), config.num_updates)

    return Trainer(init, train_chunk, train, config, policy, task_env)
