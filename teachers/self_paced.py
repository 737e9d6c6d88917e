"""Self-paced deep RL (SPDL): a Gaussian context distribution that moves from easy contexts to a target.

Klink, Abdulsamad, Belousov, D'Eramo, Peters and Pajarinen, "Self-Paced Deep Reinforcement Learning"
(NeurIPS 2020) and "A Probabilistic Interpretation of Self-Paced Learning with Applications to
Reinforcement Learning" (JMLR 2021). Reference code ``psclklnk/spdl``:
``deep_sprl/teachers/spl/self_paced_teacher.py`` (v1), ``self_paced_teacher_v2.py`` (performance
constraint), ``alpha_functions.py`` (``PercentageAlphaFunction``), the point-mass experiment's constants.

The context distribution is ``p_nu = N(mu, L L^T)`` (:mod:`teachers.gaussian`; ``covariance="full"``
or ``"diag"``), samples clipped to the task box. Episodes finish with a value ``V(c_k)``: the
discounted return (``value="discounted_return"``, the reference's ``--true_rewards``), the critic's
value of the first observation (``"initial_value"``; measured when the episode started, not re-evaluated
after the policy update as the reference does, since a teacher has no critic), or the normalised score.
Once ``episodes_per_update`` episodes are buffered (ring buffer of ``buffer_size``, cleared on read:
the reference's 1000) a *round* ends; the first ``offset`` rounds only clear the buffer, every later
one updates ``nu`` from ``nu_old``:

**SPDL (v1)**, ``spdl``::

    max_nu  1/K sum_k p_nu(c_k) / p_nu_old(c_k) V(c_k)  -  alpha_i KL(p_nu || mu_target)
    s.t.    KL(p_nu_old || p_nu) <= epsilon

    alpha_i = 0 while i < alpha_offset, else min(1e5, zeta max(perf, 0) / max(KL(p_nu_old || mu), 1e-10))

with ``i`` the index of this update (from 1) and ``perf`` the mean value of the round.

**SPDL v2** (performance constraint delta), ``spdl_delta``: if the importance-weighted value under
``nu_old`` (the mean value) is ``>= delta``: ``min KL(p_nu || mu_target)`` s.t. the trust region and
``1/K sum_k p_nu / p_nu_old V >= delta``; else, if delta has never been reached, ``max`` that value
s.t. the trust region; else no update.

In both, while ``KL(p_nu_old || mu_target) > kl_threshold`` the log-std diagonal is bounded below by
the std floor (v2 does this as bounds of the optimisation; v1 clips after its step - here it is a
constraint of the optimisation in both, so the trust region holds for the distribution actually used;
an old distribution below a re-activated floor is first clipped to it and is the trust-region centre).

Solver: the reference uses scipy ``trust-constr`` (v2) or one natural-gradient step by conjugate
gradient (v1, 10 CG iterations and 10 line-search halvings). Here both use
:func:`teachers.gaussian.maximize_subject_to` (augmented Lagrangian + Newton, then a pull-back onto the
feasible set): the optimum of the constrained problem, never outside the trust region, never worse
than ``nu_old``; jittable and vmappable over seeds.

Defaults are the point-mass experiment's for PPO: epsilon 0.05, ``kl_threshold`` 8000, ``offset`` 5,
``alpha_offset`` 10, ``zeta`` 1.6, delta 3.5. The target and initial distributions come from
:func:`teachers.gaussian.context_prior` (the point mass's, or a uniform target on other task spaces:
see there); on those other spaces the default value is the normalised score and delta 0.5.

``default_teacher`` (registered as ``default``) samples the target distribution itself: the papers'
"Default" baseline, training on the target directly.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers import gaussian as G
from teachers.base import InputCounts, Teacher, checked_sample, checked_update, ring_positions

VALUES = ("discounted_return", "initial_value", "score")


@dataclasses.dataclass(frozen=True)
class SPDLConfig:
    """SPDL (v1) options; defaults are the reference's point-mass PPO settings."""

    max_kl: float = 0.05
    """trust region epsilon on KL(p_old || p_new)"""
    zeta: float = 1.6
    """alpha = zeta * performance / KL(p || target) after alpha_offset updates"""
    alpha_offset: int = 10
    offset: int = 5
    """rounds of episodes before the first update"""
    episodes_per_update: int = 20
    """episodes per round (the reference updates once per 2048-step PPO iteration, ~20 episodes)"""
    buffer_size: int = 1000
    kl_threshold: float = 8000.0
    """the std floor holds while KL(p || target) exceeds this"""
    covariance: str = "full"
    """'full' (Cholesky factor) or 'diag'"""
    value: str | None = None
    """discounted_return | initial_value | score; None: discounted_return on the point mass, else score"""

    def validate(self) -> None:
        if not self.max_kl > 0:
            raise ValueError(f"max_kl must be > 0, got {self.max_kl}")
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag', got {self.covariance!r}")
        if self.value is not None and self.value not in VALUES:
            raise ValueError(f"value must be one of {VALUES}, got {self.value!r}")
        if self.episodes_per_update < 1 or self.buffer_size < self.episodes_per_update:
            raise ValueError("need 1 <= episodes_per_update <= buffer_size")
        if self.offset < 0 or self.alpha_offset < 0:
            raise ValueError("offset and alpha_offset must be >= 0")


