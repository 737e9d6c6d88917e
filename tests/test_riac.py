"""RIAC teacher: region ALP, splits, discards, masking, vmap, sampling, config checks."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.task_space import TaskSpace
from teachers import riac as R
from teachers.registry import make_teacher

UNIT2 = TaskSpace.unit_cube(2)
BOX = TaskSpace.box(["a", "b"], [-1.0, 0.0], [1.0, 4.0])  # non-unit box: raw task units
PAD = 64  # every update is padded to this many rows, so each config compiles once


def py_alp(rewards, window):
    """The reference's ALP of a region, in plain Python."""
    n = len(rewards)
    if n <= 2:
        return 0.0
    w = min(n, window)
    h = w // 2
    older = rewards[n - w : n - h]
    newer = rewards[n - h : n]
    return abs(sum(older) / len(older) - sum(newer) / len(newer))


@functools.lru_cache(maxsize=None)
def build(space: TaskSpace, config: R.RIACConfig):
    teacher = R.riac(space, config)
    update = jax.jit(teacher.update)
    sample = jax.jit(teacher.sample, static_argnums=2)
    modes = jax.jit(functools.partial(R.sample_with_modes, space, config), static_argnums=2)
    return teacher, update, sample, modes


def feed(update, state, tasks, scores):
    """Update with the rows of ``tasks``/``scores`` (in order), padded to PAD rows with a mask."""
    tasks = np.asarray(tasks, np.float32).reshape(-1, 2)
    scores = np.asarray(scores, np.float32).reshape(-1)
    for lo in range(0, len(scores), PAD):
        t, s = tasks[lo : lo + PAD], scores[lo : lo + PAD]
        k = len(s)
        tt = np.full((PAD, 2), np.nan, np.float32)
        ss = np.full((PAD,), np.nan, np.float32)
        tt[:k], ss[:k] = t, s
        state = update(state, tt, ss, np.arange(PAD) < k)
    return state


def leaf_of(state, x):
    """Host-side: index of the leaf whose box holds ``x``."""
    low, high = np.asarray(state.low), np.asarray(state.high)
    open_ = np.asarray(state.low_open)
    hits = []
    for i in range(int(state.num_regions)):
        above = np.where(open_[i], x > low[i], x >= low[i])
        if np.all(above & (x <= high[i])) and bool(state.is_leaf[i]):
            hits.append(i)
    assert len(hits) == 1, hits
    return hits[0]


# ------------------------------------------------------------------------------------- ALP


REWARDS = [0.0, 1.0, 0.5, 0.2, 0.9, 0.9, 0.1, 0.3, 0.7, 0.6, 0.0, 1.0, 0.25, 0.75, 0.4, 0.8, 0.05]


@pytest.mark.parametrize("window", [8, None])
def test_region_alp_matches_python_formula(window):
    config = R.RIACConfig(max_region_size=40, alp_window_size=window)
    teacher, update, _, _ = build(UNIT2, config)
    state = teacher.init(jax.random.PRNGKey(0))
    w = 40 if window is None else window
    for k, r in enumerate(REWARDS):
        state = feed(update, state, [[0.3, 0.6]], [r])
        assert int(state.count[0]) == k + 1
        np.testing.assert_allclose(float(state.alp[0]), py_alp(REWARDS[: k + 1], w), atol=1e-6)
    # the same sequence given as one batch gives the same region
    batch = feed(update, teacher.init(jax.random.PRNGKey(0)), [[0.3, 0.6]] * len(REWARDS), REWARDS)
    chex.assert_trees_all_equal(batch, state)


def test_region_alp_helper_on_subsets():
    rng = np.random.default_rng(0)
    rewards = rng.uniform(size=30).astype(np.float32)
    member = rng.uniform(size=(6, 30)) < 0.5
    got = R.region_alp(jnp.asarray(rewards)[None], jnp.asarray(member), 7)
    want = [py_alp(list(rewards[m]), 7) for m in member]
    np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


def test_best_attempt_prefers_later_on_ties():
    valid = jnp.array([True, True, True, False, True])
    score = jnp.array([0.5, 0.7, 0.7, 0.9, 0.2])
    assert int(R.best_attempt(valid, score)) == 2  # the invalid 0.9 is ignored


