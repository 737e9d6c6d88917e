"""The host-side one-task-at-a-time wrapper."""

import numpy as np
import pytest

from envs.task_space import TaskSpace
from teachers.host import HostTeacher
from teachers.random import random_teacher
from teachers.registry import make_teacher


def test_host_teacher_round_trip_and_validation():
    space = TaskSpace.box(["a", "b"], [0.0, 10.0], [1.0, 20.0])
    host = HostTeacher(random_teacher(space), seed=1)
    tasks = np.stack([host.sample_task() for _ in range(50)])
    space.validate(tasks)
    assert len({tuple(t) for t in tasks}) == 50  # the key advances between calls
    for t in tasks[:7]:
        host.record(t, 0.5)
    assert int(host.state.episodes) == 7
    with pytest.raises(ValueError, match="finite"):
        host.record(tasks[0], float("nan"))
    with pytest.raises(ValueError, match="outside"):
        host.record(np.array([0.5, 25.0]), 0.1)
    with pytest.raises(ValueError, match="shape"):
        host.record(np.array([0.5]), 0.1)
    assert int(host.state.episodes) == 7  # rejected inputs changed nothing


def test_unknown_teacher_and_option_names():
    space = TaskSpace.unit_cube(2)
    with pytest.raises(ValueError, match="unknown teacher"):
        make_teacher("alp-gmm", space)
    with pytest.raises(ValueError, match="takes no options"):
        make_teacher("random", space, fit_rate=3)
