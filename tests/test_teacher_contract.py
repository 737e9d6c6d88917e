"""The teacher protocol (teachers/base.py), checked for every teacher in the registry, including any
registered later: masked rows change nothing, vmap over seeds equals one seed at a time, a block of
episodes equals one episode at a time where the teacher claims it (``exact_block``), and bad input is
refused (shapes, before compiling) or masked / clipped and counted (non-finite, out of range)."""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.task_space import TaskSpace
from teachers.base import EXTRAS, InputCounts
from teachers.em import EMOptions
from teachers.registry import TEACHERS, exact_block, make_teacher, teacher_config_class

BOX = TaskSpace.box(["height", "spacing"], [0.0, 0.0], [2.0, 6.0])  # not a unit box on purpose
N = 16  # rows per update

# Small settings so that every mechanism (refits, splits, window moves) happens within a few batches;
# each is applied only to the teachers whose config has the field.
SMALL = dict(fit_rate=8, k_max=3, em=EMOptions(iters=20), history_capacity=40, max_region_size=12,
             min_reg_size=3, max_regions=16, nb_split_attempts=8, check_every=4, threshold=0.3)


@functools.lru_cache(maxsize=None)
def build(name: str):
    cls = teacher_config_class(name)
    options = {}
    if cls is not None:
        fields = {f.name for f in dataclasses.fields(cls)}
        options = {k: v for k, v in SMALL.items() if k in fields}
    teacher = make_teacher(name, BOX, **options)
    config = None if cls is None else dataclasses.replace(cls(), **options)
    return teacher, config, jax.jit(teacher.update), jax.jit(teacher.sample, static_argnums=2)


def extras_for(teacher, n, rng):
    return {k: rng.random(n).astype(np.float32) for k in teacher.extras}


def batches(seed, count, n=N, p_valid=0.6):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        tasks = rng.uniform(BOX.low, BOX.high, size=(n, 2)).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        out.append((tasks, scores, rng.random(n) < p_valid))
    return out


def run(name, key, data, update=None):
    teacher, _, jupdate, _ = build(name)
    update = update or jupdate
    state = teacher.init(key)
    rng = np.random.default_rng(0)
    for tasks, scores, mask in data:
        state = update(state, tasks, scores, mask, **extras_for(teacher, len(scores), rng))
    return state


NAMES = sorted(TEACHERS)


def plain(tree):
    """``tree`` with typed PRNG keys as their key data (so that chex can compare it)."""
    return jax.tree.map(
        lambda a: jax.random.key_data(a) if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else a,
        tree)


def assert_same(a, b, **tol):
    chex.assert_trees_all_close(plain(a), plain(b), **tol)


def test_registry_names_every_extra_it_reads():
    for name in NAMES:
        assert set(build(name)[0].extras) <= set(EXTRAS), name