# ------------------------------------------------------------------------------------ split

SPLIT_CFG = R.RIACConfig(max_region_size=20, min_reg_size=5, max_regions=16)


def test_split_exactly_when_a_leaf_exceeds_max_region_size():
    teacher, update, _, _ = build(BOX, SPLIT_CFG)
    state = teacher.init(jax.random.PRNGKey(1))
    rng = np.random.default_rng(1)
    low, high = np.asarray(BOX.low), np.asarray(BOX.high)
    xs = (low + rng.uniform(size=(21, 2)) * (high - low)).astype(np.float32)
    rs = rng.uniform(size=21).astype(np.float32)

    state = feed(update, state, xs[:20], rs[:20])
    assert int(state.num_regions) == 1 and int(state.count[0]) == 20 and bool(state.is_leaf[0])
    state = feed(update, state, xs[20:], rs[20:])
    assert int(state.num_regions) == 3 and int(state.discards) == 0

    # tree structure and bounds
    assert list(np.asarray(state.is_leaf[:3])) == [False, True, True]
    assert list(np.asarray(state.parent[:3])) == [-1, 0, 0]
    lo1, hi1, lo2, hi2 = (np.asarray(a) for a in (state.low[1], state.high[1], state.low[2], state.high[2]))
    changed = np.flatnonzero(hi1 != high)
    assert len(changed) == 1
    dim = int(changed[0])
    thr = hi1[dim]
    assert lo2[dim] == thr and np.all(lo1 == low) and np.all(hi2 == high)
    assert np.all(np.delete(lo2, dim) == np.delete(low, dim))
    assert bool(state.low_open[2, dim]) and not bool(state.low_open[1].any())
    ext_min = SPLIT_CFG.min_dims_range_ratio * (high - low)
    assert np.all(hi1 - lo1 >= ext_min) and np.all(hi2 - lo2 >= ext_min)

    # the children partition the parent's 21 pairs, in arrival order; the parent keeps them all
    root_t, root_r = R.region_pairs(state, 0)
    np.testing.assert_array_equal(root_t, xs)
    np.testing.assert_array_equal(root_r, rs)
    lower = xs[:, dim] <= thr
    t1, r1 = R.region_pairs(state, 1)
    t2, r2 = R.region_pairs(state, 2)
    np.testing.assert_array_equal(t1, xs[lower])
    np.testing.assert_array_equal(r1, rs[lower])
    np.testing.assert_array_equal(t2, xs[~lower])
    np.testing.assert_array_equal(r2, rs[~lower])
    assert len(r1) >= 5 and len(r2) >= 5

    # from now on, a split (or a discard) happens exactly when the receiving leaf is full
    for _ in range(80):
        x = (low + rng.uniform(size=2) * (high - low)).astype(np.float32)
        leaf = leaf_of(state, x)
        before_regions, before_discards = int(state.num_regions), int(state.discards)
        full = int(state.count[leaf]) == SPLIT_CFG.max_region_size
        state = feed(update, state, [x], [rng.uniform()])
        events = (int(state.num_regions) - before_regions) // 2 + int(state.discards) - before_discards
        assert events == int(full)
        if full and int(state.num_regions) > before_regions:
            assert not bool(state.is_leaf[leaf])
            kids = np.array([before_regions, before_regions + 1])
            assert list(np.asarray(state.parent[kids])) == [leaf, leaf]
            assert int(state.count[kids].sum()) == SPLIT_CFG.max_region_size + 1
            assert int(state.count[kids].min()) >= 5
    assert int(state.num_regions) >= 5
    # the root is a FIFO of the last max_region_size + 1 pairs; its ALP uses them
    _, root_r = R.region_pairs(state, 0)
    assert len(root_r) == SPLIT_CFG.capacity
    np.testing.assert_allclose(float(state.alp[0]), py_alp(list(root_r), 20), atol=1e-6)


