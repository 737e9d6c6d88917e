"""Active self-paced learning lifted to task curricula: confident tasks self-paced, unsure ones escalated.

Lin, Wang, Meng, Zuo and Zhang, "Active Self-Paced Learning for Cost-Effective and Progressive Face
Identification" (arXiv:1701.03555; TPAMI 2018). In the paper a CNN ranks unlabelled face images by its
prediction confidence; high-confidence images are pseudo-labelled and trained on automatically (the
self-paced part: hard SPL weights ``v_i = 1`` iff the loss is below a pace ``lambda`` that grows every
round so that harder samples enter), low-confidence images go to a user for annotation (the active
part, a few per round), and annotated images are forced into every later round (the *dynamic
curriculum constraint*).

The mapping onto RL tasks:

=========================  ==================================================================
face identification        task curriculum
=========================  ==================================================================
unlabelled image           a task of a fixed pool (``pool_size`` tasks, uniform over the box)
prediction confidence      the learner's running score on the task (exponential average of
                           the scores of its episodes, rate ``score_rate``); loss = 1 - score
pseudo-labelled (SPL)      ``v_i = 1`` iff the task has been played and ``1 - score_i < lambda``
pace lambda, growing       ``lambda <- min(pace_max, pace_growth * lambda)`` after every update,
                           from ``pace_init`` (Kumar et al. 2010's constant factor per round)
user annotation (active)   up to ``query_budget`` not-confident, not-yet-scored tasks per update
                           go to an external scorer; those nearest the pace boundary (highest
                           running score, unplayed last, ties at random) first
dynamic curriculum         a scored task stays in the curriculum for good
fine-tuning the CNN        the learner trains on tasks drawn uniformly from the curriculum
                           (``v_i = 1`` or scored); from the whole pool while it is empty
=========================  ==================================================================

The external scorer is a user-supplied pure function ``scorer(key, tasks[q, d], query[q]) ->
scores[q]`` in [0, 1] (e.g. an oracle's judgement of the task, or a costly evaluation); its score
initialises the running score of a task not yet played. Without one (``scorer=None``, what the
registry builds and what the experiments use), the environment itself is the scorer: an escalated
task enters the curriculum and the episodes the learner then plays on it are its evaluation. Either
way at most ``query_budget`` tasks are escalated per update (tested); an update whose batch holds no
episode changes nothing (the pace grows per update with episodes).

The exact lambda growth rule and constants of the paper are not published in its abstract; the
defaults here are stated choices, all in :class:`ActiveSelfPacedConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers.base import InputCounts, Teacher, checked_sample, checked_update

Scorer = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class ActiveSelfPacedConfig:
    """Active self-paced options (the pace schedule and the query budget)."""

    pool_size: int = 100
    query_budget: int = 2
    """tasks escalated to the external scorer per update"""
    pace_init: float = 0.2
    """initial pace lambda: a played task is confident when 1 - score < lambda"""
    pace_growth: float = 1.05
    """lambda is multiplied by this after every update"""
    pace_max: float = 1.0
    score_rate: float = 0.2
    """rate of the running score of each pool task"""

    def validate(self) -> None:
        if self.pool_size < 1 or not 0 <= self.query_budget <= self.pool_size:
            raise ValueError("need pool_size >= 1 and 0 <= query_budget <= pool_size")
        if not (self.pace_init > 0 and self.pace_growth >= 1.0 and self.pace_max >= self.pace_init):
            raise ValueError("need pace_init > 0, pace_growth >= 1 and pace_max >= pace_init")
        if not 0 < self.score_rate <= 1:
            raise ValueError(f"score_rate must be in (0, 1], got {self.score_rate}")


@struct.dataclass
class ActiveSelfPacedState:
    pool: jax.Array  # [P, d]
    score: jax.Array  # [P] running score (confidence)
    played: jax.Array  # [P] bool: has a score (episodes or the scorer)
    scored: jax.Array  # [P] bool: escalated once (stays in the curriculum)
    pace: jax.Array  # lambda
    key: jax.Array
    updates: jax.Array
    queries: jax.Array  # escalations so far
    episodes: jax.Array
    inputs: InputCounts  # bad input received (teachers.base)


def curriculum_mask(state: ActiveSelfPacedState) -> jax.Array:
    """``v_i``: confident (played, ``1 - score < lambda``) or scored."""
    confident = state.played & (1.0 - state.score < state.pace)
    return confident | state.scored


def active_self_paced(
    task_space: TaskSpace,
    config: ActiveSelfPacedConfig | None = None,
    scorer: Scorer | None = None,
    pool: jax.Array | None = None,
) -> Teacher:
    """The active self-paced teacher (module docstring); ``pool [P, d]`` replaces the uniform pool."""
    config = config or ActiveSelfPacedConfig()
    config.validate()
    dim, q = task_space.dim, config.query_budget
    if pool is not None:
        pool = jnp.asarray(task_space.validate(pool, "active_self_paced pool"), jnp.float32)
    size = config.pool_size if pool is None else pool.shape[0]
    if q > size:
        raise ValueError(f"query_budget {q} exceeds the pool of {size} tasks")

    def init(key: jax.Array) -> ActiveSelfPacedState:
        k_pool, key = jax.random.split(key)
        tasks = task_space.sample_uniform(k_pool, size) if pool is None else pool
        zi = jnp.zeros((), jnp.int32)
        return ActiveSelfPacedState(
            pool=tasks, score=jnp.zeros((size,), jnp.float32), played=jnp.zeros((size,), bool),
            scored=jnp.zeros((size,), bool), pace=jnp.asarray(config.pace_init, jnp.float32), key=key,
            updates=zi, queries=zi, episodes=zi, inputs=InputCounts.zeros(),
        )

    @checked_sample("active_self_paced")
    def sample(state: ActiveSelfPacedState, key: jax.Array, n: int):
        v = curriculum_mask(state)
        logits = jnp.where(v.any(), jnp.where(v, 0.0, -jnp.inf), jnp.zeros((size,)))
        idx = jax.random.categorical(key, logits, shape=(n,))
        return state, state.pool[idx]

    @checked_update("active_self_paced", task_space)
    def update(state: ActiveSelfPacedState, tasks, scores, mask, **extras) -> ActiveSelfPacedState:
        del extras
        old_state = state
        finite = jnp.isfinite(scores) & jnp.all(jnp.isfinite(tasks), axis=1)
        valid = mask & finite
        # each episode belongs to its nearest pool task (sampled tasks are pool tasks exactly)
        d2 = jnp.sum((jnp.where(valid[:, None], tasks, 0.0)[:, None] - state.pool[None]) ** 2, axis=-1)
        owner = jnp.argmin(d2, axis=1)
        w = valid.astype(jnp.float32)
        counts = jnp.zeros((size,), jnp.float32).at[owner].add(w)
        sums = jnp.zeros((size,), jnp.float32).at[owner].add(jnp.where(valid, scores, 0.0))
        batch_mean = sums / jnp.maximum(counts, 1.0)
        hit = counts > 0
        running = jnp.where(state.played, state.score + config.score_rate * (batch_mean - state.score), batch_mean)
        score = jnp.where(hit, running, state.score)
        played = state.played | hit
        state = state.replace(score=score, played=played)

        # the active part: escalate up to q not-confident, unscored tasks, nearest the boundary first
        key, k_tie, k_score = jax.random.split(state.key, 3)
        confident = played & (1.0 - score < state.pace)
        candidate = ~confident & ~state.scored
        priority = jnp.where(played, score, -1.0) + 1e-4 * jax.random.uniform(k_tie, (size,))
        _, top = jax.lax.top_k(jnp.where(candidate, priority, -jnp.inf), q)
        query = candidate[top]
        scored = state.scored.at[top].set(state.scored[top] | query)
        if scorer is not None:
            external = jnp.asarray(scorer(k_score, state.pool[top], query), jnp.float32).reshape(q)
            label = query & ~played[top] & jnp.isfinite(external)
            score = score.at[top].set(jnp.where(label, external, score[top]))
            played = played.at[top].set(played[top] | label)
        new = state.replace(
            score=score, played=played, scored=scored, key=key,
            pace=jnp.minimum(config.pace_max, state.pace * config.pace_growth),
            updates=state.updates + 1, queries=state.queries + query.sum().astype(jnp.int32),
            episodes=state.episodes + valid.sum().astype(jnp.int32),
        )
        # a batch without episodes is no round: nothing changes (the bad-input counts are kept)
        keep = lambda a, b: jnp.where(valid.any(), a, b)  # noqa: E731
        return jax.tree.map(keep, new, old_state)

    return Teacher(init, sample, update, task_space, "active_self_paced")
