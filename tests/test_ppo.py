"""PPO: learning on CartPole, the loss against hand-computed values, config validation, chunks, the
teacher in the loop (with the learner's extras), the learner protocol, vmapped hyperparameters."""

import dataclasses

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.distributions import Categorical
from algos.learner import Learner, null_learner
from algos.ppo import PPOBatch, PPOConfig, PPOHyperparams, make_train, ppo_loss
from algos.schedules import make_schedule
from envs.cartpole_tasks import cartpole_tasks
from envs.task_env import fixed_task_env
from teachers.base import Teacher
from teachers.random import random_teacher
from tests.countdown_env import countdown_task_env

SMALL = PPOConfig(num_envs=8, num_steps=64, total_timesteps=8 * 64 * 60)


def _mean_return(metrics, last):
    return float(metrics["return_sum"][-last:].sum() / metrics["episodes"][-last:].sum())


def _cartpole():
    env, params = gymnax.make("CartPole-v1")
    return fixed_task_env(env, params)


def test_ppo_learns_cartpole():
    trainer = make_train(dataclasses.replace(SMALL, total_timesteps=8 * 64 * 120), _cartpole())
    _, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    early = float(metrics["return_sum"][:5].sum() / metrics["episodes"][:5].sum())
    late = _mean_return(metrics, 10)
    assert early < 40.0  # a random policy balances ~20 steps
    assert late > 150.0, late


def test_ppo_loss_matches_hand_computed_values():
    """Two actions, logits fixed by the 'policy'; every term computed by hand in numpy."""
    logits = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, 0.5]], np.float32)
    value = np.array([1.0, 0.0, 2.0], np.float32)

    def apply(params, carry, obs, reset, task):
        return carry, Categorical(logits=jnp.asarray(logits) * params), jnp.asarray(value) * params

    old_logp = np.array([-0.5, -0.2, -1.0], np.float32)
    batch = PPOBatch(
        obs=jnp.zeros((3, 1)), reset=jnp.zeros(3, bool), task=jnp.zeros((3, 1)),
        action=jnp.array([1, 0, 1]), log_prob=jnp.asarray(old_logp), value=jnp.array([0.8, 0.5, 2.5]),
        advantages=jnp.array([1.0, -2.0, 0.5]), targets=jnp.array([1.5, -0.5, 2.0]), carry=(),
    )
    hp = PPOHyperparams.from_config(PPOConfig(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01))
    loss, aux = ppo_loss(jnp.float32(1.0), batch, jax.random.PRNGKey(0), apply=apply, hparams=hp,
                         clip_value=True, normalize_advantages=False)

    logp_all = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    logp = logp_all[np.arange(3), [1, 0, 1]]
    ratio = np.exp(logp - old_logp)
    adv = np.array([1.0, -2.0, 0.5])
    actor = -np.mean(np.minimum(ratio * adv, np.clip(ratio, 0.8, 1.2) * adv))
    v_old, targets = np.array([0.8, 0.5, 2.5]), np.array([1.5, -0.5, 2.0])
    v_clip = v_old + np.clip(value - v_old, -0.2, 0.2)
    vloss = 0.5 * np.mean(np.maximum((value - targets) ** 2, (v_clip - targets) ** 2))
    entropy = -np.mean((np.exp(logp_all) * logp_all).sum(1))
    np.testing.assert_allclose(float(aux["loss/actor"]), actor, rtol=1e-5)
    np.testing.assert_allclose(float(aux["loss/value"]), vloss, rtol=1e-5)
    np.testing.assert_allclose(float(aux["loss/entropy"]), entropy, rtol=1e-5)
    np.testing.assert_allclose(float(loss), actor + 0.5 * vloss - 0.01 * entropy, rtol=1e-5)
    np.testing.assert_allclose(float(aux["loss/clip_frac"]), np.mean(np.abs(ratio - 1) > 0.2))
    # unclipped value loss and normalised advantages
    _, aux2 = ppo_loss(jnp.float32(1.0), batch, jax.random.PRNGKey(0), apply=apply, hparams=hp,
                       clip_value=False, normalize_advantages=True)
    np.testing.assert_allclose(float(aux2["loss/value"]), 0.5 * np.mean((value - targets) ** 2), rtol=1e-5)
    norm = (adv - adv.mean()) / (adv.std() + 1e-8)
    np.testing.assert_allclose(float(aux2["loss/actor"]),
                               -np.mean(np.minimum(ratio * norm, np.clip(ratio, 0.8, 1.2) * norm)), rtol=1e-5)