def progress_data():
    """41 pairs in [0,1]^2: P (x0 <= 0.28) makes progress 0 -> 1, Q (x0 >= 0.72) stays at 0.5."""
    rng = np.random.default_rng(7)
    p_x = np.stack([np.linspace(0.02, 0.28, 20), rng.uniform(0.05, 0.95, 20)], 1)
    p_r = np.array([0.0] * 10 + [1.0] * 10)
    q_x = np.stack([rng.uniform(0.72, 0.98, 21), rng.uniform(0.05, 0.95, 21)], 1)
    q_x[0, 1], q_x[1, 1] = 0.01, 0.99  # no threshold on x1 isolates P
    q_r = np.full(21, 0.5)
    xs, rs, is_p = [], [], []
    for i in range(21):  # Q P Q P ... Q
        xs.append(q_x[i]), rs.append(q_r[i]), is_p.append(False)
        if i < 20:
            xs.append(p_x[i]), rs.append(p_r[i]), is_p.append(True)
    return np.array(xs, np.float32), np.array(rs, np.float32), np.array(is_p)


@pytest.mark.parametrize("score", ["code", "paper"])
def test_split_maximising_alp_difference_is_chosen(score):
    config = R.RIACConfig(max_region_size=40, split_score=score, child_alp="chosen")
    teacher, update, _, _ = build(UNIT2, config)
    xs, rs, is_p = progress_data()
    for seed in range(3):
        state = feed(update, teacher.init(jax.random.PRNGKey(seed)), xs, rs)
        assert int(state.num_regions) == 3
        assert float(state.high[1, 0]) < 1.0  # split on x0 ...
        assert 0.28 <= float(state.high[1, 0]) < 0.72  # ... in the gap between P and Q
        t1, r1 = R.region_pairs(state, 1)
        t2, r2 = R.region_pairs(state, 2)
        np.testing.assert_array_equal(t1, xs[is_p])
        np.testing.assert_array_equal(t2, xs[~is_p])
        np.testing.assert_allclose(np.asarray(state.alp[1:3]), [1.0, 0.0], atol=1e-6)
        assert py_alp(list(r1), 40) == 1.0 and py_alp(list(r2), 40) == 0.0


def test_children_alp_last_attempt_quirk():
    config = R.RIACConfig(max_region_size=40, child_alp="last_attempt")
    teacher, update, _, _ = build(UNIT2, config)
    xs, rs, is_p = progress_data()
    alps = []
    for seed in range(3):
        state = feed(update, teacher.init(jax.random.PRNGKey(seed)), xs, rs)
        np.testing.assert_array_equal(R.region_pairs(state, 1)[0], xs[is_p])  # same split chosen
        alps.append(np.asarray(state.alp[1:3]))
        # once a child receives a pair its ALP is its own again
        state = feed(update, state, [[0.1, 0.5]], [1.0])
        np.testing.assert_allclose(float(state.alp[1]), py_alp(list(R.region_pairs(state, 1)[1]), 40), atol=1e-6)
    # the last attempt is random: its ALPs are not those of the chosen split in every seed
    assert any(not np.allclose(a, [1.0, 0.0]) for a in alps)


@pytest.mark.parametrize(
    "config",
    [
        R.RIACConfig(max_region_size=20, min_dims_range_ratio=0.6),  # no child can be wide enough
        R.RIACConfig(max_region_size=20, max_regions=1),  # the tree is full
    ],
)
def test_discard_when_no_valid_split(config):
    teacher, update, _, _ = build(UNIT2, config)
    rng = np.random.default_rng(3)
    xs = rng.uniform(size=(26, 2)).astype(np.float32)
    rs = rng.uniform(size=26).astype(np.float32)
    state = feed(update, teacher.init(jax.random.PRNGKey(0)), xs[:21], rs[:21])
    assert int(state.num_regions) == 1 and int(state.discards) == 1
    t, r = R.region_pairs(state, 0)  # the oldest floor(20 / 4) = 5 pairs are gone
    np.testing.assert_array_equal(t, xs[5:21])
    np.testing.assert_array_equal(r, rs[5:21])
    np.testing.assert_allclose(float(state.alp[0]), py_alp(list(rs[5:21]), 20), atol=1e-6)
    state = feed(update, state, xs[21:], rs[21:])
    assert int(state.discards) == 2
    np.testing.assert_array_equal(R.region_pairs(state, 0)[1], rs[10:26])


