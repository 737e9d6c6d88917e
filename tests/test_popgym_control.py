"""Parity of the JAX POPGym CartPoles, Pendulums, MineSweeper, MultiarmedBandit and BattleShip with the
original ``popgym`` 1.0.7 package, plus jit/vmap and reset-distribution checks.

A parity test resets the original with a seed, copies its hidden state into the JAX state, then drives
both with one action sequence and compares observations (``gymnasium.spaces.flatten`` of the
original's), rewards and terminated / truncated at every step. The original's random draws during an
episode (the Noisy observation noise, the bandit's payout draw) are replaced by the JAX draws of the
same step key through a scripted ``np_random``.

CartPole and Pendulum integrate in float32 here and in float64 in gymnasium. Free-running float32
trajectories drift apart (the upright pole amplifies rounding errors exponentially), so the float32
parity copies the original's state into the JAX state before every step (one-step parity, 1e-5, over a
whole episode up to its length limit), and the free-running whole-episode parity runs the same JAX code
in float64 (``jax.enable_x64``).
"""

from __future__ import annotations

import functools

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces as gymnax_spaces
from popgym.envs import battleship as pg_battleship
from popgym.envs import minesweeper as pg_minesweeper
from popgym.envs import multiarmed_bandit as pg_bandit
from popgym.envs import noisy_position_only_cartpole as pg_noisy_cartpole
from popgym.envs import noisy_position_only_pendulum as pg_noisy_pendulum
from popgym.envs import position_only_cartpole as pg_cartpole
from popgym.envs import position_only_pendulum as pg_pendulum
from popgym.envs import velocity_only_cartpole as pg_velocity_cartpole

from envs.popgym import battleship, cartpole, minesweeper, multiarmed_bandit, pendulum

DIFFICULTIES = ("Easy", "Medium", "Hard")

CARTPOLES = {
    **{f"StatelessCartPole{d}": getattr(pg_cartpole, f"PositionOnlyCartPole{d}") for d in DIFFICULTIES},
    **{f"NoisyStatelessCartPole{d}": getattr(pg_noisy_cartpole, f"NoisyPositionOnlyCartPole{d}")
       for d in DIFFICULTIES},
    **{f"VelocityOnlyCartPole{d}": getattr(pg_velocity_cartpole, f"VelocityOnlyCartPole{d}")
       for d in DIFFICULTIES},
}
PENDULUMS = {
    **{f"StatelessPendulum{d}": getattr(pg_pendulum, f"PositionOnlyPendulum{d}") for d in DIFFICULTIES},
    **{f"NoisyStatelessPendulum{d}": getattr(pg_noisy_pendulum, f"NoisyPositionOnlyPendulum{d}")
       for d in DIFFICULTIES},
}
MINESWEEPERS = {f"MineSweeper{d}": getattr(pg_minesweeper, f"MineSweeper{d}") for d in DIFFICULTIES}
BANDITS = {f"MultiarmedBandit{d}": getattr(pg_bandit, f"MultiarmedBandit{d}") for d in DIFFICULTIES}
BATTLESHIPS = {f"BattleShip{d}": getattr(pg_battleship, f"Battleship{d}") for d in DIFFICULTIES}

MODULES = (cartpole, pendulum, minesweeper, multiarmed_bandit, battleship)
ALL_VARIANTS = {name: factory for module in MODULES for name, factory in module.VARIANTS.items()}
ORIGINALS = {**CARTPOLES, **PENDULUMS, **MINESWEEPERS, **BANDITS, **BATTLESHIPS}


# ---------------------------------------------------------------------------------------------------
# helpers


MAX_STEPS = 1024  # more than any episode driven here
BATCH = 2048  # the batch of the jit + vmap checks and the reset distributions


