"""Proximal Policy Optimisation (Schulman et al. 2017, arXiv:1707.06347), one implementation for
every curriculax experiment, in PureJaxRL's ``make_train(config) -> train(key)`` shape
(``luchris429/purejaxrl``, ``purejaxrl/ppo.py``).

Per update: the teacher hands out the tasks of the rollout (``sample`` once for every (step, env) slot:
its state does not change inside a rollout), a ``lax.scan`` of ``num_steps`` vectorised environment
steps (an episode that ends is reset with its slot's task), GAE (``algos/gae.py``: bootstraps through
truncation, stops at termination), then ``update_epochs`` passes over ``num_minibatches`` minibatches
of the continual learner's wrapped loss around :func:`ppo_loss`, with Adam (eps 1e-5) after
global-norm clipping and the learning rate ``lr * schedule(update)`` (``algos/schedules.py``); then the
teacher's ``update`` with the tasks, scores and done mask of the episodes that finished, and the
extras the teacher names in ``Teacher.extras``: ``initial_value`` (the critic's V at each episode's
first observation) and ``discounted_return``.

The float hyperparameters (:class:`PPOHyperparams`: lr, clip, entropy and value coefficients, gamma,
GAE lambda) are the config's constants, or, when ``init(key, hparams)`` is given them, arrays in the
state, so ``jax.vmap(trainer.init)(keys, hparams)`` trains several settings in one jitted call. For long runs the same code is split into ``init(key)`` and ``train_chunk(state, n)``;
``rollout(state)`` collects one rollout without learning (for a learner's consolidation).
Recurrent policies keep the carry at the start of each rollout and replay whole per-environment
sequences (``minibatch_axis`` "envs", chosen automatically).

Environment-axis sharding: traced under a mesh with an axis named ``envs`` (:data:`ENV_AXIS`, set with
``jax.set_mesh``, as the runner does for ``--env-devices``), every per-environment array (environment
states, observations, the rollout) is laid out along that axis, and the compiler partitions the rest
from these shardings (GSPMD; Xu et al. 2021, arXiv:2105.04663): each device steps its share of the
environments, and the gradients of a minibatch, which mixes rows of every device, are summed across
devices by the collectives XLA inserts. The program computes the same update as without a mesh, up
to the order of float sums.
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
from algos.learner import Learner, model_params, null_learner, trained_params
from algos.loops import masked_scan, periodic_scan
from algos.networks import Policy, mlp_policy, policy_step
from algos.schedules import SCHEDULES, make_schedule
from envs.task_env import EpisodeStats, TaskAutoReset, TaskEnv
from teachers.base import EXTRAS, Teacher, input_metrics
from teachers.fixed import fixed_teacher

# info keys TaskAutoReset adds; everything else in ``info`` is the environment's own
CURRICULAX_INFO_KEYS = ("terminated", "truncated", "final_observation", "episode")
ENV_AXIS = "envs"
"""The mesh axis the environment axis is laid out along (see the module docstring)."""


def shard_envs(tree: Any, num_envs: int, axis: int = 0, strict: bool = True) -> Any:
    """Constrain axis ``axis`` (of size ``num_envs``) of every leaf of ``tree`` to the mesh axis
    :data:`ENV_AXIS` of the surrounding mesh; unchanged without a mesh or with that axis of size 1.
    Inside ``jax.vmap`` (over seeds) the mapped axis stays unconstrained. A size that does not split
    evenly raises ``ValueError`` (``strict``) or leaves the layout to the compiler."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or ENV_AXIS not in mesh.axis_names or mesh.shape[ENV_AXIS] == 1:
        return tree
    devices = mesh.shape[ENV_AXIS]
    if num_envs % devices and not strict:
        return tree
    if num_envs % devices:
        raise ValueError(f"PPOConfig.num_envs={num_envs} must be a multiple of the {devices} devices of "
                         f"the mesh axis {ENV_AXIS!r} (--env-devices)")
    spec = jax.sharding.PartitionSpec(*([None] * axis), ENV_AXIS)
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, spec), tree)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO settings; defaults are PureJaxRL's CartPole-v1 settings."""

    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    lr_schedule: str = "linear"
    """learning-rate schedule over updates (algos.schedules: constant, linear, cosine)"""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_value: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    hidden: tuple[int, ...] = (64, 64)
    """MLP widths of the default policy (unused with a custom policy)"""
    activation: str = "tanh"
    """activation of the default policy (unused with a custom policy)"""
    minibatch_axis: Literal["auto", "flat", "envs"] = "auto"
    """auto: flat (shuffle every step) for feed-forward policies, envs (whole sequences) for recurrent"""
    context_in_obs: bool = False
    """append the running episode's task vector to the observation (as SPDL's point mass does)"""
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
        for name in ["lr", "gamma", "gae_lambda", "clip_eps", "ent_coef", "vf_coef", "max_grad_norm"]:
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"PPOConfig.{name} must be a finite number, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"PPOConfig.lr must be > 0, got {self.lr}")
        for name in ["gamma", "gae_lambda"]:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"PPOConfig.{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.clip_eps <= 0 or self.max_grad_norm <= 0:
            raise ValueError("PPOConfig.clip_eps and max_grad_norm must be > 0")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"PPOConfig.lr_schedule {self.lr_schedule!r} unknown; known: {sorted(SCHEDULES)}")
        if self.minibatch_axis not in ("auto", "flat", "envs"):
            raise ValueError(
                f"PPOConfig.minibatch_axis must be 'auto', 'flat' or 'envs', got {self.minibatch_axis!r}"
            )

    def resolved_minibatch_axis(self, recurrent: bool) -> str:
        if self.minibatch_axis == "auto":
            return "envs" if recurrent else "flat"
        if recurrent and self.minibatch_axis != "envs":
            raise ValueError("a recurrent policy needs PPOConfig.minibatch_axis='envs' (or 'auto')")
        return self.minibatch_axis