def test_discard_when_no_threshold_separates_identical_tasks():
    # the reference would redraw thresholds forever; here the split fails and pairs are dropped
    teacher, update, _, _ = build(UNIT2, R.RIACConfig(max_region_size=20))
    state = feed(update, teacher.init(jax.random.PRNGKey(0)), [[0.4, 0.4]] * 21, np.linspace(0, 1, 21))
    assert int(state.num_regions) == 1 and int(state.discards) == 1 and int(state.count[0]) == 16


# ----------------------------------------------------------------------------- batches, vmap


def test_masked_rows_change_nothing_and_batch_equals_one_at_a_time():
    teacher, update, _, _ = build(BOX, SPLIT_CFG)
    rng = np.random.default_rng(5)
    n = PAD
    low, high = np.asarray(BOX.low), np.asarray(BOX.high)
    xs = (low + rng.uniform(size=(n, 2)) * (high - low)).astype(np.float32)
    rs = rng.uniform(size=n).astype(np.float32)
    mask = rng.uniform(size=n) < 0.6
    xs_bad, rs_bad = xs.copy(), rs.copy()
    xs_bad[~mask] = np.nan
    rs_bad[~mask] = 1e6
    state0 = feed(update, teacher.init(jax.random.PRNGKey(2)), xs[:15], rs[:15])

    masked = update(state0, xs_bad, rs_bad, mask)
    compact = feed(update, state0, xs[mask], rs[mask])
    chex.assert_trees_all_equal(masked, compact)
    assert int(masked.num_regions) > 1  # splits happened inside the batch

    one_by_one = state0
    for i in np.flatnonzero(mask):
        one_by_one = feed(update, one_by_one, xs[i : i + 1], rs[i : i + 1])
    chex.assert_trees_all_equal(masked, one_by_one)

    untouched = update(state0, xs_bad, rs_bad, np.zeros(n, bool))
    chex.assert_trees_all_equal(untouched, state0)


def _run(teacher, key, rounds=12, n=8):
    """Sample n tasks, score them (progress grows left of a = 0), update; ``rounds`` times."""

    def body(state, inp):
        i, k = inp
        k_s, k_m = jax.random.split(k)
        state, tasks = teacher.sample(state, k_s, n)
        scores = jnp.where(tasks[:, 0] < 0.0, i / rounds, 0.3) + 0.05 * tasks[:, 1]
        mask = jax.random.uniform(k_m, (n,)) < 0.8
        return teacher.update(state, tasks, scores, mask), None

    k_init, k_run = jax.random.split(key)
    state = teacher.init(k_init)
    inputs = (jnp.arange(rounds, dtype=jnp.float32), jax.random.split(k_run, rounds))
    return jax.lax.scan(body, state, inputs)[0]


def test_samples_stay_in_bounds():
    teacher, _, sample, _ = build(BOX, SPLIT_CFG)
    low, high = np.asarray(BOX.low), np.asarray(BOX.high)
    fresh = teacher.init(jax.random.PRNGKey(0))
    for state in (fresh, jax.jit(functools.partial(_run, teacher))(jax.random.PRNGKey(4))):
        out_state, tasks = sample(state, jax.random.PRNGKey(9), 2000)
        tasks = np.asarray(tasks)
        assert tasks.shape == (2000, 2) and np.all(np.isfinite(tasks))
        assert np.all(tasks >= low) and np.all(tasks <= high)
        chex.assert_trees_all_equal(out_state, state)
    assert int(state.num_regions) > 1


