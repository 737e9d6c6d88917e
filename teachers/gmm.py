"""Gaussian mixtures fitted by EM in pure JAX, for a whole range of component counts at once.

This is the model-fitting core of the GMM teachers (ALP-GMM, Covar-GMM). It reproduces what the
reference implementation (flowersteam/teachDeepRL, "TDRL") gets from
``sklearn.mixture.GaussianMixture(covariance_type='full', n_init=1)``, with static shapes so that it
can be jitted, vmapped over seeds and run on an accelerator:

* **All k at once.** :func:`fit_gmms` fits one mixture per k in a static tuple ``ks`` with ``vmap``;
  every fit is padded to ``kmax = max(ks)`` components and components ``>= k`` are masked out
  (weight 0, log-density -inf, zero responsibility).
* **Masked points.** Points are a fixed-size array ``[N, D]`` with a validity mask ``[N]``; masked
  points get zero responsibility, count nowhere (N in the criteria is the number of valid points) and
  may hold garbage (they are zeroed on entry).
* **Initialisation.** sklearn initialises EM from the labels of a full ``KMeans`` run, which is not
  reproducible bit-for-bit outside sklearn. Here: k-means++ seeding (plain D^2 sampling, without
  sklearn's extra "greedy" local trials) followed by at most ``kmeans_iters`` Lloyd steps (stopping
  early when the assignment is stable); the hard labels then give the initial parameters exactly as
  sklearn's ``_initialize`` does. Sampling during seeding uses the inverse CDF of one uniform number,
  so inserting masked rows anywhere leaves the choice unchanged.
* **EM.** As sklearn: at each iteration an E-step (giving the mean log-likelihood of the current
  parameters), an M-step (``nk = sum resp + 10 eps``, weights ``nk / sum nk``, means, full covariances
  plus ``reg_covar`` on the diagonal); stop when the mean log-likelihood changed by less than ``tol``
  (1e-3) or after ``iters`` (100) iterations. The loop is a ``lax.while_loop`` (under ``vmap`` it runs
  until every fit has stopped; finished fits are frozen). The returned parameters are those after
  the last M-step and ``mean_loglik`` is evaluated on them (sklearn's ``score``), as used by
  ``aic``/``bic``.
* **Numerics.** float32 (sklearn uses float64). Log-densities through the Cholesky factor of each
  covariance. If a factorisation fails (a covariance made indefinite by round-off, possible with
  near-degenerate data in large raw units) it is retried with extra jitter ``1e-5 * (trace/D + 1)``
  on the diagonal, and the jittered covariance is the one stored; a fit that still fails gets a
  non-finite criterion and is never selected (sklearn would raise instead).

Model selection (sklearn's definitions, ``D`` = data dimension, ``N`` = number of valid points):

* ``AIC = -2 N mean_loglik + 2 P``, ``BIC = -2 N mean_loglik + P ln N``, with the full-covariance
  parameter count ``P = k D (D + 1) / 2 + k D + (k - 1)``.
* ``AICc`` as TDRL's ALP-GMM computes it: ``AIC + 2 P' (P' + 1) / (N - P' - 1)`` where
  ``P' = k ((d^2 - d)/2 + 2 d + 1) - 1`` is the same count computed with ``d`` = the *task*
  dimension (without the ALP coordinate), not ``D``. This inconsistency (the AIC term and the
  correction use different parameter counts) is reproduced on purpose; pass ``aicc_dim`` to choose
  ``d`` (default: ``D``).

The module also holds the mechanics that ALP-GMM and Covar-GMM share: ring buffers of rows
(:func:`ring_write`, :func:`ring_window`), the refit when the episode count crosses a multiple of the
fit rate (:func:`refit_on_crossing`), and curriculum sampling from a component chosen by a per-component
score (:func:`sample_curriculum`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from teachers.base import ring_positions

CRITERIA = ("aic", "bic", "aicc")
_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------


@struct.dataclass
class GMMFit:
    """Mixtures for every k in ``ks``, each padded to ``kmax`` components. Leading axis K = len(ks)."""

    weights: jax.Array  # [K, kmax], 0 for masked components
    means: jax.Array  # [K, kmax, D]
    covs: jax.Array  # [K, kmax, D, D] (reg_covar included)
    chol: jax.Array  # [K, kmax, D, D] lower Cholesky factors of covs
    component_mask: jax.Array  # [K, kmax] bool, component j < k
    mean_loglik: jax.Array  # [K] mean log-likelihood of the valid points under the final parameters
    n_points: jax.Array  # [] float32, number of valid points N
    n_params: jax.Array  # [K] float32, free parameters P (full covariances)
    n_iter: jax.Array  # [K] int32, EM iterations run
    converged: jax.Array  # [K] bool, stopped on tol before iters
    ks: tuple[int, ...] = struct.field(pytree_node=False, default=())  # static component counts


@struct.dataclass
class GMM:
    """One mixture padded to ``kmax`` components (components with ``component_mask`` False unused)."""

    weights: jax.Array  # [kmax]
    means: jax.Array  # [kmax, D]
    covs: jax.Array  # [kmax, D, D]
    chol: jax.Array  # [kmax, D, D]
    component_mask: jax.Array  # [kmax] bool
    k: jax.Array  # [] int32
    mean_loglik: jax.Array  # [] float32 (on the data it was fitted to)
    ok: jax.Array  # [] bool, all parameters finite


def empty_gmm(kmax: int, dim: int) -> GMM:
    """The initial mixture (one standard-normal component at 0), held until the first fit; sampling
    ignores it while ``has_gmm`` is False."""
    eye = jnp.broadcast_to(jnp.eye(dim, dtype=jnp.float32), (kmax, dim, dim))
    mask = jnp.arange(kmax) < 1
    return GMM(
        weights=mask.astype(jnp.float32),
        means=jnp.zeros((kmax, dim), jnp.float32),
        covs=eye,
        chol=eye,
        component_mask=mask,
        k=jnp.ones((), jnp.int32),
        mean_loglik=jnp.zeros((), jnp.float32),
        ok=jnp.zeros((), bool),
    )


def n_parameters(k: int, dim: int) -> int:
    """Free parameters of a full-covariance mixture (sklearn ``_n_parameters``)."""
    return k * dim * (dim + 1) // 2 + k * dim + (k - 1)


def tdrl_aicc_parameters(k: int, task_dim: int) -> float:
    """TDRL's parameter count for AICc: ``k ((d^2 - d)/2 + 2 d + 1) - 1``."""
    return k * ((task_dim * task_dim - task_dim) / 2 + 2 * task_dim + 1) - 1