@functools.cache
def jitted(name: str):
    """``(env, params, step, reset_obs)`` jitted once per variant (and once more per precision mode):
    ``step(key, state, action) -> obs, state, reward, terminated, truncated, draw``, ``draw`` the env's
    own random draw of the step key (Noisy: ``noise(key)``, bandit: ``payout_draw(key)``, else 0) for
    the scripted ``np_random`` of the original; ``reset_obs(key, state) -> obs, noise``, the
    observation of a reset to ``state`` with ``key`` (its noise drawn from the second half of the
    key, as ``reset_env`` draws it; CartPole / Pendulum) or ``reset_env``'s observation (the others)."""
    env = ALL_VARIANTS[name]()
    params = env.default_params
    draw = getattr(env, "noise", None) or getattr(env, "payout_draw", None)

    @jax.jit
    def step(key, state, action):
        obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
        return (obs, state, reward, terminated, env.is_truncated(state, params),
                jnp.zeros(()) if draw is None else draw(key))

    @jax.jit
    def reset_obs(key, state):
        if not hasattr(env, "observation"):
            return env.reset_env(key, params)[0], jnp.zeros(())
        obs = env.reset_observation(state) if hasattr(env, "reset_observation") else env.observation(state)
        if not hasattr(env, "noise"):
            return obs, jnp.zeros(())
        noise = env.noise(jax.random.split(key)[1])
        return env.add_noise(obs, noise), noise

    return env, params, step, reset_obs


@functools.cache
def batched(name: str):
    """``(env, params, reset, step)``: ``reset_env`` and ``step_env`` (+ ``is_truncated``) vmapped
    over ``BATCH`` keys and jitted, once per variant."""
    env = ALL_VARIANTS[name]()
    params = env.default_params
    reset = jax.jit(jax.vmap(lambda key: env.reset_env(key, params)))

    @jax.jit
    @jax.vmap
    def step(key, state, action):
        obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
        return obs, state, reward, terminated, env.is_truncated(state, params)

    return env, params, reset, step


def batch_keys(seed: int) -> jax.Array:
    return jax.random.split(jax.random.PRNGKey(seed), BATCH)


@functools.cache
def episode_keys(seed: int) -> np.ndarray:
    """``MAX_STEPS`` step keys (raw uint32 PRNG keys, as numpy: indexing them costs no dispatch)."""
    return np.asarray(jax.random.split(jax.random.PRNGKey(seed), MAX_STEPS))


def flat(original, obs) -> np.ndarray:
    return np.asarray(gymnasium.spaces.flatten(original.observation_space, obs), np.float64)


class ScriptedRandom:
    """Stands in for an original env's ``np_random``: ``normal`` and ``random`` return the queued JAX
    draws (checking the requested sigma), ``uniform`` and ``integers`` defer to a seeded generator."""

    def __init__(self, rng: np.random.Generator, sigma: float | None = None):
        self._rng = rng
        self._sigma = sigma
        self.queue: list = []

    def normal(self, loc, scale):
        assert loc == 0 and np.allclose(scale, self._sigma)
        return np.asarray(self.queue.pop(0), np.float64)

    def random(self, *args, **kwargs):
        assert not args and not kwargs
        return float(self.queue.pop(0))

    def uniform(self, *args, **kwargs):
        return self._rng.uniform(*args, **kwargs)

    def integers(self, *args, **kwargs):
        return self._rng.integers(*args, **kwargs)


def assert_step(t, obs, reward, terminated, truncated, j_obs, j_reward, j_terminated, j_truncated,
                obs_atol=0.0, reward_atol=1e-7):
    j_obs = np.asarray(j_obs)
    assert j_obs.shape == obs.shape and np.abs(j_obs - obs).max() <= obs_atol, (t, j_obs, obs)
    assert abs(float(j_reward) - reward) <= reward_atol, (t, float(j_reward), reward)
    assert bool(j_terminated) == bool(terminated), (t, "terminated", bool(j_terminated), terminated)
    assert bool(j_truncated) == bool(truncated), (t, "truncated", bool(j_truncated), truncated)


# ---------------------------------------------------------------------------------------------------
# CartPole and Pendulum


def cartpole_state(original, time: int, dtype=jnp.float32):
    """The JAX state of an original env (or of a raw state vector)."""
    values = getattr(original, "state", original)
    x, x_dot, theta, theta_dot = (jnp.asarray(v, dtype) for v in values)
    return cartpole.CartPoleState(x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot,
                                  time=jnp.asarray(time, jnp.int32))


def pendulum_state(original, time: int, dtype=jnp.float32):
    values = getattr(original, "state", original)
    theta, theta_dot = (jnp.asarray(v, dtype) for v in values)
    return pendulum.PendulumState(theta=theta, theta_dot=theta_dot, last_u=jnp.asarray(0.0, dtype),
                                  time=jnp.asarray(time, jnp.int32))


