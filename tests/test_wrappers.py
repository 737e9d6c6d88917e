"""Wrappers of envs/wrappers.py under TaskAutoReset: exact observations, info merging, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import CartPole
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

from envs.cartpole_tasks import cartpole_tasks
from envs.task_env import TaskAutoReset, TaskEnv, fixed_task_env
from envs.wrappers import (
    ContextParams,
    FlattenObservation,
    GymnaxWrapperAdapter,
    ObservePreviousActionReward,
    with_context_in_obs,
)
from tests.policy_test_envs import target_reach_env
from tests.wrapper_test_envs import Ticker, TickerParams, cue_grid_env, ticker_task_env

ACTIONS = [2, 0, 1, 1, 2, 0, 1, 2, 0, 1, 2, 2]
TASKS = [2.0, 3.0, 1.0, 4.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0]  # handed to the episodes in order


def rollout(task_env: TaskEnv, tasks, actions, seed: int = 0) -> list[dict]:
    """Reset with ``tasks[0]``; each step hands the next unused task; one record per step.

    Record 0 is the reset (``obs`` only); record t >= 1 holds step t's outputs, as numpy.
    """
    env = TaskAutoReset(task_env)
    dim = task_env.task_space.dim
    as_task = lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (dim,))
    obs, state = env.reset(jax.random.PRNGKey(seed), as_task(tasks[0]))
    step = jax.jit(env.step)
    records, queue = [{"obs": np.asarray(obs), "state": state}], list(tasks[1:])
    for t, action in enumerate(actions):
        key = jax.random.fold_in(jax.random.PRNGKey(seed), t + 1)
        obs, state, reward, term, trunc, info = step(key, state, action, as_task(queue[0]))
        records.append(jax.tree.map(np.asarray, dict(
            obs=obs, reward=reward, terminated=term, truncated=trunc, info=info)) | {"state": state})
        if bool(info["episode"].done):
            queue.pop(0)
    return records


def ticker_reference(tasks, actions, max_steps: int = 100) -> list[dict]:
    """Hand model of Ticker + ObservePreviousActionReward under TaskAutoReset (see the test env)."""

    def obs(left, t, prev, reward, first):
        return np.array([left, t, 10 * left, -t, *prev, reward, first], np.float32)

    queue = list(tasks)
    task = queue.pop(0)
    left, t = int(task), 0
    out = [{"obs": obs(left, t, [0, 0, 0], 0.0, 1.0), "task": task}]
    for a in actions:
        reward = 10.0 * a + left
        left, t = left - 1, t + 1
        onehot = np.eye(3)[a]
        final = obs(left, t, onehot, reward, 0.0)
        term = left <= 0
        trunc = (t >= max_steps) and not term
        rec = {"reward": reward, "final": final, "terminated": term, "truncated": trunc, "left": left,
               "ended_task": task}
        if term or trunc:
            task = queue.pop(0)
            left, t = int(task), 0
            rec["obs"] = obs(left, t, [0, 0, 0], 0.0, 1.0)
        else:
            rec["obs"] = final
        rec["task"] = task
        out.append(rec)
    return out


def test_flatten_equals_inner_observation_reshaped():
    for base, tasks in [(ticker_task_env(max_steps=3), TASKS), (cue_grid_env(length=3), [0.0] * 8)]:
        flat = base.wrap(FlattenObservation)
        assert flat.params_for is base.params_for and flat.task_space == base.task_space
        inner_shape = base.observation_shape()
        assert len(inner_shape) == 2 and flat.observation_shape() == (int(np.prod(inner_shape)),)
        a, b = rollout(base, tasks, ACTIONS[:10]), rollout(flat, tasks, ACTIONS[:10])
        for ra, rb in zip(a, b):
            np.testing.assert_array_equal(rb["obs"], ra["obs"].reshape(-1))
            if "info" in ra:
                np.testing.assert_array_equal(rb["info"]["final_observation"],
                                              ra["info"]["final_observation"].reshape(-1))
                assert rb["reward"] == ra["reward"] and rb["truncated"] == ra["truncated"]
    space = ticker_task_env().wrap(FlattenObservation).observation_space()
    np.testing.assert_array_equal(space.low, np.full(4, -100.0))
    assert space.shape == (4,)


def test_previous_action_reward_and_first_flag_across_auto_resets():
    te = ticker_task_env().wrap(ObservePreviousActionReward)
    assert te.observation_shape() == (4 + 3 + 2,)
    got, want = rollout(te, TASKS, ACTIONS), ticker_reference(TASKS, ACTIONS)
    firsts = 0
    for t, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g["obs"], w["obs"], err_msg=f"step {t}")
        if t:
            np.testing.assert_array_equal(g["info"]["final_observation"], w["final"])
            assert float(g["reward"]) == w["reward"] and bool(g["terminated"]) == w["terminated"]
        firsts += int(g["obs"][-1] == 1.0)
        assert int(g["state"].env_state.time) == int(g["obs"][1])  # the wrapper state's time is the inner one
        assert g["state"].env_state.time == g["state"].env_state.env_state.time
    assert firsts == 1 + sum(w.get("terminated", False) for w in want) >= 5


def test_previous_action_raw_for_box_actions():
    te = target_reach_env().wrap(ObservePreviousActionReward)  # one-step episodes, reward -(a - target)^2
    env = TaskAutoReset(te)
    obs, state = env.reset(jax.random.PRNGKey(0), jnp.zeros(1))
    target = float(obs[0])
    np.testing.assert_array_equal(obs[1:], [0.0, 0.0, 1.0])
    obs2, _, reward, term, _, info = env.step(jax.random.PRNGKey(1), state, jnp.array([0.3]), jnp.zeros(1))
    final = np.asarray(info["final_observation"])
    np.testing.assert_allclose(final, [target, 0.3, -(0.3 - target) ** 2, 0.0], rtol=1e-6)
    assert bool(term) and float(obs2[-1]) == 1.0 and np.all(np.asarray(obs2[1:3]) == 0.0)
    space = te.observation_space()
    np.testing.assert_array_equal(space.low[1:], [-2.0, -np.inf, 0.0])
    np.testing.assert_array_equal(space.high[1:], [2.0, np.inf, 1.0])


def test_wrappers_compose_in_either_order():
    te = ticker_task_env(max_steps=2)
    want = ticker_reference(TASKS, ACTIONS, max_steps=2)
    a = rollout(te.wrap(FlattenObservation, ObservePreviousActionReward), TASKS, ACTIONS)
    b = rollout(te.wrap(ObservePreviousActionReward, FlattenObservation), TASKS, ACTIONS)
    assert any(w.get("truncated") for w in want)  # truncation reaches through both stacks
    for ra, rb, w in zip(a, b, want):
        np.testing.assert_array_equal(ra["obs"], w["obs"])
        np.testing.assert_array_equal(rb["obs"], w["obs"])
        if "info" in ra:
            assert bool(ra["truncated"]) == bool(rb["truncated"]) == w["truncated"]
    # the task in the observation, outside or inside the previous-action wrapper
    ctx_outer = rollout(with_context_in_obs(te.wrap(ObservePreviousActionReward)), TASKS, ACTIONS)
    ctx_inner = rollout(with_context_in_obs(te).wrap(ObservePreviousActionReward), TASKS, ACTIONS)
    for ro, ri, w in zip(ctx_outer, ctx_inner, want):
        np.testing.assert_array_equal(ro["obs"], np.append(w["obs"], w["task"]))
        np.testing.assert_array_equal(ri["obs"], np.concatenate([w["obs"][:4], [w["task"]], w["obs"][4:]]))
        if "info" in ro:
            np.testing.assert_array_equal(ro["info"]["final_observation"][-1], w["ended_task"])


def test_env_info_reaches_task_auto_reset_and_curriculax_keys_win():
    got = rollout(ticker_task_env(max_steps=2).wrap(ObservePreviousActionReward), TASKS, ACTIONS)
    want = ticker_reference(TASKS, ACTIONS, max_steps=2)
    for g, w in zip(got[1:], want[1:]):
        info = g["info"]
        assert set(info) == {"left", "terminated", "truncated", "final_observation", "episode"}
        assert int(info["left"]) == w["left"]
        assert info["terminated"].dtype == np.bool_ and bool(info["terminated"]) == w["terminated"]
    # gymnax CartPole's own "discount": 0 exactly at termination, 1 otherwise (truncation included)
    for te in [cartpole_tasks(max_steps_in_episode=6),
               cartpole_tasks(max_steps_in_episode=6).wrap(FlattenObservation, ObservePreviousActionReward)]:
        recs = rollout(te, [(0.5, 12.0), (0.5, 3.0)] * 10, [1] * 30)
        term = np.array([r["terminated"] for r in recs[1:]])
        trunc = np.array([r["truncated"] for r in recs[1:]])
        discount = np.array([r["info"]["discount"] for r in recs[1:]])
        assert term.any() and trunc.any()
        np.testing.assert_array_equal(discount, np.where(term, 0.0, 1.0))


def test_context_in_obs_shows_the_running_episodes_task():
    base = cartpole_tasks()
    te = with_context_in_obs(base)
    tasks = [(0.5, 1.0), (0.3, 0.8), (0.9, 1.5), (0.2, 0.6), (0.7, 1.2), (0.4, 0.9)] * 4
    got, plain = rollout(te, tasks, [1] * 20), rollout(base, tasks, [1] * 20)
    running, ends = 0, 0
    for t, (g, p) in enumerate(zip(got, plain)):
        np.testing.assert_array_equal(g["obs"][:4], p["obs"])  # the inner observation, untouched
        if t:
            np.testing.assert_allclose(g["info"]["final_observation"][4:], tasks[running], rtol=1e-7)
            if g["info"]["episode"].done:
                running, ends = running + 1, ends + 1
        np.testing.assert_allclose(g["obs"][4:], tasks[running], rtol=1e-7)  # raw units, not normalised
        np.testing.assert_allclose(g["state"].task, tasks[running], rtol=1e-7)
    assert ends >= 3
    space = te.observation_space()
    np.testing.assert_allclose(space.low[4:], [0.05, 0.5])
    np.testing.assert_allclose(space.high[4:], [1.0, 12.0])
    params = te.default_task_params()
    assert isinstance(params, ContextParams) and int(params.max_steps_in_episode) == 500
    assert te.name == base.name and te.task_space == base.task_space and te.return_range == base.return_range
    # vmappable params_for
    ps = jax.vmap(te.params_for)(jnp.array([[0.1, 1.0], [0.9, 12.0]]))
    np.testing.assert_allclose(ps.env_params.length, [0.1, 0.9])
    np.testing.assert_allclose(ps.task, [[0.1, 1.0], [0.9, 12.0]])


def test_jit_vmap_scan_over_envs_matches_single_env_reference():
    stack = ticker_task_env(max_steps=3).wrap(FlattenObservation, ObservePreviousActionReward)
    te = with_context_in_obs(stack)
    env = TaskAutoReset(te)
    n, steps = 3, 9
    first = jnp.array([[1.0], [2.0], [4.0]])
    handed = jnp.array([[3.0], [1.0], [2.0]])  # every later episode of env i gets handed[i]
    actions = jnp.array([[(t + i) % 3 for i in range(n)] for t in range(steps)])

    @jax.jit
    def run(key):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, n), first)

        def body(state, a):
            obs, state, r, term, trunc, info = jax.vmap(env.step)(jax.random.split(key, n), state, a, handed)
            return state, (obs, r, info["episode"].done)

        return obs, jax.lax.scan(body, state, actions)[1]

    obs0, (obs, rewards, done) = run(jax.random.PRNGKey(0))
    assert obs.shape == (steps, n, 4 + 3 + 2 + 1)
    for i in range(n):
        want = ticker_reference([float(first[i, 0])] + [float(handed[i, 0])] * steps,
                                [int(a) for a in actions[:, i]], max_steps=3)
        np.testing.assert_array_equal(obs0[i], np.append(want[0]["obs"], want[0]["task"]))
        for t in range(steps):
            w = want[t + 1]
            np.testing.assert_array_equal(obs[t, i], np.append(w["obs"], w["task"]))
            assert float(rewards[t, i]) == w["reward"]
            assert bool(done[t, i]) == (w["terminated"] or w["truncated"])


def test_gymnax_purerl_wrappers_are_refused_with_a_pointer_and_adapted():
    with pytest.raises(TypeError, match=r"FlattenObservationWrapper.*envs/wrappers.py"):
        fixed_task_env(FlattenObservationWrapper(CartPole()))
    with pytest.raises(TypeError, match="GymnaxWrapperAdapter"):
        ObservePreviousActionReward(LogWrapper(CartPole()))
    te = ticker_task_env(max_steps=2)
    ours = rollout(te.wrap(FlattenObservation), TASKS, ACTIONS)
    adapted = rollout(te.wrap(FlattenObservationWrapper, GymnaxWrapperAdapter), TASKS, ACTIONS)
    for ro, ra in zip(ours, adapted):
        np.testing.assert_array_equal(ra["obs"], ro["obs"])
        if "info" in ro:
            np.testing.assert_array_equal(ra["info"]["final_observation"], ro["info"]["final_observation"])
            for k in ["reward", "terminated", "truncated"]:
                assert ra[k] == ro[k]
            assert int(ra["info"]["left"]) == int(ro["info"]["left"])
    assert any(r.get("truncated", False) for r in adapted)
    # gymnax's LogWrapper keys reach the merged info, exact where an episode ends
    logged = rollout(te.wrap(LogWrapper, GymnaxWrapperAdapter, ObservePreviousActionReward), TASKS, ACTIONS)
    ends = [r["info"] for r in logged[1:] if r["info"]["episode"].done]
    assert len(ends) >= 4
    for info in ends:
        assert bool(info["returned_episode"])
        assert float(info["returned_episode_returns"]) == float(info["episode"].episodic_return)
        assert int(info["returned_episode_lengths"]) == int(info["episode"].length)
    np.testing.assert_array_equal(logged[1]["obs"], ours[1]["obs"].tolist() + [0, 0, 1, 22.0, 0])


def test_cue_grid_optimal_policy_needs_the_previous_action():
    length = 5
    te = cue_grid_env(length=length).wrap(ObservePreviousActionReward)
    env, n = TaskAutoReset(te), 64
    assert cue_grid_env().observation_shape() == (3, 4)

    def optimal(obs):  # first step: side of the cue; later: repeat the previous action
        grid, prev, first = obs[:12].reshape(3, 4), obs[12:14], obs[-1]
        return jnp.where(first > 0, (grid[:, 2:].sum() > 0).astype(jnp.int32), jnp.argmax(prev))

    @jax.jit
    def run(key, constant):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, n), jnp.zeros((n, 1)))

        def body(c, k):
            obs, state = c
            a = jnp.where(constant, jnp.ones(n, jnp.int32), jax.vmap(optimal)(obs))
            obs, state, *_, info = jax.vmap(env.step)(jax.random.split(k, n), state, a, jnp.zeros((n, 1)))
            return (obs, state), info["episode"]

        return jax.lax.scan(body, (obs, state), jax.random.split(key, 3 * length))[1]

    ep = run(jax.random.PRNGKey(0), False)
    returns = np.asarray(ep.episodic_return)[np.asarray(ep.done)]
    assert returns.size == 3 * n and np.all(returns == length)
    np.testing.assert_array_equal(np.asarray(ep.score)[np.asarray(ep.done)], 1.0)
    ep = run(jax.random.PRNGKey(0), True)  # always "right": all or nothing, by the cue's side
    returns = np.asarray(ep.episodic_return)[np.asarray(ep.done)]
    assert set(np.unique(returns).tolist()) == {0.0, float(length)}


def test_previous_action_without_reward_is_popjaxrl_layout():
    """``reward=False``: ``[obs, previous action, first]`` (popjaxrl's AliasPrevActionV2), the same
    values as the full layout with the reward column removed."""
    import functools

    full = rollout(ticker_task_env().wrap(ObservePreviousActionReward), TASKS, ACTIONS)
    short_env = ticker_task_env().wrap(functools.partial(ObservePreviousActionReward, reward=False))
    assert short_env.observation_shape() == (4 + 3 + 1,)
    assert short_env.observation_space().shape == (8,)
    short = rollout(short_env, TASKS, ACTIONS)
    for g, s in zip(full, short):
        np.testing.assert_array_equal(np.delete(np.asarray(g["obs"]), -2), s["obs"])
