"""Fixed-capacity rehearsal buffers: reservoir, FIFO and per-task balanced, as pure functions.

A buffer holds any pytree of items (leaves ``[capacity, ...]``), the task id of every slot and a
validity mask; shapes never change, so a buffer lives inside a jitted, vmapped training state.

    buf = init(kind, capacity, example_item, max_tasks)     # example_item: one item (no batch axis)
    buf = add(buf, items [n, ...], task_ids [n], mask [n], key)
    items, task_ids, mask = sample(buf, key, n)              # uniform over the valid slots
    counts = task_counts(buf)                                 # [max_tasks] items held per task

* ``reservoir``: Vitter's Algorithm R as in Chaudhry et al. 2019, "On Tiny Episodic Memories in
  Continual Learning" (``facebookresearch/agem``, ``utils/utils.py::update_reservior``): the m-th item
  offered (m counted from 0) goes to slot m while m < capacity, else to slot j ~ U{0, ..., m} when
  j < capacity. Every item of the stream is held with probability capacity / (items offered).
* ``fifo``: a ring buffer of the most recent ``capacity`` items.
* ``balanced``: every task seen so far keeps ``capacity // tasks_seen`` slots, each task's slots a
  uniform sample without replacement of that task's items (bottom-k of i.i.d. uniform priorities;
  when a new task arrives the older tasks give up their highest-priority items).

Nothing here knows about RL or about supervised learning: an item is whatever pytree the caller
stores (an image and its label, a transition).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

KINDS = ("reservoir", "fifo", "balanced")


@struct.dataclass
class Buffer:
    items: Any  # pytree, leaves [capacity, ...]
    task: jax.Array  # [capacity] int32 task id of each slot
    valid: jax.Array  # [capacity] bool
    priority: jax.Array  # [capacity] float32 (balanced: the slot's sampling priority)
    offered: jax.Array  # int32 items offered so far (reservoir's m; fifo's write count)
    max_tasks: int = struct.field(pytree_node=False, default=1)
    kind: str = struct.field(pytree_node=False, default="reservoir")

    @property
    def capacity(self) -> int:
        return int(self.task.shape[-1])


def init(kind: str, capacity: int, example_item: Any, max_tasks: int = 1) -> Buffer:
    """An empty buffer of ``capacity`` slots for items shaped like ``example_item``."""
    if kind not in KINDS:
        raise ValueError(f"unknown buffer kind {kind!r}; known: {list(KINDS)}")
    if capacity < 1 or max_tasks < 1:
        raise ValueError(f"capacity and max_tasks must be >= 1, got {capacity}, {max_tasks}")
    items = jax.tree.map(
        lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example_item
    )
    return Buffer(
        items=items,
        task=jnp.zeros((capacity,), jnp.int32),
        valid=jnp.zeros((capacity,), bool),
        priority=jnp.full((capacity,), jnp.inf, jnp.float32),
        offered=jnp.zeros((), jnp.int32),
        max_tasks=max_tasks,
        kind=kind,
    )


def _check_batch(buf: Buffer, items: Any, task_ids: jax.Array, mask: jax.Array) -> int:
    leaves = jax.tree.leaves(items)
    n = int(task_ids.shape[0])
    for leaf, slot in zip(leaves, jax.tree.leaves(buf.items)):
        if leaf.shape[0] != n or leaf.shape[1:] != slot.shape[1:]:
            raise ValueError(f"buffer add: item leaf of shape {leaf.shape}, expected ({n},) + {slot.shape[1:]}")
    if mask.shape != (n,):
        raise ValueError(f"buffer add: mask of shape {mask.shape}, expected ({n},)")
    return n


def add(buf: Buffer, items: Any, task_ids: jax.Array, mask: jax.Array | None = None,
        key: jax.Array | None = None) -> Buffer:
    """Offer ``items`` (leading axis n) with their task ids; rows with ``mask`` False are skipped."""
    task_ids = jnp.asarray(task_ids, jnp.int32)
    mask = jnp.ones(task_ids.shape, bool) if mask is None else jnp.asarray(mask, bool)
    n = _check_batch(buf, items, task_ids, mask)
    if buf.kind in ("reservoir", "balanced") and key is None:
        raise ValueError(f"a {buf.kind} buffer needs a key to add")
    if buf.kind == "reservoir":
        return _add_reservoir(buf, items, task_ids, mask, key)
    if buf.kind == "fifo":
        return _add_fifo(buf, items, task_ids, mask, n)
    return _add_balanced(buf, items, task_ids, mask, key, n)


def _add_reservoir(buf, items, task_ids, mask, key):
    cap = buf.capacity

    def offer(b: Buffer, inp):
        item, task, ok, k = inp
        m = b.offered
        j = jax.random.randint(k, (), 0, jnp.maximum(m, 0) + 1)  # U{0, ..., m}
        slot = jnp.where(m < cap, m, j)
        write = ok & (slot < cap)
        slot = jnp.minimum(slot, cap - 1)
        put = lambda store, x: store.at[slot].set(jnp.where(write, x, store[slot]))
        b = b.replace(
            items=jax.tree.map(put, b.items, item),
            task=put(b.task, task),
            valid=b.valid.at[slot].set(b.valid[slot] | write),
            offered=m + ok.astype(jnp.int32),
        )
        return b, None

    keys = jax.random.split(key, task_ids.shape[0])
    buf, _ = jax.lax.scan(offer, buf, (items, task_ids, mask, keys))
    return buf


def _add_fifo(buf, items, task_ids, mask, n):
    cap = buf.capacity
    rank = jnp.cumsum(mask.astype(jnp.int32)) - 1  # index among the valid rows
    total = mask.sum().astype(jnp.int32)
    keep = mask & (rank >= total - cap)  # of a batch longer than the buffer, only the last cap
    slot = jnp.where(keep, (buf.offered + rank) % cap, cap)  # cap: out of bounds, dropped
    put = lambda store, x: store.at[slot].set(x, mode="drop")
    return buf.replace(
        items=jax.tree.map(put, buf.items, items),
        task=put(buf.task, task_ids),
        valid=buf.valid.at[slot].set(True, mode="drop"),
        offered=buf.offered + total,
    )


def _add_balanced(buf, items, task_ids, mask, key, n):
    cap = buf.capacity
    prio_new = jnp.where(mask, jax.random.uniform(key, (n,)), jnp.inf)
    cand_items = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), buf.items, items)
    cand_task = jnp.concatenate([buf.task, task_ids])
    cand_valid = jnp.concatenate([buf.valid, mask])
    cand_prio = jnp.concatenate([jnp.where(buf.valid, buf.priority, jnp.inf), prio_new])
    seen = jnp.zeros((buf.max_tasks,), bool).at[cand_task].max(cand_valid, mode="drop")
    quota = cap // jnp.maximum(seen.sum(), 1)
    # rank of each candidate within its task by priority: sort by (task, priority)
    order = jnp.lexsort((cand_prio, jnp.where(cand_valid, cand_task, buf.max_tasks)))
    sorted_task = jnp.where(cand_valid, cand_task, buf.max_tasks)[order]
    first = jnp.searchsorted(sorted_task, sorted_task, side="left")
    rank_sorted = jnp.arange(order.shape[0]) - first
    rank = jnp.zeros_like(rank_sorted).at[order].set(rank_sorted)
    keep = cand_valid & (rank < quota)
    take = jnp.argsort(~keep, stable=True)[:cap]
    kept = keep[take]
    return buf.replace(
        items=jax.tree.map(lambda a: a[take], cand_items),
        task=jnp.where(kept, cand_task[take], 0),
        valid=kept,
        priority=jnp.where(kept, cand_prio[take], jnp.inf),
        offered=buf.offered + mask.sum().astype(jnp.int32),
    )


def sample(buf: Buffer, key: jax.Array, n: int) -> tuple[Any, jax.Array, jax.Array]:
    """``n`` items drawn uniformly with replacement from the valid slots: ``(items, task_ids, mask)``;
    ``mask`` is all False while the buffer is empty."""
    order = jnp.argsort(~buf.valid, stable=True)
    count = buf.valid.sum().astype(jnp.int32)
    r = jax.random.randint(key, (n,), 0, jnp.maximum(count, 1))
    idx = order[r]
    mask = jnp.broadcast_to(count > 0, (n,))
    return jax.tree.map(lambda a: a[idx], buf.items), buf.task[idx], mask


def size(buf: Buffer) -> jax.Array:
    """Number of valid slots."""
    return buf.valid.sum().astype(jnp.int32)


def task_counts(buf: Buffer) -> jax.Array:
    """``[max_tasks]`` number of valid slots holding each task's items."""
    return jnp.zeros((buf.max_tasks,), jnp.int32).at[buf.task].add(buf.valid.astype(jnp.int32), mode="drop")