def control_episode(name: str, seed: int, policy, resync: bool, dtype=jnp.float32,
                    obs_atol=1e-5, reward_atol=1e-6, noises: list | None = None) -> tuple[int, bool, bool]:
    """Drive the original and the JAX variant ``name`` through one episode; ``policy(original, rng)``
    picks the action. ``resync`` copies the original's state into the JAX state before every step.
    The Noisy step noises are appended to ``noises``. Returns (steps, terminated, truncated) of the
    last step."""
    noises = [] if noises is None else noises
    env, params, step, reset_obs = jitted(name)
    is_cartpole = name in CARTPOLES
    to_state = cartpole_state if is_cartpole else pendulum_state
    original = ORIGINALS[name]()
    noisy = hasattr(env, "noise")
    scripted = ScriptedRandom(np.random.default_rng(seed), getattr(env, "noise_sigma", None))
    original.np_random = scripted
    keys = episode_keys(seed)  # keys[0] resets, keys[t + 1] steps
    # the reset noise is drawn from the second half of the reset key; the state does not matter to it
    _, reset_noise = reset_obs(keys[0], to_state(np.zeros(4 if is_cartpole else 2), 0, dtype))
    if noisy:
        scripted.queue.append(reset_noise)
    obs, _ = original.reset()  # the state from the seeded generator, the noise from JAX
    state = to_state(original, 0, dtype)
    j_obs, _ = reset_obs(keys[0], state)
    np.testing.assert_allclose(np.asarray(j_obs), flat(original, obs), atol=obs_atol, rtol=0)

    rng = np.random.default_rng(seed)
    for t in range(MAX_STEPS - 1):
        if resync:
            state = to_state(original, t, dtype)
        action = policy(original, rng)
        j_obs, state, j_reward, j_terminated, j_truncated, noise = step(keys[t + 1], state, action)
        if noisy:
            scripted.queue.append(noise)
            noises.append(np.asarray(noise))
        obs, reward, terminated, truncated, _ = original.step(action)
        assert_step(t, flat(original, obs), reward, terminated, truncated,
                    j_obs, j_reward, j_terminated, j_truncated, obs_atol, reward_atol)
        assert int(state.time) == original.num_steps
        assert jnp.asarray(state.theta).dtype == dtype
        if terminated or truncated:
            return t + 1, terminated, truncated
    raise AssertionError("episode did not end")


def random_cartpole_action(original, rng):
    return int(rng.integers(2))


def balancing_cartpole_action(original, rng):
    """A PD controller with 10 % random actions: keeps the pole up for the whole episode."""
    x, x_dot, theta, theta_dot = original.state
    if rng.random() < 0.1:
        return int(rng.integers(2))
    return int(theta + 0.5 * theta_dot + 0.05 * x + 0.2 * x_dot > 0)


def random_pendulum_action(original, rng):
    return rng.uniform(-2.5, 2.5, size=(1,)).astype(np.float32)  # beyond the limit: clipped


@pytest.mark.parametrize("name", sorted(CARTPOLES))
def test_cartpole_parity(name):
    env = ALL_VARIANTS[name]()
    max_len = env.max_episode_length
    assert max_len == ORIGINALS[name]().max_episode_length
    # float32, free running: random actions until termination
    for seed in range(2):
        steps, terminated, truncated = control_episode(name, seed, random_cartpole_action, resync=False)
        assert terminated and not truncated and steps < max_len
    # float32, the original's state copied in before every step: balanced to the length limit
    noises = []
    steps, terminated, truncated = control_episode(name, 7, balancing_cartpole_action, resync=True,
                                                   noises=noises)
    assert (steps, truncated) == (max_len, True)
    check_noise(env, noises)


def check_noise(env, noises):
    """The noise the steps drew: N(0, sigma^2) (about 200-400 draws of 2, 10 % on the std)."""
    if not hasattr(env, "noise"):
        assert not noises
        return
    noises = np.stack(noises)
    assert noises.dtype == np.float32 and len(noises) >= 200
    np.testing.assert_allclose(noises.std(), env.noise_sigma, rtol=0.1)
    assert abs(noises.mean()) < 4 * env.noise_sigma / np.sqrt(noises.size)


@pytest.mark.parametrize("name", sorted(PENDULUMS))
def test_pendulum_parity(name):
    env = ALL_VARIANTS[name]()
    max_len = env.max_episode_length
    assert max_len == ORIGINALS[name]().max_episode_length
    noises = []
    for seed in range(2):
        steps, terminated, truncated = control_episode(name, seed, random_pendulum_action, resync=True,
                                                       noises=noises)
        assert (steps, terminated, truncated) == (max_len, False, True)
    check_noise(env, noises)


