"""The continual-learner protocol: how a method wraps a task loss, in the manner of optax.

A learner knows nothing about PPO or about supervised training; it sees a task loss and the data it is
trained on. Every trainer (PPO, a supervised trainer) calls the same four pure functions:

    state = learner.init(key, params, example)                 # per-seed state (anchors, Fisher, ...)
    wrapped = learner.loss(task_loss)                          # task_loss(params, batch, key) -> (loss, aux)
    loss, aux = wrapped(params, state, batch, task_id, key)    # the task loss plus the method's term
    state = learner.end_task(state, params, task_id, data)     # consolidation at a task boundary
    y = learner.predict(params, state, x, task_id)             # the model's output for task ``task_id``

A learner whose trained parameters are not the model's own (a hypernetwork: the trained parameters
are the hypernetwork's weights and task embeddings, the model's weights are generated per task) also
gives ``init_params(key, model_params) -> trained params`` and ``model_params(params, state, task_id)
-> the model's params for task_id``; :func:`trained_params` and :func:`model_params` apply them (or
pass the parameters through when a learner has none), so a trainer acting with the model calls
``model_params`` once per step. ``after_update(state) -> state`` (optional) runs after every optimiser
step of the supervised trainer (a within-task schedule, e.g. HyperInterval's epsilon ramp); PPO does
not call it.

``aux`` of the wrapped loss holds the task loss's aux plus the method's own entries under
``"learner/<name>"``; trainers log the means of every entry. ``task_id`` is an int32 scalar (the index of
the current task in a continual stream); ``data`` is whatever the trainer collected for consolidation (a
PPO trajectory from ``Trainer.rollout``, a supervised batch). The null learner is the default of every
trainer: it returns the task loss unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

TaskLoss = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]
WrappedLoss = Callable[[Any, Any, Any, jax.Array, jax.Array], tuple[jax.Array, dict]]


class Learner(NamedTuple):
    """A continual learner: ``init``, ``loss``, ``end_task``, ``predict`` (see the module docstring)."""

    init: Callable[[jax.Array, Any, Any], Any]
    loss: Callable[[TaskLoss], WrappedLoss]
    end_task: Callable[[Any, Any, jax.Array, Any], Any]
    predict: Callable[[Any, Any, Any, jax.Array], Any]
    name: str = "learner"
    init_params: Callable[[jax.Array, Any], Any] | None = None
    model_params: Callable[[Any, Any, jax.Array], Any] | None = None
    after_update: Callable[[Any], Any] | None = None
    # a task id ``predict`` accepts besides the stream's own, evaluated on every task at each boundary
    # (HyperInterval's universal embedding: -1); None for most learners
    universal_task_id: int | None = None


def trained_params(learner: Learner, key: jax.Array, params: Any) -> Any:
    """The parameters the optimiser trains, from the model's initial ``params`` (the same unless the
    learner generates the model's weights)."""
    return params if learner.init_params is None else learner.init_params(key, params)


def model_params(learner: Learner, params: Any, state: Any, task_id: jax.Array) -> Any:
    """The model's parameters for ``task_id`` from the trained ``params`` (the same unless the learner
    generates the model's weights)."""
    return params if learner.model_params is None else learner.model_params(params, state, task_id)


def null_learner(apply: Callable[[Any, Any], Any] | None = None) -> Learner:
    """Plain training: no state, the task loss unchanged, nothing to consolidate.

    ``apply(params, x)`` is the model, used by ``predict`` only (PPO never calls ``predict``: its
    policy is applied directly).
    """

    def init(key, params, example):
        del key, params, example
        return ()

    def loss(task_loss: TaskLoss) -> WrappedLoss:
        def wrapped(params, state, batch, task_id, key):
            del state, task_id
            return task_loss(params, batch, key)

        return wrapped

    def end_task(state, params, task_id, data):
        del params, task_id, data
        return state

    def predict(params, state, x, task_id):
        del state, task_id
        if apply is None:
            raise ValueError("null_learner(apply=...) was built without a model; predict needs one")
        return apply(params, x)

    return Learner(init, loss, end_task, predict, "null")
