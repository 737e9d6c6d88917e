"""Active self-paced teacher: the query budget is never exceeded, and the self-paced selection rule
on a hand-made example."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.task_space import TaskSpace
from teachers.active_self_paced import ActiveSelfPacedConfig, active_self_paced, curriculum_mask

SPACE = TaskSpace.box(["a", "b"], [0.0, 0.0], [1.0, 1.0])
POOL = jnp.array([[0.1, 0.1], [0.3, 0.3], [0.5, 0.5], [0.7, 0.7], [0.9, 0.9]])


def test_hand_made_selection():
    # pace 0.6: a played task is confident when 1 - score < 0.6, i.e. score > 0.4
    config = ActiveSelfPacedConfig(pace_init=0.6, pace_growth=1.0, query_budget=1, score_rate=1.0)
    scorer = lambda key, tasks, query: jnp.full(tasks.shape[0], 0.25)
    teacher = active_self_paced(SPACE, config, scorer=scorer, pool=POOL)
    state = teacher.init(jax.random.PRNGKey(0))
    # episodes: task 0 scores 0.9, task 1 0.5, task 2 0.3; tasks 3 and 4 unplayed
    tasks = POOL[jnp.array([0, 1, 2, 0])]
    scores = jnp.array([0.9, 0.5, 0.3, 0.9])
    state = teacher.update(state, tasks, scores, jnp.ones(4, bool))
    np.testing.assert_allclose(state.score[:3], [0.9, 0.5, 0.3], rtol=1e-6)
    # confident: 0 and 1; not confident: 2 (played, 0.3) and 3, 4 (unplayed): the one nearest the
    # boundary (task 2) is escalated - one query, and it stays in the curriculum
    np.testing.assert_array_equal(state.scored, [False, False, True, False, False])
    np.testing.assert_array_equal(curriculum_mask(state), [True, True, True, False, False])
    assert int(state.queries) == 1
    _, sampled = teacher.sample(state, jax.random.PRNGKey(1), 3000)
    ids = np.argmin(np.linalg.norm(np.asarray(sampled)[:, None] - np.asarray(POOL)[None], axis=-1), axis=1)
    counts = np.bincount(ids, minlength=5)
    assert counts[3] == counts[4] == 0 and np.all(np.abs(counts[:3] / 3000 - 1 / 3) < 0.04)
    # next update: task 2's score drops, it stays (scored); an unplayed task is escalated and labelled
    # by the scorer (0.25: not confident, but in the curriculum for good)
    state = teacher.update(state, POOL[jnp.array([2])], jnp.array([0.0]), jnp.ones(1, bool))
    assert bool(state.scored[2]) and int(state.queries) == 2
    assert int(state.scored[3:].sum()) == 1
    j = 3 + int(np.argmax(np.asarray(state.scored[3:])))
    np.testing.assert_allclose(state.score[j], 0.25)
    np.testing.assert_array_equal(curriculum_mask(state)[:3], [True, True, True])


def test_budget_never_exceeded():
    budget = 3
    config = ActiveSelfPacedConfig(pool_size=40, query_budget=budget, pace_init=0.05, pace_growth=1.2)
    teacher = active_self_paced(SPACE, config)

    def run(key):
        def step(state, k):
            k_s, k_sc, k_m = jax.random.split(k, 3)
            state2, tasks = teacher.sample(state, k_s, 16)
            scores = jax.random.uniform(k_sc, (16,)) * tasks[:, 0]
            mask = jax.random.bernoulli(k_m, 0.5, (16,))
            new = teacher.update(state2, tasks, scores, mask)
            return new, (new.queries - state.queries, (new.scored & ~state.scored).sum(),
                         jnp.all(new.scored >= state.scored), jnp.all(~state.scored | curriculum_mask(new)))

        return jax.lax.scan(step, teacher.init(key), jax.random.split(key, 30))

    state, (spent, newly, monotone, kept) = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 8))
    spent, newly = np.asarray(spent), np.asarray(newly)
    assert spent.max() <= budget and np.all(spent == newly)
    assert np.all(np.asarray(state.queries) <= budget * 30)
    assert np.asarray(monotone).all() and np.asarray(kept).all()  # scored tasks stay in the curriculum
    assert np.asarray(state.queries).min() > 0


def test_bad_input():
    with pytest.raises(ValueError):
        active_self_paced(SPACE, ActiveSelfPacedConfig(pool_size=2, query_budget=3))
    with pytest.raises(ValueError):
        active_self_paced(SPACE, ActiveSelfPacedConfig(pace_growth=0.9))
    with pytest.raises(ValueError):
        active_self_paced(SPACE, pool=jnp.array([[2.0, 0.0]]))