@struct.dataclass
class PPOHyperparams:
    """The float hyperparameters PPO reads as arrays, so that they can be vmapped."""

    lr: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array

    @classmethod
    def from_config(cls, config: PPOConfig, **overrides: Any) -> PPOHyperparams:
        """The config's values (or ``overrides``, e.g. ``lr=jnp.array([1e-4, 3e-4])``) as float32."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(overrides) - set(names)
        if unknown:
            raise ValueError(f"PPOHyperparams has no fields {sorted(unknown)}; known: {names}")
        return cls(**{n: jnp.asarray(overrides.get(n, getattr(config, n)), jnp.float32) for n in names})


@struct.dataclass
class EpisodeExtras:
    """Running per-environment statistics of the current episodes, for the teacher's extras."""

    initial_value: jax.Array  # [num_envs] V at the episode's first observation
    discounted_return: jax.Array  # [num_envs] sum of gamma^t r_t so far
    discount: jax.Array  # [num_envs] gamma^t of the next reward


@struct.dataclass
class PPOState:
    """Everything a run needs to continue: checkpoint this and training resumes exactly."""

    train_state: TrainState
    hparams: PPOHyperparams | tuple  # () when the config's values are compiled in as constants
    env_state: Any
    obs: jax.Array
    last_done: jax.Array  # [num_envs] the current observation starts an episode
    carry: Any  # policy carry (recurrent policies); () for feed-forward
    episode_extras: EpisodeExtras
    learner_state: Any  # the continual learner's state; () for the null learner
    task_id: jax.Array  # int32 index of the current task of a continual stream (the learner sees it)
    teacher_state: Any
    key: jax.Array
    update: jax.Array  # number of updates done


class Transition(NamedTuple):
    """One rollout step for every environment (a trajectory stacks them, time first)."""

    obs: jax.Array
    reset: jax.Array  # obs starts an episode
    task: jax.Array  # task of the episode obs belongs to
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array  # the observation after this step in the same episode
    carry: Any  # recurrent policies: the carry after reading obs (V(final_obs) starts from it)
    episode: EpisodeStats  # rows with episode.done carry a finished episode
    initial_value: jax.Array  # of the episode this step belongs to (when the teacher reads it)
    discounted_return: jax.Array  # of that episode up to and including this step (likewise)
    info: dict  # the environment's own info keys


