"""Elastic weight consolidation (Kirkpatrick et al. 2017, PNAS, "Overcoming catastrophic forgetting in
neural networks"), offline ("separate") form: one anchor and one diagonal Fisher per earlier task,

    L(theta) = L_t(theta) + sum_{k < t} (lambda / 2) sum_i F_{k,i} (theta_i - theta*_{k,i})^2.

The diagonal Fisher is estimated from per-sample gradients of the model's log-likelihood at the end
of each task, in one of the variants of van de Ven (``GMvandeVen/continual-learning``,
``models/cl/continual_learner.py::estimate_fisher``):

* ``exact``:     F_i = mean_x sum_y p(y|x) (d log p(y|x) / d theta_i)^2  (every label, weighted);
* ``sampled``:   one y ~ p(.|x) per x;
* ``empirical``: the observed label (the ground truth; in RL the action taken);
* ``batched``:   the square of each *minibatch-mean* gradient of the observed labels' log-likelihood,
  averaged over the minibatches (``fisher_batch`` rows each). This underestimates the Fisher, but it
  is what Avalanche's ``EWCPlugin`` (``avalanche/training/plugins/ewc.py``, over the experience's
  training data in minibatches of ``train_mb_size``) and SequeL's JAX EWC compute; it is here to run
  their EWC as they do.

In the first three each sample's gradient is squared on its own. An optional
``value_fn(params, sample) -> scalar`` adds (dV/dtheta)^2, the Fisher of a unit-variance Gaussian
output (a critic, as Continual World's ``regularize_critic``). ``lambda`` is ``state.strength`` (an array: vmappable).

The sum over earlier tasks is one quadratic: sum_k F_k (theta - theta*_k)^2 = A (theta - m)^2 + R per
parameter, with A = sum_k F_k, m = sum_k F_k theta*_k / A and R = sum_k F_k (theta*_k - m)^2. ``end_task``
folds each new task into (A, m, R) exactly (A' = A + F, m' = (A m + F theta*) / A',
R' = R + A F / A' (m - theta*)^2), so a training step costs one pass over the parameters whatever the
number of tasks (it was one pass per stored task), and nothing per task is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.learner import Learner

FISHERS = ("exact", "sampled", "empirical", "batched")

# log_probs(params, sample) -> [K] log-probabilities of one sample (no batch axis)
LogProbs = Callable[[Any, Any], jax.Array]
# data -> (samples [n, ...] pytree, labels [n] int32, mask [n] bool)
FisherData = Callable[[Any], tuple[Any, jax.Array, jax.Array]]


def default_fisher_data(data: Any) -> tuple[Any, jax.Array, jax.Array]:
    """A supervised batch: every row (``data.x``, ``data.y``) counts."""
    return data, data.y, jnp.ones(data.y.shape, bool)


def diagonal_fisher(
    log_probs: LogProbs,
    params: Any,
    samples: Any,
    labels: jax.Array,
    mask: jax.Array,
    key: jax.Array,
    kind: str = "exact",
    value_fn: Callable[[Any, Any], jax.Array] | None = None,
    batch_size: int = 16,
) -> Any:
    """The diagonal Fisher (a pytree like ``params``), averaged over the rows with ``mask`` (for
    ``batched``: over the ``batch_size``-row minibatches that hold any)."""
    if kind not in FISHERS:
        raise ValueError(f"unknown Fisher {kind!r}; known: {list(FISHERS)}")
    n = labels.shape[0]
    pad = (-n) % batch_size
    padded = lambda a: jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a
    samples, labels, mask = jax.tree.map(padded, samples), padded(labels), padded(mask)
    keys = jax.random.split(key, n + pad)
    sq = lambda t: jax.tree.map(jnp.square, t)

    def one(sample, label, ok, k):
        if kind == "exact":
            p = jax.lax.stop_gradient(jnp.exp(log_probs(params, sample)))
            # sum_y p_y g_y^2 = sum_y (sqrt(p_y) g_y)^2: the gradient of each label's weighted
            # log-likelihood, squared and summed over labels
            labels_k = jnp.arange(p.shape[0])
            g = jax.vmap(lambda c: jax.grad(lambda q: jnp.sqrt(p[c]) * log_probs(q, sample)[c])(params))(labels_k)
            f = jax.tree.map(lambda j: jnp.sum(j * j, axis=0), g)
        else:
            if kind == "sampled":
                label = jax.random.categorical(k, jax.lax.stop_gradient(log_probs(params, sample)))
            f = sq(jax.grad(lambda q: log_probs(q, sample)[label])(params))
        if value_fn is not None:
            f = jax.tree.map(jnp.add, f, sq(jax.grad(value_fn)(params, sample)))
        return jax.tree.map(lambda a: a * ok, f)

    chunks = lambda a: a.reshape((-1, batch_size) + a.shape[1:])
    xs = (jax.tree.map(chunks, samples), chunks(labels), chunks(mask.astype(jnp.float32)), chunks(keys))

    def batch_mean_squared(sample, label, ok, k):
        """(d/dtheta mean over the batch's valid rows of log p(y|x))^2, and 1 if the batch has any."""
        del k
        n_ok = jnp.sum(ok)

        def mean_log_lik(q):
            ll = jax.vmap(lambda x, y: log_probs(q, x)[y])(sample, label)
            return jnp.sum(ll * ok) / jnp.maximum(n_ok, 1.0)

        def mean_value(q):
            return jnp.sum(jax.vmap(lambda x: value_fn(q, x))(sample) * ok) / jnp.maximum(n_ok, 1.0)

        f = sq(jax.grad(mean_log_lik)(params))
        if value_fn is not None:
            f = jax.tree.map(jnp.add, f, sq(jax.grad(mean_value)(params)))
        return f, (n_ok > 0).astype(jnp.float32)

    def body(carry, inp):
        total, count = carry
        if kind == "batched":
            f, c = batch_mean_squared(*inp)
            return (jax.tree.map(jnp.add, total, f), count + c), None
        f = jax.vmap(one)(*inp)
        return (jax.tree.map(lambda t, b: t + b.sum(0), total, f), count), None

    (total, batches), _ = jax.lax.scan(body, (jax.tree.map(jnp.zeros_like, params), jnp.zeros(())), xs)
    count = batches if kind == "batched" else mask.sum().astype(jnp.float32)
    count = jnp.maximum(count, 1.0)
    return jax.tree.map(lambda t: t / count, total)


def first_rows(rows: tuple[Any, jax.Array, jax.Array], n: int | None) -> tuple[Any, jax.Array, jax.Array]:
    """The first ``n`` rows of ``(samples, labels, mask)`` (all of them when ``n`` is None): the
    Fisher's sample cap (van de Ven's ``fisher_n``)."""
    if n is None:
        return rows
    return jax.tree.map(lambda a: a[:n], rows)


def weighted_sq_distance(params: Any, anchor: Any, fisher: Any) -> jax.Array:
    """sum_i F_i (theta_i - anchor_i)^2."""
    leaves = zip(jax.tree.leaves(params), jax.tree.leaves(anchor), jax.tree.leaves(fisher))
    return sum(jnp.sum(f * (p - a) ** 2) for p, a, f in leaves)


@struct.dataclass
class EWCState:
    fisher_sum: Any  # A = sum_k F_k over the consolidated tasks (leaves like params)
    centre: Any  # m = sum_k F_k theta*_k / A (0 where A = 0)
    offset: jax.Array  # R = sum_k sum_i F_k,i (theta*_k,i - m_i)^2: the penalty at theta = m
    count: jax.Array  # int32 tasks consolidated
    strength: jax.Array  # lambda
    key: jax.Array


def ewc(
    apply: Callable[[Any, Any], Any],
    log_probs: LogProbs,
    strength: float = 100.0,
    fisher: str = "exact",
    fisher_data: FisherData = default_fisher_data,
    value_fn: Callable[[Any, Any], jax.Array] | None = None,
    fisher_batch: int = 16,
    fisher_samples: int | None = None,
) -> Learner:
    """Offline EWC. ``apply(params, x)`` is the model (``predict``); ``log_probs(params, sample)``
    the log-likelihood of one sample; ``fisher_data(data)`` turns ``end_task``'s data into
    ``(samples, labels, mask)``. Every consolidated task is folded into one quadratic (module
    docstring), so there is no bound on the number of tasks."""
    if fisher not in FISHERS:
        raise ValueError(f"unknown Fisher {fisher!r}; known: {list(FISHERS)}")

    def init(key, params, example):
        del example
        zeros = jax.tree.map(jnp.zeros_like, params)
        return EWCState(zeros, zeros, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32),
                        jnp.asarray(strength, jnp.float32), key)

    def penalty(params, state: EWCState) -> jax.Array:
        """sum_k sum_i F_k,i (theta_i - theta*_k,i)^2 = sum_i A_i (theta_i - m_i)^2 + R."""
        return weighted_sq_distance(params, state.centre, state.fisher_sum) + state.offset

    def loss(task_loss):
        def wrapped(params, state: EWCState, batch, task_id, key):
            value, aux = task_loss(params, batch, key)
            pen = penalty(params, state)
            return value + 0.5 * state.strength * pen, {**aux, "learner/ewc_penalty": pen}

        return wrapped

    def end_task(state: EWCState, params, task_id, data):
        del task_id
        key, k_fisher = jax.random.split(state.key)
        samples, labels, mask = first_rows(fisher_data(data), fisher_samples)
        f = diagonal_fisher(log_probs, params, samples, labels, mask, k_fisher, fisher, value_fn, fisher_batch)
        a_new = jax.tree.map(jnp.add, state.fisher_sum, f)
        safe = lambda a: jnp.where(a > 0, a, 1.0)
        centre = jax.tree.map(lambda a, m, fk, t, an: jnp.where(an > 0, (a * m + fk * t) / safe(an), 0.0),
                              state.fisher_sum, state.centre, f, params, a_new)
        added = sum(jnp.sum(jnp.where(an > 0, a * fk / safe(an), 0.0) * (m - t) ** 2)
                    for a, m, fk, t, an in zip(*(jax.tree.leaves(x) for x in
                                                  (state.fisher_sum, state.centre, f, params, a_new))))
        return state.replace(fisher_sum=a_new, centre=centre, offset=state.offset + added,
                             count=state.count + 1, key=key)

    def predict(params, state, x, task_id):
        del state, task_id
        return apply(params, x)

    return Learner(init, loss, end_task, predict, "ewc")
