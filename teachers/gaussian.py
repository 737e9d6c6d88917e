"""Shared pieces of the self-paced teachers: Gaussian context distributions, a small constrained
optimiser, and the target / initial context distributions a task space is known to have.

**Gaussians** ``N(mu, L L^T)`` are flat parameter vectors ``nu = [mu (d), log diag L (d), strict
lower triangle of L (d(d-1)/2, full covariance only)]``, as SPDL's ``GaussianTorchDistribution``
(``psclklnk/spdl``, ``deep_sprl/util/gaussian_torch_distribution.py``) stores them. The KL divergence is
the closed form

    KL(N0 || N1) = 1/2 [ ||L1^-1 L0||_F^2 + ||L1^-1 (mu1 - mu0)||^2 - d + 2 sum log diag L1
                         - 2 sum log diag L0 ].

**Constrained maximisation** (:func:`maximize_subject_to`): ``max f(x) s.t. c(x) <= 0`` by an
augmented Lagrangian (Hestenes-Powell-Rockafellar; Nocedal & Wright, *Numerical Optimization*, ch. 17)
whose inner problems are solved by damped saddle-free Newton steps (exact Hessians: the problems have
at most a handful of parameters), followed by a safeguard: the result is pulled back along the segment
from a feasible point ``x_feasible`` until every constraint holds, and kept only if it does not lower
``f``. So the returned point is always feasible (the trust region of SPDL is never exceeded) and never
worse than ``x_feasible``. Everything is ``lax`` loops of fixed length: jittable and vmappable.

**Context priors** (:func:`context_prior`): SPDL needs a target and an initial Gaussian. The point
mass (``envs/point_mass.py``) defines both; on any other task space the target is the uniform
distribution over the box (the distribution the curriculum experiments test on), as a Gaussian
moment-matched to it (mean the box centre, std width / sqrt(12)), and the initial distribution the
box centre with std width / 4 (the point mass's own initial distribution follows this rule), with a
std floor of a tenth of the initial std.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from envs.task_space import TaskSpace

# ------------------------------------------------------------------------------------------------
# Gaussians in flat parameters


def num_params(dim: int, full: bool) -> int:
    return 2 * dim + (dim * (dim - 1) // 2 if full else 0)


def gaussian_params(mean: jax.Array, chol: jax.Array, full: bool) -> jax.Array:
    """Flat ``nu`` of ``N(mean, chol chol^T)`` (``chol`` lower triangular with a positive diagonal)."""
    mean = jnp.asarray(mean, jnp.float32)
    chol = jnp.asarray(chol, jnp.float32)
    parts = [mean, jnp.log(jnp.diag(chol))]
    if full:
        rows, cols = jnp.tril_indices(mean.shape[0], -1)
        parts.append(chol[rows, cols])
    return jnp.concatenate(parts)


def unpack(nu: jax.Array, dim: int) -> tuple[jax.Array, jax.Array]:
    """``(mean[d], chol[d, d])`` of flat parameters ``nu`` (full when longer than ``2 d``)."""
    mean, log_diag = nu[:dim], nu[dim:2 * dim]
    chol = jnp.diag(jnp.exp(log_diag))
    if nu.shape[0] > 2 * dim:
        rows, cols = jnp.tril_indices(dim, -1)
        chol = chol.at[rows, cols].set(nu[2 * dim:])
    return mean, chol


def log_prob(nu: jax.Array, x: jax.Array) -> jax.Array:
    """``log N(x; mean, chol chol^T)`` for ``x [n, d]``."""
    dim = x.shape[-1]
    mean, chol = unpack(nu, dim)
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)  # [d, n]
    log_det = jnp.sum(nu[dim:2 * dim])
    return -0.5 * jnp.sum(z * z, axis=0) - log_det - 0.5 * dim * math.log(2.0 * math.pi)


def kl_divergence(nu0: jax.Array, nu1: jax.Array, dim: int) -> jax.Array:
    """``KL(N(nu0) || N(nu1))`` in closed form (module docstring)."""
    m0, l0 = unpack(nu0, dim)
    m1, l1 = unpack(nu1, dim)
    a = jax.scipy.linalg.solve_triangular(l1, l0, lower=True)
    b = jax.scipy.linalg.solve_triangular(l1, m1 - m0, lower=True)
    log_det1, log_det0 = jnp.sum(nu1[dim:2 * dim]), jnp.sum(nu0[dim:2 * dim])
    return 0.5 * (jnp.sum(a * a) + jnp.sum(b * b) - dim) + log_det1 - log_det0


def sample(nu: jax.Array, key: jax.Array, n: int, dim: int) -> jax.Array:
    mean, chol = unpack(nu, dim)
    return mean + jax.random.normal(key, (n, dim)) @ chol.T


# ------------------------------------------------------------------------------------------------
# Constrained maximisation


def _pull_back(f, cons, x, x_feasible, halvings: int):
    """The largest ``t`` in {1, 1/2, ..., 2^-halvings, 0} with ``c(x_f + t (x - x_f)) <= 0``; returns
    that point, or ``x_feasible`` when it does not improve ``f``."""

    def ok(t):
        z = x_feasible + t * (x - x_feasible)
        c = cons(z)
        return jnp.all(c <= 0.0) & jnp.all(jnp.isfinite(c)) & jnp.isfinite(f(z))

    ts = 0.5 ** jnp.arange(halvings + 1, dtype=jnp.float32)
    oks = jax.vmap(ok)(ts)
    t = jnp.where(jnp.any(oks), ts[jnp.argmax(oks)], 0.0)
    z = x_feasible + t * (x - x_feasible)
    return jnp.where(f(z) >= f(x_feasible), z, x_feasible)


def maximize_subject_to(
    f: Callable[[jax.Array], jax.Array],
    cons: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    x_feasible: jax.Array | None = None,
    *,
    outer: int = 8,
    inner: int = 10,
    rho0: float = 10.0,
    rho_growth: float = 2.0,
    halvings: int = 30,
) -> jax.Array:
    """``argmax f(x)`` subject to ``cons(x) <= 0`` (a vector), started from ``x0``.

    ``x_feasible`` (default ``x0``) must satisfy the constraints: the answer is pulled back towards it
    until it does too, and replaced by it when that does not improve ``f`` (module docstring). Scale
    ``f`` and the constraints to order one: the penalty weight starts at ``rho0``.
    """
    x_feasible = x0 if x_feasible is None else x_feasible
    m = cons(x0).shape[0]
    n = x0.shape[0]

    def merit(x, lam, rho):
        c = cons(x)
        penalty = jnp.sum(jnp.maximum(0.0, c + lam / rho) ** 2 - (lam / rho) ** 2) * (0.5 * rho)
        value = -f(x) + penalty
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    grad = jax.grad(merit)
    hess = jax.hessian(merit)

    def newton(carry, _):
        x, mu, lam, rho = carry
        g, h = grad(x, lam, rho), hess(x, lam, rho)
        h = jnp.where(jnp.all(jnp.isfinite(h)), 0.5 * (h + h.T), jnp.eye(n))
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        w, v = jnp.linalg.eigh(h)
        step = -v @ ((v.T @ g) / (jnp.abs(w) + mu))  # saddle-free Newton, Levenberg damping mu
        x_new = x + step
        better = merit(x_new, lam, rho) < merit(x, lam, rho)
        x = jnp.where(better, x_new, x)
        mu = jnp.clip(jnp.where(better, mu / 3.0, mu * 5.0), 1e-8, 1e8)
        return (x, mu, lam, rho), None

    def augmented(carry, _):
        x, mu, lam, rho = carry
        (x, mu, lam, rho), _ = jax.lax.scan(newton, (x, mu, lam, rho), None, inner)
        lam = jnp.maximum(0.0, lam + rho * cons(x))
        lam = jnp.where(jnp.isfinite(lam), lam, 0.0)
        return (x, mu, lam, jnp.minimum(rho * rho_growth, 1e6)), None

    init = (x0, jnp.asarray(1e-3, x0.dtype), jnp.zeros((m,), x0.dtype), jnp.asarray(rho0, x0.dtype))
    (x, _, _, _), _ = jax.lax.scan(augmented, init, None, outer)
    return _pull_back(f, cons, x, x_feasible, halvings)


# ------------------------------------------------------------------------------------------------
# Target and initial context distributions of a task space


@dataclasses.dataclass(frozen=True)
class ContextPrior:
    """A Gaussian target and initial distribution (diagonal stds) over a task space, the std floor,
    and where they come from (``source``)."""

    target_mean: tuple[float, ...]
    target_std: tuple[float, ...]
    initial_mean: tuple[float, ...]
    initial_std: tuple[float, ...]
    std_floor: tuple[float, ...]
    source: str


def context_prior(task_space: TaskSpace) -> ContextPrior:
    """The task space's known target / initial distributions (the point mass), else the uniform
    target rule of the module docstring."""
    from envs.point_mass import KNOWN_CONTEXT_DISTRIBUTIONS

    if task_space.is_discrete:
        raise ValueError("the self-paced teachers need a continuous (box) task space")
    for known in KNOWN_CONTEXT_DISTRIBUTIONS:
        if known.task_space == task_space:
            return ContextPrior(known.target_mean, known.target_std, known.initial_mean,
                                known.initial_std, known.std_floor, source="point_mass")
    low, high = task_space.low, task_space.high
    centre = tuple(0.5 * (lo + hi) for lo, hi in zip(low, high))
    width = [hi - lo for lo, hi in zip(low, high)]
    return ContextPrior(
        target_mean=centre, target_std=tuple(w / math.sqrt(12.0) for w in width),
        initial_mean=centre, initial_std=tuple(w / 4.0 for w in width),
        std_floor=tuple(w / 40.0 for w in width), source="uniform",
    )


def sample_prior_target(prior: ContextPrior, task_space: TaskSpace, key: jax.Array, n: int) -> jax.Array:
    """``n`` contexts of the target: the Gaussian (clipped to the box) for a known target, uniform over
    the box for the uniform rule."""
    if prior.source == "uniform":
        return task_space.sample_uniform(key, n)
    mean = jnp.asarray(prior.target_mean, jnp.float32)
    std = jnp.asarray(prior.target_std, jnp.float32)
    return task_space.clip(mean + std * jax.random.normal(key, (n, mean.shape[0])))
