"""Gaussian mixtures fitted by EM in pure JAX, for a whole range of component counts at once, and
model selection among them: the model-fitting core of the GMM teachers (:mod:`teachers.gmm`).

It reproduces what the reference implementation (flowersteam/teachDeepRL, "TDRL",
``teachDRL/teachers/algos/alp_gmm.py`` and ``covar_gmm.py``) gets from
``sklearn.mixture.GaussianMixture(covariance_type='full', n_init=1)``, with static shapes so that it
can be jitted, vmapped over seeds and run on an accelerator. Every option lives in one place,
:class:`EMOptions` (sklearn's defaults).

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
  or after ``iters`` iterations. The loop takes ``EMOptions.unroll`` iterations per step (steps past
  the stop keep the parameters); with ``EMOptions.static_loops`` (by default on accelerators) it always
  takes ``ceil(iters / unroll)`` steps, a static trip count, so a GPU never waits for the condition. The algorithm does not depend on the unroll, but
  XLA compiles the unrolled body differently, so the float32 rounding, and with it the iteration at
  which ``tol`` is met, can differ slightly. The returned parameters are those
  after the last M-step and ``mean_loglik`` is evaluated on them (sklearn's ``score``).
* **Numerics.** float32 (sklearn uses float64). EM runs on the points minus their mean (the means are
  shifted back at the end; likelihoods and covariances do not change), so the M-step can take the
  covariances from the first and second moments of one matrix product: the subtraction's rounding,
  about 6e-8 |mean|^2, stays below ``reg_covar`` for points in the unit cube (the teachers' default
  units); with wide raw units a tight component can come out indefinite and takes the jitter retry
  below. For the small dimensions of task spaces (D <= 8) the
  Cholesky factor and its inverse are written out entry by entry, so a whole batch of covariances is
  one fused elementwise computation instead of one LAPACK call per matrix. If a factorisation fails
  (a covariance made indefinite by round-off) it is retried with jitter ``1e-5 (trace/D + 1)`` on the
  diagonal and the jittered covariance is the one stored; a fit that still fails gets a non-finite
  criterion and is never selected (sklearn would raise instead).
* **Refits under vmap.** :func:`refit` fits only when a per-seed flag says so. Without ``vmap`` it is a
  ``lax.cond``; under ``vmap`` a plain ``cond`` would become a select that runs EM for every seed at
  every call, so :func:`refit` has its own batching rule: the seeds that fit are gathered into chunks
  (``EMOptions.vmap_chunk`` seeds each, by default :func:`teachers.base.chunk_size`) and only
  those chunks run EM (the result of each seed is the same as
  without ``vmap``).

Model selection (sklearn's definitions, ``D`` = data dimension, ``N`` = number of valid points):

* ``AIC = -2 N mean_loglik + 2 P``, ``BIC = -2 N mean_loglik + P ln N``, with the full-covariance
  parameter count ``P = k D (D + 1) / 2 + k D + (k - 1)``.
* ``AICc`` as TDRL's ALP-GMM computes it: ``AIC + 2 P' (P' + 1) / (N - P' - 1)`` where
  ``P' = k ((d^2 - d)/2 + 2 d + 1) - 1`` is the same count computed with ``d`` = the *task*
  dimension (without the ALP coordinate), not ``D``. This inconsistency is reproduced on purpose; pass
  ``aicc_dim`` to choose ``d`` (default: ``D``).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from teachers.base import batch_all, chunk_size, map_due_seeds

CRITERIA = ("aic", "bic", "aicc")
_LOG_2PI = math.log(2.0 * math.pi)
_UNROLL_MAX_DIM = 8  # Cholesky written out entry by entry up to this dimension


@dataclasses.dataclass(frozen=True)
class EMOptions:
    """EM and model-selection options of the GMM teachers; defaults are sklearn's (TDRL's)."""

    iters: int = 100  # sklearn max_iter
    tol: float = 1e-3  # sklearn tol on the mean log-likelihood
    reg_covar: float = 1e-6  # sklearn reg_covar, added to every covariance diagonal
    kmeans_iters: int = 10  # Lloyd steps after k-means++ seeding (replaces sklearn's KMeans)
    criterion: str = "aic"  # "aic", "bic" or "aicc" (TDRL's AICc, see the module docstring)
    vmap_chunk: int | None = None  # seeds fitted together under vmap; None: see teachers.base.chunk_size
    unroll: int = 4  # EM / Lloyd iterations per loop step (fewer loop-condition syncs on a GPU)
    # True: EM and Lloyd always take their maximum number of loop steps (a fit that has stopped keeps
    # its parameters: the same result), so the loops have a static trip count and a GPU never waits
    # for a loop condition on the host; False: leave the loop at the stop (cheaper on a CPU);
    # None: True on accelerators, False on the CPU (chosen when the program is lowered).
    static_loops: bool | None = None

    def validate(self, owner: str) -> None:
        """Raise ``ValueError`` naming ``owner`` on options EM cannot run with."""

        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not is_int(self.iters) or self.iters < 1:
            raise ValueError(f"{owner}: em.iters must be an int >= 1, got {self.iters!r}")
        if not is_int(self.kmeans_iters) or self.kmeans_iters < 0:
            raise ValueError(f"{owner}: em.kmeans_iters must be an int >= 0, got {self.kmeans_iters!r}")
        if not (np.isfinite(self.reg_covar) and self.reg_covar >= 0.0):
            raise ValueError(f"{owner}: em.reg_covar must be finite and >= 0, got {self.reg_covar}")
        if not (np.isfinite(self.tol) and self.tol >= 0.0):
            raise ValueError(f"{owner}: em.tol must be finite and >= 0, got {self.tol}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"{owner}: em.criterion must be one of {CRITERIA}, got {self.criterion!r}")
        if self.vmap_chunk is not None and (not is_int(self.vmap_chunk) or self.vmap_chunk < 1):
            raise ValueError(f"{owner}: em.vmap_chunk must be None or an int >= 1, got {self.vmap_chunk!r}")
        if not is_int(self.unroll) or self.unroll < 1:
            raise ValueError(f"{owner}: em.unroll must be an int >= 1, got {self.unroll!r}")
        if not (self.static_loops is None or isinstance(self.static_loops, bool)):
            raise ValueError(f"{owner}: em.static_loops must be None, True or False, got {self.static_loops!r}")


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
    """The initial mixture (one standard-normal component at 0), held until the first fit."""
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


def _cholesky(cov: jax.Array) -> jax.Array:
    """Lower Cholesky factor of ``cov [..., D, D]``; NaN where ``cov`` is not positive definite.

    Written out entry by entry for small D (one fused elementwise program for any batch)."""
    dim = cov.shape[-1]
    if dim > _UNROLL_MAX_DIM:
        return jnp.linalg.cholesky(cov)
    el = [[None] * dim for _ in range(dim)]
    for j in range(dim):
        s = cov[..., j, j] - sum((el[j][k] * el[j][k] for k in range(j)), jnp.zeros_like(cov[..., 0, 0]))
        djj = jnp.sqrt(jnp.where(s > 0, s, jnp.nan))
        el[j][j] = djj
        for i in range(j + 1, dim):
            t = cov[..., i, j] - sum((el[i][k] * el[j][k] for k in range(j)), jnp.zeros_like(s))
            el[i][j] = t / djj
    zero = jnp.zeros_like(cov[..., 0, 0])
    rows = [jnp.stack([el[i][j] if j <= i else zero for j in range(dim)], -1) for i in range(dim)]
    return jnp.stack(rows, -2)


def _tri_inverse(chol: jax.Array) -> jax.Array:
    """Inverse of lower-triangular ``chol [..., D, D]`` (forward substitution, written out)."""
    dim = chol.shape[-1]
    if dim > _UNROLL_MAX_DIM:
        eye = jnp.broadcast_to(jnp.eye(dim, dtype=chol.dtype), chol.shape)
        return jax.scipy.linalg.solve_triangular(chol, eye, lower=True)
    inv = [[None] * dim for _ in range(dim)]
    zero = jnp.zeros_like(chol[..., 0, 0])
    for i in range(dim):
        inv[i][i] = 1.0 / chol[..., i, i]
        for j in range(i):
            s = sum((chol[..., i, k] * inv[k][j] for k in range(j, i)), zero)
            inv[i][j] = -s * inv[i][i]
    rows = [jnp.stack([inv[i][j] if j <= i else zero for j in range(dim)], -1) for i in range(dim)]
    return jnp.stack(rows, -2)


def _safe_cholesky(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Cholesky of covariances ``[..., D, D]``, retried with jitter where it fails. Returns (cov, chol)."""
    dim = cov.shape[-1]
    eye = jnp.eye(dim, dtype=cov.dtype)
    jitter = 1e-5 * (jnp.trace(cov, axis1=-2, axis2=-1) / dim + 1.0)
    cov2 = cov + jitter[..., None, None] * eye
    # One batched factorisation of both: two independent LAPACK calls in one program can deadlock
    # jaxlib 0.10's CPU thread pool on 2-core machines (used only for D > _UNROLL_MAX_DIM).
    chol, chol2 = _cholesky(jnp.stack([cov, cov2]))
    bad = ~jnp.all(jnp.isfinite(chol), axis=(-2, -1))[..., None, None]
    return jnp.where(bad, cov2, cov), jnp.where(bad, chol2, chol)