@pytest.mark.parametrize("name", ["StatelessCartPoleHard", "StatelessPendulumEasy"])
def test_control_free_running_float64(name):
    """The same JAX code in float64, free running over whole episodes: no systematic difference."""
    jitted.cache_clear()  # retrace in float64
    try:
        with jax.enable_x64(True):
            for seed in range(2):
                if name in CARTPOLES:
                    control_episode(name, seed, random_cartpole_action, False, jnp.float64)
                else:
                    steps, _, truncated = control_episode(name, seed, random_pendulum_action, False,
                                                          jnp.float64)
                    assert truncated and steps == ALL_VARIANTS[name]().max_episode_length
    finally:
        jitted.cache_clear()


@pytest.mark.filterwarnings("ignore:.*already returned terminated = True")
def test_control_steps_after_termination():
    """A step from a terminal cart state rewards -1 (the original's transform of gymnasium's 0)."""
    name = "StatelessCartPoleEasy"
    env, params, step, _ = jitted(name)
    original = ORIGINALS[name]()
    original.reset(seed=3)
    original.state = np.array([2.39, 1.0, 0.0, 0.0])
    state = cartpole_state(original, 0)
    for t in range(2):
        obs, reward, terminated, truncated, _ = original.step(1)
        j_obs, state, j_reward, j_terminated, j_truncated, _ = step(episode_keys(0)[t], state, 1)
        assert_step(t, flat(original, obs), reward, terminated, truncated, j_obs, j_reward,
                    j_terminated, j_truncated, obs_atol=1e-5)
    assert float(j_reward) == -1.0


def test_noise_statistics_at_reset():
    """Reset noise over a batch: N(0, sigma^2) on the cart position (never near its bound, so never
    clipped)."""
    env, params, reset, _ = batched("NoisyStatelessCartPoleHard")
    obs, state = reset(batch_keys(0))
    deviation = np.asarray(obs[:, 0]) - np.asarray(state.x)
    np.testing.assert_allclose(deviation.std(), env.noise_sigma, rtol=0.05)
    assert abs(deviation.mean()) < 4 * env.noise_sigma / np.sqrt(BATCH)


# ---------------------------------------------------------------------------------------------------
# MineSweeper


