"""The hypercube toy student (envs/hypercube.py) against the rules of TDRL's toy_env.py."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import hypercube as hc
from teachers.random import random_teacher

CFG3 = hc.HypercubeConfig(nb_dims=2, nb_cubes=3)


def centre(config, *idx):
    """A task in the middle of cube ``idx`` (used dims only; useless dims at 0.5)."""
    used = [(i + 0.5) / config.nb_cubes for i in idx]
    return np.asarray(used + [0.5] * config.useless_dims, np.float32)


class Student:
    """Runs one episode at a time through the jitted single-episode function."""

    def __init__(self, config):
        self.config = config
        self.state = hc.init(config)
        self._episode = jax.jit(hc.episode, static_argnums=0)

    def hit(self, *idx, times=1):
        scores = []
        for _ in range(times):
            self.state, s = self._episode(self.config, self.state, jnp.asarray(centre(self.config, *idx)))
            scores.append(float(s))
        return scores

    def comp(self, *idx):
        flat = int(np.ravel_multi_index(idx, (self.config.nb_cubes,) * self.config.nb_dims))
        return int(self.state.competence[flat])

    def pct(self):
        return float(hc.mastered_pct(self.config, self.state))


def reference_episodes(config, competence, tasks):
    """Plain-Python transcription of the rules (independent of the JAX code), one task at a time."""
    comp = competence.reshape((config.nb_cubes,) * config.nb_dims).copy()
    scores = []
    for task in tasks:
        c = tuple(min(int(np.floor(v * config.nb_cubes)), config.nb_cubes - 1) for v in task[: config.nb_dims])
        if all(i == 0 for i in c):
            ok = True
        else:
            cands = itertools.product(*[(i, max(0, i - 1)) for i in c])
            ok = any(n != c and comp[n] >= config.unlock_threshold for n in cands)
        if ok:
            comp[c] = min(comp[c] + 1, config.max_per_cube)
        scores.append(comp[c] / config.max_per_cube)
    return comp.reshape(-1), np.asarray(scores, np.float32)


def test_hand_worked_sequence():
    s = Student(CFG3)
    # The origin always learns: scores 0.01, 0.02, ... after each increment.
    np.testing.assert_allclose(s.hit(0, 0, times=74), np.arange(1, 75) / 100, rtol=1e-6)
    # At 74 the neighbours are still locked: score 0 and no change.
    assert s.hit(1, 0) == [0.0] and s.comp(1, 0) == 0
    assert s.hit(1, 1) == [0.0] and s.comp(1, 1) == 0
    # 75: unlock (>= 75) but not mastered (> 75).
    assert s.hit(0, 0) == [pytest.approx(0.75)]
    assert s.pct() == 0.0
    assert s.hit(1, 0) == [pytest.approx(0.01)]  # axis neighbour unlocked
    assert s.hit(0, 1) == [pytest.approx(0.01)]
    assert s.hit(1, 1) == [pytest.approx(0.01)]  # diagonal neighbour counts too
    # Cubes two steps away stay locked: their previous neighbours are at 1.
    for idx in [(2, 0), (0, 2), (2, 2), (2, 1), (1, 2)]:
        assert s.hit(*idx) == [0.0] and s.comp(*idx) == 0
    # 76: the origin is mastered: 1 of 9 cubes.
    assert s.hit(0, 0) == [pytest.approx(0.76)]
    assert s.pct() == pytest.approx(100 / 9)
    # Cap at 100.
    s.hit(0, 0, times=24)
    assert s.comp(0, 0) == 100
    assert s.hit(0, 0, times=5) == [1.0] * 5 and s.comp(0, 0) == 100
    # (1, 1) to 75 unlocks (2, 2) through the diagonal only, and (2, 1), (1, 2).
    s.hit(1, 1, times=74)
    assert s.comp(1, 1) == 75 and s.pct() == pytest.approx(100 / 9)
    assert s.hit(2, 2) == [pytest.approx(0.01)]
    assert s.hit(2, 1) == [pytest.approx(0.01)]
    assert s.hit(2, 0) == [0.0]  # its only previous neighbour (1, 0) is at 1
    s.hit(1, 1)
    assert s.pct() == pytest.approx(200 / 9)


def test_task_one_maps_to_last_cube_and_binning_matches_tdrl():
    cfg = hc.HypercubeConfig(nb_dims=3, nb_cubes=4)
    assert int(hc.cube_index(cfg, jnp.ones((3,)))) == cfg.num_cubes - 1
    assert int(hc.cube_index(cfg, jnp.zeros((3,)))) == 0
    assert np.asarray(hc.cube_coords(cfg, jnp.array([1.0, 0.0, 0.99]))).tolist() == [3, 0, 3]
    # TDRL bins with scipy's binned_statistic_dd on np.arange edges; agree on random points.
    stats = pytest.importorskip("scipy.stats")
    pts = np.random.default_rng(0).random((200, 3))
    edges = [np.arange(0, 1 + 1 / 4, 1 / 4)] * 3
    ours = np.asarray(hc.cube_coords(cfg, jnp.asarray(pts)))
    for p, c in zip(pts, ours):
        counts = stats.binned_statistic_dd(p[None], np.ones((1, 3)), "count", bins=edges).statistic
        assert tuple(v[0] for v in counts[0].nonzero()) == tuple(c)


def test_useless_dims_are_ignored():
    cfg = hc.HypercubeConfig(nb_dims=2, nb_cubes=3, useless_dims=3)
    assert hc.task_space(cfg).dim == 5
    rng = np.random.default_rng(1)
    used = rng.random((400, 2)).astype(np.float32) * 0.7
    a = np.concatenate([used, rng.random((400, 3)).astype(np.float32)], 1)
    b = np.concatenate([used, np.zeros((400, 3), np.float32)], 1)
    mask = jnp.ones((400,), bool)
    sa, ra = hc.run_episodes(cfg, hc.init(cfg), jnp.asarray(a), mask)
    sb, rb = hc.run_episodes(cfg, hc.init(cfg), jnp.asarray(b), mask)
    np.testing.assert_array_equal(sa.competence, sb.competence)
    np.testing.assert_array_equal(ra, rb)


@pytest.mark.parametrize("dims,cubes", [(2, 3), (3, 3), (1, 5)])
def test_batched_sequential_matches_reference_and_single_steps(dims, cubes):
    cfg = hc.HypercubeConfig(nb_dims=dims, nb_cubes=cubes, useless_dims=1)
    rng = np.random.default_rng(dims * 10 + cubes)
    # Concentrate on the low corner so that unlocking actually happens.
    tasks = (rng.random((1500, dims + 1)) ** 3).astype(np.float32)
    ref_comp, ref_scores = reference_episodes(cfg, np.zeros(cfg.num_cubes, np.int64), tasks)
    assert ref_comp.max() > cfg.unlock_threshold  # the sequence exercises unlocking

    run = jax.jit(hc.run_episodes, static_argnums=0)
    state, scores = run(cfg, hc.init(cfg), jnp.asarray(tasks), jnp.ones((1500,), bool))
    np.testing.assert_array_equal(state.competence, ref_comp)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-6)

    # Same result in uneven batches.
    state = hc.init(cfg)
    parts = []
    for chunk in np.array_split(tasks, [1, 7, 300, 301, 1000]):
        state, sc = run(cfg, state, jnp.asarray(chunk), jnp.ones((len(chunk),), bool))
        parts.append(np.asarray(sc))
    np.testing.assert_array_equal(state.competence, ref_comp)
    np.testing.assert_allclose(np.concatenate(parts), ref_scores, rtol=1e-6)


def test_masked_rows_change_nothing():
    cfg = CFG3
    rng = np.random.default_rng(2)
    tasks = (rng.random((600, 2)) ** 2).astype(np.float32)
    mask = rng.random(600) < 0.6
    # Invalid rows get garbage tasks: they must neither learn nor affect later rows.
    noisy = np.where(mask[:, None], tasks, rng.random((600, 2)).astype(np.float32) * 0.3)
    state, scores = hc.run_episodes(cfg, hc.init(cfg), jnp.asarray(noisy), jnp.asarray(mask))
    ref_comp, ref_scores = reference_episodes(cfg, np.zeros(9, np.int64), tasks[mask])
    np.testing.assert_array_equal(state.competence, ref_comp)
    np.testing.assert_allclose(np.asarray(scores)[mask], ref_scores, rtol=1e-6)
    assert np.all(np.asarray(scores)[~mask] == 0.0)
    state2, scores2 = hc.run_episodes(cfg, state, jnp.asarray(noisy), jnp.zeros((600,), bool))
    np.testing.assert_array_equal(state2.competence, state.competence)
    assert np.all(np.asarray(scores2) == 0.0)


def run_curriculum(config, teacher, key, episodes, batch=1):
    """teacher.sample -> hypercube episodes -> teacher.update, ``episodes // batch`` times."""

    def body(carry, k):
        ts, es = carry
        ts, tasks = teacher.sample(ts, k, batch)
        mask = jnp.ones((batch,), bool)
        es, scores = hc.run_episodes(config, es, tasks, mask)
        return (teacher.update(ts, tasks, scores, mask), es), None

    k0, k1 = jax.random.split(key)
    carry = (teacher.init(k0), hc.init(config))
    (ts, es), _ = jax.lax.scan(body, carry, jax.random.split(k1, episodes // batch))
    return ts, es


def test_vmap_over_seeds_equals_single_runs():
    cfg = CFG3
    teacher = random_teacher(hc.task_space(cfg))
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    f = jax.jit(lambda k: run_curriculum(cfg, teacher, k, 2000, batch=8)[1].competence)
    batched = jax.vmap(f)(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], f(keys[i]))
    assert len({tuple(np.asarray(b)) for b in batched}) == 3  # the seeds differ


@pytest.mark.parametrize(
    "dims,cubes,budget,expected",
    [
        (2, 10, 10_000, 100.0),
        (4, 4, 20_000, 100.0),
        (5, 4, 50_000, 64.16015625),  # table: 64.2 %
        (6, 4, 100_000, 32.1044921875),  # 32.1 %
        (2, 20, 20_000, 65.75),
        (2, 50, 50_000, 26.28),  # 26.3 %
        (2, 100, 100_000, 13.15),
    ],
)
def test_ceiling_pct(dims, cubes, budget, expected):
    cfg = hc.HypercubeConfig(nb_dims=dims, nb_cubes=cubes)
    assert hc.ceiling_pct(cfg, budget) == pytest.approx(expected)


def test_random_teacher_masters_a_few_percent():
    """TDRL's Random on 2-D, 10 cubes, 20,000 episodes: 4.6 +- 0.8 % (references §4.4)."""
    cfg = hc.HypercubeConfig()
    teacher = random_teacher(hc.task_space(cfg))
    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    run = jax.vmap(lambda k: hc.mastered_pct(cfg, run_curriculum(cfg, teacher, k, 20_000, batch=4)[1]))
    pct = np.asarray(jax.jit(run)(keys))
    # 512 seeds of this port: mean 4.26 %, 83 % of seeds at 4, the rest at 5 to 8.
    assert np.all((pct >= 3.0) & (pct <= 9.0)), pct
    assert 3.8 <= pct.mean() <= 5.4, pct
