"""The POPGym card games in JAX against the original POPGym 1.0.7 (``popgym`` package).

Parity: the original env is reset with a seed, its shuffled deck(s) are copied into the JAX state
(``reset_from_deck(s)``), and both are driven with the same actions (random, optimal read off the
original's hidden state, and a mix of the two) over whole episodes, two per policy (the second after
a plain ``reset()``, so on a new deck). Observations must equal ``gymnasium.spaces.flatten`` of the
original's, rewards agree to 1e-6, terminated/truncated agree at every step and the JAX episode ends
exactly where the original's does.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import zlib

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.popgym import autoencode, concentration, count_recall, higher_lower, repeat_first, repeat_previous
from envs.popgym import deck as cards
from envs.popgym import registry
from envs.popgym.base import PopGymEnv

MODULES = {
    "autoencode": autoencode,
    "concentration": concentration,
    "count_recall": count_recall,
    "higher_lower": higher_lower,
    "repeat_first": repeat_first,
    "repeat_previous": repeat_previous,
}
FAMILIES = {
    "Autoencode": "autoencode",
    "Concentration": "concentration",
    "CountRecall": "count_recall",
    "HigherLower": "higher_lower",
    "RepeatFirst": "repeat_first",
    "RepeatPrevious": "repeat_previous",
}
VARIANT_NAMES = [f"{fam}{level}" for fam in FAMILIES for level in ("Easy", "Medium", "Hard")]


def _module_of(name: str) -> str:
    return FAMILIES[name.removesuffix("Easy").removesuffix("Medium").removesuffix("Hard")]


def _make(name: str) -> PopGymEnv:
    return MODULES[_module_of(name)].VARIANTS[name]()


def _original(name: str):
    return getattr(importlib.import_module(f"popgym.envs.{_module_of(name)}"), name)()


# --- hidden state of the original -> JAX state -------------------------------------------------


def _jax_reset_like(env, orig):
    if isinstance(env, count_recall.CountRecall):
        return env.reset_from_decks(orig.value_deck.idx.copy(), orig.query_deck.idx.copy())
    return env.reset_from_deck(orig.deck.idx.copy())


def _deck_of(orig) -> np.ndarray:
    return (orig.value_deck if hasattr(orig, "value_deck") else orig.deck).idx.copy()


# --- optimal actions, read off the original's hidden state ---------------------------------------


def _optimal(name: str, orig, rng: np.random.Generator) -> int:
    fam = _module_of(name)
    d = getattr(orig, "deck", None)
    if fam == "autoencode":
        if orig.mode == 0:  # PLAY: the newest card not yet recited
            return int(d.suits_idx[d["system"][-1]])
        return int(rng.integers(4))
    if fam == "concentration":
        face_up = set(d["face_up_idx"])
        down = [p for p in range(d.num_cards) if p not in face_up]
        if not d["in_play_idx"]:
            return down[0]
        first = d["in_play_idx"][0]
        kind = orig.deck_idx_type[d.idx[first]]
        return next(p for p in down if p != first and orig.deck_idx_type[d.idx[p]] == kind)
    if fam == "count_recall":
        return int(orig.counts[orig.query])
    if fam == "higher_lower":
        curr = d.ranks_idx[d["player"][-1]]
        nxt = d.ranks_idx[d.idx[len(d) - 1]]  # the next card dealt comes from the end
        return 0 if nxt > curr else 1
    if fam == "repeat_first":
        return int(orig.card)
    if fam == "repeat_previous":
        if d.hand_size("player") >= orig.k:
            return int(d.suits_idx[d["player"][-orig.k]])
        return int(rng.integers(4))
    raise AssertionError(fam)


def _action(policy: str, name: str, orig, rng: np.random.Generator, n_actions: int) -> int:
    if policy == "random" or (policy == "mixed" and rng.random() < 0.5):
        return int(rng.integers(n_actions))
    return _optimal(name, orig, rng)


# --- JAX episode runner: one compile per variant ----------------------------------------------------


# XLA's CPU backend compiles jax.random's threefry slowly; its LLVM optimisation level 0 compiles
# these small programs 2-3x faster and they still run in milliseconds.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def _compile(f, *args):
    return jax.jit(f).lower(*args).compile(compiler_options=FAST_COMPILE)


@functools.cache
def _runner(name: str):
    """``(env, run)``: ``run(state, actions)`` steps ``env.step_env`` over ``actions`` (one compile)."""
    env = _make(name)
    params = env.default_params
    key = jax.random.PRNGKey(0)

    def run(state, actions):
        def body(state, action):
            obs, state, reward, terminated, _ = env.step_env(key, state, action, params)
            truncated = env.is_truncated(state, params)
            return state, (obs, reward, terminated, truncated)

        return jax.lax.scan(body, state, actions)[1]

    compiled = {}

    def run_compiled(state, actions):
        if "run" not in compiled:
            compiled["run"] = _compile(run, state, actions)
        return compiled["run"](state, actions)

    return env, run_compiled


def _play_original(name, orig, policy, rng, n_actions):
    obs_l, rew_l, term_l, trunc_l, act_l = [], [], [], [], []
    while True:
        a = _action(policy, name, orig, rng, n_actions)
        obs, reward, terminated, truncated, _ = orig.step(a)
        act_l.append(a)
        obs_l.append(gymnasium.spaces.flatten(orig.observation_space, obs).astype(np.float32))
        rew_l.append(float(reward))
        term_l.append(bool(terminated))
        trunc_l.append(bool(truncated))
        if terminated or truncated:
            return act_l, np.stack(obs_l), np.array(rew_l), np.array(term_l), np.array(trunc_l)


def _check_episode(name, env, run, orig, reset_obs, policy, rng):
    n_actions = env.action_space(env.default_params).n
    obs0, state = _jax_reset_like(env, orig)
    np.testing.assert_array_equal(
        np.asarray(obs0), gymnasium.spaces.flatten(orig.observation_space, reset_obs).astype(np.float32)
    )
    actions, obs, rew, term, trunc = _play_original(name, orig, policy, rng, n_actions)
    steps = len(actions)
    assert steps <= env.max_episode_length
    padded = np.zeros(env.max_episode_length, np.int32)
    padded[:steps] = actions
    j_obs, j_rew, j_term, j_trunc = (np.asarray(x) for x in run(state, jnp.asarray(padded)))
    assert j_obs.dtype == np.float32 and j_rew.dtype == np.float32 and j_term.dtype == bool
    np.testing.assert_array_equal(j_obs[:steps], obs)
    np.testing.assert_allclose(j_rew[:steps], rew, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(j_term[:steps], term)
    np.testing.assert_array_equal(j_trunc[:steps], trunc)
    return rew.sum()


@pytest.mark.parametrize("policy", ["random", "optimal", "mixed"])
@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_parity_with_original(name, policy):
    env, run = _runner(name)
    orig = _original(name)
    rng = np.random.default_rng(zlib.crc32(f"{name}/{policy}".encode()))
    seed = int(rng.integers(2**31))
    reset_obs, _ = orig.reset(seed=seed)
    first_deck = _deck_of(orig)
    returns = [_check_episode(name, env, run, orig, reset_obs, policy, rng)]
    reset_obs, _ = orig.reset()  # a second episode on a new deck
    assert not np.array_equal(_deck_of(orig), first_deck)
    returns.append(_check_episode(name, env, run, orig, reset_obs, policy, rng))
    if policy == "optimal":
        for ret in returns:  # every scored step right (Concentration: a match every second flip)
            if _module_of(name) == "higher_lower":  # pushes score 0
                assert 0 < ret < 1
            else:
                np.testing.assert_allclose(ret, 1.0, atol=1e-6)


# --- spaces, batching, auto-reset ----------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
def test_spaces_match_original(name):
    env, orig = _make(name), _original(name)
    params = env.default_params
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    assert obs_space.shape == (gymnasium.spaces.flatdim(orig.observation_space),)
    assert act_space.n == orig.action_space.n


@pytest.mark.parametrize("name", [f"{family}Hard" for family in FAMILIES])
def test_jit_vmap_batch_with_auto_reset(name):
    """gymnax's auto-resetting ``step`` under jit+vmap over a batch of keys: finite values, and with
    random actions every episode (never won by chance) ends exactly after ``max_episode_length``
    steps. One variant per family: compiling jax.random code is slow on a CPU, and the variants of
    a family share their code (the parity tests cover every variant)."""
    env = _make(name)
    params = env.default_params
    batch, length = 4, env.max_episode_length + 3
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    # raw uint32 key pairs made outside the compiled function: no extra threefry to compile
    reset_keys = rng.integers(0, 2**32, (batch, 2), dtype=np.uint32)
    step_keys = rng.integers(0, 2**32, (length, batch, 2), dtype=np.uint32)
    actions = rng.integers(0, env.action_space(params).n, (length, batch)).astype(np.int32)

    def rollout(reset_keys, step_keys, actions):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, params)

        def body(state, x):
            keys, action = x
            obs, state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                keys, state, action, params
            )
            return state, (obs, reward, term | trunc)

        return obs, state, jax.lax.scan(body, state, (step_keys, actions))[1]

    out = _compile(rollout, reset_keys, step_keys, actions)(reset_keys, step_keys, actions)
    obs0, state, (obs, reward, done) = jax.tree.map(np.asarray, out)
    assert obs0.shape == (batch, *env.observation_space(params).shape)
    assert obs.shape == (length, batch, *env.observation_space(params).shape)
    assert obs.dtype == np.float32 and reward.dtype == np.float32 and done.dtype == bool
    assert np.isfinite(obs).all() and np.isfinite(reward).all()
    assert ((obs == 0) | (obs == 1)).all()
    assert (np.abs(reward) <= 1.0).all()
    expected = np.zeros(length, bool)
    expected[env.max_episode_length - 1] = True
    np.testing.assert_array_equal(done, np.repeat(expected[:, None], batch, axis=1))
    # reset shuffles: each key its own deck, a permutation of all cards
    deck = state.value_deck if hasattr(state, "value_deck") else state.deck
    assert len({tuple(d) for d in deck}) == batch
    assert all(sorted(d) == list(range(env.num_cards)) for d in deck)


def test_deck_card_order_matches_original():
    from popgym.core.deck import Deck

    for num_decks in (1, 2, 4):
        d = Deck(num_decks)
        ids = jnp.arange(d.num_cards)
        np.testing.assert_array_equal(np.asarray(cards.rank_of(ids)), d.ranks_idx)
        np.testing.assert_array_equal(np.asarray(cards.suit_of(ids)), d.suits_idx)
        np.testing.assert_array_equal(np.asarray(cards.colour_of(ids)), d.colors_idx)
        d.reset(rng=np.random.default_rng(num_decks))
        d.add_players("p")
        for k in range(3):
            d.deal("p", 1)
            assert int(cards.dealt(jnp.asarray(d.idx), k)) == d["p"][-1]


# --- registry -----------------------------------------------------------------------------------


def test_variants_names():
    names = [n for m in MODULES.values() for n in m.VARIANTS]
    assert sorted(names) == sorted(VARIANT_NAMES)
    for name in VARIANT_NAMES:
        assert isinstance(_make(name), PopGymEnv)


def test_registry_loads_these_families(monkeypatch):
    """``make_popgym`` with the registry restricted to this file's families (the full registry is
    checked below)."""
    monkeypatch.setattr(registry, "FAMILY_MODULES", tuple(f"envs.popgym.{m}" for m in MODULES))
    registry.variants.cache_clear()
    try:
        assert registry.popgym_names() == sorted(VARIANT_NAMES)
        for name in VARIANT_NAMES:
            env = registry.make_popgym(name)
            assert isinstance(env, PopGymEnv) and type(env) is type(_make(name))
        task_env = registry.popgym_task_env("RepeatPreviousEasy")
        assert task_env.observation_shape() == (4,)
    finally:
        registry.variants.cache_clear()


def test_full_registry_has_these_names():
    assert all(importlib.util.find_spec(m) is not None for m in registry.FAMILY_MODULES)
    registry.variants.cache_clear()
    for name in VARIANT_NAMES:
        assert isinstance(registry.make_popgym(name), PopGymEnv)
