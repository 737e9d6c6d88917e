"""Known-answer tests of the meta-RL environments: envs/popgym/meta_cartpole.py and envs/meta_projection.py.

Each environment configuration is compiled once (a jitted rollout or step shared by several tests
through module-scoped fixtures) to keep the file fast on a 2-core CPU.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import CartPole

from envs.meta_projection import ENV_SPECS, SPLITS, MetaProjection, _random_matrix, make_meta_projection
from envs.popgym.meta_cartpole import VARIANTS, MetaStatelessCartPole

# ------------------------------------------------------------------------------------------------
# meta cartpole
# ------------------------------------------------------------------------------------------------

FAST_COMPILE = {"xla_backend_optimization_level": 0}  # these graphs run for milliseconds
CART_T = 700  # steps rolled out: two or three 16-trial meta-episodes under random actions


@functools.partial(jax.jit, static_argnums=0, compiler_options=FAST_COMPILE)
def cart_rollout(env, key, actions, proj_override, use_override):
    """Reset, optionally replace the drawn projection, then ``env.step`` (auto-reset) over ``actions``."""
    params = env.default_params
    key_reset, key_steps = jax.random.split(key)
    obs0, state = env.reset_env(key_reset, params)
    state = state.replace(obs_proj=jnp.where(use_override, proj_override, state.obs_proj))

    def body(state, xs):
        k, a = xs
        obs, new_state, reward, term, trunc, info = env.step(k, state, a, params)
        rec = dict(obs=obs, reward=reward, term=term, trunc=trunc, trial=info["trial"],
                   trial_done=info["trial_done"], trial_return=info["trial_return"],
                   trial_length=info["trial_length"], proj=state.obs_proj,
                   x=state.cart.x, x_dot=state.cart.x_dot, theta=state.cart.theta,
                   theta_dot=state.cart.theta_dot, time=state.cart.time)
        return new_state, rec

    _, recs = jax.lax.scan(body, state, (jax.random.split(key_steps, actions.shape[0]), actions))
    return obs0, state, recs


@pytest.fixture(scope="module")
def cart_env():
    return VARIANTS["MetaStatelessCartPole"]()


@pytest.fixture(scope="module")
def cart_actions():
    return jax.random.bernoulli(jax.random.PRNGKey(7), 0.5, (CART_T,)).astype(jnp.int32)


@pytest.fixture(scope="module")
def cart_run(cart_env, cart_actions):
    out = cart_rollout(cart_env, jax.random.PRNGKey(0), cart_actions, jnp.zeros((2, 4)), False)
    return jax.tree.map(np.asarray, out)


def _meta_segments(term):
    """``[(start, end)]``: step ranges of finished meta-episodes (end inclusive, the terminating step)."""
    ends = np.flatnonzero(term)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return list(zip(starts, ends))


def test_meta_cartpole_variants():
    assert VARIANTS["MetaStatelessCartPole"]().trials == 16
    assert VARIANTS["MetaStatelessCartPoleEval32"]().trials == 32
    env = VARIANTS["MetaStatelessCartPoleActionProjection"]()
    assert env.action_projection and env.action_space().shape == (2,)
    assert env.observation_space().shape == (8,)
    assert MetaStatelessCartPole().observation_space().shape == (7,)
    with pytest.raises(ValueError):
        MetaStatelessCartPole(trials=0)
    # the paper's action projection (option): the cart gets argmax(M_a clip(a, -1, 1))
    _, state = env.reset_env(jax.random.PRNGKey(0), env.default_params)
    state = state.replace(act_proj=jnp.asarray([[1.0, -1.0], [-1.0, 1.0]]))
    assert int(env.cart_action(jnp.asarray([0.3, 0.1]), state)) == 0
    assert int(env.cart_action(jnp.asarray([-2.0, 0.5]), state)) == 1
    np.testing.assert_allclose(state.obs_proj @ state.obs_proj.T, 2 * np.eye(2), atol=1e-5)


def test_meta_cartpole_episode_structure(cart_run, cart_env):
    obs0, state0, r = cart_run
    assert obs0.shape == (7,) and obs0[-1] == 1.0 and obs0[4] == 0.0 and obs0[5] == 0.0
    segs = _meta_segments(r["term"])
    assert len(segs) >= 2, "the rollout should finish at least two meta-episodes"
    assert not r["trunc"].any()
    np.testing.assert_allclose(r["reward"], 1.0 / 200, rtol=1e-6)  # POPGym: 1/max_steps per step
    for s, e in segs:
        done = r["trial_done"][s:e + 1]
        # terminates exactly at the 16th trial end, never before
        assert done.sum() == cart_env.trials and done[-1]
        np.testing.assert_array_equal(r["trial"][s:e + 1], np.concatenate([[0], np.cumsum(done)[:-1]]))
        # a trial's return is its length / 200 (the final values where trial_done)
        np.testing.assert_allclose(r["trial_return"][s:e + 1][done], r["trial_length"][s:e + 1][done] / 200,
                                   rtol=1e-5)
        # obs flags: trial-ended = trial_done, first-step = 0 after the reset (the terminating step's
        # observation is already the auto-reset one: flags (0, 1))
        np.testing.assert_array_equal(r["obs"][s:e, 5], done[:-1].astype(np.float32))
        assert (r["obs"][s:e, 6] == 0).all() and (r["obs"][e, 4:] == [0, 0, 1]).all()


def test_meta_cartpole_trials_restart_from_same_state(cart_run):
    obs0, state0, r = cart_run
    segs = _meta_segments(r["term"])
    # meta-episode 0: the first obs of every trial (emitted at the step that ended the previous one) is
    # the reset observation; the cart state after each trial end is the one stored at the meta-reset
    s, e = segs[0]
    ends = s + np.flatnonzero(r["trial_done"][s:e + 1])
    for t in ends[:-1]:  # the last end terminates the meta-episode: its obs is the auto-reset one
        np.testing.assert_allclose(r["obs"][t, :4], obs0[:4], rtol=0, atol=1e-6)
    for t in ends[:-1] + 1:  # the state entering the step after a trial end
        for f in ("x", "x_dot", "theta", "theta_dot"):
            assert r[f][t] == getattr(state0.init_cart, f)
        assert r["time"][t] == 0
    # later meta-episodes: the first obs of every trial equals that of trial 0 (the obs after the reset)
    for (s, e), (s2, e2) in zip(segs[:-1], segs[1:]):
        first = r["obs"][e, :4]  # auto-reset observation of the next meta-episode
        ends2 = s2 + np.flatnonzero(r["trial_done"][s2:e2 + 1])
        for t in ends2[:-1]:
            np.testing.assert_allclose(r["obs"][t, :4], first, atol=1e-6)


def test_meta_cartpole_projection_fixed_within_changes_across(cart_run):
    _, state0, r = cart_run
    segs = _meta_segments(r["term"])
    projs = []
    for s, e in segs:
        p = r["proj"][s:e + 1]
        assert (p == p[0]).all()
        projs.append(p[0])
        # popjaxrl's orthogonal(sqrt 2) kernel [2, 4]: K K^T = 2 I
        np.testing.assert_allclose(p[0] @ p[0].T, 2 * np.eye(2), atol=1e-5)
    np.testing.assert_array_equal(projs[0], state0.obs_proj)
    for a, b in zip(projs[:-1], projs[1:]):  # a new projection at every meta-reset
        assert not np.allclose(a, b)


def test_meta_cartpole_identity_projection_matches_gymnax(cart_env, cart_actions):
    ident = jnp.eye(2, 4)
    obs0, state0, r = jax.tree.map(np.asarray, cart_rollout(cart_env, jax.random.PRNGKey(3), cart_actions,
                                                            ident, True))
    first_end = int(np.flatnonzero(r["trial_done"])[0])
    # the restarted trial's first observation is the stored start's (x, theta), zero-padded
    np.testing.assert_allclose(r["obs"][first_end, :4], [state0.init_cart.x, state0.init_cart.theta, 0, 0],
                               atol=1e-7)
    # trial 0 against gymnax's own CartPole-v1 stepped with the same actions from the stored start
    cp, params = CartPole(), CartPole().default_params
    cart = state0.init_cart
    step = jax.jit(cp.step_env)
    for t in range(first_end):
        obs, cart, reward, term, _ = step(jax.random.PRNGKey(t), cart, cart_actions[t], params)
        np.testing.assert_allclose(r["obs"][t, :2], np.asarray(obs)[[0, 2]], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(r["obs"][t, 4], float(cart_actions[t]))  # previous action
        assert float(reward) == 1.0 and not bool(term)
    obs, cart, reward, term, _ = step(jax.random.PRNGKey(0), cart, cart_actions[first_end], params)
    assert bool(term)  # gymnax ends the trial at the same step


def test_meta_cartpole_trial_time_limit():
    env = MetaStatelessCartPole(trials=2, max_steps_in_trial=3)
    params = env.default_params
    obs, state = env.reset_env(jax.random.PRNGKey(1), params)
    step = jax.jit(env.step_env, compiler_options=FAST_COMPILE)
    got = []
    for t in range(6):
        obs, state, reward, term, info = step(jax.random.PRNGKey(t), state, t % 2, params)
        got.append((float(reward), bool(term), bool(info["trial_done"]), int(info["trial"]),
                    float(info["trial_return"])))
    assert [g[0] for g in got] == pytest.approx([1 / 3] * 6)
    assert [g[1] for g in got] == [False] * 5 + [True]
    assert [g[2] for g in got] == [False, False, True, False, False, True]
    assert [g[3] for g in got] == [0, 0, 0, 1, 1, 1]
    assert got[2][4] == pytest.approx(1.0) and got[5][4] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------
# meta projection
# ------------------------------------------------------------------------------------------------

MP_B, MP_T = 512, 30  # 3 trials of at most 10 steps: every meta-episode ends within MP_T steps


def mp_compiled(env):
    """``reset(keys[B])`` and ``rollout(state, keys[T, B], actions[T, B, A])`` (batched ``step_env``,
    no auto-reset), compiled with XLA's fast-compile setting (the graphs hold every env of the set)."""
    params = env.default_params

    def reset(keys):
        return jax.vmap(env.reset_env, (0, None))(keys, params)

    def rollout(state, keys, actions):
        def body(state, xs):
            k, a = xs
            obs, new_state, reward, term, info = jax.vmap(env.step_env, (0, 0, 0, None))(k, state, a, params)
            rec = dict(obs=obs, reward=reward, term=term, info=info, env_states=new_state.env_states,
                       env_index=new_state.env_index, obs_proj=new_state.obs_proj,
                       act_proj=new_state.act_proj)
            return new_state, rec

        return jax.lax.scan(body, state, (keys, actions))[1]

    keys = jax.random.split(jax.random.PRNGKey(0), MP_B)
    reset_c = jax.jit(reset).lower(keys).compile(FAST_COMPILE)
    state = reset_c(keys)[1]
    t_keys = jax.random.split(jax.random.PRNGKey(1), (MP_T, MP_B))
    actions = jnp.zeros((MP_T, MP_B, env.action_dim))
    rollout_c = jax.jit(rollout).lower(state, t_keys, actions).compile(FAST_COMPILE)
    return reset_c, rollout_c