@pytest.mark.parametrize("name", NAMES)
def test_masked_rows_change_nothing(name):
    teacher, _, update, _ = build(name)
    state = run(name, jax.random.key(1), batches(2, 3))
    rng = np.random.default_rng(9)
    n_valid, n = 6, N
    tasks = rng.uniform(BOX.low, BOX.high, size=(n_valid, 2)).astype(np.float32)
    scores = rng.random(n_valid).astype(np.float32)
    extras = extras_for(teacher, n_valid, rng)
    pad = lambda a: np.concatenate([a, np.zeros((n - n_valid,) + a.shape[1:], a.dtype)])  # noqa: E731
    clean = update(state, pad(tasks), pad(scores), np.arange(n) < n_valid,
                   **{k: pad(v) for k, v in extras.items()})
    # the same episodes at other rows, with garbage (NaN, inf, out of range) in the masked rows
    pos = np.sort(rng.choice(n, n_valid, replace=False))
    big_t = rng.uniform(-50, 50, size=(n, 2)).astype(np.float32)
    big_s = rng.uniform(-50, 50, size=n).astype(np.float32)
    big_t[pos], big_s[pos] = tasks, scores
    garbage = np.setdiff1d(np.arange(n), pos)
    big_t[garbage[:3]], big_s[garbage[:3]] = np.nan, np.inf
    big_e = {k: np.full(n, np.nan, np.float32) for k in extras}
    for k, v in extras.items():
        big_e[k][pos] = v
    mask = np.zeros(n, bool)
    mask[pos] = True
    assert_same(update(state, big_t, big_s, mask, **big_e), clean)
    # an all-masked batch is a no-op
    assert_same(update(state, big_t, big_s, np.zeros(n, bool), **big_e), state)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_seeds_equals_one_seed_at_a_time(name):
    teacher, _, update, sample = build(name)
    keys = jax.random.split(jax.random.key(42), 3)
    per_seed = [batches(10 + s, 5, p_valid=0.7) for s in range(3)]
    rng = np.random.default_rng(0)
    ex = [extras_for(teacher, N, rng) for _ in range(5)]
    vupdate = jax.jit(jax.vmap(teacher.update))
    vstate = jax.vmap(teacher.init)(keys)
    states = [teacher.init(k) for k in keys]
    for b in range(5):
        stacked = [np.stack([per_seed[s][b][j] for s in range(3)]) for j in range(3)]
        vex = {k: np.stack([v] * 3) for k, v in ex[b].items()}
        vstate = vupdate(vstate, *stacked, **vex)
        states = [update(states[s], *per_seed[s][b], **ex[b]) for s in range(3)]
    assert_same(vstate, jax.tree.map(lambda *a: jnp.stack(a), *states), rtol=1e-4,
                                atol=1e-5)
    skeys = jax.random.split(jax.random.key(5), 3)
    vsample = jax.jit(jax.vmap(teacher.sample, in_axes=(0, 0, None)), static_argnums=2)
    _, vtasks = vsample(vstate, skeys, 7)
    for s in range(3):
        _, tasks = sample(states[s], skeys[s], 7)
        np.testing.assert_allclose(vtasks[s], tasks, rtol=1e-5, atol=1e-5)
        assert np.all(tasks >= np.asarray(BOX.low)) and np.all(tasks <= np.asarray(BOX.high))


