"""A host-side, one-task-at-a-time face for any teacher, for plain Python loops and non-JAX learners.

    host = HostTeacher(make_teacher("alp_gmm", space), seed=0)
    task = host.sample_task()           # numpy [dim]
    ...run an episode on `task`...
    host.record(task, score)            # score in [0, 1]

Inputs are checked on the host (shape, bounds, NaN) before they reach the jitted functions.
"""

from __future__ import annotations

import math

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
        self._sample = jax.jit(teacher.sample, static_argnums=2)
        self._update = jax.jit(teacher.update)

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
            raise ValueError(f"record: scores must be finite numbers, got {scores.tolist()}")
        mask = jnp.ones(tasks.shape[0], bool)
        self.state = self._update(
            self.state, jnp.asarray(tasks, jnp.float32), jnp.asarray(scores, jnp.float32), mask
        )
