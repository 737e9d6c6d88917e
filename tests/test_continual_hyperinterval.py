"""HyperInterval: interval bound propagation is sound (every output for any embedding in the box lies
within the propagated bounds, through the hypernetwork and through the target MLP, on random boxes
and weights); the universal embedding lies inside every task's box after training."""

import jax
import jax.numpy as jnp
import numpy as np

from algos.continual import hypernet
from algos.continual.hyperinterval import interval_mlp, universal_embedding
from algos.supervised import SupervisedConfig, make_train, mlp_classifier, supervised_learner
from algos.continual import LearnerOptions
from envs.supervised import make_stream

TOL = 1e-4


def _target(key, d=6, hidden=(7, 5), k=4):
    module = mlp_classifier(hidden, k)
    return module, module.init(key, jnp.zeros((1, d)))


def test_ibp_bounds_hold_through_hypernetwork_and_target():
    for trial in range(3):
        key = jax.random.PRNGKey(trial)
        k_t, k_h, k_c, k_r, k_s, k_x, k_w = jax.random.split(key, 7)
        module, target = _target(k_t)
        for chunk in (None, 17):
            spec = hypernet.hnet_spec(target, emb_dim=5, hidden=(9, 8), chunk_size=chunk, chunk_emb_dim=3,
                                      activation="relu")
            hnet = hypernet.init_hnet(k_h, spec)
            hnet = jax.tree.map(lambda w: w * 1.5, hnet)  # random, not only the initial scale
            center = jax.random.normal(k_c, (5,))
            radius = jax.random.uniform(k_r, (5,), maxval=0.8)
            mid, rad = hypernet.generate_interval(hnet, spec, center, radius)
            assert np.all(np.asarray(rad) >= 0)
            # hypernetwork: weights generated for embeddings anywhere in the box (corners included)
            u = jax.random.uniform(k_s, (256, 5), minval=-1.0, maxval=1.0)
            u = u.at[:32].set(jnp.sign(u[:32]))
            embs = center + u * radius
            ws = jax.vmap(lambda e: hypernet.generate(hnet, spec, e))(embs)
            assert np.all(np.asarray(ws) >= np.asarray(mid - rad) - TOL)
            assert np.all(np.asarray(ws) <= np.asarray(mid + rad) + TOL)
            # target network: logits of those weights and of random weights in the weight box
            x = jax.random.uniform(k_x, (11, 6), minval=-1.0, maxval=2.0)
            lower, upper = interval_mlp(hypernet.unflatten(spec, mid), hypernet.unflatten(spec, rad), x)
            rand_w = mid + rad * jax.random.uniform(k_w, (128,) + mid.shape, minval=-1.0, maxval=1.0)
            for w in jnp.concatenate([ws, rand_w]):
                logits = module.apply(hypernet.unflatten(spec, w), x)
                assert np.all(np.asarray(logits) >= np.asarray(lower) - TOL)
                assert np.all(np.asarray(logits) <= np.asarray(upper) + TOL)
            # a box of radius zero is a point: the bounds collapse onto the point network
            m0, r0 = hypernet.generate_interval(hnet, spec, center, jnp.zeros(5))
            np.testing.assert_allclose(np.asarray(m0), np.asarray(hypernet.generate(hnet, spec, center)), atol=1e-5)
            assert float(jnp.abs(r0).max()) == 0.0


def test_universal_embedding_of_overlapping_boxes_and_the_collapse_rule():
    centers = jnp.array([[0.0, 1.0], [0.5, 1.2], [0.2, 5.0]])
    radii = jnp.array([[1.0, 0.5], [1.0, 0.5], [1.0, 0.1]])
    u = universal_embedding(centers, radii, jnp.int32(2))  # the first two boxes overlap
    np.testing.assert_allclose(np.asarray(u), [(-0.5 + 1.0) / 2, (0.7 + 1.5) / 2], rtol=1e-6)
    u3 = universal_embedding(centers, radii, jnp.int32(3))  # dim 1 empty: lo = 4.9 > hi = 1.5 -> mean
    np.testing.assert_allclose(np.asarray(u3), [(-0.5 + 1.0) / 2, (4.9 + 1.5) / 2], rtol=1e-6)


def test_universal_embedding_lies_inside_every_trained_task_interval():
    stream = make_stream("split_task", num_tasks=3)
    config = SupervisedConfig(steps_per_task=12, batch_size=32, hidden=(16,), consolidation_size=16)
    options = LearnerOptions(hnet_chunk_size=300, hnet_emb_dim=6, hnet_hidden=(8,), hi_eps=2.0)
    trainer = make_train(config, stream, supervised_learner("hyperinterval", options, stream, config))
    state = jax.jit(trainer.train)(jax.random.PRNGKey(0))
    ls = state.learner_state
    assert int(ls.count) == 3
    u = universal_embedding(ls.centers, ls.radii, ls.count)
    lo, hi = np.asarray(ls.centers - ls.radii), np.asarray(ls.centers + ls.radii)
    assert np.all(lo <= np.asarray(u)[None] + 1e-6) and np.all(np.asarray(u)[None] <= hi + 1e-6)
    # nested boxes: radius eps / M in every dimension, centres within eps / (2M)
    np.testing.assert_allclose(np.asarray(ls.radii), 2.0 / 6, rtol=1e-6)
    assert np.all(np.abs(np.asarray(ls.centers)) <= 2.0 / 12 + 1e-6)
    # the trainer evaluates the universal embedding too (accuracies in [0, 1])
    assert np.all((np.asarray(state.universal_acc) >= 0) & (np.asarray(state.universal_acc) <= 1))
