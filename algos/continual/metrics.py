"""Continual-learning metrics of a performance matrix R[k, j] (the score on task j after training
task k, k, j = 0 .. T-1) and the scores b[j] of the untrained model, as defined in Lopez-Paz & Ranzato
2017 (GEM, ``facebookresearch/GradientEpisodicMemory``, ``metrics/metrics.py``) and Chaudhry et al.
2018 (RWalk; A-GEM's ``compute_fgt``):

* average accuracy  A = (1/T) sum_j R[T-1, j];
* BWT = 1/(T-1) sum_{j<T-1} (R[T-1, j] - R[j, j]);
* FWT = 1/(T-1) sum_{j>=1} (R[j-1, j] - b[j]);
* forgetting F = 1/(T-1) sum_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j]).

GEM's printed BWT and FWT average over all T entries (the last task's BWT and the first task's FWT
entries are zeros), i.e. they are (T-1)/T times the formulas: :func:`gem_scaled` gives those. All
functions are pure ``jnp`` (vmappable over seeds); T = 1 gives 0 for BWT, FWT and forgetting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _check(R: jax.Array) -> int:
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square [T, T] matrix, got shape {R.shape}")
    return int(R.shape[0])


def average_accuracy(R: jax.Array) -> jax.Array:
    T = _check(R)
    return R[T - 1].mean()


def backward_transfer(R: jax.Array) -> jax.Array:
    T = _check(R)
    if T == 1:
        return jnp.zeros((), R.dtype)
    return (R[T - 1, : T - 1] - jnp.diagonal(R)[: T - 1]).mean()


def forward_transfer(R: jax.Array, b: jax.Array) -> jax.Array:
    T = _check(R)
    if b.shape != (T,):
        raise ValueError(f"b must have shape ({T},), got {b.shape}")
    if T == 1:
        return jnp.zeros((), R.dtype)
    return (jnp.diagonal(R, offset=1) - b[1:]).mean()


def forgetting(R: jax.Array, k: int | None = None) -> jax.Array:
    """Chaudhry's forgetting after task ``k`` (0-based; default the last):
    1/k sum_{j<k} (max_{l<k} R[l, j] - R[k, j])."""
    T = _check(R)
    k = T - 1 if k is None else k
    if k == 0:
        return jnp.zeros((), R.dtype)
    best = R[:k, :k].max(axis=0)
    return (best - R[k, :k]).mean()


def gem_scaled(value: jax.Array, T: int) -> jax.Array:
    """A BWT or FWT as GEM's ``confusion_matrix`` prints it (the mean over T entries)."""
    return value * (T - 1) / T


def summary(R: jax.Array, b: jax.Array) -> dict[str, jax.Array]:
    """Every metric of one seed's R (and b)."""
    T = _check(R)
    bwt, fwt = backward_transfer(R), forward_transfer(R, b)
    return {
        "avg_accuracy": average_accuracy(R),
        "forgetting": forgetting(R),
        "bwt": bwt,
        "fwt": fwt,
        "bwt_gem": gem_scaled(bwt, T),
        "fwt_gem": gem_scaled(fwt, T),
    }


def record_row(R: jax.Array, k: jax.Array, row: jax.Array) -> jax.Array:
    """``R`` with row ``k`` (a traced task index) set to ``row`` (for the in-jit boundary update)."""
    return jax.lax.dynamic_update_index_in_dim(R, row.astype(R.dtype), k, axis=0)
