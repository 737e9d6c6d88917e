"""Task-conditioned hypernetwork (von Oswald, Henning, Grewe, Sacramento 2020, "Continual learning
with hypernetworks", ICLR; used for model-based RL by HyperCRL, Huang et al. 2021,
``rvl-lab-utoronto/HyperCRL``, ``hypercrl/hnet_exp.py``).

Each task t has an embedding e_t; the hypernetwork h (``algos/continual/hypernet.py``, chunked or not)
generates the whole target network, W_t = h(e_t, theta). Training on task t uses only its data:

    L = L_task(h(e_t, theta)) + beta / t * sum_{j < t} || W_j* - h(e_j*, theta + dtheta) ||^2,

W_j* = h(e_j*, theta*) snapshotted at the end of task t - 1 (every earlier task's target, recomputed
from the hypernetwork then, HyperCRL's step 2), e_j* the stored earlier embeddings (not trained any
more, ``plastic_prev_tembs=False``). dtheta is the optional lookahead: the (detached) plain-gradient
step of size ``lookahead_lr`` on the task loss (hypnettorch's ``use_sgd_change``; 0 turns it off, as
hypnettorch's example does). The optimiser trains theta, the chunk embeddings and e_t.

The trained parameters are ``{"hnet": ..., "emb": [max_tasks, emb_dim]}``; ``model_params(params,
state, task_id)`` gives the target network of a task (a stored embedding for a finished task). In PPO
the hypernetwork generates the whole actor-critic (policy and value weights).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.continual import hypernet
from algos.learner import Learner


@struct.dataclass
class HnetState:
    emb_star: jax.Array  # [max_tasks, emb_dim] embeddings of finished tasks
    targets: jax.Array  # [max_tasks, total] W_j* of finished tasks
    count: jax.Array  # int32 finished tasks
    strength: jax.Array  # beta


def hnet_learner(
    apply: Callable[[Any, Any], Any],
    target_example: Any,
    max_tasks: int,
    strength: float = 0.01,
    emb_dim: int = 24,
    hidden: tuple[int, ...] = (25, 25),
    chunk_size: int | None = 4000,
    chunk_emb_dim: int = 8,
    activation: str = "elu",
    lookahead_lr: float = 0.0,
    reg_tasks: int = 0,
) -> Learner:
    """``apply(target_params, x)`` is the target network, ``target_example`` its parameters (shapes);
    ``strength`` is beta; ``reg_tasks > 0`` regularises that many earlier tasks drawn uniformly (with
    replacement) per step instead of all of them (an unbiased estimate of the mean, hypnettorch's
    ``--hnet_reg_batch_size``)."""
    if max_tasks < 1:
        raise ValueError(f"max_tasks must be >= 1, got {max_tasks}")
    spec = hypernet.hnet_spec(target_example, emb_dim, tuple(hidden), chunk_size, chunk_emb_dim, activation)

    def init_params(key, params):
        del params
        k_h, k_e = jax.random.split(key)
        return {"hnet": hypernet.init_hnet(k_h, spec), "emb": jax.random.normal(k_e, (max_tasks, emb_dim))}

    def init(key, params, example):
        del key, example
        return HnetState(jnp.zeros((max_tasks, emb_dim)), jnp.zeros((max_tasks, spec.total)),
                         jnp.zeros((), jnp.int32), jnp.asarray(strength, jnp.float32))

    def embedding(params, state: HnetState, task_id):
        return jnp.where(task_id < state.count, state.emb_star[task_id], params["emb"][task_id])

    def model_params(params, state, task_id):
        return hypernet.unflatten(spec, hypernet.generate(params["hnet"], spec, embedding(params, state, task_id)))

    def regulariser(hnet_params, state: HnetState, key) -> jax.Array:
        rows, weight = reg_rows(key, state.count, max_tasks, reg_tasks)
        outputs = jax.vmap(lambda e: hypernet.generate(hnet_params, spec, e))(state.emb_star[rows])
        per_task = jnp.sum((outputs - state.targets[rows]) ** 2, axis=1)
        return jnp.sum(weight * per_task)

    def loss(task_loss):
        def wrapped(params, state: HnetState, batch, task_id, key):
            task_value = lambda p: task_loss(model_params(p, state, task_id), batch, key)
            value, aux = task_value(params)
            hnet_params = params["hnet"]
            if lookahead_lr > 0.0:
                g = jax.grad(lambda p: task_value(p)[0])(params)["hnet"]
                hnet_params = jax.tree.map(lambda p, d: p - jax.lax.stop_gradient(lookahead_lr * d), hnet_params, g)
            reg = regulariser(hnet_params, state, jax.random.fold_in(key, 17))
            return value + state.strength * reg, {**aux, "learner/hnet_reg": reg}

        return wrapped

    def end_task(state: HnetState, params, task_id, data):
        del data
        emb_star = state.emb_star.at[task_id].set(params["emb"][task_id])
        count = jnp.maximum(state.count, task_id + 1)
        outputs = jax.vmap(lambda e: hypernet.generate(params["hnet"], spec, e))(emb_star)
        done = (jnp.arange(max_tasks) < count)[:, None]
        return state.replace(emb_star=emb_star, targets=jnp.where(done, outputs, 0.0), count=count)

    def predict(params, state, x, task_id):
        return apply(model_params(params, state, task_id), x)

    return Learner(init, loss, end_task, predict, "hnet", init_params=init_params, model_params=model_params)


def reg_rows(key: jax.Array, count: jax.Array, max_tasks: int, reg_tasks: int) -> tuple[jax.Array, jax.Array]:
    """Rows of the earlier tasks a regulariser visits and their weights, so that ``sum(weight *
    per_task)`` is the mean over the ``count`` earlier tasks (exactly for ``reg_tasks=0``, in
    expectation for ``reg_tasks`` rows drawn uniformly with replacement); zero while ``count=0``."""
    if reg_tasks <= 0 or reg_tasks >= max_tasks:
        used = (jnp.arange(max_tasks) < count).astype(jnp.float32)
        return jnp.arange(max_tasks), used / jnp.maximum(count, 1)
    rows = jax.random.randint(key, (reg_tasks,), 0, jnp.maximum(count, 1))
    return rows, jnp.where(count > 0, 1.0 / reg_tasks, 0.0) * jnp.ones((reg_tasks,))
