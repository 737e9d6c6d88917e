"""A learner gives the same numbers under the supervised trainer and under a direct call of the
protocol's functions (init, loss, Adam step, end_task, predict); the registry refuses unknown names."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from algos.continual import LearnerOptions, ModelSpec, make_learner
from algos.learner import trained_params
from algos.supervised import (SupervisedConfig, classification_loss, make_train, masked_argmax, mlp_classifier,
                              supervised_learner)
from envs.supervised import make_stream


@pytest.mark.parametrize("name", ["ewc", "replay", "hnet"])
def test_trainer_equals_direct_calls(name):
    stream = make_stream("split_task", num_tasks=2)
    config = SupervisedConfig(steps_per_task=3, batch_size=8, hidden=(6,), consolidation_size=12)
    options = LearnerOptions(ewc_strength=50.0, replay_capacity=10, replay_batch=4, fisher_samples=8,
                             hnet_hidden=(4,), hnet_emb_dim=3, hnet_beta=0.5, fisher_batch=4)
    trainer = make_train(config, stream, supervised_learner(name, options, stream, config))
    key = jax.random.PRNGKey(3)
    state = trainer.train(key)

    # the same run by hand, through the protocol's functions only
    learner = trainer.learner
    k_stream, k_net, k_learner, k_params, k = jax.random.split(key, 5)
    tasks = stream.init(k_stream)
    net = mlp_classifier(config.hidden, stream.num_classes).init(k_net, jnp.zeros((1, stream.input_dim)))
    params = trained_params(learner, k_params, net)
    lstate = learner.init(k_learner, net, None)
    tx = optax.adam(config.lr)
    opt = tx.init(params)
    loss = learner.loss(classification_loss(trainer.apply))
    for task in range(2):
        for _ in range(config.steps_per_task):
            k, k_batch, k_loss = jax.random.split(k, 3)
            batch = stream.sample_batch(tasks, jnp.int32(task), k_batch, config.batch_size)
            grads, _ = jax.grad(loss, has_aux=True)(params, lstate, batch, jnp.int32(task), k_loss)
            updates, opt = tx.update(grads, opt, params)
            params = optax.apply_updates(params, updates)
        k, k_data = jax.random.split(k)
        ev, valid = stream.eval_batch(tasks, jnp.int32(task), split="train")
        take = jnp.argsort(jnp.where(valid, jax.random.uniform(k_data, valid.shape), jnp.inf))[:12]
        data = jax.tree.map(lambda a: a[take], ev)
        # the row of R: accuracy of predict on every task
        for j in range(2):
            tb, tv = stream.eval_batch(tasks, jnp.int32(j))
            acc = ((masked_argmax(learner.predict(params, lstate, tb.x, jnp.int32(j)), tb.logit_mask) == tb.y)
                   & tv).sum() / tv.sum()
            assert float(acc) == pytest.approx(float(state.R[task, j]), abs=1e-6)
        lstate = learner.end_task(lstate, params, jnp.int32(task), data)
    # Adam's m / sqrt(v) turns a rounding-level difference of a near-zero gradient entry (the
    # hypernetwork's large head, reduced in another order; EWC's A (theta - m) where theta sits at
    # the Fisher-weighted centre m) into up to one step of size lr
    atol = 2 * config.lr if name in ("hnet", "ewc") else 2e-5
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=atol)


def test_registry_refuses_unknown_learners_and_missing_pieces():
    spec = ModelSpec(apply=lambda p, x: x, params_example={}, max_tasks=2)
    with pytest.raises(ValueError, match="unknown learner"):
        make_learner("si", spec)
    with pytest.raises(ValueError, match="log_probs"):
        make_learner("ewc", spec)
    with pytest.raises(ValueError, match="replay-kind"):
        make_learner("replay", spec, LearnerOptions(replay_kind="lru"))


def test_reset_optimizer_starts_each_task_with_a_fresh_adam_state():
    """With reset_optimizer the state after a task boundary is Adam's initial one (count 0, zero
    moments) at the trained parameters; without it the moments carry over."""
    stream = make_stream("split_task", num_tasks=2)
    for reset in (True, False):
        config = SupervisedConfig(steps_per_task=3, batch_size=8, hidden=(6,), consolidation_size=12,
                                  reset_optimizer=reset)
        trainer = make_train(config, stream, supervised_learner("finetune", LearnerOptions(), stream, config))
        state = trainer.init(jax.random.PRNGKey(0))
        state, _ = trainer.train_chunk(state, 3)
        state = trainer.after_chunk(state, jnp.int32(0))  # end of task 0
        adam = state.opt_state[0]
        assert int(adam.count) == (0 if reset else 3)
        moments = max(float(jnp.max(jnp.abs(m))) for m in jax.tree.leaves(adam.mu))
        assert (moments == 0.0) if reset else (moments > 0.0)
