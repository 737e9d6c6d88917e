"""A host-side, one-task-at-a-time face for any teacher, for plain Python loops and non-JAX learners.

    host = HostTeacher(make_teacher("alp_gmm", space), seed=0)
    task = host.sample_task()           # numpy [dim]
    ...run an episode on `task`...
    host.record(task, score)            # score in [0, 1]

Inputs are checked on the host (shape, bounds, NaN) before they reach the jitted functions: a
non-finite score or task is refused with ``ValueError`` (inside the jitted loop it would be masked out
and counted). A ``HostTeacher`` pickles (its teacher, state and key; the jitted functions are rebuilt
on unpickling), so a host loop can checkpoint it.
"""

from __future__ import annotations

import math

import cloudpickle
import jax
import jax.numpy as jnp
import numpy as np

from teachers.base import Teacher


class HostTeacher:
    def __init__(self, teacher: Teacher, seed: int = 0):
        self.teacher = teacher
        self.space = teacher.task_space
        key = jax.random.PRNGKey(seed)
        self._key, init_key = jax.random.split(key)
        self.state = jax.jit(teacher.init)(init_key)
        self._compile()

    def _compile(self) -> None:
        self._sample = jax.jit(self.teacher.sample, static_argnums=2)
        self._update = jax.jit(self.teacher.update)

    def __getstate__(self) -> dict:
        to_host = lambda a: np.asarray(jax.random.key_data(a)) if jax.dtypes.issubdtype(  # noqa: E731
            a.dtype, jax.dtypes.prng_key) else np.asarray(a)
        # the teacher's functions are closures, which cloudpickle serialises
        return {"teacher": cloudpickle.dumps(self.teacher), "state": jax.tree.map(to_host, self.state),
                "key": np.asarray(self._key), "key_paths": _key_paths(self.state)}

    def __setstate__(self, d: dict) -> None:
        self.teacher = cloudpickle.loads(d["teacher"])
        self.space = self.teacher.task_space
        leaves, treedef = jax.tree.flatten(d["state"])
        keyed = set(d["key_paths"])
        leaves = [jax.random.wrap_key_data(jnp.asarray(a)) if i in keyed else jnp.asarray(a)
                  for i, a in enumerate(leaves)]
        self.state = jax.tree.unflatten(treedef, leaves)
        self._key = jnp.asarray(d["key"])
        self._compile()

    def sample_tasks(self, n: int) -> np.ndarray:
        """``n`` tasks ``[n, dim]`` from the teacher's current state."""
        self._key, key = jax.random.split(self._key)
        self.state, tasks = self._sample(self.state, key, int(n))
        return np.asarray(tasks)

    def sample_task(self) -> np.ndarray:
        return self.sample_tasks(1)[0]

    def record(self, task, score: float) -> None:
        """Report one finished episode: its task and its score."""
        self.record_batch(np.asarray(task)[None], np.asarray([score]))

    def record_batch(self, tasks, scores) -> None:
        """Report finished episodes ``tasks [n, dim]``, ``scores [n]`` in the order they finished."""
        tasks = self.space.validate(tasks, "record: task")
        scores = np.asarray(scores, np.float64).reshape(-1)
        if scores.shape[0] != tasks.shape[0]:
            raise ValueError(f"record: {tasks.shape[0]} tasks but {scores.shape[0]} scores")
        if not all(math.isfinite(s) for s in scores):
            raise ValueError(
                f"record: scores must be finite numbers, got {scores.tolist()} (teacher "
                f"{self.teacher.name!r}; a NaN or inf score is refused, not recorded)")
        mask = jnp.ones(tasks.shape[0], bool)
        self.state = self._update(
            self.state, jnp.asarray(tasks, jnp.float32), jnp.asarray(scores, jnp.float32), mask
        )


def _key_paths(state) -> list[int]:
    """Indices of the leaves of ``state`` that are typed PRNG keys."""
    return [i for i, a in enumerate(jax.tree.leaves(state))
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)]
