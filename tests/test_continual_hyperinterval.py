"""HyperInterval: interval bound propagation is sound (every output for any embedding in the box lies
within the propagated bounds, through the hypernetwork and through the target MLP, on random boxes
and weights); the universal embedding lies inside every task's box after training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def _tiny_learner(mode, custom_init=True):
    from algos.continual.hyperinterval import hyperinterval

    module, target = _target(jax.random.PRNGKey(7))
    learner = hyperinterval(module.apply, target, max_tasks=3, steps_per_task=4, strength=1.0, eps=2.0, mode=mode,
                            emb_dim=5, hidden=(9,), chunk_size=None, custom_init=custom_init)
    params = learner.init_params(jax.random.PRNGKey(1), target)
    return module, learner, params, learner.init(jax.random.PRNGKey(2), target, None)


def _batch(n=6, d=6, k=4):
    from envs.supervised import SupervisedBatch

    x = jax.random.uniform(jax.random.PRNGKey(9), (n, d))
    return SupervisedBatch(x, jnp.arange(n, dtype=jnp.int32) % k, jnp.ones((n, k), bool), jnp.zeros(n, jnp.int32))


def test_nested_regulariser_is_the_mean_over_lower_middle_upper_and_free_uses_midpoints():
    task_loss = lambda p, b, key: (jnp.float32(0.0), {})
    for mode in ("nested", "free"):
        _, learner, params, state = _tiny_learner(mode)
        params = dict(params, emb=params["emb"].at[1].set(0.7))
        state = learner.end_task(state, params, jnp.int32(0), None)
        state = learner.end_task(state, params, jnp.int32(1), None)
        # unchanged hypernetwork: the generated weights equal their targets
        _, aux = learner.loss(task_loss)(params, state, _batch(), jnp.int32(2), jax.random.PRNGKey(0))
        assert float(aux["learner/interval_reg"]) == pytest.approx(0.0, abs=1e-8)
        moved = dict(params, hnet=jax.tree.map(lambda w: w * 1.1 + 0.01, params["hnet"]))
        _, aux = learner.loss(task_loss)(moved, state, _batch(), jnp.int32(2), jax.random.PRNGKey(0))
        spec = hypernet.hnet_spec(_target(jax.random.PRNGKey(7))[1], 5, (9,), None, activation="relu",
                                  output_scale=False)  # HyperInterval's default
        want = 0.0
        for j in range(2):  # direct: regenerate both task boxes with the old and the new hypernetwork
            c, r = state.centers[j], state.radii[j]
            m0, r0 = hypernet.generate_interval(params["hnet"], spec, c, r)
            m1, r1 = hypernet.generate_interval(moved["hnet"], spec, c, r)
            mid = float(jnp.sum((m1 - m0) ** 2))
            if mode == "free":
                want += mid / 2
            else:
                lo, up = float(jnp.sum(((m1 - r1) - (m0 - r0)) ** 2)), float(jnp.sum(((m1 + r1) - (m0 + r0)) ** 2))
                want += (lo + mid + up) / 3 / 2
        assert float(aux["learner/interval_reg"]) == pytest.approx(want, rel=1e-4)


def test_custom_init_starts_a_new_task_at_the_previous_tasks_embedding():
    _, learner, params, state = _tiny_learner("nested")
    np.testing.assert_array_equal(np.asarray(params["emb"][1:]), 0.0)  # offsets from the copy
    params = dict(params, emb=params["emb"].at[0].add(0.3))  # "trained" task 0
    state = learner.end_task(state, params, jnp.int32(0), None)
    # task 1, untrained: the same box centre as task 0's final one, so the same generated weights
    w0 = hypernet.flatten(learner.model_params(params, state, jnp.int32(0)))
    state_done = state.replace(iteration=jnp.int32(10))  # past the eps ramp: the full box
    w1 = hypernet.flatten(learner.model_params(params, state_done, jnp.int32(1)))
    np.testing.assert_allclose(np.asarray(w1), np.asarray(w0), rtol=1e-6, atol=1e-7)
    # without custom_init the new task starts from its own random embedding
    _, plain, p2, s2 = _tiny_learner("nested", custom_init=False)
    s2 = plain.end_task(s2, p2, jnp.int32(0), None)
    assert not np.allclose(np.asarray(plain.model_params(p2, s2.replace(iteration=jnp.int32(10)), jnp.int32(1))
                                      ["params"]["Dense_0"]["kernel"]),
                           np.asarray(plain.model_params(p2, s2, jnp.int32(0))["params"]["Dense_0"]["kernel"]))
