"""The teacher protocol: three pure functions over a fixed-size state pytree, in the manner of optax.

    state = teacher.init(key)
    state, tasks = teacher.sample(state, key, n)          # tasks: [n, dim] float32
    state = teacher.update(state, tasks, scores, mask, **extras)
                                  # tasks [n, dim], scores [n], mask [n] bool, extras: name -> [n]

* ``scores`` are episodic performance, normalised to [0, 1] where the task environment knows a range.
* ``mask`` marks which rows are real finished episodes. Rows with ``mask == False`` must change
  nothing: a jitted rollout hands the teacher every (step, env) slot at once and most are not episode
  ends. The order of valid rows is the order in which the episodes finished.
* ``sample`` must not assume that every task it returns is used (a vectorised rollout draws a task for
  every environment each step and keeps only those of environments whose episode ended); per-episode
  bookkeeping belongs in ``update``.
* ``extras`` carry what the learner knows about each finished episode, in the manner of optax's
  extra-args transforms: ``initial_value`` (the critic's V at the episode's first observation) and
  ``discounted_return`` (sum of gamma^t r_t over the episode), each ``[n]``. Every ``update`` accepts
  ``**extras``; a teacher names the ones it reads in ``Teacher.extras`` and the trainer computes and
  passes those, so a teacher that reads none does not pay for them (benchmarks/RESULTS.md).
* ``n`` is static (a Python int). All functions are jittable and vmappable over seeds.
* A teacher whose ``update`` does expensive work only every few calls (the GMM teachers' refits with
  ``refit_period`` > 1) may also offer that work split out (:class:`Deferred`); callers that ignore
  it lose nothing but speed.

Checked inputs (every registered teacher; the contract test ``tests/test_teacher_contract.py``):

* Shapes are checked at trace time, before anything compiles: ``tasks [n, dim]``, ``scores [n]``,
  ``mask [n]``, extras ``[n]``, ``n`` a positive int; a mismatch raises ``ValueError`` naming the
  teacher and the shapes (:func:`check_shapes`, :func:`check_sample_n`).
* A valid row whose task or score is not finite is treated as masked out and counted in
  ``state.inputs.nonfinite``, never stored; a task outside the task space is clipped into it
  (``inputs.tasks_clipped``) and a score outside [0, 1] is clipped (``inputs.scores_clipped``):
  :func:`clean_inputs`, or the decorator :func:`checked_update` around a teacher's ``update``.
  :func:`input_metrics` turns the counts into the trainer's metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.task_space import TaskSpace

TeacherState = Any


class Deferred(NamedTuple):
    """A teacher's periodic work split out of ``update``, for trainers whose loop can place it.

    ``update`` of a teacher with ``Teacher.deferred`` equals ``deferred.update`` followed by
    ``deferred.refit`` after every ``period``-th call (calls ``period - 1``, ``2 period - 1``, ...
    counted from ``init``), where the teacher decides with a traced counter. A trainer that calls
    ``deferred.update`` every time and ``deferred.refit`` at those positions of a static loop
    (``algos.loops.periodic_scan``) gets the same states, without data-dependent control flow in
    the calls between: on a GPU each such loop or ``cond`` makes the host wait for the device, and in
    PPO on one H200 that wait cost more than the refits themselves (benchmarks/RESULTS.md)."""

    update: Callable[..., TeacherState]  # (state, tasks, scores, mask, **extras) -> state, no refit
    refit: Callable[[TeacherState], TeacherState]  # the periodic work that is due
    period: int  # update calls per refit


class Teacher(NamedTuple):
    """A curriculum: ``init``, ``sample`` and ``update`` (see the module docstring)."""

    init: Callable[[jax.Array], TeacherState]
    sample: Callable[[TeacherState, jax.Array, int], tuple[TeacherState, jax.Array]]
    update: Callable[..., TeacherState]  # (state, tasks, scores, mask, **extras) -> state
    task_space: TaskSpace
    name: str = "teacher"
    extras: tuple[str, ...] = ()  # the extras ``update`` reads (see the module docstring)
    deferred: Deferred | None = None  # optional split of ``update`` for static loops (see Deferred)


EXTRAS = ("initial_value", "discounted_return")  # what trainers can hand to a teacher


@struct.dataclass
class InputCounts:
    """Bad input a teacher received, counted over its lifetime (valid rows only)."""

    nonfinite: jax.Array  # int32: rows whose task or score was NaN/inf (masked out, never stored)
    tasks_clipped: jax.Array  # int32: rows whose task lay outside the task space (clipped into it)
    scores_clipped: jax.Array  # int32: rows whose score lay outside [0, 1] (clipped)

    @classmethod
    def zeros(cls) -> InputCounts:
        z = jnp.zeros((), jnp.int32)
        return cls(nonfinite=z, tasks_clipped=z, scores_clipped=z)


def check_shapes(name: str, task_space: TaskSpace, tasks, scores, mask, extras=None) -> None:
    """Raise ``ValueError`` naming teacher ``name`` unless ``tasks [n, dim]``, ``scores [n]``,
    ``mask [n]`` and every extra ``[n]`` (static shapes: runs at trace time)."""
    t, s, m = jnp.shape(tasks), jnp.shape(scores), jnp.shape(mask)
    want = f"tasks [n, {task_space.dim}], scores [n], mask [n]"
    if len(t) != 2 or t[1] != task_space.dim or s != t[:1] or m != t[:1]:
        raise ValueError(
            f"teacher {name!r}: update expects {want}; got tasks {list(t)}, scores {list(s)}, "
            f"mask {list(m)}")
    for key, value in (extras or {}).items():
        if jnp.shape(value) != t[:1]:
            raise ValueError(
                f"teacher {name!r}: extra {key!r} must have shape [{t[0]}] (one per row), got "
                f"{list(jnp.shape(value))}")


def check_sample_n(name: str, n) -> int:
    """``n`` as an int, or ``ValueError`` naming teacher ``name`` (n must be a static int >= 1)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"teacher {name!r}: sample needs a static int n >= 1 tasks, got {n!r}")
    return int(n)


