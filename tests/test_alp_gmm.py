"""ALP-GMM teacher (teachers/alp_gmm.py): ALP semantics, ties, history, sampling (the refit schedule:
tests/test_gmm_teacher.py).
(Masking, vmap, batching and bad input: tests/test_teacher_contract.py.)"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.task_space import TaskSpace
from tests.gmm_teacher_helpers import TS, jitted, ks_uniform, random_batches
from teachers import em as G
from teachers.alp_gmm import ALPGMMConfig, alp_gmm, episode_alps, history_dropped, window_alps
from teachers.registry import make_teacher

CFG = ALPGMMConfig(fit_rate=20, k_min=2, k_max=3, history_capacity=12)  # small DB: sliding window
CFG_RAW = dataclasses.replace(CFG, history_capacity=1000, normalise_tasks=False)


def teacher(config):
    return jitted("alp_gmm", config)


alps_of = jax.jit(episode_alps, static_argnums=2)  # the ALPs a refit computes for those episodes


def reference_alps(batches, capacity, normalise):
    """TDRL's ALP computed one episode at a time, with a database of at most `capacity` entries."""
    db_tasks, db_scores, alps = [], [], []
    low, high = np.asarray(TS.low), np.asarray(TS.high)
    for tasks, scores, mask in batches:
        for task, score, valid in zip(tasks, scores, mask):
            if not valid:
                continue
            u = (task.astype(np.float64) - low) / (high - low) if normalise else task.astype(np.float64)
            window_t, window_s = db_tasks[-capacity:], db_scores[-capacity:]
            if len(window_t) > 5:
                j = int(np.argmin([np.linalg.norm(u - v) for v in window_t]))
                alps.append(abs(float(score) - window_s[j]))
            else:
                alps.append(0.0)
            db_tasks.append(u)
            db_scores.append(float(score))
    return np.asarray(alps)


@pytest.mark.parametrize("config", [CFG, CFG_RAW], ids=["normalised_cap12", "raw_units"])
def test_alp_matches_nearest_previous_task(config):
    tj = teacher(config)
    batches = random_batches(0, 10, 16)
    state = tj.t.init(jax.random.key(0))
    got = []
    for tasks, scores, mask in batches:
        c0 = int(state.episodes)
        state = tj.update(state, tasks, scores, mask)
        c1 = int(state.episodes)
        assert c1 - c0 == mask.sum()
        got.extend(np.asarray(alps_of(state, c1, c1 - c0)))
    ref = reference_alps(batches, config.history_capacity, config.normalise_tasks)
    assert len(got) == len(ref) > 20
    np.testing.assert_array_equal(ref[:6], 0.0)  # "more than 5 entries" rule
    assert np.all(ref[6:] > 0)  # random continuous scores: the rule is the only source of zeros
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-6)


def test_capacity_changes_the_reference():
    # guard that the two parametrisations above test different things
    batches = random_batches(0, 10, 16)
    assert not np.allclose(reference_alps(batches, 12, True), reference_alps(batches, 1000, True))
    assert not np.allclose(reference_alps(batches, 1000, True), reference_alps(batches, 1000, False))


def test_samples_in_bounds_and_uniform_before_first_fit():
    tj = teacher(CFG)
    state = tj.t.init(jax.random.key(0))
    _, tasks = tj.sample(state, jax.random.key(1), 4000)
    assert ks_uniform(tasks) > 1e-3
    for tasks_b, scores, mask in random_batches(4, 2, 8, p_valid=0.7):
        state = tj.update(state, tasks_b, scores, mask)
    assert 0 < int(state.episodes) < CFG.fit_rate and not bool(state.has_gmm)
    state2, tasks = tj.sample(state, jax.random.key(2), 4000)
    chex.assert_trees_all_close(state2, state)  # sample does not change the state
    assert ks_uniform(tasks) > 1e-3
    assert np.all(tasks >= np.asarray(TS.low)) and np.all(tasks <= np.asarray(TS.high))


# Region of high ALP: height < 0.5 and spacing < 1.5, i.e. [0, 1/4]^2 of the normalised box (1/16).
def _in_region(tasks):
    return (tasks[:, 0] < 0.5) & (tasks[:, 1] < 1.5)