@dataclasses.dataclass(frozen=True)
class SPDLDeltaConfig:
    """SPDL v2 (performance constraint) options; defaults are the reference's point-mass settings."""

    delta: float | None = None
    """performance lower bound (PERF_LB); None: 3.5 on the point mass, 0.5 (a score) elsewhere"""
    max_kl: float = 0.05
    offset: int = 5
    episodes_per_update: int = 20
    buffer_size: int = 1000
    kl_threshold: float = 8000.0
    covariance: str = "full"
    value: str | None = None
    """discounted_return | initial_value | score; None: discounted_return on the point mass, else score"""

    alpha_offset = 0  # unused by v2 (for the shared validate)
    validate = SPDLConfig.validate


@struct.dataclass
class SelfPacedState:
    params: jax.Array  # flat Gaussian parameters (teachers.gaussian)
    contexts: jax.Array  # [buffer, d] contexts of the round's episodes
    values: jax.Array  # [buffer]
    count: jax.Array  # valid buffer entries
    seen: jax.Array  # episodes of the current round
    rounds: jax.Array  # rounds finished
    iteration: jax.Array  # distribution updates done
    perf_reached: jax.Array  # v2: delta reached once
    alpha: jax.Array  # v1: last alpha
    kl_target: jax.Array  # KL(p || target) after the last round
    episodes: jax.Array
    inputs: InputCounts  # bad input received (teachers.base); non-finite values count as non-finite


def resolve_value(value: str | None, prior: G.ContextPrior) -> str:
    if value is not None:
        return value
    return "discounted_return" if prior.source == "point_mass" else "score"


def episode_values(name: str, value: str, scores, mask, extras: dict):
    """What each finished episode reports as V(c) (its score or the ``value`` extra) and the rows that
    count: ``(v, valid, nonfinite)`` with ``valid = mask & isfinite(v)`` and ``nonfinite`` the number of
    masked-in rows whose value is not finite (tasks and scores were cleaned by ``checked_update``)."""
    if value == "score":
        v = scores
    elif value in extras:
        v = extras[value]
    else:
        raise ValueError(f"{name} reads the {value!r} extra; the trainer did not pass it")
    v = jnp.asarray(v, jnp.float32).reshape(-1)
    finite = jnp.isfinite(v)
    return v, mask & finite, (mask & ~finite).sum().astype(jnp.int32)


def _extras(value: str) -> tuple[str, ...]:
    return () if value == "score" else (value,)


