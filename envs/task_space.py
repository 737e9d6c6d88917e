"""Task spaces: the language a teacher and a task environment share.

A task is a float vector of length ``dim``. A *box* space has named dimensions with bounds
``low <= task <= high``; a *discrete* space has ``num_tasks`` ids and tasks of shape ``[1]`` holding
the id as a float (so every teacher speaks float arrays of shape ``[n, dim]``).

Teachers that fit models (ALP-GMM, Covar-GMM) work in the unit cube: ``normalise`` maps the box to
[0, 1]^d and ``denormalise`` maps back. ``validate`` is host-side: call it on user input before
anything is compiled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskSpace:
    """A box of named task parameters, or a finite set of task ids.

    Build with :meth:`box` or :meth:`discrete`. Hashable, so it can be a static argument.
    """

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    num_tasks: int | None = None  # set for discrete spaces

    def __post_init__(self) -> None:
        if len(self.names) == 0:
            raise ValueError("TaskSpace needs at least one dimension")
        if not (len(self.names) == len(self.low) == len(self.high)):
            raise ValueError(
                f"TaskSpace: names, low and high must have equal lengths, got "
                f"{len(self.names)}, {len(self.low)}, {len(self.high)}"
            )
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"TaskSpace: duplicate dimension names in {self.names}")
        for name, lo, hi in zip(self.names, self.low, self.high):
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise ValueError(f"TaskSpace: bounds of {name!r} must be finite, got [{lo}, {hi}]")
            if not lo < hi:
                raise ValueError(f"TaskSpace: low < high needed for {name!r}, got [{lo}, {hi}]")
        if self.num_tasks is not None:
            if self.num_tasks < 1 or len(self.names) != 1:
                raise ValueError("a discrete TaskSpace has one dimension and num_tasks >= 1")

    @classmethod
    def box(
        cls, names: Sequence[str], low: Sequence[float], high: Sequence[float]
    ) -> TaskSpace:
        """A continuous box ``low <= task <= high`` with one name per dimension."""
        return cls(tuple(names), tuple(float(x) for x in low), tuple(float(x) for x in high))

    @classmethod
    def discrete(cls, num_tasks: int, name: str = "task_id") -> TaskSpace:
        """Task ids ``0 .. num_tasks - 1`` (tasks of shape ``[1]``)."""
        return cls((name,), (0.0,), (float(num_tasks - 1) if num_tasks > 1 else 1.0,), int(num_tasks))

    @classmethod
    def unit_cube(cls, dim: int, prefix: str = "x") -> TaskSpace:
        """[0, 1]^dim with names ``x0, x1, ...``."""
        return cls.box([f"{prefix}{i}" for i in range(dim)], [0.0] * dim, [1.0] * dim)

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def is_discrete(self) -> bool:
        return self.num_tasks is not None

    @property
    def low_array(self) -> jax.Array:
        return jnp.asarray(self.low, jnp.float32)

    @property
    def high_array(self) -> jax.Array:
        return jnp.asarray(self.high, jnp.float32)

    def normalise(self, tasks: jax.Array) -> jax.Array:
        """Map tasks from the box to [0, 1]^d."""
        return (tasks - self.low_array) / (self.high_array - self.low_array)

    def denormalise(self, unit: jax.Array) -> jax.Array:
        """Map points of [0, 1]^d back into the box."""
        return self.low_array + unit * (self.high_array - self.low_array)

    def clip(self, tasks: jax.Array) -> jax.Array:
        return jnp.clip(tasks, self.low_array, self.high_array)

    def sample_uniform(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` tasks uniform over the space, shape ``[n, dim]``."""
        if self.is_discrete:
            ids = jax.random.randint(key, (n, 1), 0, self.num_tasks)
            return ids.astype(jnp.float32)
        u = jax.random.uniform(key, (n, self.dim))
        return self.denormalise(u)

    def validate(self, tasks: np.ndarray | jax.Array, what: str = "tasks") -> np.ndarray:
        """Host-side check of a task array ``[n, dim]`` (or ``[dim]``); returns it as numpy.

        Raises ``ValueError`` naming the offending dimension on wrong shapes, NaNs, out-of-range
        values, or non-integer ids in a discrete space.
        """
        arr = np.asarray(tasks, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what}: expected shape [n, {self.dim}], got {np.shape(tasks)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: contains NaN or inf")
        low, high = np.asarray(self.low), np.asarray(self.high)
        tol = 1e-6 * (high - low)
        for i, name in enumerate(self.names):
            bad = (arr[:, i] < low[i] - tol[i]) | (arr[:, i] > high[i] + tol[i])
            if np.any(bad):
                v = arr[bad, i][0]
                raise ValueError(
                    f"{what}: {name}={v} outside the task space [{self.low[i]}, {self.high[i]}]"
                )
        if self.is_discrete and np.any(arr != np.round(arr)):
            raise ValueError(f"{what}: discrete task ids must be integers")
        return arr

    def test_set(self, n: int, seed: int = 4222) -> np.ndarray:
        """A fixed set of ``n`` tasks drawn uniformly with numpy (host-side, reproducible), as the
        reference evaluates its students on a fixed uniform test set (TDRL uses seed 4222)."""
        rng = np.random.default_rng(seed)
        if self.is_discrete:
            return rng.integers(0, self.num_tasks, (n, 1)).astype(np.float32)
        return rng.uniform(self.low, self.high, (n, self.dim)).astype(np.float32)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