@pytest.mark.parametrize("name", NAMES)
def test_block_equals_one_episode_at_a_time_where_claimed(name):
    teacher, config, update, sample = build(name)
    block = exact_block(name, config)
    if block == 1:
        pytest.skip(f"{name} claims exactness only for one episode at a time")
    block = block or 5
    rng = np.random.default_rng(3)
    s_block = s_seq = teacher.init(jax.random.key(3))
    for _ in range(4):  # aligned blocks of `block` valid episodes
        tasks = rng.uniform(BOX.low, BOX.high, size=(block, 2)).astype(np.float32)
        scores = rng.random(block).astype(np.float32)
        ex = extras_for(teacher, block, rng)
        s_block = update(s_block, tasks, scores, np.ones(block, bool), **ex)
        for i in range(block):
            s_seq = update(s_seq, tasks[i:i + 1], scores[i:i + 1], np.ones(1, bool),
                           **{k: v[i:i + 1] for k, v in ex.items()})
        assert_same(s_block, s_seq, rtol=1e-4, atol=1e-5)
        k = jax.random.key(int(rng.integers(1 << 30)))
        np.testing.assert_allclose(sample(s_block, k, 5)[1], sample(s_seq, k, 5)[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_bad_shapes_refused_before_compiling(name):
    teacher, *_ = build(name)
    state = teacher.init(jax.random.key(0))
    ex = {k: np.zeros(4, np.float32) for k in teacher.extras}
    cases = [
        (np.zeros((4, 3)), np.zeros(4), np.ones(4, bool)),  # d' != d
        (np.zeros((4, 2)), np.zeros(3), np.ones(4, bool)),  # scores of the wrong length
        (np.zeros((4, 2)), np.zeros(4), np.ones(5, bool)),  # mask of the wrong length
        (np.zeros(2), np.zeros(1), np.ones(1, bool)),  # one task without its batch axis
    ]
    for tasks, scores, mask in cases:
        with pytest.raises(ValueError, match=rf"(?s){name}.*{list(np.shape(tasks))}"):
            jax.jit(teacher.update)(state, tasks, scores, mask, **ex)
    for n in (0, -1):
        with pytest.raises(ValueError, match=name):
            teacher.sample(state, jax.random.key(0), n)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_masked_and_out_of_range_clipped_and_counted(name):
    teacher, _, update, _ = build(name)
    state = run(name, jax.random.key(2), batches(4, 2))
    assert isinstance(state.inputs, InputCounts), f"{name}: state.inputs (teachers.base) is missing"
    rng = np.random.default_rng(1)
    tasks = rng.uniform(BOX.low, BOX.high, size=(N, 2)).astype(np.float32)
    scores = rng.random(N).astype(np.float32)
    mask = np.ones(N, bool)
    ex = extras_for(teacher, N, rng)
    # non-finite rows are masked out: equal to the same batch with those rows masked
    bad_t, bad_s = tasks.copy(), scores.copy()
    bad_t[2, 1], bad_s[5], bad_s[7] = np.nan, np.nan, -np.inf
    got = update(state, bad_t, bad_s, mask, **ex)
    masked = mask.copy()
    masked[[2, 5, 7]] = False
    want = update(state, tasks, scores, masked, **ex)
    assert int(got.inputs.nonfinite) == int(state.inputs.nonfinite) + 3
    assert_same(got.replace(inputs=want.inputs), want)
    # out of range: clipped into the space and [0, 1], counted
    far_t, far_s = tasks.copy(), scores.copy()
    far_t[0] = [5.0, -1.0]
    far_t[3, 0] = -0.5
    far_s[4], far_s[6] = 50.0, -2.0
    got = update(state, far_t, far_s, mask, **ex)
    assert int(got.inputs.tasks_clipped) == int(state.inputs.tasks_clipped) + 2
    assert int(got.inputs.scores_clipped) == int(state.inputs.scores_clipped) + 2
    want = update(state, np.clip(far_t, BOX.low, BOX.high), np.clip(far_s, 0, 1), mask, **ex)
    assert_same(got.replace(inputs=want.inputs), want)


@pytest.mark.parametrize("n", [1, 2, 7, 512])
def test_compact_valid_first_is_a_stable_partition(n):
    """The O(n) partition equals numpy's stable argsort of ``~mask`` (valid rows first, in order)."""
    from teachers.base import compact_valid_first

    rng = np.random.default_rng(n)
    for density in (0.0, 0.1, 0.5, 1.0):
        mask = rng.random(n) < density
        order, count = jax.jit(compact_valid_first)(jnp.asarray(mask))
        np.testing.assert_array_equal(np.asarray(order), np.argsort(~mask, kind="stable"))
        assert int(count) == int(mask.sum())


@pytest.mark.parametrize("chunk", [1, 3, 5, 11])
def test_map_due_seeds_replaces_exactly_the_due_rows(chunk):
    """Due rows get ``compute``'s value, the others keep theirs, whatever the chunk size (one that
    divides the 11 seeds or not) and however many seeds are due."""
    from teachers.base import map_due_seeds

    n = 11
    out0 = (jnp.arange(n, dtype=jnp.float32), jnp.zeros((n, 2), jnp.int32))
    compute = lambda take: (100.0 + take.astype(jnp.float32), jnp.stack([take, 2 * take], 1))
    fn = jax.jit(lambda due: map_due_seeds(due, chunk, compute, out0))
    rng = np.random.default_rng(0)
    for density in (0.0, 0.1, 0.3, 0.6, 1.0):
        due = rng.random(n) < density
        got_a, got_b = fn(jnp.asarray(due))
        idx = np.arange(n)
        np.testing.assert_array_equal(np.asarray(got_a), np.where(due, 100.0 + idx, idx))
        np.testing.assert_array_equal(np.asarray(got_b), np.where(due[:, None], np.stack([idx, 2 * idx], 1), 0))