def test_linear_schedule_is_purejaxrl_anneal():
    n = 7
    frac = make_schedule("linear", n)
    np.testing.assert_allclose([float(frac(u)) for u in range(n)], [1 - u / n for u in range(n)], rtol=1e-6)
    assert float(make_schedule("constant", n)(5)) == 1.0
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        make_schedule("warm", n)


@pytest.mark.parametrize("axis", ["flat", "envs"])
def test_ppo_chunks_equal_one_call(axis):
    """Chunks of 2 and 4, and masked chunks (4 compiled, 2 + 4 active), equal one call of 6."""
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 6, minibatch_axis=axis)
    trainer = make_train(config, cartpole_tasks(), random_teacher(cartpole_tasks().task_space))
    key = jax.random.PRNGKey(3)
    full, m_full = jax.jit(trainer.train)(key)
    chunk = jax.jit(trainer.train_chunk, static_argnums=1)
    state = jax.jit(trainer.init)(key)
    s, m1 = chunk(state, 2)
    s, m2 = chunk(s, 4)
    jax.tree.map(np.testing.assert_array_equal, s.train_state.params, full.train_state.params)
    np.testing.assert_array_equal(np.concatenate([m1["return_sum"], m2["return_sum"]]), m_full["return_sum"])
    masked = jax.jit(lambda st, n: trainer.train_chunk(st, 4, n))
    s, m1 = masked(state, jnp.int32(2))
    s, m2 = masked(s, jnp.int32(4))
    jax.tree.map(np.testing.assert_array_equal, s.train_state.params, full.train_state.params)
    np.testing.assert_array_equal(np.concatenate([m1["return_sum"][:2], m2["return_sum"]]), m_full["return_sum"])
    assert int(s.update) == 6


def _recording_teacher(space, cap=512, round_tasks=True):
    """Records every finished episode it is told about: task, score and the learner's extras."""

    def init(key):
        z = jnp.zeros(cap)
        return {"n": jnp.zeros((), jnp.int32), "tasks": jnp.zeros((cap, space.dim)), "scores": z,
                "initial_value": z, "discounted_return": z}

    def sample(state, key, n):
        tasks = space.sample_uniform(key, n)
        return state, jnp.round(tasks) if round_tasks else tasks

    def update(state, tasks, scores, mask, **extras):
        pos = jnp.where(mask, state["n"] + jnp.cumsum(mask) - 1, cap)
        put = lambda name, x: state[name].at[pos].set(x, mode="drop")
        return {"n": state["n"] + mask.sum(), "tasks": put("tasks", tasks), "scores": put("scores", scores),
                "initial_value": put("initial_value", extras["initial_value"]),
                "discounted_return": put("discounted_return", extras["discounted_return"])}

    return Teacher(init, sample, update, space, "recorder", extras=("initial_value", "discounted_return"))


def test_teacher_sees_every_finished_episode_with_its_task():
    """The tasks/scores reported equal the tasks handed out and their returns."""
    task_env = countdown_task_env()
    teacher = _recording_teacher(task_env.task_space)
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 3, num_minibatches=2)
    state, metrics = jax.jit(make_train(config, task_env, teacher).train)(jax.random.PRNGKey(0))
    n = int(state.teacher_state["n"])
    assert n == int(metrics["episodes"].sum()) > 10
    tasks = np.asarray(state.teacher_state["tasks"][:n, 0])
    scores = np.asarray(state.teacher_state["scores"][:n])
    # Countdown: the return of an episode equals its task (length), score = return / 9
    np.testing.assert_allclose(scores, tasks / 9.0, rtol=1e-6)
    assert set(np.unique(tasks)) <= set(range(1, 10)) and len(np.unique(tasks)) > 3
    # every step pays 1, so the discounted return of an episode of length L is sum_{k<L} gamma^k
    disc = np.asarray(state.teacher_state["discounted_return"][:n])
    np.testing.assert_allclose(disc, (1 - 0.99 ** tasks) / (1 - 0.99), rtol=1e-5)


def test_teacher_receives_the_critics_value_at_each_episodes_first_observation():
    """``initial_value`` handed to the teacher equals V(first observation of that episode) under the
    parameters that acted then, recomputed here with the policy from the rollout's observations."""
    task_env = countdown_task_env()
    teacher = _recording_teacher(task_env.task_space)
    config = PPOConfig(num_envs=4, num_steps=24, total_timesteps=4 * 24, num_minibatches=2)
    trainer = make_train(config, task_env, teacher)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(1))
    _, traj = jax.jit(trainer.rollout)(state)
    after, _ = jax.jit(trainer.train_chunk, static_argnums=1)(state, 1)  # the same rollout, then learning
    _, _, v = trainer.policy.apply(state.train_state.params, (), traj.obs, traj.reset, traj.task)
    v, reset, done = np.asarray(v), np.asarray(traj.reset), np.asarray(traj.episode.done)
    expected = []
    for t in range(config.num_steps):  # episodes in the order they finished (step, then env)
        for e in range(config.num_envs):
            if done[t, e]:
                start = max(s for s in range(t + 1) if reset[s, e])
                expected.append(v[start, e])
    n = int(after.teacher_state["n"])
    assert n == len(expected) > 8
    np.testing.assert_allclose(np.asarray(after.teacher_state["initial_value"][:n]), expected, rtol=1e-5)
    assert np.std(expected) > 0  # the critic's values differ between first observations