def mp_actions(seed):
    return jax.random.uniform(jax.random.PRNGKey(seed), (MP_T, MP_B, 2), minval=-1.5, maxval=1.5)


def mp_keys(seed):
    return jax.random.split(jax.random.PRNGKey(seed), (MP_T, MP_B))


@pytest.fixture(scope="module")
def mp_env():
    return make_meta_projection("classic_all", trials=3, max_steps=10)


@pytest.fixture(scope="module")
def mp_fns(mp_env):
    return mp_compiled(mp_env)


@pytest.fixture(scope="module")
def mp_run(mp_fns):
    reset, rollout = mp_fns
    obs0, state0 = reset(jax.random.split(jax.random.PRNGKey(2), MP_B))
    recs = rollout(state0, mp_keys(3), mp_actions(4))
    return jax.tree.map(np.asarray, (obs0, state0, recs))


def test_splits_and_errors():
    for split, ids in SPLITS.items():
        assert all(i in ENV_SPECS for i in ids), split
    assert not set(SPLITS["classic_train"]) & set(SPLITS["classic_heldout"])
    with pytest.raises(ValueError, match="unknown meta-projection split"):
        make_meta_projection("no_such_split")
    with pytest.raises(ValueError, match="unknown environment id"):
        make_meta_projection(["CartPole-v1", "NoSuchEnv-v0"])
    with pytest.raises(ValueError, match="unknown environment id"):
        MetaProjection(["Breakout-MinAtar"])
    with pytest.raises(ValueError, match="projection"):
        make_meta_projection("classic_train", projection="uniform")
    env = make_meta_projection("classic_heldout")
    assert env.observation_space(env.default_params).shape == (15,)
    assert env.action_space(env.default_params).shape == (2,)