def _log_densities(x: jax.Array, means: jax.Array, chol: jax.Array) -> jax.Array:
    """log N(x | mean_j, L_j L_j^T) for x [N, D] and every component j. Returns [N, kmax]."""
    dim = x.shape[-1]
    inv = _tri_inverse(chol)  # [kmax, D, D]
    diff = x[None, :, :] - means[:, None, :]  # [kmax, N, D]
    # z_e = sum_d inv[e, d] diff_d, coordinate by coordinate (tiny D: elementwise beats a matmul)
    maha = 0.0
    for e in range(dim):
        z = sum(inv[:, None, e, d] * diff[..., d] for d in range(e + 1))
        maha = maha + z * z  # [kmax, N]
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)  # [kmax]
    return (-0.5 * (dim * _LOG_2PI + log_det[:, None] + maha)).T


def _weighted_log_probs(x, weights, means, chol, component_mask) -> jax.Array:
    """log pi_j + log N_j(x) for x [N, D]; -inf for masked components. Returns [N, kmax]."""
    logd = _log_densities(x, means, chol)
    logw = jnp.log(jnp.where(component_mask, weights, 1.0))
    return jnp.where(component_mask[None, :], logd + logw[None, :], -jnp.inf)


def _e_step(x, w, params, component_mask):
    """Mean log-likelihood of the valid points and their responsibilities [N, kmax]."""
    weights, means, _, chol = params
    wlp = _weighted_log_probs(x, weights, means, chol, component_mask)
    # log-sum-exp written out: component 0 is never masked, so the row maximum is finite (or NaN for
    # a failed fit, which stays NaN), and it takes fewer kernels than jax.scipy's general one
    top = jnp.max(wlp, axis=1)
    lp = top + jnp.log(jnp.sum(jnp.exp(wlp - top[:, None]), axis=1))  # [N]
    resp = jnp.where(w[:, None] > 0, jnp.exp(wlp - lp[:, None]) * w[:, None], 0.0)
    n = jnp.sum(w)
    mean_ll = jnp.sum(jnp.where(w > 0, lp, 0.0)) / n
    return mean_ll, resp


