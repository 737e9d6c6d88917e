"""The sliding-window Oracle (teachers/oracle.py) against TDRL's oracle_teacher.py rules."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import hypercube as hc
from envs.task_space import TaskSpace
from teachers.oracle import OracleConfig, hypercube_oracle_config, oracle, oracle_window
from teachers.registry import make_teacher

# Stump Tracks: height [0, 3] rising by 0.1, spacing [0, 6] falling by 0.2 (TDRL run.py settings).
STUMP = TaskSpace.box(["stump_height", "obstacle_spacing"], [0.0, 0.0], [3.0, 6.0])
STUMP_CFG = OracleConfig(step=(0.1, -0.2))


def window(space, cfg, state):
    lo, hi = oracle_window(space, cfg, state)
    return np.asarray(lo), np.asarray(hi)


class ReferenceOracle:
    """Plain-Python transcription of TDRL's window bookkeeping (one episode at a time)."""

    def __init__(self, space, cfg):
        low, high = np.asarray(space.low), np.asarray(space.high)
        self.width = (high - low) * cfg.window_fraction
        self.step = np.asarray(cfg.step)
        self.low, self.high = low, high
        self.pos = np.where(self.step > 0, low, high - self.width)
        self.cfg, self.rewards = cfg, []

    def update(self, score):
        self.rewards.append(score)
        if len(self.rewards) == self.cfg.check_every:
            if np.mean(self.rewards) > self.cfg.threshold:
                up = np.minimum(self.pos + self.step, self.high - self.width)
                down = np.maximum(self.pos + self.step, self.low)
                self.pos = np.where(self.step > 0, up, down)
            self.rewards = []


def test_window_starts_at_the_easy_corner():
    t = oracle(STUMP, STUMP_CFG)
    lo, hi = window(STUMP, STUMP_CFG, t.init(jax.random.PRNGKey(0)))
    np.testing.assert_allclose(lo, [0.0, 5.0], atol=1e-6)  # TDRL: height [0, 0.5], spacing [5, 6]
    np.testing.assert_allclose(hi, [0.5, 6.0], atol=1e-6)
    # Default config: window range/6, step range/30 from the easy end; on spacing (harder when
    # smaller) that is the top, moving down: the same window as TDRL's explicit Stump Tracks step.
    t = oracle(STUMP)
    s = t.init(jax.random.PRNGKey(0))
    lo, hi = window(STUMP, OracleConfig(), s)
    np.testing.assert_allclose(lo, [0.0, 5.0], atol=1e-6)
    np.testing.assert_allclose(hi, [0.5, 6.0], atol=1e-6)
    s = t.update(s, jnp.zeros((50, 2)), jnp.ones((50,)), jnp.ones((50,), bool))
    np.testing.assert_allclose(window(STUMP, OracleConfig(), s)[0], [0.1, 4.8], atol=1e-6)
    # the real stump_track task space starts at the easy end too
    from envs.stump_track import STUMP_TRACK_TASKS
    lo, _ = window(STUMP_TRACK_TASKS, OracleConfig(), oracle(STUMP_TRACK_TASKS).init(None))
    np.testing.assert_allclose(lo, [0.0, 5.0], atol=1e-6)
    # a dimension not known to be harder when smaller moves up from its low end
    unit = TaskSpace.unit_cube(2)
    np.testing.assert_allclose(window(unit, OracleConfig(), oracle(unit).init(None))[0], [0.0, 0.0])
    # An explicit start.
    cfg = OracleConfig(window_start=(1.0, 2.0))
    np.testing.assert_allclose(window(STUMP, cfg, oracle(STUMP, cfg).init(None))[0], [1.0, 2.0])


