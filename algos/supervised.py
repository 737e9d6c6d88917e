"""Supervised continual training on a task stream (``envs/supervised.py``) with any continual learner
(``algos/learner.py``, ``algos/continual/``): the supervised counterpart of ``algos/ppo.py``, in the
same ``init`` / ``train_chunk`` shape and run by the same runner.

Task k is trained for ``steps_per_task`` minibatch steps of Adam on the learner's wrapped loss around
the masked cross-entropy of the classifier (the logits of classes outside the example's task mask are
removed: the multi-head of task-incremental streams). At every task boundary ``after_chunk`` evaluates
the model on the test set of every task of the stream (``learner.predict`` with that task's id), writes
row k of the performance matrix R (``algos/continual/metrics.py``) inside the jitted program, and
consolidates: ``learner.end_task`` with ``consolidation_size`` training examples of task k drawn
without replacement (the Fisher's samples, the replay buffer's fill), then moves on to task k + 1.
The untrained model's accuracies ``b`` (for forward transfer) are measured in ``init``. The task
identity reaches ``predict`` except on the class-incremental stream, where every task is evaluated
with the id of the task trained last (no task identity at test time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from algos.continual import metrics
from algos.continual.hyperinterval import MASKED_LOGIT, masked_ce
from algos.continual.registry import LearnerOptions, ModelSpec, make_learner
from algos.learner import Learner, model_params, trained_params
from envs.supervised import StreamTasks, SupervisedBatch, SupervisedStream


@dataclasses.dataclass(frozen=True)
class SupervisedConfig:
    """Training settings of a supervised continual run."""

    steps_per_task: int = 500
    batch_size: int = 128
    lr: float = 1e-3
    hidden: tuple[int, ...] = (100, 100)
    """widths of the classifier MLP (ReLU)"""
    consolidation_size: int = 500
    """training examples of the finished task handed to end_task (Fisher samples, buffer fill)"""
    evals_per_task: int = 1
    """chunks (evaluations of every task) per task"""
    reset_optimizer: bool = False
    """start every task with a fresh optimizer state (Avalanche's strategies do, by default)"""

    def validate(self) -> None:
        for name in ("steps_per_task", "batch_size", "consolidation_size", "evals_per_task"):
            if getattr(self, name) < 1:
                raise ValueError(f"SupervisedConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.steps_per_task % self.evals_per_task:
            raise ValueError("SupervisedConfig.evals_per_task must divide steps_per_task")
        if not self.lr > 0:
            raise ValueError(f"SupervisedConfig.lr must be > 0, got {self.lr}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"SupervisedConfig.hidden widths must be >= 1, got {self.hidden}")


class MLPClassifier(nn.Module):
    """Dense layers ``Dense_0 ... Dense_L`` with ReLU between them; logits out."""

    hidden: Sequence[int]
    num_classes: int

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.num_classes)(x)


def mlp_classifier(hidden: Sequence[int], num_classes: int) -> MLPClassifier:
    return MLPClassifier(tuple(hidden), num_classes)


def classification_loss(apply: Callable[[Any, Any], jax.Array]) -> Callable:
    """The task loss ``(params, batch, key) -> (mean masked CE, aux)`` of the protocol."""

    def task_loss(params, batch: SupervisedBatch, key):
        del key
        logits = apply(params, batch.x)
        correct = (masked_argmax(logits, batch.logit_mask) == batch.y).mean()
        return masked_ce(logits, batch.y, batch.logit_mask), {"loss/ce": masked_ce(logits, batch.y, batch.logit_mask),
                                                              "train_accuracy": correct}

    return task_loss


def masked_argmax(logits: jax.Array, logit_mask: jax.Array) -> jax.Array:
    return jnp.argmax(jnp.where(logit_mask, logits, -jnp.inf), axis=-1)


@struct.dataclass
class SupervisedState:
    params: Any  # what the optimiser trains (a hypernetwork's weights for hnet learners)
    opt_state: Any
    learner_state: Any
    tasks: StreamTasks
    task_id: jax.Array  # int32 current task
    step: jax.Array  # int32 optimiser steps done
    key: jax.Array
    R: jax.Array  # [T, T] accuracy on task j after task k (rows of unfinished tasks are 0)
    b: jax.Array  # [T] accuracy of the untrained model
    last_acc: jax.Array  # [T] accuracies of the last evaluation
    universal_acc: jax.Array  # [T] accuracies as the learner's universal_task_id (HyperInterval's universal embedding; else 0)


class SupervisedTrainer(NamedTuple):
    """``init(key, strength=None)``, ``train_chunk(state, n, active)``, ``after_chunk(state, chunk)``,
    ``evaluate(state) -> [T] accuracies``, ``train(key)`` (the whole stream), and the pieces."""

    init: Callable[..., SupervisedState]
    train_chunk: Callable[..., tuple[SupervisedState, dict]]
    after_chunk: Callable[[SupervisedState, jax.Array], SupervisedState]
    evaluate: Callable[[SupervisedState], jax.Array]
    train: Callable[[jax.Array], SupervisedState]
    config: SupervisedConfig
    stream: SupervisedStream
    learner: Learner
    apply: Callable[[Any, Any], jax.Array]
    chunk_plan: tuple[int, ...]


def make_train(config: SupervisedConfig, stream: SupervisedStream,
               learner_factory: Callable[[Callable, Any], Learner]) -> SupervisedTrainer:
    """A supervised continual trainer. ``learner_factory(apply, params_example)`` builds the learner
    for the classifier (so that hypernetworks know their target)."""
    config.validate()
    module = mlp_classifier(config.hidden, stream.num_classes)
    apply = module.apply
    example_x = jnp.zeros((1, stream.input_dim), jnp.float32)
    params_example = jax.eval_shape(module.init, jax.random.PRNGKey(0), example_x)
    learner = learner_factory(apply, params_example)
    tx = optax.adam(config.lr)
    task_loss = classification_loss(apply)
    wrapped = learner.loss(task_loss)
    grad_fn = jax.grad(wrapped, has_aux=True)
    T = stream.num_tasks
    chunk = config.steps_per_task // config.evals_per_task
    chunk_plan = (chunk,) * (T * config.evals_per_task)

    def accuracy(params, learner_state, tasks, j, current) -> jax.Array:
        batch, valid = stream.eval_batch(tasks, j)
        logits = learner.predict(params, learner_state, batch.x, j if stream.task_id_at_test else current)
        correct = (masked_argmax(logits, batch.logit_mask) == batch.y) & valid
        return correct.sum() / valid.sum()

    def evaluate(state: SupervisedState, task_id_override: int | None = None) -> jax.Array:
        ids = jnp.arange(T, dtype=jnp.int32)
        if task_id_override is not None:
            one = lambda j: _accuracy_as(state, j, task_id_override)
        else:
            one = lambda j: accuracy(state.params, state.learner_state, state.tasks, j, state.task_id)
        return jax.lax.map(one, ids)

    def _accuracy_as(state, j, as_id):
        batch, valid = stream.eval_batch(state.tasks, j)
        logits = learner.predict(state.params, state.learner_state, batch.x, jnp.int32(as_id))
        correct = (masked_argmax(logits, batch.logit_mask) == batch.y) & valid
        return correct.sum() / valid.sum()

    def init(key: jax.Array, strength: jax.Array | None = None) -> SupervisedState:
        k_stream, k_net, k_learner, k_params, key = jax.random.split(key, 5)
        tasks = stream.init(k_stream)
        net = module.init(k_net, example_x)
        params = trained_params(learner, k_params, net)
        learner_state = learner.init(k_learner, net, example_x)
        if strength is not None:
            learner_state = learner_state.replace(strength=jnp.asarray(strength, jnp.float32))
        zeros = jnp.zeros((T,), jnp.float32)
        state = SupervisedState(params, tx.init(params), learner_state, tasks, jnp.zeros((), jnp.int32),
                                jnp.zeros((), jnp.int32), key, jnp.zeros((T, T), jnp.float32), zeros, zeros, zeros)
        return state.replace(b=evaluate(state))

    def step(state: SupervisedState, _):
        key, k_batch, k_loss = jax.random.split(state.key, 3)
        batch = stream.sample_batch(state.tasks, state.task_id, k_batch, config.batch_size)
        grads, aux = grad_fn(state.params, state.learner_state, batch, state.task_id, k_loss)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        learner_state = state.learner_state
        if learner.after_update is not None:
            learner_state = learner.after_update(learner_state)
        state = state.replace(params=optax.apply_updates(state.params, updates), opt_state=opt_state,
                              learner_state=learner_state, step=state.step + 1, key=key)
        return state, aux

    def train_chunk(state: SupervisedState, num_iterations: int, active: jax.Array | None = None):
        from algos.loops import masked_scan

        return masked_scan(step, state, num_iterations, active)

    def consolidation_data(state: SupervisedState, key: jax.Array) -> SupervisedBatch:
        batch, valid = stream.eval_batch(state.tasks, state.task_id, split="train")
        prio = jnp.where(valid, jax.random.uniform(key, valid.shape), jnp.inf)
        n = min(config.consolidation_size, valid.shape[0])
        take = jnp.argsort(prio)[:n]
        return jax.tree.map(lambda a: a[take], batch)

    def end_of_task(state: SupervisedState) -> SupervisedState:
        key, k_data = jax.random.split(state.key)
        acc = state.last_acc
        R = metrics.record_row(state.R, state.task_id, acc)
        data = consolidation_data(state, k_data)
        learner_state = learner.end_task(state.learner_state, state.params, state.task_id, data)
        state = state.replace(R=R, learner_state=learner_state, key=key)
        if config.reset_optimizer:
            state = state.replace(opt_state=tx.init(state.params))
        if learner.universal_task_id is not None:
            state = state.replace(universal_acc=evaluate(state, task_id_override=learner.universal_task_id))
        return state.replace(task_id=jnp.minimum(state.task_id + 1, T - 1))

    def after_chunk(state: SupervisedState, chunk_index: jax.Array) -> SupervisedState:
        state = state.replace(last_acc=evaluate(state))
        boundary = (chunk_index + 1) % config.evals_per_task == 0
        return jax.lax.cond(boundary, end_of_task, lambda s: s, state)

    def train(key: jax.Array) -> SupervisedState:
        state = init(key)
        for c in range(len(chunk_plan)):
            state, _ = train_chunk(state, chunk)
            state = after_chunk(state, jnp.int32(c))
        return state

    return SupervisedTrainer(init, train_chunk, after_chunk, evaluate, train, config, stream, learner, apply,
                             chunk_plan)


def supervised_learner(name: str, options: LearnerOptions, stream: SupervisedStream,
                       config: SupervisedConfig) -> Callable[[Callable, Any], Learner]:
    """The ``learner_factory`` of :func:`make_train` for learner ``name`` of the registry."""

    def factory(apply, params_example):
        def log_probs(params, sample: SupervisedBatch):
            logits = apply(params, sample.x[None])[0]
            return jax.nn.log_softmax(jnp.where(sample.logit_mask, logits, MASKED_LOGIT))

        example_item = SupervisedBatch(jnp.zeros((stream.input_dim,), jnp.float32), jnp.zeros((), jnp.int32),
                                       jnp.zeros((stream.num_classes,), bool), jnp.zeros((), jnp.int32))
        spec = ModelSpec(apply, params_example, stream.num_tasks, log_probs, example_item=example_item,
                         steps_per_task=config.steps_per_task)
        return make_learner(name, spec, options)

    return factory


def model_params_of(trainer: SupervisedTrainer, state: SupervisedState, task_id: int) -> Any:
    """The classifier's parameters for ``task_id`` (generated, for a hypernetwork learner)."""
    return model_params(trainer.learner, state.params, state.learner_state, jnp.int32(task_id))