def _m_step(x, resp, component_mask, reg_covar):
    """sklearn's ``_estimate_gaussian_parameters`` (full) with masked components."""
    dim = x.shape[-1]
    eps = jnp.finfo(x.dtype).eps
    resp = jnp.where(component_mask[None, :], resp, 0.0)
    # Zeroth, first and second moments in one product (an EM iteration is bound by its number of
    # kernels, not by arithmetic: a separate column sum for nk cost as much as the rest of the M-step).
    # sum_n r (x - m)(x - m)^T = S - (2 nk - sum_n r) m m^T with m = sum_n r x / nk, exactly;
    # fit_gmms centres the points, which keeps the subtraction accurate.
    xx = (x[:, :, None] * x[:, None, :]).reshape(x.shape[0], dim * dim)
    # HIGHEST: a GPU's default float32 product (TF32, 10-bit mantissa) loses the cancellation above
    feats = jnp.concatenate([jnp.ones_like(x[:, :1]), x, xx], axis=1)
    stats = jnp.matmul(resp.T, feats, precision=jax.lax.Precision.HIGHEST)  # [kmax, 1 + D + D^2]
    nk = stats[:, 0] + 10.0 * eps  # [kmax]
    means = stats[:, 1:dim + 1] / nk[:, None]  # [kmax, D]
    second = stats[:, dim + 1:].reshape(-1, dim, dim) / nk[:, None, None]
    outer = means[:, :, None] * means[:, None, :]
    covs = second - (1.0 + 10.0 * eps / nk)[:, None, None] * outer
    covs = covs + reg_covar * jnp.eye(dim, dtype=x.dtype)
    covs, chol = _safe_cholesky(covs)
    weights = jnp.where(component_mask, nk, 0.0)
    weights = weights / jnp.sum(weights)
    return weights, means, covs, chol