def test_gaussian_projection():
    g = jax.random.normal(jax.random.PRNGKey(0), (400, 4))
    m = np.asarray(_random_matrix(g, "gaussian", 1.0))
    np.testing.assert_allclose(m, np.asarray(g) / 2.0)  # N(0, 1 / in_dim), in_dim = 4
    env = make_meta_projection("classic_train", projection="gaussian")
    assert env.projection == "gaussian"


def test_env_index_uniform(mp_env, mp_run):
    _, state0, _ = mp_run
    counts = np.bincount(state0.env_index, minlength=mp_env.num_envs)
    expected = MP_B / mp_env.num_envs
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 20.5, counts  # chi-square with 4 dof: p ~ 4e-4
    assert counts.min() > 0


def test_projections_orthogonal_padded_and_fresh(mp_env, mp_run):
    _, state0, _ = mp_run
    for b in range(16):
        i = int(state0.env_index[b])
        d, k = mp_env.obs_sizes[i], mp_env.action_sizes[i]
        m_o, m_a = state0.obs_proj[b], state0.act_proj[b]
        np.testing.assert_allclose(m_o[:, :d].T @ m_o[:, :d], np.eye(d), atol=1e-5)  # orthonormal columns
        assert (m_o[:, d:] == 0).all() and (m_a[k:] == 0).all()
        gram = m_a[:k].T @ m_a[:k] if k >= 2 else m_a[:k] @ m_a[:k].T
        np.testing.assert_allclose(gram, np.eye(min(k, 2)), atol=1e-5)
    # every meta-reset (a new key) draws new projections
    flat = state0.obs_proj.reshape(MP_B, -1)
    assert len(np.unique(flat.round(5), axis=0)) == MP_B