def test_moves_only_after_a_full_block_above_threshold():
    t = oracle(STUMP, STUMP_CFG)
    upd = jax.jit(t.update)
    s = t.init(jax.random.PRNGKey(0))
    ones = jnp.ones((49,), bool)
    # 49 excellent episodes: no check yet.
    s = upd(s, jnp.zeros((49, 2)), jnp.full((49,), 0.9), ones)
    assert int(s.advances) == 0 and int(s.block_count) == 49
    # The 50th completes the block: mean 0.9 > 0.76, move by (+0.1, -0.2).
    s = upd(s, jnp.zeros((1, 2)), jnp.full((1,), 0.9), jnp.ones((1,), bool))
    assert int(s.advances) == 1 and int(s.block_count) == 0
    np.testing.assert_allclose(window(STUMP, STUMP_CFG, s)[0], [0.1, 4.8], atol=1e-6)
    # A block with mean exactly at the threshold does not move (strict >); the block still resets.
    s = upd(s, jnp.zeros((50, 2)), jnp.full((50,), 0.75), jnp.ones((50,), bool))
    assert int(s.advances) == 1 and int(s.block_count) == 0 and float(s.block_sum) == 0.0
    # Mean over the block, not the last score: 25 x 1.0 + 25 x 0.5 = 0.75 < 0.76.
    sc = jnp.concatenate([jnp.ones(25), jnp.full((25,), 0.5)])
    s = upd(s, jnp.zeros((50, 2)), sc, jnp.ones((50,), bool))
    assert int(s.advances) == 1
    # 20 x 1.0 + 30 x 0.62 = 0.772 > 0.76 -> moves.
    sc = jnp.concatenate([jnp.ones(20), jnp.full((30,), 0.62)])
    s = upd(s, jnp.zeros((50, 2)), sc, jnp.ones((50,), bool))
    assert int(s.advances) == 2
    assert int(s.episodes) == 200


def test_clipped_at_the_bounds():
    t = oracle(STUMP, STUMP_CFG)
    s = t.init(None)
    # 200 successful blocks in one batch: height stops at 3 - 0.5, spacing at 0.
    n = 50 * 200
    s = jax.jit(t.update)(s, jnp.zeros((n, 2)), jnp.ones((n,)), jnp.ones((n,), bool))
    assert int(s.advances) == 200
    lo, hi = window(STUMP, STUMP_CFG, s)
    np.testing.assert_allclose(lo, [2.5, 0.0], atol=1e-5)
    np.testing.assert_allclose(hi, [3.0, 1.0], atol=1e-5)
    _, tasks = t.sample(s, jax.random.PRNGKey(1), 1000)
    assert np.all(np.asarray(tasks) >= np.asarray(STUMP.low)) and np.all(np.asarray(tasks) <= np.asarray(STUMP.high))


def test_batched_updates_equal_one_at_a_time_and_masks():
    """Any batching (several blocks per batch, partial blocks, masked rows) equals TDRL's loop."""
    rng = np.random.default_rng(0)
    n_total = 3000
    # Scores around the threshold, so that some blocks pass and some do not.
    scores = np.clip(rng.normal(0.76, 0.2, n_total), 0, 1).astype(np.float32)
    ref = ReferenceOracle(STUMP, STUMP_CFG)
    ref_pos = []
    for sc in scores:
        ref.update(float(sc))
        ref_pos.append(ref.pos.copy())

    t = oracle(STUMP, STUMP_CFG)
    upd = jax.jit(t.update)
    s = t.init(None)
    done = 0
    for size in [1, 7, 49, 50, 51, 120, 300, 23, 2000, 399]:
        n_valid = min(size, n_total - done)
        # Pad each batch (to one shape: one compilation) with invalid rows carrying garbage
        # scores, interleaved at random.
        width = 2200
        mask = np.zeros(width, bool)
        mask[np.sort(rng.choice(width, n_valid, replace=False))] = True
        sc = rng.random(width).astype(np.float32) + 5.0  # huge garbage on invalid rows
        sc[mask] = scores[done : done + n_valid]
        s = upd(s, jnp.zeros((width, 2)), jnp.asarray(sc), jnp.asarray(mask))
        done += n_valid
        np.testing.assert_allclose(window(STUMP, STUMP_CFG, s)[0], ref_pos[done - 1], atol=1e-5)
        assert int(s.block_count) == done % 50
    assert done == n_total and int(s.episodes) == n_total
    assert int(s.advances) > 3  # the sequence did exercise moves

    # An all-invalid batch changes nothing.
    s2 = upd(s, jnp.zeros((64, 2)), jnp.ones((64,)), jnp.zeros((64,), bool))
    jax.tree.map(np.testing.assert_array_equal, s2, s)