def _while_unrolled(cond, body, init, unroll: int, max_iters: int, static: bool | None):
    """``lax.while_loop(cond, body, init)`` taking up to ``unroll`` steps per loop iteration; the
    steps after ``cond`` turns False keep the carry (the same algorithm; the rounding may differ, see the
    module docstring). ``cond`` must turn False within ``max_iters`` steps.

    On a GPU each iteration of a while loop waits for its condition on the host, and EM and Lloyd on
    a few hundred points are bound by that latency. ``static=True`` runs ``ceil(max_iters / unroll)``
    iterations of the guarded steps instead (a static trip count: no host round trip); ``None`` picks
    that on accelerators and the early exit on the CPU."""

    def guarded(carry):
        go = cond(carry)
        return jax.tree.map(lambda new, old: jnp.where(go, new, old), body(carry), carry)

    def early_exit(init):
        if unroll == 1:
            return jax.lax.while_loop(cond, body, init)

        def steps(carry):
            carry = body(carry)  # cond holds on entry
            for _ in range(unroll - 1):
                carry = guarded(carry)
            return carry

        return jax.lax.while_loop(cond, steps, init)

    def fixed(init):
        def steps(_, carry):
            for _ in range(unroll):
                carry = guarded(carry)
            return carry

        return jax.lax.fori_loop(0, -(-max_iters // unroll), steps, init)

    if static is None:
        return jax.lax.platform_dependent(init, cpu=early_exit, default=fixed)
    return fixed(init) if static else early_exit(init)


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


def lloyd(x, w, centres, component_mask, iters: int, unroll: int = 1, static: bool | None = False):
    """At most ``iters`` Lloyd steps (stops when the assignment no longer changes).

    An empty cluster keeps its centre. Returns the final hard labels [N].
    """
    kmax = centres.shape[0]
    valid = (w > 0).astype(x.dtype)

    def update_centres(labels, centres):
        onehot = jax.nn.one_hot(labels, kmax, dtype=x.dtype) * valid[:, None]
        counts = jnp.sum(onehot, axis=0)
        sums = jnp.matmul(onehot.T, x, precision=jax.lax.Precision.HIGHEST)
        return jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], centres)

    labels0 = _assign(x, centres, component_mask)

    def cond(carry):
        i, _, _, changed = carry
        return (i < iters) & changed

    def body(carry):
        i, centres, labels, _ = carry
        centres = update_centres(labels, centres)
        new = _assign(x, centres, component_mask)
        changed = jnp.any((new != labels) & (valid > 0))
        return i + 1, centres, new, changed

    _, _, labels, _ = _while_unrolled(
        cond, body, (jnp.zeros((), jnp.int32), centres, labels0, jnp.ones((), bool)), unroll, iters, static
    )
    return labels


# --------------------------------------------------------------------------------------------------
# EM for every k
# --------------------------------------------------------------------------------------------------


def _fit_one(key, x, w, k, kmax, options: EMOptions):
    component_mask = jnp.arange(kmax) < k
    centres = kmeans_pp(key, x, w, kmax)
    labels = lloyd(x, w, centres, component_mask, options.kmeans_iters, options.unroll, options.static_loops)
    resp0 = jax.nn.one_hot(labels, kmax, dtype=x.dtype) * w[:, None]
    params0 = _m_step(x, resp0, component_mask, options.reg_covar)

    def cond(carry):
        i, _, _, converged = carry
        return (i < options.iters) & ~converged

    def body(carry):
        i, params, prev_ll, _ = carry
        ll, resp = _e_step(x, w, params, component_mask)
        params = _m_step(x, resp, component_mask, options.reg_covar)
        converged = jnp.abs(ll - prev_ll) < options.tol
        return i + 1, params, ll, converged

    init = (jnp.zeros((), jnp.int32), params0, jnp.asarray(-jnp.inf, x.dtype), jnp.zeros((), bool))
    n_iter, params, _, converged = _while_unrolled(
        cond, body, init, options.unroll, options.iters, options.static_loops)
    mean_ll, _ = _e_step(x, w, params, component_mask)
    weights, means, covs, chol = params
    return weights, means, covs, chol, component_mask, mean_ll, n_iter, converged