def _probe_learner():
    """Adds ``strength * ||params - anchor||^2`` (per-seed state) and reports what it was shown: the
    task id, the sum of the batch's observations and a uniform draw from its key."""
    leaves = jax.tree.leaves

    def init(key, params, example):
        return {"anchor": params, "strength": jnp.float32(0.0)}

    def loss(task_loss):
        def wrapped(params, state, batch, task_id, key):
            value, aux = task_loss(params, batch, key)
            penalty = state["strength"] * sum(
                jnp.sum((a - b) ** 2) for a, b in zip(leaves(params), leaves(state["anchor"])))
            u = jax.random.uniform(key)
            return value + penalty, {**aux, "learner/penalty": penalty,
                                     "learner/task_id": task_id.astype(jnp.float32),
                                     "learner/obs_sum": batch.obs.sum(), "learner/u": u, "learner/u2": u * u}
        return wrapped

    def end_task(state, params, task_id, data):
        return {**state, "anchor": params}

    return Learner(init, loss, end_task, lambda params, state, x, task_id: x, "probe")


def test_learner_loss_reads_the_batch_the_task_id_and_a_key():
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 2)
    trainer = make_train(config, _cartpole(), learner=_probe_learner())
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0)).replace(task_id=jnp.int32(3))
    _, traj = jax.jit(trainer.rollout)(state)
    _, m = jax.jit(trainer.train_chunk, static_argnums=1)(state, 1)
    np.testing.assert_array_equal(np.asarray(m["learner/task_id"]), 3.0)
    # every epoch sees every step once, in num_minibatches pieces: mean piece sum = total / pieces
    np.testing.assert_allclose(float(m["learner/obs_sum"][0]),
                               float(traj.obs.sum()) / config.num_minibatches, rtol=1e-4)
    # a fresh key per minibatch: 16 different uniforms, so E[u^2] > E[u]^2
    assert float(m["learner/u2"][0]) - float(m["learner/u"][0]) ** 2 > 1e-3


def test_learner_state_is_per_seed_and_end_task_consolidates():
    """Seed 0 tied to its anchor (strength 1e3), seed 1 strength 0 trains exactly like the null
    learner; ``end_task`` on a fresh rollout moves the anchor to the current parameters."""
    config = dataclasses.replace(SMALL, total_timesteps=8 * 64 * 2)
    free = make_train(config, _cartpole())
    tied = make_train(config, _cartpole(), learner=_probe_learner())
    assert free.learner.name == "null"
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    s_free, _ = jax.jit(jax.vmap(free.train))(keys)
    start = jax.jit(jax.vmap(tied.init))(keys)
    start = start.replace(learner_state={**start.learner_state, "strength": jnp.array([1e3, 0.0])})
    s_tied, m = jax.jit(jax.vmap(lambda s: tied.train_chunk(s, config.num_updates)))(start)
    leaves = jax.tree.leaves

    def dist(a, b, seed):
        return sum(float(jnp.sum((x[seed] - y[seed]) ** 2)) for x, y in zip(leaves(a), leaves(b)))

    anchor = start.learner_state["anchor"]
    assert float(m["learner/penalty"][0, -1]) > 0.0 and float(m["learner/penalty"][1, -1]) == 0.0
    assert dist(s_tied.train_state.params, anchor, 0) < 0.5 * dist(s_free.train_state.params, anchor, 0)
    assert dist(s_tied.train_state.params, s_free.train_state.params, 1) < 1e-10

    def consolidate(s):
        s, traj = tied.rollout(s)
        return s.replace(learner_state=tied.learner.end_task(
            s.learner_state, s.train_state.params, s.task_id, traj))

    done = jax.jit(jax.vmap(consolidate))(s_tied)
    jax.tree.map(np.testing.assert_array_equal, done.learner_state["anchor"], s_tied.train_state.params)


def test_null_learner_predict_needs_a_model():
    learner = null_learner(apply=lambda p, x: p * x)
    assert float(learner.predict(2.0, (), 3.0, jnp.int32(0))) == 6.0
    with pytest.raises(ValueError, match="without a model"):
        null_learner().predict(2.0, (), 3.0, jnp.int32(0))


