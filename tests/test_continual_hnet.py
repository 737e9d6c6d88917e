"""Task-conditioned hypernetwork: after training later tasks, the weights it generates for every
earlier task embedding stay within a small tolerance of those stored at that task's end (and drift
far more without the output regulariser); chunking reassembles the target exactly; the PPO hook
generates the policy from the hypernetwork."""

import jax
import jax.numpy as jnp
import numpy as np

from algos.continual import LearnerOptions, hypernet
from algos.supervised import SupervisedConfig, make_train, supervised_learner
from envs.supervised import make_stream


def _run(beta):
    stream = make_stream("permuted", num_tasks=3)
    config = SupervisedConfig(steps_per_task=40, batch_size=32, hidden=(16,), consolidation_size=16, lr=1e-3)
    options = LearnerOptions(hnet_beta=beta, hnet_chunk_size=2000, hnet_emb_dim=8, hnet_hidden=(16, 16))
    # chunked (2000 weights per chunk), so that the regulariser protects a compressive hypernetwork
    trainer = make_train(config, stream, supervised_learner("hnet", options, stream, config))
    state = trainer.init(jax.random.PRNGKey(0))
    chunk = jax.jit(lambda s: trainer.train_chunk(s, config.steps_per_task)[0])
    after = jax.jit(trainer.after_chunk)
    spec_outputs = []
    for t in range(3):
        state = after(chunk(state), jnp.int32(t))
        spec_outputs.append(np.asarray(state.learner_state.targets[t]))
    return trainer, state, spec_outputs


def test_outputs_for_earlier_embeddings_stay_put_after_later_tasks():
    trainer, state, stored = _run(beta=20.0)
    ls = state.learner_state
    drift = []
    for t in range(2):
        now = hypernet.flatten(trainer.learner.model_params(state.params, ls, jnp.int32(t)))
        drift.append(float(jnp.linalg.norm(now - stored[t]) / np.linalg.norm(stored[t])))
    assert max(drift) < 0.03, drift
    # every task was trained (above the chance level of 0.1) and the generated weights differ
    assert np.all(np.diagonal(np.asarray(state.R)) > 0.15)
    assert np.linalg.norm(stored[0] - stored[2]) > 0.01 * np.linalg.norm(stored[0])
    _, free_state, free_stored = _run(beta=0.0)
    free_drift = float(jnp.linalg.norm(
        hypernet.flatten(trainer.learner.model_params(free_state.params, free_state.learner_state, jnp.int32(0)))
        - free_stored[0]) / np.linalg.norm(free_stored[0]))
    assert free_drift > 5 * max(drift), (free_drift, drift)


def test_chunked_generation_reassembles_the_target_tree():
    target = {"a": jnp.zeros((3, 4)), "b": jnp.zeros((5,)), "c": {"d": jnp.zeros((2, 2, 2))}}
    for chunk in (None, 7, 25, 100):
        spec = hypernet.hnet_spec(target, emb_dim=3, hidden=(4,), chunk_size=chunk, chunk_emb_dim=2)
        assert spec.total == 25 and spec.num_chunks == (1 if chunk is None else -(-25 // chunk))
        hnet = hypernet.init_hnet(jax.random.PRNGKey(0), spec)
        flat = hypernet.generate(hnet, spec, jnp.ones(3))
        tree = hypernet.unflatten(spec, flat)
        assert jax.tree.map(jnp.shape, tree) == jax.tree.map(jnp.shape, target)
        np.testing.assert_array_equal(np.asarray(hypernet.flatten(tree)), np.asarray(flat))
    # the fixed output scale: 1/sqrt(fan_in) for matrices, 0.1 for vectors
    spec = hypernet.hnet_spec(target, 3, (4,), None)
    np.testing.assert_allclose(spec.scale[:12], 1 / np.sqrt(3))
    np.testing.assert_allclose(spec.scale[12:17], 0.1)
    # without it (HyperInterval's default) every generated weight is the hypernetwork's output itself
    plain = hypernet.hnet_spec(target, 3, (4,), 7, output_scale=False)
    np.testing.assert_array_equal(plain.scale[:25], 1.0)
    np.testing.assert_array_equal(plain.scale[25:], 0.0)