def clean_inputs(
    task_space: TaskSpace, tasks, scores, mask, counts: InputCounts
) -> tuple[jax.Array, jax.Array, jax.Array, InputCounts]:
    """``(tasks, scores, mask, counts)`` with non-finite valid rows masked out and zeroed, tasks
    clipped into the space and scores into [0, 1], and the cases counted (valid rows only)."""
    tasks = jnp.asarray(tasks, jnp.float32)
    scores = jnp.asarray(scores, jnp.float32)
    mask = jnp.asarray(mask, bool)
    finite = jnp.all(jnp.isfinite(tasks), axis=1) & jnp.isfinite(scores)
    bad = mask & ~finite
    mask = mask & finite
    tasks = jnp.where(finite[:, None], tasks, 0.0)
    scores = jnp.where(finite, scores, 0.0)
    clipped_tasks = task_space.clip(tasks)
    clipped_scores = jnp.clip(scores, 0.0, 1.0)
    out_t = mask & jnp.any(clipped_tasks != tasks, axis=1)
    out_s = mask & (clipped_scores != scores)
    count = lambda b: jnp.sum(b.astype(jnp.int32))  # noqa: E731
    counts = InputCounts(
        nonfinite=counts.nonfinite + count(bad),
        tasks_clipped=counts.tasks_clipped + count(out_t),
        scores_clipped=counts.scores_clipped + count(out_s),
    )
    return clipped_tasks, clipped_scores, mask, counts


def checked_update(name: str, task_space: TaskSpace) -> Callable[[Callable], Callable]:
    """Decorator for a teacher's ``update(state, tasks, scores, mask, **extras)`` whose state has an
    ``inputs: InputCounts`` field: shapes checked at trace time, inputs cleaned and counted
    (:func:`clean_inputs`) before the inner update sees them."""

    def wrap(update: Callable) -> Callable:
        def checked(state, tasks, scores, mask, **extras):
            check_shapes(name, task_space, tasks, scores, mask, extras)
            tasks, scores, mask, counts = clean_inputs(task_space, tasks, scores, mask, state.inputs)
            return update(state.replace(inputs=counts), tasks, scores, mask, **extras)

        return checked

    return wrap


def checked_sample(name: str) -> Callable[[Callable], Callable]:
    """Decorator for a teacher's ``sample(state, key, n)``: ``n`` checked (:func:`check_sample_n`)."""

    def wrap(sample: Callable) -> Callable:
        def checked(state, key, n):
            return sample(state, key, check_sample_n(name, n))

        return checked

    return wrap


def input_metrics(state: Any) -> dict[str, jax.Array]:
    """The input counts of a teacher state as metrics (``teacher/nonfinite`` ...); {} without any."""
    counts = getattr(state, "inputs", None)
    if not isinstance(counts, InputCounts):
        return {}
    return {f"teacher/{f}": getattr(counts, f) for f in ("nonfinite", "tasks_clipped", "scores_clipped")}