class PPOBatch(NamedTuple):
    """What :func:`ppo_loss` reads: a minibatch of steps with their advantages and value targets.

    ``carry`` is the policy carry at the start of each sequence (recurrent; ``()`` otherwise).
    """

    obs: jax.Array
    reset: jax.Array
    task: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantages: jax.Array
    targets: jax.Array
    carry: Any


def ppo_loss(
    params: Any,
    batch: PPOBatch,
    key: jax.Array,
    *,
    apply: Callable,
    hparams: PPOHyperparams,
    clip_value: bool = True,
    normalize_advantages: bool = True,
) -> tuple[jax.Array, dict]:
    """The PPO loss of one minibatch and its diagnostics.

        rho   = exp(log pi(a|s) - log pi_old(a|s)),   A normalised to mean 0, std 1 (optional)
        L_pi  = -mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A))
        L_V   = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2))  (or unclipped)
        L     = L_pi + c_v L_V - c_e mean(H[pi])

    ``apply(params, carry, obs, reset, task) -> (carry, dist, value)`` is the policy; ``key`` is unused
    (PPO's loss is deterministic) but part of the task-loss signature of ``algos/learner.py``.
    """
    del key
    _, dist, value = apply(params, batch.carry, batch.obs, batch.reset, batch.task)
    log_prob = dist.log_prob(batch.action)
    advantages = batch.advantages
    if normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = jnp.exp(log_prob - batch.log_prob)
    eps = hparams.clip_eps
    actor_loss = -jnp.minimum(ratio * advantages, jnp.clip(ratio, 1.0 - eps, 1.0 + eps) * advantages).mean()
    if clip_value:
        v_clipped = batch.value + jnp.clip(value - batch.value, -eps, eps)
        value_loss = 0.5 * jnp.maximum((value - batch.targets) ** 2, (v_clipped - batch.targets) ** 2).mean()
    else:
        value_loss = 0.5 * ((value - batch.targets) ** 2).mean()
    entropy = dist.entropy().mean()
    total = actor_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
    aux = {
        "loss/actor": actor_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy,
        "loss/approx_kl": ((ratio - 1.0) - jnp.log(ratio)).mean(),
        "loss/clip_frac": (jnp.abs(ratio - 1.0) > eps).mean(),
    }
    return total, aux


class Trainer(NamedTuple):
    """What :func:`make_train` returns. Every function is pure and per seed.

    ``init(key, hparams=None) -> state``; ``rollout(state) -> (state, trajectory)`` (one rollout, no
    learning, the teacher not updated); ``train_chunk(state, num_updates, active=None) -> (state,
    metrics)`` (metrics with a leading axis of ``num_updates``; with a traced ``active`` only the
    first ``active`` updates run); ``train(key) -> (state, metrics)`` (the whole run).
    """

    init: Callable[..., PPOState]
    rollout: Callable[[PPOState], tuple[PPOState, Transition]]
    train_chunk: Callable[..., tuple[PPOState, dict]]
    train: Callable[[jax.Array], tuple[PPOState, dict]]
    config: PPOConfig
    policy: Policy
    task_env: TaskEnv
    teacher: Teacher
    learner: Learner
    unused_config: tuple[str, ...] = ()  # PPOConfig fields this trainer ignores (custom policy)


