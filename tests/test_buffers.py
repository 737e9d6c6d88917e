"""Rehearsal buffers: the reservoir holds every item of the stream with the same probability (a
chi-square test over many independent runs, fixed seed), FIFO keeps the most recent items, the
balanced buffer splits its capacity equally over the tasks seen, sampling respects validity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from memory import buffers


def _fill(kind, key, n_items=60, batch=12, capacity=15, max_tasks=5):
    buf = buffers.init(kind, capacity, jnp.zeros((), jnp.int32), max_tasks)
    keys = jax.random.split(key, n_items // batch)
    for i in range(n_items // batch):
        items = jnp.arange(i * batch, (i + 1) * batch, dtype=jnp.int32)
        buf = buffers.add(buf, items, jnp.full((batch,), i, jnp.int32), jnp.ones(batch, bool), keys[i])
    return buf


def test_reservoir_inclusion_is_uniform_over_the_stream():
    n_items, capacity, runs = 60, 15, 4000
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    bufs = jax.jit(jax.vmap(lambda k: _fill("reservoir", k, n_items, 12, capacity)))(keys)
    assert np.all(np.asarray(bufs.valid))
    held = np.zeros(n_items)
    for row in np.asarray(bufs.items):
        assert len(set(row.tolist())) == capacity  # no item twice
        held[row] += 1
    expected = runs * capacity / n_items
    np.testing.assert_allclose(held.mean(), expected)
    # inclusion counts are Binomial(runs, capacity / n): chi-square against the uniform expectation
    chi2 = np.sum((held - expected) ** 2 / (expected * (1 - capacity / n_items)))
    assert stats.chi2.sf(chi2, n_items - 1) > 1e-3, chi2
    # and early items are not favoured: first half vs second half of the stream
    assert abs(held[: n_items // 2].sum() - held[n_items // 2:].sum()) < 0.05 * held.sum()


def test_reservoir_masked_rows_are_not_offered():
    buf = buffers.init("reservoir", 4, jnp.zeros((), jnp.int32))
    mask = jnp.array([True, False, True, False, True])
    buf = buffers.add(buf, jnp.arange(5), jnp.zeros(5, jnp.int32), mask, jax.random.PRNGKey(1))
    assert int(buf.offered) == 3 and sorted(np.asarray(buf.items)[np.asarray(buf.valid)].tolist()) == [0, 2, 4]


def test_fifo_keeps_the_most_recent_items():
    buf = _fill("fifo", jax.random.PRNGKey(0), 60, 12, 15)
    assert sorted(np.asarray(buf.items).tolist()) == list(range(45, 60))
    small = buffers.init("fifo", 8, jnp.zeros((), jnp.int32))
    small = buffers.add(small, jnp.arange(20), jnp.zeros(20, jnp.int32))  # longer than the buffer
    assert sorted(np.asarray(small.items).tolist()) == list(range(12, 20))


def test_balanced_buffer_splits_capacity_over_tasks_seen():
    buf = _fill("balanced", jax.random.PRNGKey(0), 60, 12, 15, max_tasks=5)
    np.testing.assert_array_equal(np.asarray(buffers.task_counts(buf)), [3, 3, 3, 3, 3])
    items, tasks = np.asarray(buf.items), np.asarray(buf.task)
    valid = np.asarray(buf.valid)
    assert np.all(items[valid] // 12 == tasks[valid])  # every item tagged with its own task
    two = _fill("balanced", jax.random.PRNGKey(0), 24, 12, 15, max_tasks=5)
    np.testing.assert_array_equal(np.asarray(buffers.task_counts(two))[:2], [7, 7])


def test_sample_is_masked_while_empty_and_draws_valid_items():
    buf = buffers.init("reservoir", 10, {"x": jnp.zeros(3), "y": jnp.zeros((), jnp.int32)}, 2)
    _, _, mask = buffers.sample(buf, jax.random.PRNGKey(0), 5)
    assert not np.any(np.asarray(mask))
    items = {"x": jnp.ones((4, 3)) * jnp.arange(4)[:, None], "y": jnp.arange(4)}
    buf = buffers.add(buf, items, jnp.ones(4, jnp.int32), key=jax.random.PRNGKey(1))
    got, task, mask = buffers.sample(buf, jax.random.PRNGKey(2), 64)
    assert np.all(np.asarray(mask)) and np.all(np.asarray(task) == 1)
    assert set(np.asarray(got["y"]).tolist()) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(np.asarray(got["x"])[:, 0], np.asarray(got["y"]))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="unknown buffer kind"):
        buffers.init("lifo", 4, jnp.zeros(()))
    buf = buffers.init("reservoir", 4, jnp.zeros(2))
    with pytest.raises(ValueError, match="item leaf"):
        buffers.add(buf, jnp.zeros((3, 5)), jnp.zeros(3, jnp.int32), key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="needs a key"):
        buffers.add(buf, jnp.zeros((3, 2)), jnp.zeros(3, jnp.int32))