def test_trials_keep_env_and_projection(mp_env, mp_run):
    obs0, state0, r = mp_run
    assert obs0.shape == (MP_B, 15) and np.isfinite(r["obs"]).all()
    assert (obs0[:, 12:] == [0.0, 0.0, 1.0]).all()  # [.., reward, trial-done, first] at the reset
    info = r["info"]
    for key in ("env_index", "obs_proj", "act_proj"):  # fixed over the meta-episode's trials
        np.testing.assert_array_equal(r[key], np.broadcast_to(state0.__getattribute__(key), r[key].shape))
    assert (info["env_index"] == state0.env_index).all()
    done = info["trial_done"]
    for b in range(MP_B):
        end = int(np.flatnonzero(r["term"][:, b])[0])  # the meta-episode ends ...
        assert done[: end + 1, b].sum() == 3 and done[end, b]  # ... exactly at the 3rd trial end
        np.testing.assert_array_equal(info["trial"][: end + 1, b],
                                      np.concatenate([[0], np.cumsum(done[:end, b])]))
    assert (info["trial_length"] <= 10).all()
    # layout: reward and trial-done of the step appended; first = 0 after the reset
    np.testing.assert_array_equal(r["obs"][..., 12], r["reward"])
    np.testing.assert_array_equal(r["obs"][..., 13], done.astype(np.float32))
    assert (r["obs"][..., 14] == 0).all()
    scores = info["trial_score"][done]
    assert ((scores >= 0) & (scores <= 1)).all()
    # the reward is the environment's reward times 1 / (hi - lo): CartPole pays 1/200 per step
    cart = np.broadcast_to(state0.env_index == mp_env.env_ids.index("CartPole-v1"), done.shape)
    np.testing.assert_allclose(r["reward"][cart], 1 / 200, rtol=1e-6)
    np.testing.assert_allclose(info["trial_raw_return"][cart], info["trial_length"][cart], rtol=1e-6)