@pytest.mark.parametrize("normalise", [True, False])
def test_samples_concentrate_where_alp_is_high(normalise):
    config = ALPGMMConfig(
        fit_rate=150, k_min=2, k_max=4, random_task_ratio=0.0, normalise_tasks=normalise
    )
    tj = teacher(config)
    state = tj.t.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    tasks = np.asarray(tj.sample(state, jax.random.key(1), 4000)[1])[:150]  # bootstrap: uniform
    # random scores inside the region (high ALP), a constant score outside (ALP 0)
    scores = np.where(_in_region(tasks), rng.random(150), 0.5).astype(np.float32)
    state = tj.update(state, tasks, scores, np.ones(150, bool))
    assert bool(state.has_gmm) and int(state.n_fits) == 1
    _, samples = tj.sample(state, jax.random.key(2), 4000)
    samples = np.asarray(samples)
    assert np.all(samples >= np.asarray(TS.low)) and np.all(samples <= np.asarray(TS.high))
    frac = _in_region(samples).mean()
    assert frac > 0.4, frac  # uniform sampling would give 1/16
    # with random_task_ratio = 1 the teacher is uniform again
    tj1 = teacher(dataclasses.replace(config, random_task_ratio=1.0))
    _, samples = tj1.sample(state, jax.random.key(3), 4000)
    assert ks_uniform(samples) > 1e-3


def test_registry_and_config_validation():
    t = make_teacher("alp_gmm", TS, fit_rate=30)
    assert t.name == "alp_gmm"
    bad = [
        dict(fit_rate=0),
        dict(fit_rate=5, k_max=10),
        dict(k_min=0),
        dict(k_min=5, k_max=4),
        dict(em=G.EMOptions(criterion="waic")),
        dict(random_task_ratio=1.5),
        dict(n_bootstrap=-1),
        dict(history_capacity=5),
        dict(em=G.EMOptions(iters=0)),
        dict(em=G.EMOptions(reg_covar=-1.0)),
        dict(fit_rate=2.5),
        dict(em=G.EMOptions(criterion="aicc"), fit_rate=60),  # P'(k=10, d=2) = 59: N - P' - 1 <= 0
    ]
    for kw in bad:
        with pytest.raises(ValueError):
            alp_gmm(TS, ALPGMMConfig(**kw))
    with pytest.raises(ValueError, match="discrete"):
        alp_gmm(TaskSpace.discrete(5), ALPGMMConfig())
    alp_gmm(TS, ALPGMMConfig(em=G.EMOptions(criterion="aicc"), fit_rate=61))  # just enough


def test_nearest_neighbour_ties_broken_at_random_not_by_age():
    # Four earlier episodes on exactly the same task (a clipped corner) with scores 0, 0.25, 0.5, 0.75,
    # then many queries on that task: each of the four is the nearest neighbour about equally often
    # (TDRL's KD-tree), not always the oldest. The choice is fixed by (seed, episode) alone, so batched
    # and one-at-a-time updates pick the same neighbours.
    config = ALPGMMConfig(fit_rate=250, k_min=2, k_max=3, history_capacity=2000)
    tj = teacher(config)
    corner = np.array([[2.0, 6.0]], np.float32)
    far = np.array([[0.0, 0.0]], np.float32)
    state = tj.t.init(jax.random.key(7))
    warm_t = np.concatenate([far] * 2 + [corner] * 4)
    warm_s = np.array([0.9, 0.9, 0.0, 0.25, 0.5, 0.75], np.float32)
    state = tj.update(state, warm_t, warm_s, np.ones(6, bool))
    n = 200
    # each query scores 1.0, so its alp is 1 - the score of the neighbour it was matched with
    picks = []
    s = state
    for i in range(n):
        s_q = tj.update(s, corner, np.ones(1, np.float32), np.ones(1, bool))
        picks.append(1.0 - float(alps_of(s_q, s_q.episodes, 1)[0]))
        s = tj.update(s, far, np.full(1, 0.9, np.float32), np.ones(1, bool))  # next episode index
    counts = np.array([np.sum(np.isclose(picks, v)) for v in (0.0, 0.25, 0.5, 0.75)])
    assert counts.sum() == n
    assert np.all(counts > n / 4 - 4 * np.sqrt(n * 3 / 16)), counts  # about n / 4 each (4 sigma)
    # the choice for an episode does not depend on which other episodes are searched with it
    s = tj.update(state, np.repeat(corner, 8, 0), np.ones(8, np.float32), np.ones(8, bool))
    together = np.asarray(alps_of(s, s.episodes, 8))
    alone = [float(alps_of(s, s.episodes - 7 + i, 1)[0]) for i in range(8)]
    np.testing.assert_array_equal(together, alone)
    assert len(set(together.tolist())) > 1  # the eight equal queries did not all pick one neighbour