def minesweeper_episode(name: str, seed: int, policy) -> tuple[int, bool, bool]:
    env, params, step, reset_obs = jitted(name)
    keys = episode_keys(seed)
    original = ORIGINALS[name]()
    obs, _ = original.reset(seed=seed)
    np.testing.assert_array_equal(
        np.asarray(jax.jit(minesweeper.neighbor_counts)(original.hidden_grid == 1)),
        original.neighbor_grid)
    state = minesweeper.MineSweeperState(
        hidden_grid=jnp.asarray(original.hidden_grid, jnp.int32),
        neighbor_grid=jnp.asarray(original.neighbor_grid, jnp.int32),
        timestep=jnp.asarray(0, jnp.int32),
        terminated=jnp.asarray(False),
    )
    j_obs, _ = reset_obs(keys[0], None)
    np.testing.assert_array_equal(np.asarray(j_obs), flat(original, obs))
    rng = np.random.default_rng(seed)
    cols = env.dims[1]
    for t in range(1000):
        a = int(policy(original, rng, t))
        obs, reward, terminated, truncated, _ = original.step(np.array([a // cols, a % cols]))
        j_obs, state, j_reward, j_terminated, j_truncated, _ = step(keys[t], state, a)
        assert_step(t, flat(original, obs), reward, terminated, truncated,
                    j_obs, j_reward, j_terminated, j_truncated)
        assert np.array_equal(np.asarray(state.hidden_grid), original.hidden_grid), t
        if terminated or truncated:
            return t + 1, terminated, truncated
    raise AssertionError("episode did not end")


def _tiles(original, value):
    return np.flatnonzero(original.hidden_grid.ravel() == value)


def ms_random(original, rng, t):
    return rng.integers(original.hidden_grid.size)


def ms_clear_in_order(original, rng, t):
    """A new clear tile every step (no waste): the last one terminates at exactly max length."""
    return rng.choice(_tiles(original, 0))


def ms_clear_with_reclicks(original, rng, t):
    viewed = _tiles(original, 2)
    if len(viewed) and rng.random() < 0.4:
        return rng.choice(viewed)
    return rng.choice(_tiles(original, 0))


def ms_clear_then_mine(original, rng, t):
    clear = _tiles(original, 0)
    return rng.choice(clear) if t < 3 and len(clear) > 1 else rng.choice(_tiles(original, 1))


def ms_reclick_only(original, rng, t):
    """One clear tile, then re-clicks: truncated at max length without termination."""
    viewed = _tiles(original, 2)
    return viewed[0] if len(viewed) else _tiles(original, 0)[0]


@pytest.mark.parametrize("name", sorted(MINESWEEPERS))
def test_minesweeper_parity(name):
    env = ALL_VARIANTS[name]()
    max_len = env.max_episode_length
    assert max_len == ORIGINALS[name]().max_episode_length
    assert env.num_obs == ORIGINALS[name]().observation_space.n
    assert env.action_space().n == int(np.prod(ORIGINALS[name]().action_space.nvec))
    for seed in range(3):
        minesweeper_episode(name, seed, ms_random)
    assert minesweeper_episode(name, 3, ms_clear_in_order) == (max_len, True, False)
    steps, terminated, truncated = minesweeper_episode(name, 4, ms_clear_with_reclicks)
    assert (terminated, truncated) == (True, False) or (steps, truncated) == (max_len, True)
    assert minesweeper_episode(name, 5, ms_clear_then_mine) == (4, True, False)
    assert minesweeper_episode(name, 6, ms_reclick_only) == (max_len, False, True)


def test_minesweeper_reset_distribution():
    for name in ("MineSweeperHard",):
        env, _, reset, _ = batched(name)
        _, state = reset(batch_keys(1))
        hidden = np.asarray(state.hidden_grid)
        mines = hidden == minesweeper.MINE
        assert set(np.unique(hidden)) <= {minesweeper.CLEAR, minesweeper.MINE}
        assert (mines.sum(axis=(1, 2)) == env.num_mines).all()
        # every tile equally likely to hold a mine
        p = env.num_mines / hidden[0].size
        np.testing.assert_allclose(mines.mean(axis=0), p, atol=5 * np.sqrt(p * (1 - p) / BATCH))
        # the neighbour counts are the original's for these layouts
        original = ORIGINALS[name]()
        for i in range(5):
            original.reset(seed=i)
            original.hidden_grid[...] = hidden[i]
            expected = np.zeros_like(original.hidden_grid)
            src = np.pad(original.hidden_grid, 1)
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    expected += np.roll(np.roll(src, di, 0), dj, 1)[1:-1, 1:-1]
            np.testing.assert_array_equal(np.asarray(state.neighbor_grid[i]), expected)


# ---------------------------------------------------------------------------------------------------
# MultiarmedBandit


@pytest.mark.parametrize("name", sorted(BANDITS))
def test_bandit_parity(name):
    env, params, step, reset_obs = jitted(name)
    for seed in range(2):
        keys = episode_keys(seed)
        original = ORIGINALS[name]()
        obs, _ = original.reset(seed=seed)
        assert original.max_episode_length == env.max_episode_length
        assert original.num_bandits == env.num_bandits
        scripted = ScriptedRandom(np.random.default_rng(seed))
        original.np_random = scripted
        state = multiarmed_bandit.MultiarmedBanditState(
            bandits=jnp.asarray(original.bandits, jnp.float32), num_steps=jnp.asarray(0, jnp.int32))
        j_obs, _ = reset_obs(keys[0], None)
        np.testing.assert_array_equal(np.asarray(j_obs), flat(original, obs))
        rng = np.random.default_rng(seed)
        best = int(np.argmax(original.bandits))
        payouts = 0
        for t in range(env.max_episode_length):
            # the best arm (mostly pays), repeats of the last arm, random arms
            a = best if rng.random() < 0.5 else int(rng.integers(env.num_bandits))
            j_obs, state, j_reward, j_terminated, j_truncated, draw = step(keys[t], state, a)
            scripted.queue.append(draw)
            obs, reward, terminated, truncated, _ = original.step(a)
            assert_step(t, flat(original, obs), reward, terminated, truncated,
                        j_obs, j_reward, j_terminated, j_truncated)
            payouts += obs
        assert truncated and not terminated
        assert 0 < payouts < env.max_episode_length


def test_bandit_reset_distribution():
    env, params, reset, step = batched("MultiarmedBanditHard")
    _, state = reset(batch_keys(2))
    bandits = np.asarray(state.bandits)
    assert bandits.dtype == np.float32 and bandits.shape == (BATCH, 30)
    assert (bandits >= 0).all() and (bandits < 1).all()
    np.testing.assert_allclose(bandits.mean(), 0.5, atol=0.01)
    np.testing.assert_allclose(bandits.std(), np.sqrt(1 / 12), atol=0.01)
    # and an arm pays out with its probability
    arms = np.arange(BATCH) % 30
    obs, *_ = step(batch_keys(3), state, jnp.asarray(arms))
    p = bandits[np.arange(BATCH), arms]
    np.testing.assert_allclose(np.asarray(obs[:, 1]).mean(), p.mean(), atol=4 * 0.5 / np.sqrt(BATCH))


# ---------------------------------------------------------------------------------------------------
# BattleShip


def battleship_episode(name: str, seed: int, policy) -> tuple[int, bool, bool]:
    env, params, step, reset_obs = jitted(name)
    keys = episode_keys(seed)
    original = ORIGINALS[name]()
    obs, _ = original.reset(seed=seed)
    state = battleship.BattleShipState(
        board=jnp.asarray(original.board, jnp.int32),
        guesses=jnp.asarray(original.guesses, jnp.int32),
        hits=jnp.asarray(0, jnp.int32),
        num_steps=jnp.asarray(0, jnp.int32),
    )
    j_obs, _ = reset_obs(keys[0], None)
    np.testing.assert_array_equal(np.asarray(j_obs), flat(original, obs))
    rng = np.random.default_rng(seed)
    size = env.board_size
    for t in range(10_000):
        a = int(policy(original, rng, t))
        obs, reward, terminated, truncated, _ = original.step(np.array([a // size, a % size]))
        j_obs, state, j_reward, j_terminated, j_truncated, _ = step(keys[t], state, a)
        assert_step(t, flat(original, obs), reward, terminated, truncated,
                    j_obs, j_reward, j_terminated, j_truncated)
        assert np.array_equal(np.asarray(state.guesses), original.guesses), t
        assert int(state.hits) == original.hits
        if terminated or truncated:
            return t + 1, terminated, truncated
    raise AssertionError("episode did not end")


def bs_random(original, rng, t):
    return rng.integers(original.board.size)


def bs_ships_with_refires(original, rng, t):
    """Mostly unfired ship tiles (hits), sometimes re-fires at a hit tile or a random tile."""
    u = rng.random()
    fired_ships = np.flatnonzero((original.board * original.guesses).ravel())
    if len(fired_ships) and u < 0.3:
        return rng.choice(fired_ships)
    if u < 0.4:
        return rng.integers(original.board.size)
    return rng.choice(np.flatnonzero((original.board * (1 - original.guesses)).ravel()))


def bs_water_then_ships(original, rng, t):
    """Every water tile, then every ship tile: the last step both terminates and truncates."""
    water = np.flatnonzero(((1 - original.board) * (1 - original.guesses)).ravel())
    if len(water):
        return water[0]
    return np.flatnonzero((original.board * (1 - original.guesses)).ravel())[0]


@pytest.mark.parametrize("name", sorted(BATTLESHIPS))
def test_battleship_parity(name):
    env = ALL_VARIANTS[name]()
    max_len = env.max_episode_length
    assert max_len == ORIGINALS[name]().max_episode_length
    for seed in range(2):
        assert battleship_episode(name, seed, bs_random)[0] <= max_len
    steps, terminated, truncated = battleship_episode(name, 2, bs_ships_with_refires)
    assert terminated and steps < max_len
    assert battleship_episode(name, 3, bs_water_then_ships) == (max_len, True, True)


def test_fitting_placements_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        board = (rng.random((8, 8)) < 0.2).astype(np.int32)
        for ship_size in (2, 3, 4):
            fits = np.asarray(battleship.fitting_placements(jnp.asarray(board), ship_size))
            for r in range(8):
                for c in range(8):
                    vertical = r + ship_size <= 8 and board[r : r + ship_size, c].sum() == 0
                    horizontal = c + ship_size <= 8 and board[r, c : c + ship_size].sum() == 0
                    assert fits[0, r, c] == vertical and fits[1, r, c] == horizontal


def test_battleship_reset_distribution():
    """Ships never overlap and lie in the board (12 ship tiles: an overlap or a ship cut off by the
    edge would leave fewer), and the tile occupancy matches the original's rejection sampling."""
    name = "BattleShipEasy"
    env, _, reset, _ = batched(name)
    n = BATCH
    _, state = reset(batch_keys(3))
    boards = np.asarray(state.board)
    assert set(np.unique(boards)) <= {0, 1}
    assert (boards.sum(axis=(1, 2)) == 12).all()
    original = ORIGINALS[name]()
    occupancy = np.zeros((8, 8))
    for seed in range(n):
        original.reset(seed=seed)
        occupancy += original.board
    occupancy /= n
    # per-tile Bernoulli means over n boards: 5 standard errors of the difference of two means
    p = occupancy
    np.testing.assert_allclose(boards.mean(axis=0), p, atol=5 * np.sqrt(2 * 0.25 / n))
    # the centre is more often occupied than the corners, in both
    assert boards.mean(axis=0)[3:5, 3:5].mean() > boards.mean(axis=0)[[0, 0, 7, 7], [0, 7, 0, 7]].mean()


def test_ship_mask():
    for axis in (0, 1):
        for row, col in ((0, 0), (2, 5), (4, 4)):
            mask = np.asarray(battleship.ship_mask(8, 4, jnp.asarray(axis), jnp.asarray(row), jnp.asarray(col)))
            expected = np.zeros((8, 8), bool)
            if axis == 0:
                expected[row : row + 4, col] = True
            else:
                expected[row, col : col + 4] = True
            np.testing.assert_array_equal(mask, expected)


# ---------------------------------------------------------------------------------------------------
# every variant: jit + vmap, spaces


def test_variants_named_as_specified():
    assert sorted(ALL_VARIANTS) == sorted(ORIGINALS)
    assert len(ALL_VARIANTS) == 24


# One variant of each module, the Noisy classes running all of their Stateless base's code (the
# difficulties differ only in constants, VelocityOnly from Stateless only in the observed indices;
# every variant is jitted in its parity test); few because vmapped jax.random compiles slowly on the
# CPU, and the same compiled functions as the reset-distribution tests.
JIT_VMAP_VARIANTS = ("NoisyStatelessCartPoleHard", "NoisyStatelessPendulumMedium", "MineSweeperHard",
                     "MultiarmedBanditHard", "BattleShipEasy")


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_spaces(name):
    env = ALL_VARIANTS[name]()
    original = ORIGINALS[name]()
    params = env.default_params
    assert env.observation_space(params).shape == (gymnasium.spaces.flatdim(original.observation_space),)
    space = env.action_space(params)
    if isinstance(original.action_space, gymnasium.spaces.Box):
        assert isinstance(space, gymnax_spaces.Box) and space.shape == original.action_space.shape
        np.testing.assert_array_equal(space.low, original.action_space.low)
        np.testing.assert_array_equal(space.high, original.action_space.high)
    else:
        n = getattr(original.action_space, "n", None) or int(np.prod(original.action_space.nvec))
        assert isinstance(space, gymnax_spaces.Discrete) and space.n == n


@pytest.mark.parametrize("name", JIT_VMAP_VARIANTS)
def test_jit_vmap_rollout_finite(name):
    env, params, reset, step = batched(name)
    obs_dim = env.observation_space(params).shape[0]
    action_space = env.action_space(params)
    obs, state = reset(batch_keys(0))
    assert obs.shape == (BATCH, obs_dim) and obs.dtype == jnp.float32
    rng = np.random.default_rng(0)
    for t in range(20):
        if isinstance(action_space, gymnax_spaces.Box):
            actions = rng.uniform(-2.0, 2.0, (BATCH,) + action_space.shape).astype(np.float32)
        else:
            actions = rng.integers(action_space.n, size=BATCH).astype(np.int32)
        obs, state, reward, terminated, truncated = step(batch_keys(t + 1), state, actions)
        assert obs.shape == (BATCH, obs_dim) and obs.dtype == jnp.float32
        assert reward.shape == (BATCH,) and reward.dtype == jnp.float32
        assert terminated.shape == truncated.shape == (BATCH,)
        assert np.isfinite(np.asarray(obs)).all() and np.isfinite(np.asarray(reward)).all()
