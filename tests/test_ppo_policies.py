"""PPO with a recurrent (GRU) policy and with continuous actions, on problems with known answers.

The GRU policy lives here, not in ``memory/`` (the memory issue brings the real cores): it only has
to show that PPO's recurrent path -- carry stored at the start of each rollout, whole per-environment
sequences in minibatches, done flags as resets, V(final_observation) from the pre-reset carry -- is
right.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from algos.distributions import Categorical
from algos.networks import Policy
from algos.ppo import PPOConfig, make_train
from tests.policy_test_envs import cue_recall_env, target_reach_env

HIDDEN = 32


class GRUActorCritic(nn.Module):
    """``(carry [B, H], obs [T, B, d], reset [T, B]) -> (carry, Categorical [T, B], value [T, B])``."""

    action_dim: int

    @nn.compact
    def __call__(self, carry, obs, reset):
        x = nn.tanh(nn.Dense(HIDDEN)(obs))

        def step(cell, h, inputs):
            x_t, reset_t = inputs
            h = jnp.where(reset_t[:, None], jnp.zeros_like(h), h)  # reset *before* reading obs
            return cell(h, x_t)

        scan = nn.scan(step, variable_broadcast="params", split_rngs={"params": False})
        carry, y = scan(nn.GRUCell(features=HIDDEN), carry, (x, reset))
        logits = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01))(y)
        value = nn.Dense(1)(y)[..., 0]
        return carry, Categorical(logits=logits), value


def gru_policy(action_dim: int) -> Policy:
    module = GRUActorCritic(action_dim)

    def init(key, obs_example):  # obs_example: [1, d]
        return module.init(key, jnp.zeros((1, HIDDEN)), obs_example[None], jnp.zeros((1, 1), bool))

    return Policy(init, module.apply, lambda batch: jnp.zeros((batch, HIDDEN)), recurrent=True)


CUE_CONFIG = PPOConfig(num_envs=16, num_steps=32, total_timesteps=16 * 32 * 150, num_minibatches=4,
                       minibatch_axis="envs", lr=3e-3, anneal_lr=False, gamma=0.99, ent_coef=0.01)


def _late_return(metrics, last=20):
    return float(metrics["return_sum"][-last:].sum() / metrics["episodes"][-last:].sum())


def test_recurrent_replay_reproduces_rollout_log_probs():
    """One epoch, one minibatch: the loss sees the rollout's parameters, so if PPO replays each
    environment's sequence from the stored carry with the right resets, pi/pi_old is exactly 1.
    A carry not restored at the rollout's start, or resets out of step, makes the KL positive."""
    # 14 steps per rollout, 4 per episode: rollouts start mid-episode, so the stored carry matters
    config = dataclasses.replace(CUE_CONFIG, num_envs=4, num_steps=14, total_timesteps=4 * 14 * 4,
                                 update_epochs=1, num_minibatches=1)
    trainer = make_train(config, cue_recall_env(), policy=gru_policy(2))
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    assert float(metrics["episodes"].sum()) == 4 * (4 * 14 // 4)  # every 4-step episode ended
    np.testing.assert_array_less(np.abs(np.asarray(metrics["loss/approx_kl"])), 1e-6)
    np.testing.assert_array_equal(np.asarray(metrics["loss/clip_frac"]), 0.0)
    assert state.carry.shape == (4, HIDDEN) and float(jnp.abs(state.carry).sum()) > 0


def test_recurrent_policy_learns_to_remember_the_cue():
    """Only memory beats 0.5 on CueRecall; the GRU policy reaches >= 0.9, the MLP stays near 0.5."""
    env = cue_recall_env(delay=3)
    _, m_gru = jax.jit(make_train(CUE_CONFIG, env, policy=gru_policy(2)).train)(jax.random.PRNGKey(1))
    mlp_config = dataclasses.replace(CUE_CONFIG, minibatch_axis="flat")
    _, m_mlp = jax.jit(make_train(mlp_config, env).train)(jax.random.PRNGKey(1))
    assert _late_return(m_gru) >= 0.9, _late_return(m_gru)
    assert 0.35 <= _late_return(m_mlp) <= 0.65, _late_return(m_mlp)


def test_recurrent_policy_needs_envs_minibatches():
    import pytest

    with pytest.raises(ValueError, match="minibatch_axis='envs'"):
        make_train(dataclasses.replace(CUE_CONFIG, minibatch_axis="flat"), cue_recall_env(),
                   policy=gru_policy(2))


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
    _, dist, _ = trainer.policy.apply(state.train_state.params, (), targets, jnp.zeros(9, bool))
    np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), np.asarray(targets[:, 0]), atol=0.15)
