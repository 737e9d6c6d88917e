"""The recurrent PPO path (per-environment sequences, the stored carry, V(final obs) from the stored
per-step carry) against the feed-forward path on the same data: with a memory-less core both must
make the same update. And the POPGym preset is the paper's table."""

import jax
import jax.numpy as jnp
import numpy as np

from algos.networks import Policy, recurrent_policy
from algos.ppo import PPOConfig, make_train
from algos.presets import PPO_PRESETS, ppo_preset
from memory.dense import Dense
from tests.policy_test_envs import cue_recall_env


def _as_feedforward(rec: Policy) -> Policy:
    """The same network as a feed-forward policy: every step a length-1 sequence of its own."""

    def apply(params, carry, obs, reset, task):
        lead = obs.shape[:-1]
        flat = lambda x: x.reshape((1, -1) + x.shape[len(lead):])  # noqa: E731
        _, dist, value = rec.apply(params, (), flat(obs), flat(reset), flat(task))
        return carry, jax.tree.map(lambda x: x.reshape(lead + x.shape[2:]), dist), value.reshape(lead)

    return Policy(rec.init, apply, lambda batch: (), recurrent=False)


def test_memoryless_core_makes_the_feedforward_update():
    config = PPOConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 2, num_minibatches=4,
                       update_epochs=2, lr=1e-3, minibatch_axis="envs")
    env = cue_recall_env()
    rec = recurrent_policy(Dense(16), 2, discrete=True, encoder=(16,), head_hidden=(16,))
    ff = _as_feedforward(rec)
    t_rec, t_ff = make_train(config, env, policy=rec), make_train(config, env, policy=ff)
    key = jax.random.PRNGKey(3)
    s_rec, s_ff = t_rec.init(key), t_ff.init(key)
    chex_equal = lambda a, b: jax.tree.map(  # noqa: E731
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
    chex_equal(s_rec.train_state.params, s_ff.train_state.params)
    s_rec, m_rec = jax.jit(lambda s: t_rec.train_chunk(s, 2))(s_rec)
    s_ff, m_ff = jax.jit(lambda s: t_ff.train_chunk(s, 2))(s_ff)
    chex_equal(s_rec.train_state.params, s_ff.train_state.params)
    np.testing.assert_allclose(m_rec["loss/actor"], m_ff["loss/actor"], rtol=1e-4, atol=1e-6)
    # the update did move the parameters (the comparison is not between two untouched states)
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s_rec.train_state.params,
                         t_rec.init(key).train_state.params)
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_popgym_preset_is_the_papers_table():
    p = PPO_PRESETS["popjaxrl_popgym"]
    assert (p.num_envs, p.num_steps, p.update_epochs, p.num_minibatches) == (64, 1024, 30, 8)
    assert (p.lr, p.lr_schedule, p.gae_lambda, p.ent_coef, p.vf_coef, p.clip_eps) == (
        5e-5, "constant", 1.0, 0.0, 1.0, 0.2)
    assert p.num_updates == 228  # 15M steps / 65,536
    assert ppo_preset("popjaxrl_popgym", lr=1e-4).lr == 1e-4
    try:
        ppo_preset("nope")
    except ValueError as e:
        assert "popjaxrl_popgym" in str(e)
    else:
        raise AssertionError("unknown preset accepted")
