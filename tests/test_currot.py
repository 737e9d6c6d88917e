"""CURROT: the exact assignment and matching against brute force, the transport step against a
geometric solution, and the teacher's moves bounded by its ball radius."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.point_mass import POINT_MASS_2D_TASKS
from teachers.currot import (CurrOTConfig, ball_step, currot, linear_assignment, nadaraya_watson,
                             sliced_wasserstein_moves)


def brute_force_assignment(cost):
    n, m = cost.shape
    return min(sum(cost[i, c] for i, c in enumerate(cols)) for cols in itertools.permutations(range(m), n))


def test_linear_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    solve = jax.jit(linear_assignment)
    for n, m in [(3, 3), (4, 6), (5, 5), (5, 7)]:
        for _ in range(4):
            cost = rng.uniform(size=(n, m)).astype(np.float32)
            if rng.uniform() < 0.5:  # forbidden entries, as CURROT's masks use
                cost[rng.uniform(size=(n, m)) < 0.3] = 1e7
            cols = np.asarray(solve(cost))
            assert len(set(cols.tolist())) == n
            np.testing.assert_allclose(cost[np.arange(n), cols].sum(), brute_force_assignment(cost), rtol=1e-6)


def test_linear_assignment_first_rows_and_degenerate_problems_match_scipy():
    """The solver's two uses in CURROT: only the first ``rows`` rows (the particles to replace,
    compacted first; a traced count, under vmap), and the near-degenerate buffer problem (narrow
    target samples against contexts near them, where every row prefers the same columns); every
    unroll gives scipy's optimum (the reference's solver)."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(3)
    seeds, n, m = 3, 40, 48
    t = rng.normal([2.5, 0.5], [0.004, 0.00375], (seeds, n, 2))
    x = rng.normal([2.5, 0.6], [0.1, 0.1], (seeds, m, 2))
    narrow = ((t[:, :, None] - x[:, None]) ** 2).sum(-1).astype(np.float32)
    spread = rng.uniform(size=(seeds, n, m)).astype(np.float32)
    counts = np.array([n, 7, 0])
    for unroll in (1, 3):
        solve = jax.jit(jax.vmap(lambda c, r: linear_assignment(c, r, unroll=unroll)))
        for cost in (narrow, spread):
            cols = np.asarray(solve(cost, counts))
            for s, k in enumerate(counts):
                assert np.all(cols[s, k:] == -1)
                got = cols[s, :k]
                assert len(set(got.tolist())) == k and np.all(got >= 0)
                r, c = linear_sum_assignment(cost[s, :k])
                np.testing.assert_allclose(cost[s, np.arange(k), got].sum(), cost[s][r, c].sum(), rtol=1e-5)
    with pytest.raises(ValueError):
        linear_assignment(jnp.zeros((3, 2)))


def test_sliced_wasserstein_in_one_dimension_is_the_sorted_matching():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(9, 1)).astype(np.float32)
    target = (rng.normal(size=(9, 1)) * 2 + 3).astype(np.float32)
    moves = sliced_wasserstein_moves(jax.random.PRNGKey(0), jnp.asarray(source), jnp.asarray(target), 50)
    # every 1-D direction is +-1: the projected matching is the monotone (optimal) one
    exact = np.sort(target[:, 0])[np.argsort(np.argsort(source[:, 0]))] - source[:, 0]
    np.testing.assert_allclose(np.asarray(moves)[:, 0], exact, atol=1e-5)


def test_ball_step_solves_the_constrained_problem():
    # particle at 0, target (2, 0), radius 0.5, performance above delta only where y >= 0.3:
    # min ||c - t|| over ||c|| <= 0.5, c_y >= 0.3 is c = (0.4, 0.3) (the circle at y = 0.3)
    predict = lambda x: jnp.where(x[..., 1] >= 0.3, 10.0, 0.0)
    particles = jnp.zeros((2, 2))
    targets = jnp.array([[2.0, 0.0], [0.2, 0.0]])
    low, high = jnp.array([-4.0, -4.0]), jnp.array([4.0, 4.0])
    out = ball_step(jax.random.PRNGKey(0), particles, targets, jnp.array([True, False]), predict, 4.0, 0.5,
                    low, high, candidates=40000)
    np.testing.assert_allclose(out[0], [0.4, 0.3], atol=0.01)
    # the second target is nearer than the radius: the ball shrinks to ||t|| = 0.2, and y >= 0.3 is
    # out of reach, so the most performant candidate (any with y >= 0.3: none) - the argmax is taken
    assert np.linalg.norm(np.asarray(out[1])) <= 0.2 + 1e-6
    # nothing feasible: the highest prediction wins
    slope = lambda x: x[..., 0]
    out = ball_step(jax.random.PRNGKey(1), particles[:1], jnp.array([[0.0, 2.0]]), jnp.array([True]), slope,
                    100.0, 0.5, low, high, candidates=40000)
    np.testing.assert_allclose(out[0], [0.5, 0.0], atol=0.01)


