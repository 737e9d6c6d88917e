"""Stump Track: known answers of the dynamics, feasibility, truncation vs termination, task plumbing."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.stump_track import (
    BACK,
    JUMP,
    NUM_ACTIONS,
    RUN,
    WALK,
    StumpTrack,
    StumpTrackParams,
    StumpTrackState,
    max_jump_height,
    num_stumps,
    stump_heights,
    stump_track_params_for,
    stump_track_tasks,
)
from envs.task_env import TaskAutoReset

ENV = StumpTrack()
STEP = jax.jit(ENV.step_env)
KEY = jax.random.PRNGKey(0)
EPS = 1e-3  # a blocked runner stands this far from the stump's face


def _params(height, spacing, **kw):
    """Deterministic tracks for known answers: no start jitter, no height noise."""
    kw.setdefault("start_jitter", 0.0)
    kw.setdefault("stump_height_std", 0.0)
    return StumpTrackParams(stump_height=height, stump_spacing=spacing, **kw)


def _state(x, vx=0.0, y=0.0, vy=0.0, on_ground=True):
    f = lambda v: jnp.float32(v)
    return StumpTrackState(
        x=f(x), y=f(y), vx=f(vx), vy=f(vy), on_ground=jnp.array(on_ground), start=f(0.0),
        layout=jnp.zeros(2, jnp.uint32), time=0,
    )


def _rollout(params, policy, state=None):
    """Scripted episode; returns (return, steps, final state, last info, terminated, truncated)."""
    obs, s0 = ENV.reset_env(KEY, params)
    state = s0 if state is None else state
    obs = ENV.get_obs(state, params)
    total = 0.0
    for t in range(params.max_steps_in_episode):
        obs, state, reward, term, info = STEP(KEY, state, policy(obs, state), params)
        total += float(reward)
        trunc = bool(ENV.is_truncated(state, params)) and not bool(term)
        if bool(term) or trunc:
            break
    return total, t + 1, state, info, bool(term), trunc


def test_running_on_a_flat_track_finishes_in_computable_steps():
    # height-0 stumps are no obstacle: 30.1 m at 3 m/s in steps of 0.1 s = ceil(100.33) steps
    p = _params(0.0, 1.0, track_length=30.1, max_steps_in_episode=250)
    ret, steps, state, info, term, trunc = _rollout(p, lambda o, s: RUN)
    assert steps == math.ceil(30.1 / (3.0 * 0.1)) == 101
    assert term and not trunc and bool(info["finished"]) and not bool(info["hit"])
    assert ret == pytest.approx(1.0 + p.finish_bonus, abs=1e-5)  # progress 1 + bonus
    _, steps_walk, *_ = _rollout(p, lambda o, s: WALK)  # walking takes twice as long
    assert steps_walk == math.ceil(30.1 / (1.5 * 0.1)) == 201


def test_jump_apex_and_range_match_the_closed_form():
    p = _params(0.0, 6.0)
    apex = p.jump_speed**2 / (2 * p.gravity)
    assert apex == pytest.approx(float(max_jump_height(p))) == pytest.approx(2.0)
    for speed, first in [(p.run_speed, RUN), (p.walk_speed, WALK)]:
        state = _state(0.0, vx=speed)  # a runner that was moving at `speed` on the ground
        ys, xs = [], []
        for t in range(12):
            _, state, _, _, _ = STEP(KEY, state, JUMP if t == 0 else BACK, p)  # BACK: no effect in air
            ys.append(float(state.y))
            xs.append(float(state.x))
            if bool(state.on_ground):
                break
        # the update is the exact parabola: the apex (t = v/g = 0.5 s = 5 steps) is hit exactly
        assert max(ys) == pytest.approx(apex, abs=1e-5) and int(np.argmax(ys)) == 4
        # flight time 2v/g = 1 s = 10 steps; range = speed * 2v/g
        assert len(ys) == 10 and ys[-1] == 0.0
        assert xs[-1] == pytest.approx(speed * 2 * p.jump_speed / p.gravity, abs=1e-5)
    # with air control the speed can be changed in flight: walking in the air shortens the jump
    pa = p.replace(air_control=True)
    state = _state(0.0, vx=p.run_speed)
    for t in range(10):
        _, state, _, _, _ = STEP(KEY, state, JUMP if t == 0 else WALK, pa)
    assert bool(state.on_ground) and float(state.x) == pytest.approx(0.3 + 9 * 0.15, abs=1e-5)
    # a vertical jump (speed 0, e.g. right after a collision) lands where it started
    state = _state(1.0)
    for t in range(10):
        _, state, _, _, _ = STEP(KEY, state, JUMP if t == 0 else RUN, p)
    assert bool(state.on_ground) and float(state.x) == pytest.approx(1.0)


def test_running_into_a_stump_blocks_at_its_face_until_truncation():
    p = _params(0.3, 3.0, max_steps_in_episode=40, first_stump=3.1)
    ret, steps, state, info, term, trunc = _rollout(p, lambda o, s: RUN)
    assert trunc and not term and steps == 40  # blocked, not ended: truncated at the cap
    assert float(state.x) == pytest.approx(p.first_stump - EPS, abs=1e-5)
    assert float(state.vx) == 0.0 and bool(state.on_ground)
    assert ret == pytest.approx((p.first_stump - EPS) / p.track_length, abs=1e-5)  # progress only
    # with blocking=False the same collision ends the episode at the stump
    pe = p.replace(blocking=False)
    ret, steps, state, info, term, trunc = _rollout(pe, lambda o, s: RUN)
    assert term and bool(info["hit"]) and steps == math.ceil(3.1 / 0.3) == 11
    assert float(state.x) == pytest.approx(p.first_stump, abs=1e-5)


def test_hit_penalty_is_paid_per_collision():
    p = _params(0.3, 3.0, hit_penalty=0.25)
    _, _, r, _, info = STEP(KEY, _state(p.first_stump - 0.1, vx=3.0), RUN, p)
    assert bool(info["hit"])
    assert float(r) == pytest.approx((0.1 - EPS) / p.track_length - 0.25, abs=1e-5)


def test_stepping_back_into_a_stump_and_the_start_wall():
    p = _params(0.5, 3.0)
    b = p.first_stump + p.stump_width
    _, state, _, term, info = STEP(KEY, _state(b + 0.1), BACK, p)
    assert bool(info["hit"]) and not bool(term)
    assert float(state.x) == pytest.approx(b + EPS, abs=1e-5)  # stays behind the stump
    _, state, reward, term, _ = STEP(KEY, _state(0.05), BACK, p)
    assert not bool(term) and float(state.x) == 0.0 and float(reward) < 0.0


@pytest.mark.parametrize("air_control", [False, True])
def test_coming_down_onto_a_stump_falls_back_in_front_of_it(air_control):
    # a walking jump clears the front face of a 0.5 m stump but is too short for its 1.5 m top
    p = _params(0.5, 3.0, air_control=air_control)
    a = p.first_stump
    state = _state(a - 0.3, vx=p.walk_speed)
    hits = []
    for t in range(10):
        # with air control, stepping back just before touching the top must not help: it falls back
        # in front of the stump all the same
        _, state, _, _, info = STEP(KEY, state, JUMP if t == 0 else (BACK if t >= 9 else WALK), p)
        hits.append(bool(info["hit"]))
        if bool(state.on_ground):
            break
    assert any(hits) and float(state.x) == pytest.approx(a - EPS, abs=1e-5)


def test_contiguous_stumps_are_one_wall():
    p = _params(0.5, 0.0)  # spacing 0: stumps touch
    state = _state(p.first_stump + 3 * p.stump_width + 0.2, y=0.6, vx=p.walk_speed, on_ground=False)
    for _ in range(10):
        _, state, _, _, info = STEP(KEY, state, WALK, p)
        if bool(state.on_ground):
            break
    assert float(state.x) == pytest.approx(p.first_stump - EPS, abs=1e-5)


def _jump_when_close(lo, hi):
    """Run; jump (at run speed) when the next stump's leading edge is within [lo, hi]."""

    def policy(obs, state):
        d1 = float(obs[5]) * 3.0
        return JUMP if (lo <= d1 <= hi and float(state.vx) == 3.0) else RUN

    return policy