# --------------------------------------------------------------------------------------------------
# Gaussian pieces
# --------------------------------------------------------------------------------------------------


def _safe_cholesky(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cholesky of one [D, D] covariance, retried with jitter if it fails. Returns (cov, chol)."""
    dim = cov.shape[-1]
    jitter = 1e-5 * (jnp.trace(cov) / dim + 1.0)
    cov2 = cov + jitter * jnp.eye(dim, dtype=cov.dtype)
    # One batched Cholesky of both matrices: two independent LAPACK calls in one program can
    # deadlock jaxlib 0.10's CPU thread pool on 2-core machines (both wait for a free worker).
    chol, chol2 = jnp.linalg.cholesky(jnp.stack([cov, cov2]))
    bad = ~jnp.all(jnp.isfinite(chol))
    return jnp.where(bad, cov2, cov), jnp.where(bad, chol2, chol)


def _component_log_density(x: jax.Array, mean: jax.Array, chol: jax.Array) -> jax.Array:
    """log N(x | mean, L L^T) for x [N, D], one component. Returns [N]."""
    dim = x.shape[-1]
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean).T, lower=True)  # [D, N]
    maha = jnp.sum(z * z, axis=0)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (dim * _LOG_2PI + log_det + maha)


def _weighted_log_probs(x, weights, means, chol, component_mask) -> jax.Array:
    """log pi_j + log N_j(x) for x [N, D]; -inf for masked components. Returns [N, kmax]."""
    logd = jax.vmap(_component_log_density, in_axes=(None, 0, 0), out_axes=1)(x, means, chol)
    logw = jnp.log(jnp.where(component_mask, weights, 1.0))
    return jnp.where(component_mask[None, :], logd + logw[None, :], -jnp.inf)


def _e_step(x, w, params, component_mask):
    """Mean log-likelihood of the valid points and their responsibilities [N, kmax]."""
    weights, means, _, chol = params
    wlp = _weighted_log_probs(x, weights, means, chol, component_mask)
    lp = jax.scipy.special.logsumexp(wlp, axis=1)  # [N]
    resp = jnp.exp(wlp - lp[:, None]) * w[:, None]
    resp = jnp.where(w[:, None] > 0, resp, 0.0)
    n = jnp.sum(w)
    mean_ll = jnp.sum(jnp.where(w > 0, lp, 0.0)) / n
    return mean_ll, resp


def _m_step(x, resp, component_mask, reg_covar):
    """sklearn's ``_estimate_gaussian_parameters`` (full) with masked components."""
    dim = x.shape[-1]
    eps = jnp.finfo(x.dtype).eps
    resp = jnp.where(component_mask[None, :], resp, 0.0)
    nk = jnp.sum(resp, axis=0) + 10.0 * eps  # [kmax]
    means = (resp.T @ x) / nk[:, None]  # [kmax, D]

    def cov_one(r, mean, n):
        diff = x - mean
        return (r[:, None] * diff).T @ diff / n + reg_covar * jnp.eye(dim, dtype=x.dtype)

    covs = jax.vmap(cov_one, in_axes=(1, 0, 0))(resp, means, nk)
    covs, chol = jax.vmap(_safe_cholesky)(covs)
    weights = jnp.where(component_mask, nk, 0.0)
    weights = weights / jnp.sum(weights)
    return weights, means, covs, chol


# --------------------------------------------------------------------------------------------------
# k-means++ seeding and Lloyd steps
# --------------------------------------------------------------------------------------------------


def _inverse_cdf_choice(key: jax.Array, w: jax.Array) -> jax.Array:
    """Index i with probability w_i / sum w (w >= 0, some w > 0), from one uniform number.

    Rows with w = 0 are never chosen, and inserting them anywhere does not change which positive-weight
    row is chosen.
    """
    c = jnp.cumsum(w)
    u = jax.random.uniform(key) * c[-1]
    idx = jnp.sum(c <= u)
    last_pos = jnp.max(jnp.where(w > 0, jnp.arange(w.shape[0]), -1))
    return jnp.minimum(idx, last_pos)


def kmeans_pp(key: jax.Array, x: jax.Array, w: jax.Array, kmax: int) -> jax.Array:
    """k-means++ seeding: ``kmax`` centres [kmax, D] from the valid points (w > 0) of ``x``.

    The first centre is uniform over the valid points, each next one is drawn with probability
    proportional to the squared distance to the nearest centre chosen so far (uniform over valid
    points if all those distances are 0). Centre j only depends on centres < j, so the first k
    centres are the k-means++ seeding for k components.
    """
    valid = (w > 0).astype(x.dtype)
    keys = jax.random.split(key, kmax)
    first = x[_inverse_cdf_choice(keys[0], valid)]
    centres = jnp.zeros((kmax, x.shape[-1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, axis=-1)

    def body(j, carry):
        centres, d2 = carry
        p = d2 * valid
        p = jnp.where(jnp.sum(p) > 0, p, valid)
        c = x[_inverse_cdf_choice(keys[j], p)]
        centres = centres.at[j].set(c)
        d2 = jnp.minimum(d2, jnp.sum((x - c) ** 2, axis=-1))
        return centres, d2

    centres, _ = jax.lax.fori_loop(1, kmax, body, (centres, d2))
    return centres


def _assign(x, centres, component_mask):
    d2 = jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=-1)  # [N, kmax]
    d2 = jnp.where(component_mask[None, :], d2, jnp.inf)
    return jnp.argmin(d2, axis=1)


def lloyd(x, w, centres, component_mask, iters: int, active=True):
    """At most ``iters`` Lloyd steps (stops when the assignment no longer changes).

    An empty cluster keeps its centre. Returns the final hard labels [N].
    """
    kmax = centres.shape[0]
    valid = (w > 0).astype(x.dtype)

    def update_centres(labels, centres):
        onehot = jax.nn.one_hot(labels, kmax, dtype=x.dtype) * valid[:, None]
        counts = jnp.sum(onehot, axis=0)
        sums = onehot.T @ x
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centres)

    labels0 = _assign(x, centres, component_mask)

    def cond(carry):
        i, _, _, changed = carry
        return (i < iters) & changed & active

    def body(carry):
        i, centres, labels, _ = carry
        centres = update_centres(labels, centres)
        new = _assign(x, centres, component_mask)
        changed = jnp.any((new != labels) & (valid > 0))
        return i + 1, centres, new, changed

    _, _, labels, _ = jax.lax.while_loop(
        cond, body, (jnp.zeros((), jnp.int32), centres, labels0, jnp.ones((), bool))
    )
    return labels


# --------------------------------------------------------------------------------------------------
# EM for every k
# --------------------------------------------------------------------------------------------------


def _fit_one(key, x, w, k, kmax, iters, reg_covar, tol, kmeans_iters, active):
    component_mask = jnp.arange(kmax) < k
    centres = kmeans_pp(key, x, w, kmax)
    labels = lloyd(x, w, centres, component_mask, kmeans_iters, active)
    resp0 = jax.nn.one_hot(labels, kmax, dtype=x.dtype) * w[:, None]
    params0 = _m_step(x, resp0, component_mask, reg_covar)

    def cond(carry):
        i, _, _, converged = carry
        return (i < iters) & ~converged & active

    def body(carry):
        i, params, prev_ll, _ = carry
        ll, resp = _e_step(x, w, params, component_mask)
        params = _m_step(x, resp, component_mask, reg_covar)
        converged = jnp.abs(ll - prev_ll) < tol
        return i + 1, params, ll, converged

    init = (jnp.zeros((), jnp.int32), params0, jnp.asarray(-jnp.inf, x.dtype), jnp.zeros((), bool))
    n_iter, params, _, converged = jax.lax.while_loop(cond, body, init)
    mean_ll, _ = _e_step(x, w, params, component_mask)
    weights, means, covs, chol = params
    return weights, means, covs, chol, component_mask, mean_ll, n_iter, converged


def fit_gmms(
    key: jax.Array,
    points: jax.Array,
    mask: jax.Array,
    ks: tuple[int, ...],
    iters: int = 100,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    kmeans_iters: int = 10,
    active: jax.Array | bool = True,
) -> GMMFit:
    """Fit full-covariance mixtures with k components for every k in ``ks`` (static) by EM.

    Args:
      key: PRNG key for the k-means++ seeding (the same key serves every k, as sklearn's
        ``random_state`` does in TDRL).
      points: ``[N, D]`` data; rows with ``mask`` False are ignored (and may hold garbage).
      mask: ``[N]`` bool, the valid points. There should be at least ``max(ks)`` of them.
      ks: static tuple of component counts, e.g. ``tuple(range(2, 11))``.
      iters: maximum EM iterations (sklearn ``max_iter``).
      reg_covar: added to every covariance diagonal.
      tol: stop when the mean log-likelihood changes by less than this.
      kmeans_iters: maximum Lloyd steps after k-means++ seeding.
      active: traced bool; when False the loops do not run (used to make a masked-out fit cheap
        under ``vmap``, where ``lax.cond`` evaluates both branches). The result is then meaningless.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"fit_gmms: ks must be a non-empty tuple of positive ints, got {ks}")
    kmax = max(ks)
    mask = jnp.asarray(mask, bool)
    x = jnp.where(mask[:, None], jnp.asarray(points, jnp.float32), 0.0)
    w = mask.astype(jnp.float32)
    dim = x.shape[-1]
    active = jnp.asarray(active, bool)
    fit = jax.vmap(
        lambda k: _fit_one(key, x, w, k, kmax, iters, reg_covar, tol, kmeans_iters, active)
    )
    weights, means, covs, chol, cmask, mean_ll, n_iter, converged = fit(jnp.asarray(ks, jnp.int32))
    n_params = np.asarray([n_parameters(k, dim) for k in ks], np.float32)
    return GMMFit(
        ks=ks,
        weights=weights,
        means=means,
        covs=covs,
        chol=chol,
        component_mask=cmask,
        mean_loglik=mean_ll,
        n_points=jnp.sum(w),
        n_params=jnp.asarray(n_params),
        n_iter=n_iter,
        converged=converged,
    )


# --------------------------------------------------------------------------------------------------
# Model selection
# --------------------------------------------------------------------------------------------------


def aic(fit: GMMFit) -> jax.Array:
    """sklearn's AIC per k: ``-2 N mean_loglik + 2 P``. Shape [K]."""
    return -2.0 * fit.n_points * fit.mean_loglik + 2.0 * fit.n_params


def bic(fit: GMMFit) -> jax.Array:
    """sklearn's BIC per k: ``-2 N mean_loglik + P ln N``. Shape [K]."""
    return -2.0 * fit.n_points * fit.mean_loglik + fit.n_params * jnp.log(fit.n_points)


def aicc(fit: GMMFit, aicc_dim: int | None = None) -> jax.Array:
    """TDRL's AICc: ``AIC + 2 P' (P' + 1) / (N - P' - 1)``, ``P'`` counted with ``aicc_dim``.

    ``aicc_dim`` defaults to the data dimension D; TDRL's ALP-GMM uses the task dimension D - 1
    (see the module docstring).
    """
    dim = fit.means.shape[-1] if aicc_dim is None else int(aicc_dim)
    kp = jnp.asarray([tdrl_aicc_parameters(k, dim) for k in fit.ks], jnp.float32)
    return aic(fit) + 2.0 * kp * (kp + 1.0) / (fit.n_points - kp - 1.0)


def criterion_values(fit: GMMFit, criterion: str, aicc_dim: int | None = None) -> jax.Array:
    """The criterion per k ([K]); non-finite values (failed fits) become +inf."""
    if criterion == "aic":
        v = aic(fit)
    elif criterion == "bic":
        v = bic(fit)
    elif criterion == "aicc":
        v = aicc(fit, aicc_dim)
    else:
        raise ValueError(f"unknown criterion {criterion!r}; known: {CRITERIA}")
    ok = jnp.isfinite(v) & _fit_finite(fit)
    return jnp.where(ok, v, jnp.inf)


def _fit_finite(fit: GMMFit) -> jax.Array:
    def fin(a, axes):
        return jnp.all(jnp.isfinite(a), axis=axes)

    return fin(fit.weights, 1) & fin(fit.means, (1, 2)) & fin(fit.covs, (1, 2, 3)) & fin(
        fit.chol, (1, 2, 3)
    )


def select(fit: GMMFit, criterion: str = "aic", aicc_dim: int | None = None) -> GMM:
    """The mixture with the smallest criterion (first on ties, as ``np.argmin``), padded to kmax."""
    values = criterion_values(fit, criterion, aicc_dim)
    i = jnp.argmin(values)
    take = lambda a: a[i]  # noqa: E731
    gmm = GMM(
        weights=take(fit.weights),
        means=take(fit.means),
        covs=take(fit.covs),
        chol=take(fit.chol),
        component_mask=take(fit.component_mask),
        k=jnp.asarray(fit.ks, jnp.int32)[i],
        mean_loglik=take(fit.mean_loglik),
        ok=jnp.isfinite(values[i]),
    )
    return gmm


def gmm_log_prob(gmm: GMM, x: jax.Array) -> jax.Array:
    """Log-density of the mixture at ``x`` [N, D]. Returns [N]."""
    wlp = _weighted_log_probs(x, gmm.weights, gmm.means, gmm.chol, gmm.component_mask)
    return jax.scipy.special.logsumexp(wlp, axis=1)


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_gmm_component(key: jax.Array, gmm: GMM, j: jax.Array) -> jax.Array:
    """One draw ``x ~ N(mean_j, cov_j)`` [D] from component ``j``."""
    z = jax.random.normal(key, (gmm.means.shape[-1],), gmm.means.dtype)
    return gmm.means[j] + gmm.chol[j] @ z


def choose_components(
    key: jax.Array, scores: jax.Array, component_mask: jax.Array, n: int
) -> jax.Array:
    """``n`` component indices, each with probability ``max(score_j, 0) / sum`` over valid components.

    Uniform over valid components when every (clamped) score is 0 (TDRL ``proportional_choice``).
    """
    s = jnp.where(component_mask, jnp.maximum(jnp.nan_to_num(scores), 0.0), 0.0)
    p = jnp.where(jnp.sum(s) > 0, s, component_mask.astype(s.dtype))
    logits = jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)
    return jax.random.categorical(key, logits, shape=(n,))