def action_spec(task_env: TaskEnv) -> tuple[int, bool, Any, Any]:
    """``(action_dim, discrete, low, high)`` of the task environment's action space."""
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
    learner: Learner | None = None,
) -> Trainer:
    """Build PPO for ``task_env``.

    ``teacher`` chooses each episode's task (default: every episode runs ``task_env.default_task``);
    ``policy`` replaces the default MLP (``algos/networks.py``); ``learner`` wraps the PPO loss
    (``algos/learner.py``; default: the null learner).
    """
    config.validate()
    if teacher is not None and teacher.task_space != task_env.task_space:
        raise ValueError(
            f"teacher {teacher.name!r} and environment {task_env.name!r} use different task spaces"
        )
    if config.context_in_obs:
        from envs.wrappers import with_context_in_obs

        task_env = with_context_in_obs(task_env)
    teacher = teacher or fixed_teacher(task_env.task_space, task_env.default_task)
    unknown = set(teacher.extras) - set(EXTRAS)
    if unknown:
        raise ValueError(f"teacher {teacher.name!r} asks for extras {sorted(unknown)}; PPO has {list(EXTRAS)}")
    deferred = teacher.deferred  # a teacher's periodic refit, placed by train_chunk (teachers.base)
    record = teacher.update if deferred is None else deferred.update
    learner = learner or null_learner()
    action_dim, discrete, act_low, act_high = action_spec(task_env)
    unused_config = () if policy is None else ("hidden", "activation")
    if policy is None:
        policy = mlp_policy(action_dim, discrete, config.hidden, config.activation)
    minibatch_axis = config.resolved_minibatch_axis(policy.recurrent)
    num_envs, num_steps, nmb = config.num_envs, config.num_steps, config.num_minibatches
    rows = num_envs if minibatch_axis == "envs" else num_envs * num_steps
    if rows % nmb:
        raise ValueError(
            f"PPOConfig.num_minibatches={nmb} must divide "
            f"{'num_envs' if minibatch_axis == 'envs' else 'num_envs*num_steps'}={rows}"
        )
    env = TaskAutoReset(task_env)
    schedule = make_schedule(config.lr_schedule, config.num_updates)
    steps_per_update = config.num_minibatches * config.update_epochs
    tx = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.scale_by_adam(eps=1e-5))

    constants = PPOHyperparams.from_config(config)

    def hyperparams(state: PPOState) -> PPOHyperparams:
        """The state's own hyperparameters (vmappable), else the config's as compile-time constants
        (which XLA can fold)."""
        return state.hparams if isinstance(state.hparams, PPOHyperparams) else constants

    def init(key: jax.Array, hparams: PPOHyperparams | None = None) -> PPOState:
        hparams = () if hparams is None else hparams
        key, k_net, k_teacher, k_task, k_reset, k_learner = jax.random.split(key, 6)
        teacher_state = teacher.init(k_teacher)
        teacher_state, tasks = teacher.sample(teacher_state, k_task, num_envs)
        obs, env_state = shard_envs(jax.vmap(env.reset)(jax.random.split(k_reset, num_envs), tasks), num_envs)
        params = trained_params(learner, jax.random.fold_in(k_learner, 1), policy.init(k_net, obs[:1], tasks[:1]))
        zeros = jnp.zeros((num_envs,), jnp.float32)
        return PPOState(
            train_state=TrainState.create(apply_fn=policy.apply, params=params, tx=tx),
            hparams=hparams,
            env_state=env_state,
            obs=obs,
            last_done=jnp.ones((num_envs,), bool),
            carry=policy.initial_carry(num_envs),
            episode_extras=EpisodeExtras(zeros, zeros, jnp.ones_like(zeros)),
            learner_state=learner.init(k_learner, params, obs[:1]),
            task_id=jnp.zeros((), jnp.int32),
            teacher_state=teacher_state,
            key=key,
            update=jnp.zeros((), jnp.int32),
        )

    def env_step(state: PPOState, next_tasks: jax.Array, params: Any):
        """One step of every environment, acting with the model's ``params``."""
        key, k_act, k_step = jax.random.split(state.key, 3)
        hp = hyperparams(state)
        reset, task = state.last_done, state.env_state.task
        carry, dist, value = policy_step(policy, params, state.carry, state.obs, reset, task)
        action = dist.sample(k_act)
        log_prob = dist.log_prob(action)
        env_action = action if discrete else jnp.clip(action, *jax.vmap(task_env.action_bounds)(task))
        obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step)(
            jax.random.split(k_step, num_envs), state.env_state, env_action, next_tasks
        )
        done = jnp.logical_or(terminated, truncated)
        acc = state.episode_extras
        initial_value, discounted_return, discount = acc.initial_value, acc.discounted_return, acc.discount
        if "initial_value" in teacher.extras:
            initial_value = jnp.where(reset, value, acc.initial_value)
        if "discounted_return" in teacher.extras:
            discount = jnp.where(reset, 1.0, acc.discount)
            discounted_return = jnp.where(reset, 0.0, acc.discounted_return) + discount * reward
            acc_discount = discount * hp.gamma
        else:
            acc_discount = discount
        transition = Transition(
            obs=state.obs, reset=reset, task=task, action=action, log_prob=log_prob, value=value,
            reward=reward, terminated=terminated, done=done, final_obs=info["final_observation"],
            carry=carry, episode=info["episode"], initial_value=initial_value,
            discounted_return=discounted_return,
            info={k: v for k, v in info.items() if k not in CURRICULAX_INFO_KEYS},
        )
        env_state, obs, done, carry, extras, transition = shard_envs(
            (env_state, obs, done, carry, EpisodeExtras(initial_value, discounted_return, acc_discount),
             transition), num_envs)
        state = state.replace(env_state=env_state, obs=obs, last_done=done, carry=carry, key=key,
                              episode_extras=extras)
        return state, transition

    def rollout(state: PPOState) -> tuple[PPOState, Transition]:
        """``num_steps`` steps of every environment; the teacher hands out one task per slot."""
        key, k_tasks = jax.random.split(state.key)
        teacher_state, tasks = teacher.sample(state.teacher_state, k_tasks, num_steps * num_envs)
        tasks = shard_envs(tasks.reshape(num_steps, num_envs, -1), num_envs, axis=1)
        # The teacher's state stays out of the step loop's carry: it can be large (ALP-GMM's history)
        # and XLA may copy a loop carry at every step.
        # The acting parameters are fixed for the rollout: a learner that generates them (a hypernetwork)
        # does so once, not at every step.
        params = model_params(learner, state.train_state.params, state.learner_state, state.task_id)
        step = lambda s, next_tasks: env_step(s, next_tasks, params)  # noqa: E731
        state, traj = jax.lax.scan(step, state.replace(teacher_state=(), key=key), tasks)
        return state.replace(teacher_state=teacher_state), traj

    def env_major(x: jax.Array) -> jax.Array:
        """``[num_steps, num_envs, ...]`` flattened environment-major (row ``e * num_steps + t``): a
        layout of the environment axis over devices carries over to the rows without moving data."""
        return jnp.swapaxes(x, 0, 1).reshape((num_envs * num_steps,) + x.shape[2:])

    def next_values(params, traj: Transition) -> jax.Array:
        """V of the observation following each step in its episode, in one batched call: from the
        carry after that step (recurrent), without a reset, with the step's task."""
        carry = jax.tree.map(env_major, traj.carry)
        reset = jnp.zeros((num_steps * num_envs,), bool)
        _, _, v = policy_step(policy, params, carry, env_major(traj.final_obs), reset, env_major(traj.task))
        return v.reshape(num_envs, num_steps).T

    def minibatches(key, traj: Transition, start_carry, adv, targets) -> PPOBatch:
        """The rollout cut into ``num_minibatches`` batches along a leading axis."""
        batch = PPOBatch(traj.obs, traj.reset, traj.task, traj.action, traj.log_prob, traj.value,
                         adv, targets, ())
        if minibatch_axis == "flat":
            # a permutation of the time-major rows t * num_envs + e, read from the env-major ones
            perm = jax.random.permutation(key, num_envs * num_steps)
            rows = (perm % num_envs) * num_steps + perm // num_envs
            split = lambda x: env_major(x)[rows].reshape((nmb, -1) + x.shape[2:])
            # each minibatch's rows split over the devices of the env axis: data-parallel gradients
            return shard_envs(jax.tree.map(split, batch), num_envs * num_steps // nmb, axis=1, strict=False)
        perm = jax.random.permutation(key, num_envs)
        split_t = lambda x: jnp.swapaxes(x[:, perm].reshape((num_steps, nmb, -1) + x.shape[2:]), 0, 1)
        split_c = lambda c: c[perm].reshape((nmb, -1) + c.shape[1:])
        batches = jax.tree.map(split_t, batch)._replace(carry=jax.tree.map(split_c, start_carry))
        return shard_envs(batches._replace(carry=()), num_envs // nmb, axis=2, strict=False)._replace(
            carry=shard_envs(batches.carry, num_envs // nmb, axis=1, strict=False))

    def learn(state: PPOState, traj: Transition, start_carry) -> tuple[TrainState, dict]:
        """``update_epochs`` passes of minibatch steps on the learner's wrapped PPO loss."""
        hp = hyperparams(state)
        task_loss = lambda params, batch, key: ppo_loss(
            params, batch, key, apply=policy.apply, hparams=hp, clip_value=config.clip_value,
            normalize_advantages=config.normalize_advantages,
        )
        loss = learner.loss(task_loss)
        grad_fn = jax.grad(
            lambda params, batch, key: loss(params, state.learner_state, batch, state.task_id, key),
            has_aux=True,
        )
        adv, targets = gae_advantages(
            traj.reward, traj.value,
            next_values(model_params(learner, state.train_state.params, state.learner_state, state.task_id), traj),
            traj.terminated, traj.done, hp.gamma, hp.gae_lambda,
        )

        def minibatch_step(train_state: TrainState, inputs):
            batch, key = inputs
            grads, aux = grad_fn(train_state.params, batch, key)
            updates, opt_state = tx.update(grads, train_state.opt_state, train_state.params)
            lr = hp.lr * schedule(train_state.step // steps_per_update)
            updates = jax.tree.map(lambda u: -lr * u, updates)
            train_state = train_state.replace(
                step=train_state.step + 1, params=optax.apply_updates(train_state.params, updates),
                opt_state=opt_state,
            )
            return train_state, aux

        def epoch(train_state, key):
            k_perm, k_loss = jax.random.split(key)
            batches = minibatches(k_perm, traj, start_carry, adv, targets)
            return jax.lax.scan(minibatch_step, train_state, (batches, jax.random.split(k_loss, nmb)))

        key = jax.random.fold_in(state.key, 1)
        return jax.lax.scan(epoch, state.train_state, jax.random.split(key, config.update_epochs))

    def update_step(state: PPOState, _):
        start_carry = state.carry
        state, traj = rollout(state)
        train_state, aux = learn(state, traj, start_carry)
        flat = lambda x: x.reshape((num_steps * num_envs,) + x.shape[2:])
        ep = traj.episode
        ep_tasks, ep_done = flat(ep.task), flat(ep.done)
        extras = {name: flat(getattr(traj, name)) for name in teacher.extras}
        teacher_state = record(state.teacher_state, ep_tasks, flat(ep.score), ep_done, **extras)
        done_f = ep.done.astype(jnp.float32)
        metrics = {
            "episodes": done_f.sum(),
            "return_sum": (ep.episodic_return * done_f).sum(),
            "score_sum": (ep.score * done_f).sum(),
            "length_sum": (ep.length * done_f).sum(),
            "task_hist": task_histogram(ep_tasks, ep_done, task_env, config.task_hist_bins),
            **jax.tree.map(jnp.mean, aux),
            **input_metrics(teacher_state),  # running counts of masked or clipped teacher inputs
        }
        key, _ = jax.random.split(state.key)
        state = state.replace(
            train_state=train_state, teacher_state=teacher_state, key=key, update=state.update + 1
        )
        return state, metrics

    def train_chunk(
        state: PPOState, num_updates: int, active: jax.Array | None = None
    ) -> tuple[PPOState, dict]:
        """``num_updates`` PPO updates (only the first ``active`` when given, see ``algos/loops.py``).

        A teacher with a :class:`teachers.base.Deferred` refit gets it after every ``period``-th update
        of the chunk and after its last, at static places of the loop (``algos.loops.periodic_scan``)."""
        if deferred is None:
            return masked_scan(update_step, state, num_updates, active)
        refit = lambda s: s.replace(teacher_state=deferred.refit(s.teacher_state))  # noqa: E731
        return periodic_scan(update_step, refit, state, num_updates, deferred.period, active)

    def train(key: jax.Array) -> tuple[PPOState, dict]:
        return train_chunk(init(key), config.num_updates)

    return Trainer(init, rollout, train_chunk, train, config, policy, task_env, teacher, learner,
                   unused_config)