def _gaussian(prior: G.ContextPrior, which: str, full: bool) -> jax.Array:
    mean = jnp.asarray(getattr(prior, f"{which}_mean"), jnp.float32)
    std = jnp.asarray(getattr(prior, f"{which}_std"), jnp.float32)
    return G.gaussian_params(mean, jnp.diag(std), full)


def _importance_value(nu, nu_old_logp, contexts, values, valid):
    """``1/K sum_k p_nu(c_k) / p_old(c_k) V(c_k)`` over the valid buffer rows."""
    log_ratio = jnp.clip(G.log_prob(nu, contexts) - nu_old_logp, -60.0, 60.0)
    k = jnp.maximum(valid.sum(), 1)
    return jnp.sum(jnp.where(valid, jnp.exp(log_ratio) * values, 0.0)) / k


def _make_self_paced(task_space: TaskSpace, config, variant: str) -> Teacher:
    config.validate()
    prior = G.context_prior(task_space)
    value = resolve_value(config.value, prior)
    dim = task_space.dim
    full = config.covariance == "full"
    target = _gaussian(prior, "target", full)
    initial = _gaussian(prior, "initial", full)
    log_floor = jnp.log(jnp.asarray(prior.std_floor, jnp.float32))
    capacity = config.buffer_size
    delta = None
    if variant == "delta":
        delta = config.delta if config.delta is not None else (3.5 if prior.source == "point_mass" else 0.5)

    def init(key: jax.Array) -> SelfPacedState:
        del key
        z, zi = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return SelfPacedState(
            params=initial, contexts=jnp.zeros((capacity, dim), jnp.float32),
            values=jnp.zeros((capacity,), jnp.float32), count=zi, seen=zi, rounds=zi, iteration=zi,
            perf_reached=jnp.zeros((), bool), alpha=z, kl_target=G.kl_divergence(initial, target, dim),
            episodes=zi, inputs=InputCounts.zeros(),
        )

    variant_name = "spdl" if variant == "v1" else "spdl_delta"

    @checked_sample(variant_name)
    def sample(state: SelfPacedState, key: jax.Array, n: int):
        return state, task_space.clip(G.sample(state.params, key, n, dim))

    def trust_region(nu_centre):
        def cons(nu):
            kl = G.kl_divergence(nu_centre, nu, dim) / config.max_kl - 1.0
            return kl

        return cons

    def update_distribution(state: SelfPacedState) -> SelfPacedState:
        valid = jnp.arange(capacity) < state.count
        contexts, values = state.contexts, state.values
        old = state.params
        old_logp = G.log_prob(old, contexts)
        kl_old_target = G.kl_divergence(old, target, dim)
        floor_on = kl_old_target > config.kl_threshold
        log_diag = old[dim:2 * dim]
        centre = old.at[dim:2 * dim].set(jnp.where(floor_on, jnp.maximum(log_diag, log_floor), log_diag))
        perf = jnp.sum(jnp.where(valid, values, 0.0)) / jnp.maximum(valid.sum(), 1)
        expected = lambda nu: _importance_value(nu, old_logp, contexts, values, valid)
        floor = lambda nu: jnp.where(floor_on, log_floor - nu[dim:2 * dim], -1.0)
        tr = trust_region(centre)
        iteration = state.iteration + 1
        value_scale = jnp.maximum(jnp.sum(jnp.where(valid, jnp.abs(values), 0.0)) / jnp.maximum(valid.sum(), 1), 1e-6)

        if variant == "v1":
            alpha = jnp.where(
                iteration < config.alpha_offset, 0.0,
                jnp.minimum(1e5, config.zeta * jnp.maximum(perf, 0.0) / jnp.maximum(kl_old_target, 1e-10)),
            )
            scale = jnp.maximum(value_scale, jnp.abs(alpha * kl_old_target))
            f = lambda nu: (expected(nu) - alpha * G.kl_divergence(nu, target, dim)) / scale
            cons = lambda nu: jnp.concatenate([tr(nu)[None], floor(nu)])
            new = G.maximize_subject_to(f, cons, centre)
            return state.replace(params=new, iteration=iteration, alpha=alpha)

        # v2: performance constraint
        reached_now = perf >= delta
        kl_scale = jnp.maximum(G.kl_divergence(centre, target, dim), 1e-6)
        f_kl = lambda nu: -G.kl_divergence(nu, target, dim) / kl_scale
        perf_con = lambda nu: (delta - expected(nu)) / max(abs(delta), 1e-6)
        cons_kl = lambda nu: jnp.concatenate([tr(nu)[None], perf_con(nu)[None], floor(nu)])
        f_perf = lambda nu: expected(nu) / value_scale
        cons_perf = lambda nu: jnp.concatenate([tr(nu)[None], floor(nu)])
        new_kl = G.maximize_subject_to(f_kl, cons_kl, centre)
        new_perf = G.maximize_subject_to(f_perf, cons_perf, centre)
        new = jnp.where(reached_now, new_kl, jnp.where(state.perf_reached, old, new_perf))
        return state.replace(params=new, iteration=iteration, perf_reached=state.perf_reached | reached_now)

    def end_round(state: SelfPacedState) -> SelfPacedState:
        updated = jax.lax.cond(state.rounds >= config.offset, update_distribution, lambda s: s, state)
        return updated.replace(
            rounds=state.rounds + 1, count=jnp.zeros_like(state.count), seen=jnp.zeros_like(state.seen),
            kl_target=G.kl_divergence(updated.params, target, dim),
        )

    @checked_update(variant_name, task_space)
    def update(state: SelfPacedState, tasks, scores, mask, **extras) -> SelfPacedState:
        v, valid, nonfinite = episode_values(variant_name, value, scores, mask, extras)
        pos = ring_positions(state.count, valid, capacity)
        n_valid = valid.sum().astype(jnp.int32)
        state = state.replace(
            contexts=state.contexts.at[pos].set(tasks.astype(jnp.float32), mode="drop"),
            values=state.values.at[pos].set(v, mode="drop"),
            count=jnp.minimum(state.count + n_valid, capacity),
            seen=state.seen + n_valid,
            episodes=state.episodes + n_valid,
            inputs=state.inputs.replace(nonfinite=state.inputs.nonfinite + nonfinite),
        )
        return jax.lax.cond(state.seen >= config.episodes_per_update, end_round, lambda s: s, state)

    return Teacher(init, sample, update, task_space, variant_name, _extras(value))


