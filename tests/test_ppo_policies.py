"""PPO with a recurrent (GRU) policy, a task-conditioned two-head policy and continuous actions, on
problems with known answers."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.distributions import Categorical
from algos.networks import feedforward_policy, recurrent_policy
from algos.ppo import PPOConfig, make_train
from memory import GRU
from tests.policy_test_envs import cue_recall_env, target_reach_env, task_bandit_env

HIDDEN = 32


def gru_policy(action_dim: int = 2):
    return recurrent_policy(GRU(HIDDEN), action_dim, discrete=True, encoder=(HIDDEN,))


CUE_CONFIG = PPOConfig(num_envs=16, num_steps=32, total_timesteps=16 * 32 * 150, num_minibatches=4,
                       lr=3e-3, lr_schedule="constant", gamma=0.99, ent_coef=0.01)


def _late_return(metrics, last=20):
    return float(metrics["return_sum"][-last:].sum() / metrics["episodes"][-last:].sum())


def test_recurrent_replay_reproduces_rollout_log_probs():
    """One epoch, one minibatch: the loss sees the rollout's parameters, so if PPO replays each
    environment's sequence from the stored carry with the right resets, pi/pi_old is exactly 1.
    A carry not restored at the rollout's start, or resets out of step, makes the KL positive."""
    # 14 steps per rollout, 4 per episode: rollouts start mid-episode, so the stored carry matters
    config = dataclasses.replace(CUE_CONFIG, num_envs=4, num_steps=14, total_timesteps=4 * 14 * 4,
                                 update_epochs=1, num_minibatches=1)
    trainer = make_train(config, cue_recall_env(), policy=gru_policy())
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert float(metrics["episodes"].sum()) == 4 * (4 * 14 // 4)  # every 4-step episode ended
    np.testing.assert_array_less(np.abs(np.asarray(metrics["loss/approx_kl"])), 1e-6)
    np.testing.assert_array_equal(np.asarray(metrics["loss/clip_frac"]), 0.0)
    assert state.carry.shape == (4, HIDDEN) and float(jnp.abs(state.carry).sum()) > 0


def test_recurrent_next_values_come_from_the_pre_reset_carry():
    """V(final_obs) of every step, computed after the rollout in one batched call, equals the value
    the policy gives at the next step of the same episode (where there is one) and, at episode
    ends, V of the final observation stepped from the carry before the reset."""
    config = dataclasses.replace(CUE_CONFIG, num_envs=3, num_steps=10, total_timesteps=3 * 10, num_minibatches=1)
    trainer = make_train(config, cue_recall_env(), policy=gru_policy())
    state = jax.jit(trainer.init)(jax.random.PRNGKey(2))
    _, traj = jax.jit(trainer.rollout)(state)
    params = state.train_state.params
    flat = lambda x: x.reshape((30,) + x.shape[2:])
    _, _, v_next = trainer.policy.apply(params, flat(traj.carry), flat(traj.final_obs)[None],
                                        jnp.zeros((1, 30), bool), flat(traj.task)[None])
    v_next = np.asarray(v_next[0]).reshape(10, 3)
    done, value = np.asarray(traj.done), np.asarray(traj.value)
    np.testing.assert_allclose(v_next[:-1][~done[:-1]], value[1:][~done[:-1]], rtol=1e-5, atol=1e-6)
    assert done.any()


def test_recurrent_policy_learns_to_remember_the_cue():
    """Only memory beats 0.5 on CueRecall; the GRU policy reaches >= 0.9, the MLP stays near 0.5."""
    env = cue_recall_env(delay=3)
    _, m_gru = jax.jit(make_train(CUE_CONFIG, env, policy=gru_policy()).train)(jax.random.PRNGKey(1))
    _, m_mlp = jax.jit(make_train(CUE_CONFIG, env).train)(jax.random.PRNGKey(1))
    assert _late_return(m_gru) >= 0.9, _late_return(m_gru)
    assert 0.35 <= _late_return(m_mlp) <= 0.65, _late_return(m_mlp)


def test_recurrent_policy_needs_envs_minibatches():
    with pytest.raises(ValueError, match="minibatch_axis='envs'"):
        make_train(dataclasses.replace(CUE_CONFIG, minibatch_axis="flat"), cue_recall_env(),
                   policy=gru_policy())


class TwoHeads(nn.Module):
    """One Categorical head per task id: the task selects the head."""

    @nn.compact
    def __call__(self, obs, task):
        logits = jnp.stack([nn.Dense(2, name=f"head{k}")(obs) for k in range(2)], axis=-2)
        arm = task[..., 0].astype(jnp.int32)
        chosen = jnp.take_along_axis(logits, arm[..., None, None], axis=-2)[..., 0, :]
        return Categorical(logits=chosen), nn.Dense(1)(obs)[..., 0] * 0.0 + 0.5


def test_two_head_policy_selects_its_head_by_task():
    """TaskBandit pays the arm named by the task: a two-head policy that reads the task reaches
    return 1; the task-blind MLP is stuck near 0.5; the MLP with the task in its observation
    (``context_in_obs``) also reaches 1."""
    from teachers.random import random_teacher

    env = task_bandit_env()
    teacher = random_teacher(env.task_space)
    config = PPOConfig(num_envs=16, num_steps=8, total_timesteps=16 * 8 * 60, num_minibatches=4,
                       lr=1e-2, lr_schedule="constant", gamma=0.0, gae_lambda=0.0, ent_coef=0.0)
    two = make_train(config, env, teacher, policy=feedforward_policy(TwoHeads(), sees_task=True))
    state, m_two = jax.jit(two.train)(jax.random.PRNGKey(0))
    _, m_blind = jax.jit(make_train(config, env, teacher).train)(jax.random.PRNGKey(0))
    assert _late_return(m_two, 10) > 0.95, _late_return(m_two, 10)
    assert 0.35 < _late_return(m_blind, 10) < 0.65, _late_return(m_blind, 10)
    obs, tasks = jnp.ones((2, 1)), jnp.array([[0.0], [1.0]])
    _, dist, _ = two.policy.apply(state.train_state.params, (), obs, jnp.zeros(2, bool), tasks)
    np.testing.assert_array_equal(np.asarray(dist.mode()), [0, 1])
    seen = make_train(dataclasses.replace(config, context_in_obs=True), env, teacher)
    _, m_seen = jax.jit(seen.train)(jax.random.PRNGKey(0))
    assert _late_return(m_seen, 10) > 0.95, _late_return(m_seen, 10)


def test_continuous_policy_learns_to_output_the_target():
    """TargetReach pays -(a - target)^2: PPO's Gaussian mean must track the target (return -> 0
    from about -0.33 for a = 0 plus the exploration variance)."""
    config = PPOConfig(num_envs=16, num_steps=16, total_timesteps=16 * 16 * 250, num_minibatches=4,
                       lr=3e-3, ent_coef=0.0, gamma=0.0, gae_lambda=0.0)
    trainer = make_train(config, target_reach_env())
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    early = float(metrics["return_sum"][:5].sum() / metrics["episodes"][:5].sum())
    late = _late_return(metrics)
    assert early < -0.8, early  # a = N(0, 1): E[-(a - t)^2] = -(1 + 1/3)
    assert late > -0.1, late
    targets = jnp.linspace(-1.0, 1.0, 9)[:, None]
    _, dist, _ = trainer.policy.apply(state.train_state.params, (), targets, jnp.zeros(9, bool),
                                      jnp.zeros((9, 1)))
    np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), np.asarray(targets[:, 0]), atol=0.15)


