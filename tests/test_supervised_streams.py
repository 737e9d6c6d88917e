"""Digit task streams: deterministic given the seed; permutations are permutations; split streams hold
their classes (task-incremental masks, class-incremental single head); rotation by 0 / 90 degrees is
exact; the evaluation set of a task is every test image of its classes; the IDX and NPZ loaders read a
full MNIST copy."""

import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.supervised import load_digits, make_stream, rotate_images


def test_shipped_digits_split_is_fixed_and_stratified():
    x_tr, y_tr, x_te, y_te = load_digits()
    assert x_tr.shape == (4000, 784) and x_te.shape == (1000, 784) and x_tr.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_tr), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_te), [100] * 10)
    assert not (set(map(bytes, x_tr[:200])) & set(map(bytes, x_te)))


def test_permuted_stream_is_deterministic_given_the_seed():
    stream = make_stream("permuted", num_tasks=3)
    a, b = stream.init(jax.random.PRNGKey(4)), stream.init(jax.random.PRNGKey(4))
    c = stream.init(jax.random.PRNGKey(5))
    np.testing.assert_array_equal(np.asarray(a.perm), np.asarray(b.perm))
    assert not np.array_equal(np.asarray(a.perm), np.asarray(c.perm))
    for p in np.asarray(a.perm):
        np.testing.assert_array_equal(np.sort(p), np.arange(784))
    batch = stream.sample_batch(a, jnp.int32(1), jax.random.PRNGKey(0), 8)
    again = stream.sample_batch(b, jnp.int32(1), jax.random.PRNGKey(0), 8)
    np.testing.assert_array_equal(np.asarray(batch.x), np.asarray(again.x))
    ev, valid = stream.eval_batch(a, jnp.int32(2))
    assert ev.x.shape == (1000, 784) and bool(valid.all())
    x_te = load_digits()[2]
    np.testing.assert_allclose(np.asarray(ev.x), x_te[:, np.asarray(a.perm[2])] / 255.0, rtol=1e-6)
    assert bool(ev.logit_mask.all()) and stream.task_id_at_test


def test_split_streams_hold_their_classes():
    ti = make_stream("split_task")
    tasks = ti.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(tasks.classes), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
    batch = ti.sample_batch(tasks, jnp.int32(3), jax.random.PRNGKey(1), 256)
    assert set(np.asarray(batch.y).tolist()) == {6, 7}
    mask = np.asarray(batch.logit_mask)
    assert np.all(mask[:, [6, 7]]) and mask.sum() == 2 * 256
    ev, valid = ti.eval_batch(tasks, jnp.int32(3))
    assert int(valid.sum()) == 200 and set(np.asarray(ev.y).tolist()) == {6, 7}
    ci = make_stream("split_class")
    b2 = ci.sample_batch(ci.init(jax.random.PRNGKey(0)), jnp.int32(3), jax.random.PRNGKey(1), 16)
    assert bool(b2.logit_mask.all()) and not ci.task_id_at_test
    shuffled = make_stream("split_class", shuffle_classes=True)
    order = np.asarray(shuffled.init(jax.random.PRNGKey(3)).classes).ravel()
    np.testing.assert_array_equal(np.sort(order), np.arange(10))
    with pytest.raises(ValueError, match="unknown stream"):
        make_stream("shuffled")
    with pytest.raises(ValueError, match="do not fit"):
        make_stream("split_task", num_tasks=6)


def test_rotation_by_zero_and_ninety_degrees_is_exact():
    x = jnp.asarray(load_digits()[0][:4], jnp.float32) / 255.0
    np.testing.assert_allclose(np.asarray(rotate_images(x, 0.0)), np.asarray(x), atol=1e-5)
    r90 = np.asarray(rotate_images(x, 90.0)).reshape(4, 28, 28)
    imgs = np.asarray(x).reshape(4, 28, 28)
    # output (r, s) reads input (c - (s - c), ...) : the counter-clockwise quarter turn of numpy
    matches = [np.allclose(r90, np.rot90(imgs, k, axes=(1, 2)), atol=1e-4) for k in (1, 3)]
    assert any(matches)
    rot = make_stream("rotated", num_tasks=4)
    np.testing.assert_allclose(np.asarray(rot.init(jax.random.PRNGKey(0)).angle), [0, 60, 120, 180])


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_full_mnist_loaders_read_idx_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr = rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10
    xte, yte = rng.integers(0, 256, (20, 28, 28)), np.arange(20) % 10
    folder = tmp_path / "mnist"
    os.makedirs(folder)
    _write_idx(folder / "train-images-idx3-ubyte.gz", xtr)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", ytr)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", xte)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", yte)
    a = load_digits(str(folder))
    np.testing.assert_array_equal(a[0], xtr.reshape(30, -1))
    np.testing.assert_array_equal(a[3], yte)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    b = load_digits(str(npz))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    stream = make_stream("split_task", path=str(npz))
    assert stream.eval_size == 2 * 2  # two classes of at most 2 test images each
    with pytest.raises(ValueError, match="neither"):
        load_digits(str(tmp_path / "nothing.bin"))