def test_window_alps_under_vmap_search_only_due_seeds_and_equal_one_seed_at_a_time():
    tj = teacher(CFG_RAW)
    states = []
    for seed in range(5):
        state = tj.t.init(jax.random.key(seed))
        for tasks, scores, mask in random_batches(seed, 4, 16):
            state = tj.update(state, tasks, scores, mask)
        states.append(state)
    # five seeds with different episode counts, the last 10 episodes of each
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *states)
    ends = jnp.stack([s.episodes for s in states])
    slots = (ends[:, None] - 10 + jnp.arange(10)) % stacked.aux.tasks.shape[1]
    q_tasks = jnp.take_along_axis(stacked.aux.tasks, slots[..., None], 1)
    q_scores = jnp.take_along_axis(stacked.aux.scores, slots, 1)
    fitted = jnp.array([True, False, True, True, False])
    for chunk in (None, 1, 2, 5):
        got = jax.jit(jax.vmap(lambda h, t, s, e, f: window_alps(h, t, s, e, f, chunk)))(
            stacked.aux, q_tasks, q_scores, ends, fitted)
        for i, state in enumerate(states):
            want = alps_of(state, state.episodes, 10) if fitted[i] else jnp.zeros(10)
            np.testing.assert_array_equal(np.asarray(got[i]), np.asarray(want))
    assert float(jnp.abs(got).sum()) > 0


def test_history_sized_to_the_run_and_drops_counted():
    # None: sized to the run's budget through the registry (TDRL keeps all history)
    t = make_teacher("alp_gmm", TS, fit_rate=20, k_max=3, max_episodes=3000)
    state = t.init(jax.random.key(0))
    assert state.aux.capacity == 3000 and int(history_dropped(state)) == 0
    # an explicit capacity is TDRL's alp_max_size: the oldest entries go, and are counted
    tj = teacher(CFG)  # capacity 12
    state = tj.t.init(jax.random.key(0))
    for tasks, scores, mask in random_batches(0, 3, 16):
        state = tj.update(state, tasks, scores, mask)
    assert int(history_dropped(state)) == int(state.episodes) - 12 > 0
    # without a budget the default capacity is used, and stated
    from teachers.alp_gmm import DEFAULT_HISTORY
    assert alp_gmm(TS).init(jax.random.key(0)).aux.capacity == DEFAULT_HISTORY


def test_update_writes_the_history_in_place():
    """The compiled, vmapped update holds no copy of the ALP database (an earlier version, which
    searched the database before writing to it at every update, copied the whole history twice per
    update until the write was made to depend on the search)."""
    import re

    from teachers.registry import make_teacher

    space = TaskSpace(names=("a", "b"), low=(0.0, 0.0), high=(1.0, 1.0))
    teacher = make_teacher("alp_gmm", space, max_episodes=4096)
    state = jax.vmap(teacher.init)(jax.random.split(jax.random.PRNGKey(0), 4))
    rows = (jnp.zeros((4, 64, 2)), jnp.zeros((4, 64)), jnp.ones((4, 64), bool))
    hlo = jax.jit(jax.vmap(teacher.update), donate_argnums=0).lower(state, *rows).compile().as_text()
    shape = re.escape("f32[4,%d,2]" % state.aux.tasks.shape[1])
    assert len(re.findall(rf"= {shape}[^ ]* copy\(", hlo)) == 0