def compact_valid_first(mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Stable permutation that moves the rows with ``mask`` True to the front, in their order.

    Returns ``(order, count)``: ``x[order][:count]`` are the valid rows of ``x`` in arrival order.
    Teachers that must process episodes one after another use it to scan only over valid rows.
    """
    # A stable partition by prefix sums and one scatter, O(n): a sort of the mask cost more on a GPU.
    mask = jnp.asarray(mask, bool)
    valid_before = jnp.cumsum(mask.astype(jnp.int32)) - mask.astype(jnp.int32)
    count = jnp.sum(mask.astype(jnp.int32))
    invalid_before = jnp.arange(mask.shape[0], dtype=jnp.int32) - valid_before
    dest = jnp.where(mask, valid_before, count + invalid_before)
    order = jnp.zeros(mask.shape, jnp.int32).at[dest].set(jnp.arange(mask.shape[0], dtype=jnp.int32),
                                                          unique_indices=True)
    return order, count


def ring_positions(count: jax.Array, mask: jax.Array, capacity: int) -> jax.Array:
    """Write positions in a ring buffer of ``capacity`` for the valid rows of a batch.

    Valid row ``i`` goes to ``(count + number of valid rows before i) % capacity``; invalid rows get
    the out-of-bounds index ``capacity`` so that ``.at[pos].set(..., mode="drop")`` ignores them.
    """
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1
    return jnp.where(mask, (count + offsets) % capacity, capacity)


def batch_all(axis_size: int, in_batched: Any, args: tuple) -> tuple:
    """The arguments ``args`` of a ``jax.custom_batching.custom_vmap`` rule with a leading batch axis
    of ``axis_size`` on every leaf (``in_batched`` as the rule receives it; unbatched leaves are
    broadcast), so the rule's body can treat all of them alike."""

    def batched(a, b):
        return a if b else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a))

    return jax.tree.map(batched, tuple(args), tuple(in_batched))


def chunk_size(axis_size: int, chunk: int | None) -> int:
    """Seeds per chunk of :func:`map_due_seeds` for ``axis_size`` seeds: ``chunk`` if given (clamped to
    1..axis_size); ``None``: ``ceil(axis_size / 16)`` on the CPU, ``ceil(axis_size / 4)`` on an
    accelerator (``jax.default_backend()`` when traced). A chunk costs its arithmetic on a CPU, so small
    chunks waste least on seeds that are not due; on a GPU a chunk costs a fixed latency (about a
    hundred dependent EM steps) plus its arithmetic, so fewer, larger chunks are cheaper. (A
    ``lax.switch`` between a small and a large size was not faster on an H200; benchmarks/RESULTS.md.)"""
    if chunk is None:
        chunk = -(-axis_size // (16 if jax.default_backend() == "cpu" else 4))
    return max(1, min(int(chunk), axis_size))


def map_due_seeds(due: jax.Array, chunk: int, compute: Callable[[jax.Array], Any], out: Any) -> Any:
    """``out`` [S, ...] (a pytree) with row i replaced by ``compute``'s result for every seed i with
    ``due[i]``, the due seeds gathered ``chunk`` at a time: ``compute(take [chunk]) -> pytree
    [chunk, ...]`` for seed indices ``take`` (the padding of the last chunk repeats a seed; its rows
    are dropped). For ``jax.custom_batching.custom_vmap`` rules of work that only some seeds need at a
    call (a refit, a search): under plain ``vmap`` a ``lax.cond`` on a per-seed flag runs its expensive
    branch for every seed; here only ``ceil(due seeds / chunk)`` chunks run."""
    axis_size = due.shape[0]
    order, n_due = compact_valid_first(due)
    n_chunks = -(-axis_size // chunk)
    padded = jnp.concatenate([order, jnp.full((n_chunks * chunk - axis_size,), axis_size, order.dtype)])

    def body(carry):
        i, out = carry
        idx = jax.lax.dynamic_slice_in_dim(padded, i * chunk, chunk)
        take = jnp.minimum(idx, axis_size - 1)
        dest = jnp.where((idx < axis_size) & due[take], idx, axis_size)  # out of bounds: dropped
        new = compute(take)
        return i + 1, jax.tree.map(lambda a, b: a.at[dest].set(b, mode="drop"), out, new)

    return jax.lax.while_loop(lambda c: c[0] * chunk < n_due, body, (jnp.zeros((), jnp.int32), out))[1]


def after(values: Any, *reads: jax.Array) -> Any:
    """``values`` (a pytree of arrays) plus ``0 * sum(reads)``: unchanged when ``reads`` are finite,
    but data-dependent on them. Give it the operands of an in-place write to a buffer that ``reads``
    were computed from: without a data dependence XLA may schedule the write first and copy the whole
    buffer to keep the reads valid (ALP-GMM's history, RIAC's region FIFOs). An optimization barrier
    over the operands does not prevent that copy; the arithmetic dependence does."""
    zero = 0.0 * sum(jnp.sum(r) for r in reads)
    return jax.tree.map(lambda v: v + zero.astype(v.dtype), values)
