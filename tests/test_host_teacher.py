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


def test_host_teacher_refuses_non_finite_scores_and_pickles():
    import pickle

    space = TaskSpace.box(["a", "b"], [0.0, 0.0], [1.0, 2.0])
    host = HostTeacher(make_teacher("alp_gmm", space, fit_rate=10, k_max=3), seed=3)
    rng = np.random.default_rng(0)
    for _ in range(25):
        host.record(host.sample_task(), float(rng.random()))
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alp_gmm.*refused"):
            host.record(host.sample_task(), bad)
    assert int(host.state.episodes) == 25 and bool(host.state.has_gmm)
    copy = pickle.loads(pickle.dumps(host))
    np.testing.assert_array_equal(copy.sample_tasks(6), host.sample_tasks(6))
    copy.record(np.array([0.5, 1.0]), 0.5)
    assert int(copy.state.episodes) == 26 and int(host.state.episodes) == 25