def test_nadaraya_watson():
    data = jnp.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    vals = jnp.array([1.0, 3.0, 9.0])
    ok = jnp.array([True, True, False])
    x = jnp.array([[0.5, 0.0], [4.0, 4.0]])
    pred = nadaraya_watson(x, data, vals, ok, lengthscale=1.0)
    np.testing.assert_allclose(pred[0], 2.0, rtol=1e-6)  # equidistant: the plain mean
    np.testing.assert_allclose(pred[1], 1.0)  # no valid neighbour within 3 length scales: the lowest value


def test_teacher_moves_within_the_ball_and_stays_in_bounds():
    config = CurrOTConfig(num_particles=24, episodes_per_update=8, candidates=16, projections=16)
    teacher = currot(POINT_MASS_2D_TASKS, config)
    assert teacher.extras == ("discounted_return",)
    radius = np.sqrt(config.epsilon)

    def rounds(key):
        def one(state, r):
            state, tasks = teacher.sample(state, jax.random.fold_in(key, r), 8)
            values = jnp.full((8,), 10.0)  # above delta everywhere
            new = teacher.update(state, tasks, values / 100, jnp.ones(8, bool), discounted_return=values)
            return new, (state.particles, new.particles)

        state, (before, after) = jax.lax.scan(one, teacher.init(key), jnp.arange(4))
        return before, after, state

    before, after, state = jax.jit(jax.vmap(rounds))(jax.random.split(jax.random.PRNGKey(0), 3))
    assert np.all(np.asarray(state.updates) == 4)
    step = np.linalg.norm(np.asarray(after - before), axis=-1)
    # first round: the success buffer holds only the 8 new episodes, all above delta; afterwards
    # every particle is predicted above delta near them, or replaced, so check the later rounds
    assert np.all(step[:, 2:] <= radius + 1e-5)
    low, high = np.asarray(POINT_MASS_2D_TASKS.low), np.asarray(POINT_MASS_2D_TASKS.high)
    assert np.all((np.asarray(after) >= low - 1e-6) & (np.asarray(after) <= high + 1e-6))
    assert np.all(np.asarray(state.delta_reached))
    _, tasks = teacher.sample(jax.tree.map(lambda x: x[0], state), jax.random.PRNGKey(9), 5)
    assert tasks.shape == (5, 2)
    with pytest.raises(ValueError):
        currot(POINT_MASS_2D_TASKS, CurrOTConfig(num_particles=10, episodes_per_update=10))


def test_a_batch_of_more_episodes_than_a_round_keeps_its_last_ones():
    # 8 episodes per round; a batch of 13 valid episodes (between masked rows) must give the round of
    # its last 8, the same state as a batch of only those 8 (the episode counter aside). XLA's CPU
    # scatter keeps the last of repeated indices, so this pins the rule rather than catching the
    # accelerator's unspecified choice
    config = CurrOTConfig(num_particles=24, episodes_per_update=8, candidates=16, projections=16)
    teacher = currot(POINT_MASS_2D_TASKS, config)
    rng = np.random.default_rng(4)
    tasks = rng.uniform(POINT_MASS_2D_TASKS.low, POINT_MASS_2D_TASKS.high, (20, 2)).astype(np.float32)
    values = rng.uniform(0, 8, 20).astype(np.float32)
    mask = np.zeros(20, bool)
    mask[rng.choice(20, 13, replace=False)] = True
    last8 = mask & (np.cumsum(mask[::-1])[::-1] <= 8)
    update = jax.jit(teacher.update)
    state = teacher.init(jax.random.PRNGKey(0))
    a = update(state, tasks, values / 10, mask, discounted_return=values)
    b = update(state, tasks, values / 10, last8, discounted_return=values)
    assert int(a.updates) == int(b.updates) == 1 and int(a.episodes) == 13 and int(b.episodes) == 8
    for field in ("particles", "succ_contexts", "succ_values", "succ_size"):
        np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))
    # the round's episodes are the same (the ring's slots rotated by the 5 episodes before them)
    for s in (a, b):
        assert sorted(np.asarray(s.ep_values).tolist()) == sorted(values[last8].tolist())
    np.testing.assert_array_equal(np.asarray(a.ep_contexts)[np.argsort(np.asarray(a.ep_values))],
                                  np.asarray(b.ep_contexts)[np.argsort(np.asarray(b.ep_values))])