def test_scripted_jumper_crosses_a_feasible_track():
    # h = 1: rising to 1 m takes t = (v - sqrt(v^2 - 2gh)) / g = 0.146 s = 0.44 m at 3 m/s, and the
    # runner stays above 1 m for 2.12 m: take-off 0.44 .. 1.06 m before a 1.5 m stump clears it;
    # running steps of 0.3 m always hit [0.5, 1.0]; it lands 2.0 .. 2.5 m after the leading edge
    p = _params(1.0, 3.0)
    ret, steps, state, info, term, trunc = _rollout(p, _jump_when_close(0.5, 1.0))
    assert bool(info["finished"]) and term and ret == pytest.approx(2.0, abs=1e-4)
    assert steps <= p.max_steps_in_episode


def test_scripted_jumper_never_crosses_an_infeasible_stump():
    # apex 2 m: any take-off distance fails on a 2.05 m stump; 1.55 m is below the apex but the
    # runner is above it for less than the stump's width (needs h <= 2 - g w^2 / (8 v^2) = 1.5)
    for h in (2.05, 1.55):
        for lo in np.arange(0.0, 3.0, 0.1):
            p = _params(h, 3.0, max_steps_in_episode=25)
            _, _, state, _, _, _ = _rollout(p, _jump_when_close(lo, lo + 0.35))
            assert float(state.x) < p.first_stump