def sample_gmm(key: jax.Array, gmm: GMM, n: int) -> jax.Array:
    """``n`` draws [n, D] from the mixture (components chosen by the mixture weights)."""
    kc, kx = jax.random.split(key)
    comps = choose_components(kc, gmm.weights, gmm.component_mask, n)
    return jax.vmap(sample_gmm_component, in_axes=(0, None, 0))(jax.random.split(kx, n), gmm, comps)


def sample_curriculum(
    key: jax.Array,
    n: int,
    gmm: GMM,
    component_scores: jax.Array,
    use_gmm: jax.Array,
    random_ratio: float,
    task_dim: int,
    uniform_tasks: jax.Array,
    low: jax.Array,
    high: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The sampling rule shared by ALP-GMM and Covar-GMM, for ``n`` independent tasks.

    Each task is ``uniform_tasks[i]`` if ``use_gmm`` is False (bootstrap / no mixture yet) or with
    probability ``random_ratio``; otherwise a component is chosen with probability proportional to
    ``component_scores`` (see :func:`choose_components`), ``x ~ N(mean_j, cov_j)`` is drawn in the
    full data space, the coordinates after the first ``task_dim`` are dropped and the task is clipped
    to ``[low, high]``. Returns ``(tasks [n, task_dim], from_gmm [n] bool)``.
    """
    k_u, k_c, k_x = jax.random.split(key, 3)
    comps = choose_components(k_c, component_scores, gmm.component_mask, n)
    x = jax.vmap(sample_gmm_component, in_axes=(0, None, 0))(jax.random.split(k_x, n), gmm, comps)
    gmm_tasks = jnp.clip(x[:, :task_dim], low, high)
    from_gmm = use_gmm & (jax.random.uniform(k_u, (n,)) >= random_ratio)
    return jnp.where(from_gmm[:, None], gmm_tasks, uniform_tasks), from_gmm


# --------------------------------------------------------------------------------------------------
# Ring buffers and the refit schedule
# --------------------------------------------------------------------------------------------------


def ring_write(buffer: jax.Array, count: jax.Array, values: jax.Array, mask: jax.Array) -> jax.Array:
    """Write the valid rows of ``values`` [n, ...] in order into the ring ``buffer`` [C, ...].

    Valid row number o (0-based among the valid rows) lands at ``(count + o) % C``. When a batch holds
    more than C valid rows only the last C are written (the others would be overwritten anyway), so
    no two rows target the same slot.
    """
    capacity = buffer.shape[0]
    mask = jnp.asarray(mask, bool)
    offsets = jnp.cumsum(mask.astype(jnp.int32)) - 1
    total = jnp.sum(mask.astype(jnp.int32))
    keep = mask & (offsets >= total - capacity)
    pos = jnp.where(keep, ring_positions(count, mask, capacity), capacity)
    return buffer.at[pos].set(values.astype(buffer.dtype), mode="drop")


def ring_window(buffer: jax.Array, end: jax.Array, length: int) -> jax.Array:
    """The ``length`` entries of a ring [C, ...] for episodes ``end - length .. end - 1``, in order.

    Entry of episode e sits at ``e % C``; the caller guarantees they have not been overwritten
    (``end - length >= total written - C``).
    """
    capacity = buffer.shape[0]
    idx = (end - length + jnp.arange(length)) % capacity
    return buffer[idx]


def refit_on_crossing(
    key: jax.Array,
    rows: jax.Array,
    count_before: jax.Array,
    count_after: jax.Array,
    gmm: GMM,
    has_gmm: jax.Array,
    *,
    fit_rate: int,
    n_bootstrap: int,
    ks: tuple[int, ...],
    criterion: str = "aic",
    aicc_dim: int | None = None,
    iters: int = 100,
    reg_covar: float = 1e-6,
    tol: float = 1e-3,
    kmeans_iters: int = 10,
) -> tuple[GMM, jax.Array, jax.Array]:
    """Refit the mixture if the episode count crossed a multiple of ``fit_rate`` during a batch.

    TDRL refits after each episode whose count c satisfies ``c % fit_rate == 0`` and
    ``c >= n_bootstrap``, on the last ``fit_rate`` rows. A teacher's ``update`` processes a batch of
    episodes and nothing samples from the mixture inside it, so only the last such fit of the batch
    is ever used: refitting once, on the ``fit_rate`` rows ending at the last multiple m·fit_rate
    crossed (episodes m·F - F .. m·F - 1), gives exactly the same mixture (the fit is a
    deterministic function of those rows and the fixed fit key, as TDRL's fixed ``random_state``).

    ``rows`` is the ring [C, D] of rows (``C >= 2 fit_rate - 1`` so that the window survives the
    batch). Returns ``(gmm, has_gmm, fitted)``; a fit whose parameters are not finite is discarded
    (the previous mixture is kept).
    """
    m = count_after // fit_rate
    last = m * fit_rate
    fitted = (m > count_before // fit_rate) & (last >= n_bootstrap) & (last >= fit_rate)

    def do_fit(operand):
        gmm, has_gmm, fitted = operand
        window = ring_window(rows, last, fit_rate)
        fit = fit_gmms(
            key,
            window,
            jnp.ones((fit_rate,), bool),
            ks,
            iters=iters,
            reg_covar=reg_covar,
            tol=tol,
            kmeans_iters=kmeans_iters,
            active=fitted,  # under vmap the cond below becomes a select; keep skipped fits cheap
        )
        new = select(fit, criterion, aicc_dim)
        good = fitted & new.ok
        out = jax.tree.map(lambda a, b: jnp.where(good, a, b), new, gmm)
        return out, has_gmm | good, good

    def keep(operand):
        gmm, has_gmm, _ = operand
        return gmm, has_gmm, jnp.zeros((), bool)

    return jax.lax.cond(fitted, do_fit, keep, (gmm, has_gmm, fitted))


def validate_gmm_teacher(
    name: str,
    task_space,
    *,
    fit_rate: int,
    k_min: int,
    k_max: int,
    random_task_ratio: float,
    em_iters: int,
    reg_covar: float,
    em_tol: float,
    kmeans_iters: int,
) -> None:
    """Host-side checks shared by the GMM teachers' factories (raise ``ValueError``)."""

    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if task_space.is_discrete:
        raise ValueError(f"{name}: needs a continuous box task space, got a discrete one")
    for field, v in (("fit_rate", fit_rate), ("k_min", k_min), ("k_max", k_max),
                     ("em_iters", em_iters), ("kmeans_iters", kmeans_iters)):
        if not is_int(v):
            raise ValueError(f"{name}: {field} must be an int, got {v!r}")
    if k_min < 1:
        raise ValueError(f"{name}: k_min must be >= 1, got {k_min}")
    if k_max < k_min:
        raise ValueError(f"{name}: k_max must be >= k_min (range is inclusive), got {k_min}..{k_max}")
    if fit_rate < max(k_max, 2):
        raise ValueError(
            f"{name}: fit_rate ({fit_rate}) must be >= k_max ({k_max}) and >= 2: each fit uses the "
            "last fit_rate episodes and needs at least as many points as components"
        )
    if not 0.0 <= float(random_task_ratio) <= 1.0:
        raise ValueError(f"{name}: random_task_ratio must be in [0, 1], got {random_task_ratio}")
    if em_iters < 1:
        raise ValueError(f"{name}: em_iters must be >= 1, got {em_iters}")
    if kmeans_iters < 0:
        raise ValueError(f"{name}: kmeans_iters must be >= 0, got {kmeans_iters}")
    if not (np.isfinite(reg_covar) and reg_covar >= 0.0):
        raise ValueError(f"{name}: reg_covar must be finite and >= 0, got {reg_covar}")
    if not (np.isfinite(em_tol) and em_tol >= 0.0):
        raise ValueError(f"{name}: em_tol must be finite and >= 0, got {em_tol}")