def test_samples_lie_inside_the_window():
    t = oracle(STUMP, STUMP_CFG)
    s = t.init(None)
    s = t.update(s, jnp.zeros((150, 2)), jnp.ones((150,)), jnp.ones((150,), bool))  # 3 moves
    s2, tasks = jax.jit(t.sample, static_argnums=2)(s, jax.random.PRNGKey(0), 4000)
    jax.tree.map(np.testing.assert_array_equal, s2, s)
    lo, hi = window(STUMP, STUMP_CFG, s)
    tasks = np.asarray(tasks)
    assert tasks.shape == (4000, 2)
    assert np.all(tasks >= lo - 1e-6) and np.all(tasks <= hi + 1e-6)
    # Uniform over the window: it fills it.
    np.testing.assert_allclose(tasks.min(0), lo, atol=0.01)
    np.testing.assert_allclose(tasks.max(0), hi, atol=0.01)


def test_config_validation_and_registry():
    with pytest.raises(ValueError):
        oracle(STUMP, OracleConfig(step=(0.1,)))
    with pytest.raises(ValueError):
        oracle(STUMP, OracleConfig(window_start=(2.9, 0.0)))
    with pytest.raises(ValueError):
        oracle(TaskSpace.discrete(5))
    with pytest.raises(ValueError):
        OracleConfig(check_every=0)
    t = make_teacher("oracle", STUMP, step=[0.1, -0.2], check_every=10)
    assert t.name == "oracle"
    s = t.update(t.init(None), jnp.zeros((10, 2)), jnp.ones((10,)), jnp.ones((10,), bool))
    assert int(s.advances) == 1
    hash(OracleConfig(step=[0.1, -0.2]))  # lists become tuples: still hashable


def test_hypercube_oracle_window():
    cfg = hc.HypercubeConfig(nb_dims=2, nb_cubes=4, useless_dims=1)
    space = hc.task_space(cfg)
    ocfg = hypercube_oracle_config(cfg)
    assert ocfg.threshold == 0.75 and ocfg.check_every == 50
    t = oracle(space, ocfg)
    s = t.init(None)
    for k in range(6):
        _, tasks = t.sample(s, jax.random.PRNGKey(k), 500)
        cubes = np.asarray(hc.cube_coords(cfg, tasks))
        expect = np.array([k % cfg.nb_cubes, k // cfg.nb_cubes])  # raster sweep, dimension 0 first
        assert np.all(cubes == expect), (k, np.unique(cubes, axis=0))
        u = np.asarray(tasks)[:, 2]
        assert u.min() < 0.05 and u.max() > 0.95  # useless dim: full range
        s = t.update(s, tasks[:50], jnp.ones((50,)), jnp.ones((50,), bool))


def test_hypercube_oracle_run():
    """On the 2-D, 10-cube hypercube the sweeping Oracle masters one cube per 100 episodes."""
    cfg = hc.HypercubeConfig()
    t = oracle(hc.task_space(cfg), hypercube_oracle_config(cfg))

    def run(key):
        def body(carry, k):
            ts, es = carry
            ts, tasks = t.sample(ts, k, 1)
            es, sc = hc.run_episodes(cfg, es, tasks, jnp.ones((1,), bool))
            return (t.update(ts, tasks, sc, jnp.ones((1,), bool)), es), None

        (ts, es), _ = jax.lax.scan(body, (t.init(key), hc.init(cfg)), jax.random.split(key, 1200))
        return ts, hc.mastered_pct(cfg, es)

    ts, pct = jax.jit(run)(jax.random.PRNGKey(0))
    # Per cube: block 1 scores 0.01..0.50 (mean 0.255), block 2 0.51..1.00 (mean 0.755 > 0.75),
    # so 1,200 episodes master 12 of the 100 cubes, each unlocked by its mastered raster predecessor.
    assert int(ts.advances) == 12 and float(pct) == pytest.approx(12.0)