def _search(params, max_states=20000):
    """Exhaustive search over every action sequence, one flight at a time: from a ground state
    (x, vx), take an action and coast until on the ground again. Returns (finish reachable,
    furthest x reachable). Positions are deduplicated at 0.1 mm."""

    def macro(x, vx, action):
        def body(c, t):
            state, done, finished = c
            _, s2, _, term, info = ENV.step_env(KEY, state, jnp.where(t == 0, action, WALK), params)
            state = jax.tree.map(lambda u, v: jnp.where(done, u, v), state, s2)
            finished = finished | (~done & info["finished"])
            return (state, done | term | s2.on_ground, finished), None

        init = (_state(x, vx), jnp.array(False), jnp.array(False))
        (state, _, finished), _ = jax.lax.scan(body, init, jnp.arange(16))
        return state.x, state.vx, finished

    go = jax.jit(jax.vmap(jax.vmap(macro, (None, None, 0)), (0, 0, None)))
    key = lambda x, v: (round(float(x), 4), round(float(v), 2))
    seen, frontier, best = {key(0.0, 0.0)}, [(0.0, 0.0)], 0.0
    while frontier and len(seen) < max_states:
        n = 1 << max(5, (len(frontier) - 1).bit_length())  # few distinct shapes to compile
        xs = np.zeros(n, np.float32)
        vs = np.zeros(n, np.float32)
        xs[: len(frontier)], vs[: len(frontier)] = zip(*frontier)
        xe, ve, fin = (np.asarray(v)[: len(frontier)] for v in go(xs, vs, jnp.arange(NUM_ACTIONS)))
        if fin.any():
            return True, float(params.track_length)
        new = []
        for x, v in zip(xe.ravel(), ve.ravel()):
            if key(x, v) not in seen:
                seen.add(key(x, v))
                new.append((float(x), float(v)))
                best = max(best, float(x))
        frontier = new
    return False, best


def test_exhaustive_search_feasible_and_infeasible_heights():
    for h in (2.05, 1.55):  # above the apex; above the highest clearable 1.5 m wide stump
        done, best = _search(_params(h, 4.0))
        assert not done and best < _params(h, 4.0).first_stump  # never beyond the first stump
    assert _search(_params(1.45, 4.0))[0]  # narrow take-off window (0.09 m): still feasible
    assert _search(_params(0.0, 0.0))[0]  # height 0 is no obstacle, even as a wall
    assert not _search(_params(0.5, 0.0))[0]  # contiguous stumps: a wall, infeasible


