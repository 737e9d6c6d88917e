"""Experience replay from a rehearsal buffer (Chaudhry et al. 2019, "On Tiny Episodic Memories in
Continual Learning", arXiv 1902.10486; ``facebookresearch/agem``, ``fc_permute_mnist.py``, method ER).

Every minibatch of the current task is joined by ``replay_batch`` items drawn uniformly from the buffer
(``memory/buffers.py``: reservoir, FIFO or per-task balanced), and one step is taken on the joint loss

    L = (B * L_task(batch) + M * L_task(replay batch)) / (B + M),

which equals the loss of the concatenated batch for a loss that is a mean over rows (M = 0 while the
buffer is empty). The buffer is filled at each task's end from the data the trainer hands to
``end_task`` (``to_items(data) -> (items [n, ...], mask [n])``), tagged with the task id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from algos.learner import Learner
from memory import buffers


@struct.dataclass
class ReplayState:
    buffer: buffers.Buffer
    key: jax.Array


def _rows(batch: Any) -> int:
    return int(jax.tree.leaves(batch)[0].shape[0])


def default_to_items(data: Any) -> tuple[Any, jax.Array]:
    """Every row of the data is an item."""
    return data, jnp.ones((_rows(data),), bool)


def replay(
    apply: Callable[[Any, Any], Any],
    example_item: Any,
    capacity: int = 1000,
    replay_batch: int = 64,
    kind: str = "reservoir",
    max_tasks: int = 1,
    to_items: Callable[[Any], tuple[Any, jax.Array]] = default_to_items,
) -> Learner:
    """Replay; ``example_item`` is one buffer item (no batch axis); ``apply(params, x)`` is the model."""
    if replay_batch < 1:
        raise ValueError(f"replay_batch must be >= 1, got {replay_batch}")

    def init(key, params, example):
        del params, example
        return ReplayState(buffers.init(kind, capacity, example_item, max_tasks), key)

    def loss(task_loss):
        def wrapped(params, state: ReplayState, batch, task_id, key):
            k_task, k_sample, k_mem = jax.random.split(key, 3)
            value, aux = task_loss(params, batch, k_task)
            items, _, mask = buffers.sample(state.buffer, k_sample, replay_batch)
            mem_value, _ = task_loss(params, items, k_mem)
            b, m = float(_rows(batch)), mask[0].astype(jnp.float32) * replay_batch
            total = (b * value + m * mem_value) / (b + m)
            return total, {**aux, "learner/replay_loss": mem_value,
                           "learner/buffer_size": buffers.size(state.buffer).astype(jnp.float32)}

        return wrapped

    def end_task(state: ReplayState, params, task_id, data):
        del params
        key, k_add = jax.random.split(state.key)
        items, mask = to_items(data)
        task_ids = jnp.full(mask.shape, task_id, jnp.int32)
        return state.replace(buffer=buffers.add(state.buffer, items, task_ids, mask, k_add), key=key)

    def predict(params, state, x, task_id):
        del state, task_id
        return apply(params, x)

    return Learner(init, loss, end_task, predict, "replay")
