"""HyperInterval / HINT (Krukowski, Bielawska, Ksiazek, Wawrzynski, Batorski, Spurek 2024, arXiv
2405.15444; ``gmum/HyperInterval``): interval task embeddings, interval bound propagation (IBP)
through the hypernetwork and the target network, and one universal embedding for every task.

* Task t's embedding is a box [c_t - r_t, c_t + r_t]. ``mode="nested"`` (the forced variant,
  ``IntervalNets/hmlp_ibp_with_nesting.py``): c_t = sigma cos(e_t) with sigma = eps / (2M) and r_t = eps / M
  in every one of the M dimensions, so every box contains [-eps/(2M), eps/(2M)]^M and the boxes'
  intersection is never empty. ``mode="free"`` (``hmlp_ibp_wo_nesting.py``): c_t = e_t, r_t =
  eps softmax(rho_t), rho_t learned (an L1 budget of eps).
* IBP through the hypernetwork (``algos/continual/hypernet.py``) gives the box of target weights
  [theta_M - theta_R, theta_M + theta_R]; IBP through the target MLP with interval weights gives logit
  bounds: for w in [W_M +- W_R] and h in [mu +- r], w h lies in W_M mu +- (|W_M| r + W_R |mu| + W_R r).
* Loss on the current task (``loss_functions.py::IBP_Loss``): kappa CE(z_M) + (1 - kappa) CE(z_worst),
  z_worst the lower bound of the true class's logit and the upper bound of every other. Within a
  task eps ramps linearly from 0 over the first half of the iterations and kappa = max(1 - 5e-5 it,
  kappa_min); both fixed afterwards.
* Regulariser, targets snapshotted at the end of the previous task at full eps. ``mode="free"``
  (``Utils/hnet_middle_regularizer.py``): R = (1/t) sum_{j<t} || theta_M(e_j) - theta_M*(e_j) ||^2 over
  the midpoints. ``mode="nested"`` (``Utils/hnet_interval_regularizer.py``): R = (1/(3t)) sum_{j<t}
  (|| dtheta_L ||^2 + || dtheta_M ||^2 + || dtheta_U ||^2) over the lower, middle and upper weights.
  L_total = L + beta R (the reference divides R by t a second time; here it is not). No lookahead.
* ``custom_init`` (nested only, ``train_nested_scenario.py``): a new task's embedding starts as a copy
  of the previous task's final one. The protocol's ``end_task`` cannot write the trained parameters, so
  the embedding of task t > 0 is ``emb_base[t] + params["emb"][t]``: the stored copy plus a trained
  offset that starts at zero (the same Adam steps as training the copied embedding itself).
* Universal embedding (``Utils/handy_functions.py::intersection_of_embeds``): per dimension lo = max_j
  of the lower ends, hi = min_j of the upper ends (collapsed to their mean where hi < lo); the
  universal embedding is (lo + hi) / 2, fed to the hypernetwork directly. ``predict(params, state, x,
  -1)`` uses it; ``predict(..., j)`` the midpoint weights of task j.

The target network is an MLP of ``Dense_0 ... Dense_L`` layers with ReLU between them (flax's
``nn.Dense`` naming, as :func:`algos.supervised.mlp_classifier`); the batch is a supervised batch
with ``x``, ``y`` and ``logit_mask``. HyperInterval runs under the supervised trainer, which calls
``after_update`` (the iteration counter of the schedules) after every optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.continual import hypernet
from algos.continual.hnet import reg_rows
from algos.learner import Learner

MODES = ("nested", "free")
MASKED_LOGIT = -1e9


def interval_mlp(mid: Any, rad: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Logit bounds ``(lower, upper)`` of the ReLU MLP ``mid["params"]["Dense_i"]`` whose weights lie
    in ``[mid - rad, mid + rad]``, on point inputs ``x [B, D]``."""
    layers_m, layers_r = mid["params"], rad["params"]
    n = len(layers_m)
    mu, r = x, jnp.zeros_like(x)
    for i in range(n):
        wm, wr = layers_m[f"Dense_{i}"]["kernel"], layers_r[f"Dense_{i}"]["kernel"]
        bm, br = layers_m[f"Dense_{i}"]["bias"], layers_r[f"Dense_{i}"]["bias"]
        mu, r = mu @ wm + bm, r @ jnp.abs(wm) + jnp.abs(mu) @ wr + r @ wr + br
        if i < n - 1:
            lo, hi = jax.nn.relu(mu - r), jax.nn.relu(mu + r)
            mu, r = (hi + lo) / 2, (hi - lo) / 2
    return mu - r, mu + r


def _check_mlp(target_example: Any) -> None:
    layers = target_example.get("params", {}) if isinstance(target_example, dict) else {}
    names = {f"Dense_{i}" for i in range(len(layers))}
    if not layers or set(layers) != names or any(set(layers[k]) != {"kernel", "bias"} for k in layers):
        raise ValueError("HyperInterval's target must be an MLP of flax Dense layers Dense_0 ... Dense_L "
                         "(algos.supervised.mlp_classifier)")