def test_random_action_sequences_never_cross_an_infeasible_stump():
    te = stump_track_tasks()
    env = TaskAutoReset(te)
    task = jnp.array([2.2, 4.0])  # stump heights ~ N(2.2, 0.1^2): all far above 1.5

    def episode(key):
        k_reset, k_act = jax.random.split(key)
        _, state = env.reset(k_reset, task)
        actions = jax.random.randint(k_act, (130,), 0, NUM_ACTIONS)

        def body(c, a):
            state, done, best = c
            _, s2, _, term, trunc, info = env.step(KEY, state, a, task)
            best = jnp.where(done, best, jnp.maximum(best, info["final_observation"][0]))
            return (s2, done | term | trunc, best), None

        (_, _, best), _ = jax.lax.scan(body, (state, jnp.array(False), jnp.float32(0.0)), actions)
        return best

    best = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.PRNGKey(1), 2000))
    p = te.params_for(task)
    # (a stump drawn a little lower may be overflown for a moment, but never crossed)
    assert float(best.max()) * p.track_length < p.first_stump + p.stump_width


def test_truncation_at_the_cap_and_termination_at_the_finish():
    te = stump_track_tasks(max_steps_in_episode=20, start_jitter=0.0, stump_height_std=0.0)
    env = TaskAutoReset(te)
    step = jax.jit(env.step)
    task = jnp.array([0.0, 3.0])
    obs, state = env.reset(KEY, task)
    for t in range(20):
        obs, state, r, term, trunc, info = step(KEY, state, WALK, task)
        assert not bool(term)
        assert bool(trunc) == (t == 19)
    ep = info["episode"]
    assert bool(ep.done) and int(ep.length) == 20
    assert float(ep.episodic_return) == pytest.approx(20 * 0.15 / 30.0, abs=1e-5)
    assert float(obs[0]) == 0.0  # the reset observation: back at the start
    # finishing terminates (not truncates) and scores 1 = mastered
    te = stump_track_tasks(start_jitter=0.0, stump_height_std=0.0, track_length=30.1)
    env = TaskAutoReset(te)
    step = jax.jit(env.step)
    obs, state = env.reset(KEY, task)
    for t in range(130):
        obs, state, r, term, trunc, info = step(KEY, state, RUN, task)
        if bool(term) or bool(trunc):
            break
    assert bool(term) and not bool(trunc) and t + 1 == 101  # 30.1 m in 0.3 m steps
    assert float(info["episode"].score) == pytest.approx(1.0, abs=1e-5)
    assert float(info["episode"].score) >= te.mastery_score


def test_observation_reports_the_next_stumps():
    p = _params(1.2, 2.0)
    obs, state = ENV.reset_env(KEY, p)
    apex = float(max_jump_height(p))
    d2 = p.first_stump + p.stump_width + 2.0
    np.testing.assert_allclose(
        np.asarray(obs),
        [0.0, 0.0, 0.0, 0.0, 1.0, p.first_stump / 3, d2 / 3, 1.2 / apex, 1.2 / apex, 0.0],
        atol=1e-6,
    )
    # over the first stump (in the air) the next stump is still the first one
    obs = ENV.get_obs(_state(p.first_stump + 0.2, y=1.5, on_ground=False), p)
    assert float(obs[5]) * 3.0 == pytest.approx(-0.2, abs=1e-5)
    # past the last stump there is none: far distance and height 0
    n = int(num_stumps(p))
    last = p.first_stump + (n - 1) * (p.stump_width + 2.0)
    assert last + p.stump_width <= p.track_length < last + 2 * p.stump_width + 2.0
    obs = ENV.get_obs(_state(last + p.stump_width + 0.1), p)
    assert float(obs[7]) == 0.0 and float(obs[5]) * 3.0 == pytest.approx(9.0)


def test_num_stumps():
    assert int(num_stumps(_params(1.0, 3.0))) == 6  # leading edges 3, 7.5, ..., 25.5 (+1.5 <= 30)
    assert int(num_stumps(_params(1.0, 0.0))) == 18  # a wall of 1.5 m stumps from 3 to 30
    assert int(num_stumps(_params(1.0, 6.0))) == 4