def test_wrapped_env_trains_through_the_auto_reset_with_its_info():
    """CueGrid (2-D observations): flattened and with the previous action and reward in the
    observation, PPO beats the memoryless bound (1 + 4) / 2 = 2.5 (optimal 4); flattened alone it
    cannot. The environment's own info key ``cue_side`` reaches the trajectory, equal to the action
    that was paid."""
    from envs.wrappers import FlattenObservation, ObservePreviousActionReward
    from tests.wrapper_test_envs import cue_grid_env

    config = PPOConfig(num_envs=8, num_steps=64, total_timesteps=8 * 64 * 250, lr=3e-3)
    flat_env = cue_grid_env().wrap(FlattenObservation)
    memo_env = cue_grid_env().wrap(FlattenObservation, ObservePreviousActionReward)
    assert memo_env.observation_shape() == (12 + 2 + 1 + 1,)
    memo = make_train(config, memo_env)
    _, m_memo = jax.jit(memo.train)(jax.random.PRNGKey(0))
    _, m_flat = jax.jit(make_train(config, flat_env).train)(jax.random.PRNGKey(0))
    assert _late_return(m_memo, 10) > 2.8, _late_return(m_memo, 10)
    assert _late_return(m_flat, 10) < 2.7, _late_return(m_flat, 10)
    _, traj = jax.jit(memo.rollout)(jax.jit(memo.init)(jax.random.PRNGKey(1)))
    side = np.asarray(traj.info["cue_side"])
    np.testing.assert_array_equal(np.asarray(traj.reward) == 1.0, np.asarray(traj.action) == side)