def masked_ce(logits: jax.Array, y: jax.Array, logit_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy over the rows with the classes outside ``logit_mask`` removed."""
    logits = jnp.where(logit_mask, logits, MASKED_LOGIT)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1).mean()


@struct.dataclass
class HyperIntervalState:
    centers: jax.Array  # [max_tasks, M] box centres of finished tasks
    radii: jax.Array  # [max_tasks, M] box radii of finished tasks (at full eps)
    targets: jax.Array  # [max_tasks, total] midpoint weights of finished tasks
    target_radii: jax.Array  # [max_tasks, total] weight radii of finished tasks (nested regulariser)
    emb_base: jax.Array  # [max_tasks, M] copied starting embeddings (custom_init; zeros otherwise)
    count: jax.Array  # int32 finished tasks
    iteration: jax.Array  # int32 optimiser steps in the current task
    strength: jax.Array  # beta
    eps: jax.Array  # the target perturbation size


def hyperinterval(
    apply: Callable[[Any, Any], Any],
    target_example: Any,
    max_tasks: int,
    steps_per_task: int,
    strength: float = 0.01,
    eps: float = 5.0,
    mode: str = "nested",
    emb_dim: int = 24,
    hidden: tuple[int, ...] = (25, 25),
    chunk_size: int | None = 4000,
    chunk_emb_dim: int = 8,
    kappa_min: float = 0.5,
    kappa_decay: float = 5e-5,
    reg_tasks: int = 0,
    custom_init: bool = True,
    output_scale: bool = False,
) -> Learner:
    """``apply(target_params, x)`` is the target MLP (point weights), ``target_example`` its
    parameters; ``steps_per_task`` sets the eps ramp; ``strength`` is beta; ``reg_tasks`` as in
    :func:`algos.continual.hnet.hnet_learner`; ``custom_init`` (nested mode only) starts each new
    task's embedding at the previous task's; ``output_scale`` as in
    :func:`algos.continual.hypernet.hnet_spec` (off, as the reference's hypernetwork)."""
    if mode not in MODES:
        raise ValueError(f"unknown HyperInterval mode {mode!r}; known: {list(MODES)}")
    if max_tasks < 1 or steps_per_task < 1:
        raise ValueError("max_tasks and steps_per_task must be >= 1")
    if eps < 0 or not 0.0 <= kappa_min <= 1.0:
        raise ValueError(f"eps must be >= 0 and kappa_min in [0, 1], got {eps}, {kappa_min}")
    _check_mlp(target_example)
    spec = hypernet.hnet_spec(target_example, emb_dim, tuple(hidden), chunk_size, chunk_emb_dim, "relu",
                              output_scale)
    half = max(steps_per_task // 2, 1)
    copy_init = custom_init and mode == "nested"

    def init_params(key, params):
        del params
        k_h, k_e = jax.random.split(key)
        emb = jax.random.normal(k_e, (max_tasks, emb_dim))
        if copy_init:  # offsets from the copied embedding of the previous task
            emb = emb.at[1:].set(0.0)
        out = {"hnet": hypernet.init_hnet(k_h, spec), "emb": emb}
        if mode == "free":
            out["rho"] = jnp.full((max_tasks, emb_dim), 1.0 / emb_dim)
        return out

    def init(key, params, example):
        del key, params, example
        zeros, flat = jnp.zeros((max_tasks, emb_dim)), jnp.zeros((max_tasks, spec.total))
        return HyperIntervalState(zeros, zeros, flat, flat, zeros, jnp.zeros((), jnp.int32),
                                  jnp.zeros((), jnp.int32), jnp.asarray(strength, jnp.float32),
                                  jnp.asarray(eps, jnp.float32))

    def raw_embedding(params, state: HyperIntervalState, task_id):
        return state.emb_base[task_id] + params["emb"][task_id]

    def box(params, state: HyperIntervalState, task_id, scale):
        """Centre and radius of task ``task_id``'s box at ``scale * eps`` (finished tasks: stored)."""
        if mode == "nested":
            center = state.eps / (2 * emb_dim) * jnp.cos(raw_embedding(params, state, task_id))
            radius = jnp.full((emb_dim,), scale * state.eps / emb_dim)
        else:
            center = raw_embedding(params, state, task_id)
            radius = scale * state.eps * jax.nn.softmax(params["rho"][task_id])
        done = task_id < state.count
        return (jnp.where(done, state.centers[task_id], center),
                jnp.where(done, state.radii[task_id], radius))

    def ramp(state):
        return jnp.minimum(state.iteration / max(half - 1, 1), 1.0)

    def kappa(state):
        return jnp.maximum(1.0 - kappa_decay * jnp.minimum(state.iteration, half), kappa_min)

    def universal(state: HyperIntervalState) -> jax.Array:
        return jnp.where(state.count > 0, universal_embedding(state.centers, state.radii, state.count), 0.0)

    def weights(params, state, task_id):
        """Midpoint and radius of the target weights of a task (current task at the ramped eps)."""
        center, radius = box(params, state, task_id, ramp(state))
        return hypernet.generate_interval(params["hnet"], spec, center, radius)

    def model_params(params, state, task_id):
        task_id = jnp.asarray(task_id, jnp.int32)
        mid = weights(params, state, jnp.maximum(task_id, 0))[0]
        point = hypernet.generate(params["hnet"], spec, universal(state))
        return hypernet.unflatten(spec, jnp.where(task_id < 0, point, mid))

    def loss(task_loss):
        def wrapped(params, state: HyperIntervalState, batch, task_id, key):
            mid, rad = weights(params, state, task_id)
            mid_tree, rad_tree = hypernet.unflatten(spec, mid), hypernet.unflatten(spec, rad)
            value, aux = task_loss(mid_tree, batch, key)
            lower, upper = interval_mlp(mid_tree, rad_tree, batch.x)
            onehot = jax.nn.one_hot(batch.y, lower.shape[-1], dtype=bool)
            worst = masked_ce(jnp.where(onehot, lower, upper), batch.y, batch.logit_mask)
            k = kappa(state)
            rows, weight = reg_rows(jax.random.fold_in(key, 17), state.count, max_tasks, reg_tasks)
            reg = jnp.sum(weight * regulariser_rows(params["hnet"], state, rows))
            total = k * value + (1.0 - k) * worst + state.strength * reg
            return total, {**aux, "learner/worst_case_ce": worst, "learner/interval_reg": reg,
                           "learner/kappa": k, "learner/eps": ramp(state) * state.eps}

        return wrapped

    def regulariser_rows(hnet_params, state: HyperIntervalState, rows) -> jax.Array:
        """Per earlier task (rows), the squared distance of its generated weights to the targets."""
        mid, rad = jax.vmap(lambda c, r: hypernet.generate_interval(hnet_params, spec, c, r))(
            state.centers[rows], state.radii[rows])
        d_mid = mid - state.targets[rows]
        if mode == "free":
            return jnp.sum(d_mid**2, axis=1)
        d_rad = rad - state.target_radii[rows]
        return jnp.sum((d_mid - d_rad) ** 2 + d_mid**2 + (d_mid + d_rad) ** 2, axis=1) / 3.0

    def after_update(state: HyperIntervalState) -> HyperIntervalState:
        return state.replace(iteration=state.iteration + 1)

    def end_task(state: HyperIntervalState, params, task_id, data):
        del data
        center, radius = box(params, state, task_id, 1.0)
        done_now = task_id >= state.count
        centers = state.centers.at[task_id].set(jnp.where(done_now, center, state.centers[task_id]))
        radii = state.radii.at[task_id].set(jnp.where(done_now, radius, state.radii[task_id]))
        count = jnp.maximum(state.count, task_id + 1)
        mids, rads = jax.vmap(lambda c, r: hypernet.generate_interval(params["hnet"], spec, c, r))(centers, radii)
        used = (jnp.arange(max_tasks) < count)[:, None]
        emb_base = state.emb_base
        if copy_init:  # the next task starts from this task's final embedding
            nxt = jnp.minimum(task_id + 1, max_tasks - 1)
            fresh = done_now & (task_id + 1 < max_tasks)
            emb_base = emb_base.at[nxt].set(jnp.where(fresh, raw_embedding(params, state, task_id), emb_base[nxt]))
        return state.replace(centers=centers, radii=radii, targets=jnp.where(used, mids, 0.0),
                             target_radii=jnp.where(used, rads, 0.0), emb_base=emb_base, count=count,
                             iteration=jnp.zeros((), jnp.int32))

    def predict(params, state, x, task_id):
        return apply(model_params(params, state, task_id), x)

    return Learner(init, loss, end_task, predict, "hyperinterval", init_params=init_params,
                   model_params=model_params, after_update=after_update, universal_task_id=-1)


def universal_embedding(centers: jax.Array, radii: jax.Array, count: jax.Array) -> jax.Array:
    """The universal embedding of the first ``count`` boxes (as the learner's ``predict(..., -1)``)."""
    max_tasks = centers.shape[0]
    used = (jnp.arange(max_tasks) < count)[:, None]
    lo = jnp.max(jnp.where(used, centers - radii, -jnp.inf), axis=0)
    hi = jnp.min(jnp.where(used, centers + radii, jnp.inf), axis=0)
    mean = (lo + hi) / 2
    empty = hi < lo
    return (jnp.where(empty, mean, lo) + jnp.where(empty, mean, hi)) / 2