def test_stump_heights_are_noisy_per_stump_and_fixed_per_episode():
    p = StumpTrackParams(stump_height=1.0, stump_height_std=0.1)
    _, s1 = ENV.reset_env(jax.random.PRNGKey(1), p)
    _, s2 = ENV.reset_env(jax.random.PRNGKey(2), p)
    k = jnp.arange(4000)
    h1 = np.asarray(stump_heights(s1, p, k))
    assert abs(h1.mean() - 1.0) < 0.01 and abs(h1.std() - 0.1) < 0.01
    np.testing.assert_array_equal(h1, np.asarray(stump_heights(s1, p, k)))  # same episode, same track
    assert not np.allclose(h1[:10], np.asarray(stump_heights(s2, p, k[:10])))  # another episode
    h0 = np.asarray(stump_heights(s1, p.replace(stump_height=0.0), k))
    assert h0.min() == 0.0 and 0.03 < h0.mean() < 0.05  # max(N(0, 0.1^2), 0): mean 0.1/sqrt(2 pi)
    assert np.all(np.asarray(stump_heights(s1, p.replace(stump_height_std=0.0), k[:5])) == 1.0)


def test_start_jitter():
    p = StumpTrackParams()
    xs = jax.vmap(lambda k: ENV.reset_env(k, p)[1].x)(jax.random.split(KEY, 256))
    assert float(xs.min()) >= 0.0 and float(xs.max()) < p.start_jitter and float(xs.std()) > 0.2


def test_params_for_is_pure_and_vmappable():
    te = stump_track_tasks()
    tasks = jnp.array([[0.0, 0.0], [1.5, 3.0], [3.0, 6.0]])
    params = jax.jit(jax.vmap(te.params_for))(tasks)
    np.testing.assert_allclose(params.stump_height, tasks[:, 0])
    np.testing.assert_allclose(params.stump_spacing, tasks[:, 1])
    one = stump_track_params_for(tasks[1])
    assert float(one.stump_height) == 1.5 and float(one.stump_spacing) == 3.0
    # vmapped reset and step over tasks agree with one-at-a-time calls
    keys = jax.random.split(KEY, 3)
    _, states = jax.vmap(ENV.reset_env)(keys, params)
    obs2, _, r, _, _ = jax.vmap(ENV.step_env, (0, 0, None, 0))(keys, states, RUN, params)
    for i in range(3):
        _, s1 = ENV.reset_env(keys[i], te.params_for(tasks[i]))
        o2, _, r1, _, _ = ENV.step_env(keys[i], s1, RUN, te.params_for(tasks[i]))
        np.testing.assert_allclose(obs2[i], o2, atol=1e-6)
        np.testing.assert_allclose(r[i], r1, atol=1e-6)
    assert te.task_space.names == ("stump_height", "stump_spacing")
    assert te.task_space.low == (0.0, 0.0) and te.task_space.high == (3.0, 6.0)
    assert te.observation_shape() == (10,) and te.action_space().n == NUM_ACTIONS
    assert te.return_range == (0.0, 2.0)


def test_task_auto_reset_hands_the_next_task():
    te = stump_track_tasks(stump_height_std=0.0)
    env = TaskAutoReset(te)
    n = 8
    tasks = jnp.stack([jnp.linspace(0.0, 3.0, n), jnp.full((n,), 2.0)], 1)
    _, state = jax.vmap(env.reset)(jax.random.split(KEY, n), tasks)
    nxt = jnp.array([0.7, 5.0])

    def body(state, key):
        _, state, _, _, _, info = jax.vmap(env.step, (0, 0, None, None))(
            jax.random.split(key, n), state, RUN, nxt
        )
        return state, info["episode"]

    state, ep = jax.jit(lambda s: jax.lax.scan(body, s, jax.random.split(KEY, 131)))(state)
    done = np.asarray(ep.done)  # [T, n]
    # h = 0: the runner finishes (~100 steps); h > 0: blocked at the first stump until the cap
    first = done.argmax(0)
    assert done[:, 0].any() and first[0] < 101
    assert np.all(first[1:] == 129)  # truncated after 130 steps
    np.testing.assert_allclose(np.asarray(state.task), np.tile(nxt, (n, 1)))
    scores = np.asarray(ep.score)[done]
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    assert np.asarray(ep.score)[first[0], 0] >= te.mastery_score
    assert np.all(np.asarray(ep.score)[129, 1:] < 0.1)