def test_vmapped_learning_rates_equal_separate_runs():
    """One jitted call over 4 learning rates x 2 seeds equals separate runs with those settings."""
    config = dataclasses.replace(SMALL, num_envs=4, num_steps=32, total_timesteps=4 * 32 * 3,
                                 num_minibatches=2)
    lrs = np.array([1e-4, 3e-4, 1e-3, 3e-3], np.float32)
    trainer = make_train(config, _cartpole())
    keys = jax.random.split(jax.random.PRNGKey(5), 2)

    def run(key, lr):
        state = trainer.init(key, PPOHyperparams.from_config(config, lr=lr))
        return trainer.train_chunk(state, config.num_updates)

    grid = jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, None)), in_axes=(None, 0)))
    states, metrics = grid(keys, jnp.asarray(lrs))
    for i, lr in enumerate(lrs):
        alone = make_train(dataclasses.replace(config, lr=float(lr)), _cartpole())
        j = i % 2
        s, m = jax.jit(alone.train)(keys[j])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a[i, j], b, rtol=2e-5, atol=1e-6),
                     states.train_state.params, s.train_state.params)
        np.testing.assert_allclose(metrics["return_sum"][i, j], m["return_sum"], rtol=1e-6)
    p = states.train_state.params
    first = jax.tree.leaves(p)[0]
    assert float(jnp.abs(first[0, 0] - first[3, 0]).max()) > 0  # the learning rates mattered


def test_config_errors_before_compiling():
    te = _cartpole()
    with pytest.raises(ValueError, match="num_minibatches"):
        make_train(PPOConfig(num_envs=4, num_steps=10, num_minibatches=3), te)
    with pytest.raises(ValueError, match="less than one update"):
        make_train(PPOConfig(total_timesteps=100), te)
    with pytest.raises(ValueError, match="gamma"):
        make_train(PPOConfig(gamma=1.5), te)
    with pytest.raises(ValueError, match="ent_coef must be a finite number"):
        make_train(PPOConfig(ent_coef=float("nan")), te)
    with pytest.raises(ValueError, match="lr_schedule"):
        make_train(PPOConfig(lr_schedule="warm"), te)
    with pytest.raises(ValueError, match="different task spaces"):
        make_train(PPOConfig(), te, random_teacher(cartpole_tasks().task_space))
    recorder = _recording_teacher(countdown_task_env().task_space)._replace(extras=("novelty",))
    with pytest.raises(ValueError, match="asks for extras"):
        make_train(PPOConfig(), countdown_task_env(), recorder)
    with pytest.raises(ValueError, match="PPOHyperparams has no fields"):
        PPOHyperparams.from_config(PPOConfig(), learning_rate=1.0)


def test_deferred_teacher_refit_in_the_static_loop_equals_refit_inside_update():
    """A GMM teacher with refit_period 3 (teachers.base.Deferred): PPO placing its refit after every
    third update (algos.loops.periodic_scan) trains as with the refit left inside
    ``update``; a masked chunk (``active``) equals the shorter chunk."""
    from teachers.registry import make_teacher

    task_env = cartpole_tasks()
    teacher = make_teacher("covar_gmm", task_env.task_space, fit_rate=5, k_max=3, refit_period=3)
    assert teacher.deferred is not None
    config = PPOConfig(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 6, num_minibatches=2, update_epochs=1)
    placed = make_train(config, task_env, teacher)
    inline = make_train(config, task_env, teacher._replace(deferred=None))
    s_placed, m_placed = jax.jit(placed.train)(jax.random.PRNGKey(3))
    s_inline, m_inline = jax.jit(inline.train)(jax.random.PRNGKey(3))
    assert int(s_inline.teacher_state.n_fits) >= 2
    np.testing.assert_allclose(np.asarray(m_placed["episodes"]), np.asarray(m_inline["episodes"]))
    close = lambda a, b: jax.tree.map(  # noqa: E731
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6), a, b)
    for part in ("teacher_state", "obs", "update"):
        close(getattr(s_placed, part), getattr(s_inline, part))
    close(s_placed.train_state.params, s_inline.train_state.params)

    state = jax.jit(placed.init)(jax.random.PRNGKey(4))
    chunk = jax.jit(placed.train_chunk, static_argnums=1)
    s_masked, m_masked = chunk(state, 6, jnp.int32(4))
    s_short, m_short = chunk(state, 4)
    for part in ("teacher_state", "obs", "update"):
        close(getattr(s_masked, part), getattr(s_short, part))
    close(s_masked.train_state.params, s_short.train_state.params)
    np.testing.assert_allclose(np.asarray(m_masked["episodes"][:4]), np.asarray(m_short["episodes"]))