def test_sampling_follows_concentrated_alp():
    config = R.RIACConfig(max_region_size=40, child_alp="chosen", sampling_in_leaves_only=True)
    teacher, update, _, modes = build(UNIT2, config)
    xs, rs, is_p = progress_data()
    state = feed(update, teacher.init(jax.random.PRNGKey(0)), xs, rs)
    np.testing.assert_allclose(np.asarray(state.alp[1:3]), [1.0, 0.0], atol=1e-6)  # all ALP in P
    lo, hi = np.asarray(state.low[1]), np.asarray(state.high[1])

    tasks, mode = modes(state, jax.random.PRNGKey(1), 4000)
    tasks, mode = np.asarray(tasks), np.asarray(mode)
    frac = [np.mean(mode == m) for m in (R.MODE_ALP_REGION, R.MODE_UNIFORM, R.MODE_MUTATE)]
    np.testing.assert_allclose(frac, [0.7, 0.2, 0.1], atol=0.03)
    in_p = np.all((tasks >= lo) & (tasks <= hi), axis=1)
    assert in_p[mode == R.MODE_ALP_REGION].mean() > 0.99
    area = float(np.prod(hi - lo))  # uniform over the whole square: P gets its share of the area
    assert abs(in_p[mode == R.MODE_UNIFORM].mean() - area) < 0.07 and area < 0.75
    mutated = tasks[mode == R.MODE_MUTATE]
    assert np.all((mutated >= lo + 5e-6) & (mutated <= hi - 5e-6))
    # the lowest-reward pair of P, the oldest among equals, is its first: x = xs[1]
    assert np.median(np.linalg.norm(mutated - xs[1], axis=1)) < 0.2


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_region_size=1),
        dict(max_region_size=20.5),
        dict(alp_window_size=1),
        dict(nb_split_attempts=0),
        dict(min_reg_size=-1.0),
        dict(min_dims_range_ratio=1.5),
        dict(discard_ratio=-0.1),
        dict(max_regions=0),
        dict(split_score="volume"),
        dict(child_alp="first"),
        dict(mutation_std=-0.1),
    ],
)
def test_config_validation(bad):
    with pytest.raises(ValueError):
        R.riac(UNIT2, R.RIACConfig(**bad))


def test_discrete_space_rejected_and_registry():
    with pytest.raises(ValueError, match="discrete"):
        R.riac(TaskSpace.discrete(5))
    teacher = make_teacher("riac", UNIT2, max_region_size=30, nb_split_attempts=10)
    assert teacher.name == "riac"
    state = teacher.init(jax.random.PRNGKey(0))
    assert state.tasks.shape == (256, 31, 2)


def test_buffer_after_a_discard_is_kept_as_the_reference_keeps_it():
    # The root discards (no valid split), so the reference makes its FIFO an unbounded deque; after the
    # root later splits it keeps every pair, and mode 3 takes the lowest reward among all of them.
    config = R.RIACConfig(max_region_size=20, min_reg_size=5, max_regions=16)
    teacher, update, _, modes = build(UNIT2, config)
    # 21 identical tasks: no threshold separates them, so the root discards 5 pairs
    xs = [[0.4, 0.4]] * 21
    rs = np.linspace(0.5, 1.0, 21).astype(np.float32)
    rs[10] = 0.01  # the lowest reward, kept after the discard (the oldest 5 go)
    state = feed(update, teacher.init(jax.random.PRNGKey(0)), xs, rs)
    assert int(state.discards) == 1 and bool(state.unbounded[0])
    # spread tasks: the root splits, then overflows its FIFO of 21 (the 0.01 pair leaves the FIFO)
    rng = np.random.default_rng(0)
    more = rng.uniform(size=(40, 2)).astype(np.float32)
    state = feed(update, state, more, np.full(40, 0.6, np.float32))
    assert int(state.num_regions) >= 3 and not bool(state.is_leaf[0])
    stored = R.region_pairs(state, 0)[1]
    assert 0.01 not in np.round(stored, 4)  # no longer in the FIFO ...
    np.testing.assert_allclose(float(state.evicted_reward[0]), 0.01, atol=1e-6)  # ... but remembered
    np.testing.assert_allclose(np.asarray(state.evicted_task[0]), [0.4, 0.4])
    # mode 3 on the root mutates the remembered lowest-reward task
    only_root = state.replace(alp=jnp.zeros_like(state.alp).at[0].set(1.0))
    tasks, mode = modes(only_root, jax.random.PRNGKey(3), 400)
    tasks, mode = np.asarray(tasks), np.asarray(mode)
    mutated = tasks[mode == R.MODE_MUTATE]
    assert len(mutated) > 10
    np.testing.assert_allclose(mutated.mean(0), [0.4, 0.4], atol=4 * 0.1 / np.sqrt(len(mutated)))