def spdl(task_space: TaskSpace, config: SPDLConfig | None = None) -> Teacher:
    """SPDL (v1): value minus alpha x KL to the target under a KL trust region (module docstring)."""
    return _make_self_paced(task_space, config or SPDLConfig(), "v1")


def spdl_delta(task_space: TaskSpace, config: SPDLDeltaConfig | None = None) -> Teacher:
    """SPDL v2: KL to the target minimised subject to value >= delta and the trust region."""
    return _make_self_paced(task_space, config or SPDLDeltaConfig(), "delta")


@struct.dataclass
class DefaultState:
    episodes: jax.Array
    inputs: InputCounts


def default_teacher(task_space: TaskSpace) -> Teacher:
    """Training on the target distribution directly (the SPDL papers' "Default" baseline): samples
    :func:`teachers.gaussian.context_prior`'s target (clipped), blind to scores."""
    prior = G.context_prior(task_space)

    def init(key: jax.Array) -> DefaultState:
        del key
        return DefaultState(jnp.zeros((), jnp.int32), InputCounts.zeros())

    @checked_sample("default")
    def sample(state, key: jax.Array, n: int):
        return state, G.sample_prior_target(prior, task_space, key, n)

    @checked_update("default", task_space)
    def update(state, tasks, scores, mask, **extras):
        del tasks, scores, extras
        return state.replace(episodes=state.episodes + mask.sum().astype(jnp.int32))

    return Teacher(init, sample, update, task_space, "default")