def test_known_projection_actions_and_untouched_states(mp_env, mp_fns):
    """Hand-built states: the chosen env gets argmax (Discrete) / rescaled clip (Box) of M_a a; the
    other environments' states do not change; the observation is [M_o norm(o), r, done, first]."""
    reset, rollout = mp_fns
    _, state0 = reset(jax.random.split(jax.random.PRNGKey(9), MP_B))
    ids = mp_env.env_ids
    i_cp, i_ac, i_pe = ids.index("CartPole-v1"), ids.index("Acrobot-v1"), ids.index("Pendulum-v1")
    a_proj = np.zeros((6, 3, 2), np.float32)
    a_proj[0, :2] = a_proj[1, :2] = np.eye(2)  # CartPole: logits (a0, a1)
    a_proj[2] = a_proj[3] = [[1, 0], [0, 1], [-1, -1]]  # Acrobot: logits (a0, a1, -a0-a1)
    a_proj[4, 0] = a_proj[5, 0] = [0.5, 0.5]  # Pendulum: torque 2 * clip(0.5 (a0 + a1), -1, 1)
    cases = [  # (env, agent action, expected env action)
        (i_cp, [0.2, 0.9], 1), (i_cp, [0.9, 0.2], 0),
        (i_ac, [-0.5, -0.5], 2), (i_ac, [0.6, 0.1], 0),
        (i_pe, [0.5, 0.3], 0.8), (i_pe, [1.0, 1.0], 2.0),
    ]
    m_o = np.random.default_rng(0).normal(size=(12, mp_env.max_obs)).astype(np.float32)
    state = state0.replace(
        env_index=state0.env_index.at[:6].set(jnp.asarray([c[0] for c in cases], jnp.int32)),
        act_proj=state0.act_proj.at[:6].set(jnp.asarray(a_proj)),
        obs_proj=state0.obs_proj.at[:6].set(jnp.asarray(m_o)),
    )
    actions = mp_actions(0).at[0, :6].set(jnp.asarray([c[1] for c in cases], jnp.float32))
    r = jax.tree.map(np.asarray, rollout(state, mp_keys(5), actions))
    for b, (i, a, expected) in enumerate(cases):
        env, params = mp_env.envs[i], mp_env.env_params[i]
        before = jax.tree.map(lambda x: x[b], state.env_states[i])
        env_action = jnp.asarray([expected], jnp.float32) if i == i_pe else expected
        ref_obs, ref_state, ref_r, _, _ = env.step_env(jax.random.PRNGKey(0), before, env_action, params)
        got = jax.tree.map(lambda x: x[0, b], r["env_states"][i])
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(ref_state)):
            np.testing.assert_allclose(g, np.asarray(w).reshape(np.shape(g)), rtol=1e-5, atol=1e-6)
        for j in range(mp_env.num_envs):  # only the chosen environment's state changed
            if j != i:
                for g, w in zip(jax.tree.leaves(jax.tree.map(lambda x: x[0, b], r["env_states"][j])),
                                jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x[b]), state.env_states[j]))):
                    np.testing.assert_array_equal(g, w)
        # observation layout [M_o normalise(o), reward, trial-done, first]
        spec = ENV_SPECS[ids[i]]
        norm = (np.asarray(ref_obs, np.float32) - np.asarray(spec.obs_loc)) / np.asarray(spec.obs_scale)
        norm = np.pad(norm, (0, mp_env.max_obs - norm.size))
        np.testing.assert_allclose(r["obs"][0, b, :12], m_o @ norm, rtol=1e-5, atol=1e-5)
        scale = 1.0 / (spec.return_range[1] - spec.return_range[0])
        np.testing.assert_allclose(r["reward"][0, b], float(ref_r) * scale, rtol=1e-5)
        np.testing.assert_allclose(r["obs"][0, b, 12:], [r["reward"][0, b], 0.0, 0.0], rtol=1e-6)
        assert int(r["info"]["env_index"][0, b]) == i and not r["info"]["trial_done"][0, b]
    # Pendulum's applied torque (last_u) is the rescaled, clipped projection
    np.testing.assert_allclose(r["env_states"][i_pe].last_u[0, 4:6], [0.8, 2.0], rtol=1e-6)


def test_same_initial_state_restarts():
    env = make_meta_projection(["CartPole-v1", "Pendulum-v1"], trials=3, max_steps=6, same_initial_state=True)
    reset, rollout = mp_compiled(env)
    obs0, state0 = reset(jax.random.split(jax.random.PRNGKey(1), MP_B))
    r = jax.tree.map(np.asarray, rollout(state0, mp_keys(2), mp_actions(3)))
    assert r["term"][17].all() and not r["term"][:17].any()  # 3 trials of 6 steps
    assert r["info"]["trial_done"][[5, 11, 17]].all() and r["info"]["trial_done"][:18].sum() == 3 * MP_B
    for t in (5, 11, 17):  # the first observation of every trial equals trial 0's
        np.testing.assert_allclose(r["obs"][t, :, :12], np.asarray(obs0)[:, :12], atol=1e-6)


def test_memory_chain_rewards_naming_the_context_after_memory_length_steps():
    """bsuite memory length through the POPGym registry: answering the first observation's context
    bit at the end returns +1, the other answer -1, after exactly L + 1 steps, never truncated."""
    from envs.popgym import make_popgym

    for length in (4, 64):
        env = make_popgym(f"MemoryChain{length}")
        params = env.default_params
        for answer_right in (True, False):
            obs, state = env.reset_env(jax.random.PRNGKey(length), params)
            context = int(obs[2] > 0)  # obs[2] = 2 * context - 1 at t = 0
            total, steps, done = 0.0, 0, False
            while not done:
                action = context if answer_right else 1 - context
                obs, state, reward, terminated, _ = env.step_env(jax.random.PRNGKey(0), state, action, params)
                assert not bool(env.is_truncated(state, params))
                total, steps, done = total + float(reward), steps + 1, bool(terminated)
            assert steps == length + 1
            assert total == (1.0 if answer_right else -1.0)