def fit_gmms(
    key: jax.Array,
    points: jax.Array,
    mask: jax.Array,
    ks: tuple[int, ...],
    options: EMOptions = EMOptions(),
) -> GMMFit:
    """Fit full-covariance mixtures with k components for every k in ``ks`` (static) by EM.

    Args:
      key: PRNG key for the k-means++ seeding (the same key serves every k, as sklearn's
        ``random_state`` does in TDRL).
      points: ``[N, D]`` data; rows with ``mask`` False are ignored (and may hold garbage).
      mask: ``[N]`` bool, the valid points. There should be at least ``max(ks)`` of them.
      ks: static tuple of component counts, e.g. ``tuple(range(2, 11))``.
      options: iterations, tolerance, covariance regularisation, Lloyd steps.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"fit_gmms: ks must be a non-empty tuple of positive ints, got {ks}")
    kmax = max(ks)
    mask = jnp.asarray(mask, bool)
    x = jnp.where(mask[:, None], jnp.asarray(points, jnp.float32), 0.0)
    w = mask.astype(jnp.float32)
    dim = x.shape[-1]
    centre = jnp.sum(x, axis=0) / jnp.maximum(jnp.sum(w), 1.0)  # EM runs on centred points (_m_step)
    x = jnp.where(mask[:, None], x - centre, 0.0)
    fit = jax.vmap(lambda k: _fit_one(key, x, w, k, kmax, options))
    weights, means, covs, chol, cmask, mean_ll, n_iter, converged = fit(jnp.asarray(ks, jnp.int32))
    means = means + centre
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
    """TDRL's AICc: ``AIC + 2 P' (P' + 1) / (N - P' - 1)``, ``P'`` counted with ``aicc_dim``
    (default: the data dimension D; TDRL's ALP-GMM uses the task dimension D - 1)."""
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

    def fin(a, axes):
        return jnp.all(jnp.isfinite(a), axis=axes)

    finite = fin(fit.weights, 1) & fin(fit.means, (1, 2)) & fin(fit.covs, (1, 2, 3)) & fin(
        fit.chol, (1, 2, 3))
    return jnp.where(jnp.isfinite(v) & finite, v, jnp.inf)


def select(fit: GMMFit, criterion: str = "aic", aicc_dim: int | None = None) -> GMM:
    """The mixture with the smallest criterion (first on ties, as ``np.argmin``), padded to kmax."""
    values = criterion_values(fit, criterion, aicc_dim)
    i = jnp.argmin(values)
    return GMM(
        weights=fit.weights[i],
        means=fit.means[i],
        covs=fit.covs[i],
        chol=fit.chol[i],
        component_mask=fit.component_mask[i],
        k=jnp.asarray(fit.ks, jnp.int32)[i],
        mean_loglik=fit.mean_loglik[i],
        ok=jnp.isfinite(values[i]),
    )


def fit_and_select(
    key: jax.Array, points: jax.Array, mask: jax.Array, ks: tuple[int, ...],
    options: EMOptions = EMOptions(), aicc_dim: int | None = None,
) -> GMM:
    """:func:`fit_gmms` for every k, then :func:`select` by ``options.criterion``."""
    return select(fit_gmms(key, points, mask, ks, options), options.criterion, aicc_dim)


def gmm_log_prob(gmm: GMM, x: jax.Array) -> jax.Array:
    """Log-density of the mixture at ``x`` [N, D]. Returns [N]."""
    wlp = _weighted_log_probs(x, gmm.weights, gmm.means, gmm.chol, gmm.component_mask)
    return jax.scipy.special.logsumexp(wlp, axis=1)


# --------------------------------------------------------------------------------------------------
# Refit on a per-seed flag, cheap under vmap
# --------------------------------------------------------------------------------------------------


def refit(
    seed: jax.Array,
    window: jax.Array,
    fitted: jax.Array,
    gmm: GMM,
    ks: tuple[int, ...],
    options: EMOptions = EMOptions(),
    aicc_dim: int | None = None,
) -> tuple[GMM, jax.Array]:
    """If ``fitted``: the mixture selected on ``window [F, D]`` (all rows valid) with the fit key
    ``jax.random.key(seed)``; else ``gmm``. Returns ``(gmm, good)``, ``good`` = fitted and the new
    parameters are finite (a failed fit keeps the previous mixture).

    Under ``vmap`` only the seeds with ``fitted`` run EM (see the module docstring).
    """
    return _refit_fn(tuple(int(k) for k in ks), options, aicc_dim)(seed, window, fitted, gmm)


@functools.lru_cache(maxsize=None)
def _refit_fn(ks: tuple[int, ...], options: EMOptions, aicc_dim: int | None):
    def fit_one(seed, window):
        mask = jnp.ones(window.shape[:1], bool)
        return fit_and_select(jax.random.key(seed), window, mask, ks, options, aicc_dim)

    def keep_or_take(fitted, new, old):
        good = fitted & new.ok
        return jax.tree.map(lambda a, b: jnp.where(good, a, b), new, old), good

    @jax.custom_batching.custom_vmap
    def fn(seed, window, fitted, gmm):
        return jax.lax.cond(
            fitted,
            lambda: keep_or_take(fitted, fit_one(seed, window), gmm),
            lambda: (gmm, jnp.zeros((), bool)),
        )

    @fn.def_vmap
    def fn_vmap(axis_size, in_batched, seed, window, fitted, gmm):
        seed, window, fitted, gmm = batch_all(axis_size, in_batched, (seed, window, fitted, gmm))

        def compute(take):  # a due seed's fitted mixture, or its old one if the fit failed
            new = jax.vmap(fit_one)(seed[take], window[take])
            return jax.vmap(keep_or_take)(fitted[take], new, jax.tree.map(lambda a: a[take], gmm))

        out = map_due_seeds(fitted, chunk_size(axis_size, options.vmap_chunk), compute,
                            (gmm, jnp.zeros((axis_size,), bool)))
        return out, (jax.tree.map(lambda _: True, out[0]), True)

    return fn


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def sample_gmm_components(key: jax.Array, gmm: GMM, comps: jax.Array) -> jax.Array:
    """One draw ``x_i ~ N(mean_j, cov_j)`` per component index ``j = comps[i]``. Returns [n, D].

    One normal draw for the whole batch, not a key per row: sampling runs for every environment slot
    of every PPO update, and per-row keys multiplied its random-number work several times. The
    product ``L_j z`` is a sum of D columns, elementwise, not a batched matrix-vector product: on a
    GPU the batched ``einsum`` over every slot cost several times the rest of the teacher inside PPO
    (benchmarks/RESULTS.md)."""
    z = jax.random.normal(key, comps.shape + gmm.means.shape[-1:], gmm.means.dtype)
    chol = gmm.chol[comps]  # [n, D, D]
    return gmm.means[comps] + sum(chol[:, :, j] * z[:, j, None] for j in range(z.shape[-1]))


def choose_components(
    key: jax.Array, scores: jax.Array, component_mask: jax.Array, n: int
) -> jax.Array:
    """``n`` component indices, each with probability ``max(score_j, 0) / sum`` over valid components.

    Uniform over valid components when every (clamped) score is 0 (TDRL ``proportional_choice``).
    Inverse CDF from one uniform number per draw (a categorical would draw one per component); the
    index is the number of cumulative weights at or below it, counted one component at a time
    (elementwise, no ``[n, kmax]`` comparison matrix to reduce).
    """
    s = jnp.where(component_mask, jnp.maximum(jnp.nan_to_num(scores), 0.0), 0.0)
    p = jnp.where(jnp.sum(s) > 0, s, component_mask.astype(s.dtype))
    c = jnp.cumsum(p)
    u = jax.random.uniform(key, (n,), c.dtype) * c[-1]
    idx = sum((c[j] <= u).astype(jnp.int32) for j in range(p.shape[0]))
    last_pos = jnp.max(jnp.where(p > 0, jnp.arange(p.shape[0]), -1))
    return jnp.minimum(idx, last_pos)


def sample_gmm(key: jax.Array, gmm: GMM, n: int) -> jax.Array:
    """``n`` draws [n, D] from the mixture (components chosen by the mixture weights)."""
    kc, kx = jax.random.split(key)
    comps = choose_components(kc, gmm.weights, gmm.component_mask, n)
    return sample_gmm_components(kx, gmm, comps)
