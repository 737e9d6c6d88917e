"""CURROT: curriculum RL via constrained optimal transport, with a particle context distribution.

Klink, Yang, D'Eramo, Peters and Pajarinen, "Curriculum Reinforcement Learning via Constrained
Optimal Transport", ICML 2022. Reference code ``psclklnk/currot``: ``deep_sprl/teachers/spl/
wasserstein_teacher.py`` (``ContinuousBarycenterCurriculum``, ``WassersteinSuccessBuffer``),
``wasserstein_barycenters.py`` (the transport step), ``sliced_wasserstein.py``, ``deep_sprl/teachers/
util.py`` (Nadaraya-Watson), constants of ``deep_sprl/experiments/point_mass_2d_experiment.py``.

The context distribution is ``N`` particles (initially uniform over the box); a task is a random
particle plus uniform noise of +-1e-3 of the box width. Every ``episodes_per_update`` episodes (the
latest ones, with their discounted returns ``V``):

1. **Success buffer** (``N`` contexts). Until delta is reached (the buffer's median return > delta)
   it keeps the best episodes seen: new episodes at least as good as the median replace the lower
   half, the buffer sorted by return. Afterwards it holds contexts with ``V >= delta``: new successes
   replace failures (lowest returns first); once every entry succeeds and the buffer is full, it keeps
   the ``N`` of its entries and the new successes that match ``N`` fresh target samples at least
   cost (a linear assignment, squared distances). Episodes not kept enter a ring of the last ``N``
   failures (once the performance threshold has been met).
2. **Performance model**: Nadaraya-Watson regression of ``V`` on the failures and the buffer,
   Gaussian kernel of length scale ``0.3 sqrt(epsilon)``, neighbours within 3 length scales (the
   reference's C++ estimator also caps the neighbours at half the data; with so small a radius the
   cap does not bind here, and it is left out). A query with no neighbour gets the lowest return
   seen.
3. **Initial particles**: particles predicted below delta are replaced by samples of the success
   buffer (the buffer plus Gaussian search noise, wider for returns further below delta), matched by
   a linear assignment of least squared distance (only among samples predicted above delta when there
   are enough of them).
4. **Transport step**: fresh target samples; each particle's target ``t_i`` is its displacement along
   the sliced-Wasserstein gradient (100 random projections, sorted 1-D matchings). Each particle moves
   to the candidate of 100 points in the ball of radius ``min(sqrt(epsilon), ||t_i - c_i||)`` around it
   (the half ball facing ``t_i`` for particles above delta) that is nearest to ``t_i`` among those
   predicted above delta, or to the one with the highest prediction when none is:

       c_i <- argmin_{c in ball(c_i)} ||c - t_i||  s.t.  V_hat(c) > delta.

The linear assignments (the reference's ``scipy.optimize.linear_sum_assignment``) are the Hungarian
algorithm in its shortest-augmenting-path form (:func:`linear_assignment`; Kuhn 1955, Jonker &
Volgenant 1987), exact, in ``lax`` loops. Its cost is its sequential steps: a Dijkstra step per
column reached before a free one, for each row added. Step 3 assigns only the particles to replace
(compacted first, as the reference assigns only those rows), and a seed without a round assigns no
rows. The buffer assignment of step 1 is the expensive one: the target samples are nearly one point,
so every row prefers the same columns and each row's search visits most assigned columns (about
n^2 / 2 steps); the search therefore runs several Dijkstra steps per loop iteration
(``CurrOTConfig.unroll``). Defaults are
the reference point-mass settings: 200 particles, delta 4.0, epsilon 0.5, 40 episodes per update. The
target is :func:`teachers.gaussian.context_prior`'s: SPDL's point-mass target, or uniform over the box
on other task spaces (where the default value is the normalised score and delta 0.5).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from envs.task_space import TaskSpace
from teachers import gaussian as G
from teachers.base import InputCounts, Teacher, checked_sample, checked_update, compact_valid_first, ring_positions
from teachers.self_paced import VALUES, _extras, episode_values, resolve_value

_BIG = 1e7  # cost of a forbidden assignment


@dataclasses.dataclass(frozen=True)
class CurrOTConfig:
    """CURROT options; defaults are the reference's point-mass settings."""

    num_particles: int = 200
    delta: float | None = None
    """performance threshold; None: 4.0 on the point mass, 0.5 (a score) elsewhere"""
    epsilon: float = 0.5
    """METRIC_EPS: particles move at most sqrt(epsilon) per update"""
    episodes_per_update: int = 40
    candidates: int = 100
    """points sampled in each particle's ball"""
    projections: int = 100
    """random directions of the sliced-Wasserstein matching"""
    value: str | None = None
    """discounted_return | initial_value | score; None: discounted_return on the point mass, else score"""
    unroll: int = 8
    """Dijkstra steps per loop iteration of the assignment solver (speed only; the result is exact)"""

    def validate(self) -> None:
        if self.num_particles < 2 or self.candidates < 1 or self.projections < 1 or self.unroll < 1:
            raise ValueError("CurrOT needs num_particles >= 2 and candidates, projections, unroll >= 1")
        if not 1 <= self.episodes_per_update < self.num_particles:
            raise ValueError("CurrOT needs 1 <= episodes_per_update < num_particles (as the reference)")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if self.value is not None and self.value not in VALUES:
            raise ValueError(f"value must be one of {VALUES}, got {self.value!r}")


# ------------------------------------------------------------------------------------------------
# Exact pieces: assignment, sliced-Wasserstein matching, the ball step


def linear_assignment(cost: jax.Array, rows: jax.Array | int | None = None, unroll: int = 4) -> jax.Array:
    """Minimum-cost assignment of the first ``rows`` rows of ``cost [n, m]`` (n <= m; None: all n)
    to distinct columns; returns ``col[n]``, -1 for the rows beyond ``rows``.

    Hungarian algorithm with potentials (shortest augmenting paths: Kuhn 1955, Jonker & Volgenant
    1987): rows are added one at a time, each by a Dijkstra search over the reduced costs followed
    by an augmentation along the path found. Exact. The search holds the row potentials by column
    (the potential of the row assigned to each column), so every step is dense vector work without
    scatters, and runs ``unroll`` Dijkstra steps per loop iteration (the loop's sequential
    iterations, not its work, are what costs on an accelerator). A dynamic ``rows`` (a traced
    count) runs only that many row additions: under ``vmap`` the loop runs to the largest count.
    """
    n, m = cost.shape
    if n > m:
        raise ValueError(f"linear_assignment needs rows <= columns, got {cost.shape}")
    if unroll < 1:
        raise ValueError(f"unroll must be >= 1, got {unroll}")
    rows = n if rows is None else jnp.minimum(jnp.asarray(rows, jnp.int32), n)
    # column 0 is the dummy that holds the row being added; row 0 of ``a`` is never read
    a = jnp.zeros((n + 1, m + 1), cost.dtype).at[1:, 1:].set(cost)
    inf = jnp.asarray(jnp.inf, cost.dtype)
    cols_idx = jnp.arange(m + 1)

    def add_row(i, carry):
        uc, v, p = carry  # uc[j]: potential of the row assigned to column j (uc[0]: row i's)
        p = p.at[0].set(i)
        uc = uc.at[0].set(0.0)

        def step(c):
            uc, v, way, minv, used, j0, live = c
            used_n = used | ((cols_idx == j0) & live)
            i0 = p[j0]
            cur = a[i0] - uc[j0] - v
            better = (~used_n) & (cur < minv)
            minv_n = jnp.where(better, cur, minv)
            way_n = jnp.where(better, j0, way)
            masked = jnp.where(used_n, inf, minv_n)
            j1 = jnp.argmin(masked).astype(jnp.int32)
            d = masked[j1]
            uc_n = jnp.where(used_n, uc + d, uc)
            v_n = jnp.where(used_n, v - d, v)
            minv_n = jnp.where(used_n, minv_n, minv_n - d)
            pick = lambda new, old: jnp.where(live, new, old)
            out = (pick(uc_n, uc), pick(v_n, v), pick(way_n, way), pick(minv_n, minv), pick(used_n, used),
                   pick(j1, j0))
            return out + (live & (p[pick(j1, j0)] != 0),)

        def search(c):
            for _ in range(unroll):
                c = step(c)
            return c

        minv = jnp.full((m + 1,), inf, cost.dtype)
        used = jnp.zeros((m + 1,), bool)
        way = jnp.zeros((m + 1,), jnp.int32)
        uc, v, way, _, _, j0, _ = jax.lax.while_loop(
            lambda c: c[-1], search, (uc, v, way, minv, used, jnp.zeros((), jnp.int32), jnp.ones((), bool)))

        def augment(c):
            p, uc, j0 = c
            for _ in range(unroll):
                live = j0 != 0
                j1 = way[j0]
                p = jnp.where(live, p.at[j0].set(p[j1]), p)
                uc = jnp.where(live, uc.at[j0].set(uc[j1]), uc)
                j0 = jnp.where(live, j1, j0)
            return p, uc, j0

        p, uc, _ = jax.lax.while_loop(lambda c: c[-1] != 0, augment, (p, uc, j0))
        return uc, v, p

    init = (jnp.zeros((m + 1,), cost.dtype), jnp.zeros((m + 1,), cost.dtype), jnp.zeros((m + 1,), jnp.int32))
    _, _, p = jax.lax.fori_loop(1, rows + 1, add_row, init)
    # p[j] = row (1-based) assigned to column j, 0 if free; invert (free columns and the dummy
    # column write to the discarded row 0)
    p = p.at[0].set(0)
    cols = jnp.full((n + 1,), -1, jnp.int32).at[p].set(jnp.arange(m + 1, dtype=jnp.int32) - 1)
    return cols[1:]


def sliced_wasserstein_moves(key: jax.Array, source: jax.Array, target: jax.Array,
                             projections: int) -> jax.Array:
    """Per source point, the mean over random unit directions of (matched target - source) projected
    on the direction, times the direction (the sliced-Wasserstein gradient step of the reference)."""
    dim = source.shape[1]
    dirs = jax.random.normal(key, (projections, dim))
    dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
    sp = dirs @ source.T  # [P, N]
    tp = dirs @ target.T
    rank = jnp.argsort(jnp.argsort(sp, axis=-1), axis=-1)
    matched = jnp.take_along_axis(jnp.sort(tp, axis=-1), rank, axis=-1)
    return (matched - sp).T @ dirs / projections


def ball_step(key: jax.Array, particles: jax.Array, targets: jax.Array, half_ball: jax.Array,
              predict, delta: float, radius: float, low: jax.Array, high: jax.Array,
              candidates: int) -> jax.Array:
    """The transport step (module docstring, step 4) with performance model ``predict(x[..., d])``."""
    n, dim = particles.shape
    k_dir, k_r = jax.random.split(key)
    direction = jax.random.normal(k_dir, (candidates, dim))
    r = jax.random.uniform(k_r, (candidates, 1)) ** (1.0 / dim)
    noise = r * direction / jnp.linalg.norm(direction, axis=-1, keepdims=True)  # uniform in the ball
    dirs = targets - particles
    sq = jnp.sum(dirs * dirs, axis=-1)
    proj = (dirs / jnp.maximum(sq, 1e-12)[:, None]) @ noise.T  # [N, C]
    reflected = jnp.where((proj > 0)[..., None], noise[None], noise[None] - 2 * proj[..., None] * dirs[:, None])
    moves = jnp.where(half_ball[:, None, None], reflected, noise[None])
    scale = jnp.minimum(radius, jnp.sqrt(sq))[:, None, None]
    cand = jnp.clip(particles[:, None] + scale * moves, low, high)  # [N, C, d]
    dist = jnp.linalg.norm(cand - targets[:, None], axis=-1)
    perf = predict(cand)
    ok = perf > delta
    pick = jnp.where(ok.any(axis=1), jnp.argmin(jnp.where(ok, dist, jnp.inf), axis=1), jnp.argmax(perf, axis=1))
    return cand[jnp.arange(n), pick]


def nadaraya_watson(x: jax.Array, data: jax.Array, values: jax.Array, valid: jax.Array,
                    lengthscale: float, radius_scale: float = 3.0) -> jax.Array:
    """Gaussian-kernel regression at ``x [..., d]`` on the valid rows of ``data [M, d]``."""
    # squared distances summed dimension by dimension: [..., M] without a [..., M, d] intermediate
    d2 = sum((x[..., None, k] - data[:, k]) ** 2 for k in range(data.shape[-1]))
    use = valid & (d2 < (radius_scale * lengthscale) ** 2)
    w = jnp.where(use, jnp.exp(-0.5 * d2 / lengthscale**2), 0.0)
    total = w.sum(axis=-1)
    fallback = jnp.min(jnp.where(valid, values, jnp.inf))
    pred = jnp.sum(w * values, axis=-1) / jnp.maximum(total, 1e-30)
    return jnp.where(total > 0, pred, fallback)


# ------------------------------------------------------------------------------------------------
# The teacher


@struct.dataclass
class CurrOTState:
    particles: jax.Array  # [N, d]
    ep_contexts: jax.Array  # [B, d] episodes of the current round
    ep_values: jax.Array  # [B]
    ep_count: jax.Array
    succ_contexts: jax.Array  # [N, d] success buffer (rows < succ_size are valid)
    succ_values: jax.Array
    succ_size: jax.Array
    delta_reached: jax.Array  # the success buffer's median passed delta
    min_value: jax.Array  # lowest value of the first round (noise scale of the success samples)
    fail_contexts: jax.Array  # [N, d] ring of failures
    fail_values: jax.Array
    fail_count: jax.Array
    threshold_reached: jax.Array
    key: jax.Array
    updates: jax.Array
    episodes: jax.Array
    inputs: InputCounts  # bad input received (teachers.base); non-finite values count as non-finite


def currot(task_space: TaskSpace, config: CurrOTConfig | None = None) -> Teacher:
    """The CURROT teacher over ``task_space`` (module docstring)."""
    config = config or CurrOTConfig()
    config.validate()
    prior = G.context_prior(task_space)
    value = resolve_value(config.value, prior)
    delta = config.delta if config.delta is not None else (4.0 if prior.source == "point_mass" else 0.5)
    n, b, dim = config.num_particles, config.episodes_per_update, task_space.dim
    low, high = task_space.low_array, task_space.high_array
    width = high - low
    radius = math.sqrt(config.epsilon)
    lengthscale = 0.3 * radius
    delta_stds = width / 4.0
    min_stds = 0.005 * config.epsilon
    sample_noise = 1e-3 * width
    idx_n = jnp.arange(n)

    def init(key: jax.Array) -> CurrOTState:
        k_p, key = jax.random.split(key)
        zf, zi = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        return CurrOTState(
            particles=task_space.sample_uniform(k_p, n),
            ep_contexts=jnp.zeros((b, dim), jnp.float32), ep_values=jnp.zeros((b,), jnp.float32), ep_count=zi,
            succ_contexts=jnp.zeros((n, dim), jnp.float32),
            succ_values=jnp.full((n,), -jnp.inf, jnp.float32), succ_size=jnp.ones((), jnp.int32),
            delta_reached=jnp.zeros((), bool), min_value=zf,
            fail_contexts=jnp.zeros((n, dim), jnp.float32), fail_values=jnp.zeros((n,), jnp.float32),
            fail_count=zi, threshold_reached=jnp.zeros((), bool), key=key, updates=zi, episodes=zi,
            inputs=InputCounts.zeros(),
        )

    @checked_sample("currot")
    def sample(state: CurrOTState, key: jax.Array, m: int):
        k_i, k_u = jax.random.split(key)
        picks = state.particles[jax.random.randint(k_i, (m,), 0, n)]
        noise = jax.random.uniform(k_u, (m, dim), minval=-sample_noise, maxval=sample_noise)
        return state, task_space.clip(picks + noise)

    def buffer_not_reached(state, ctx, val, valid):
        """Step 1 before delta: keep the best (buffer sorted by value, ascending)."""
        size = state.succ_size
        med = size // 2
        new_ok = valid & (val >= state.succ_values[med])
        n_new = new_ok.sum()
        offset = jnp.minimum(med + 1, n_new)
        keep_old = (idx_n >= offset) & (idx_n < size)
        all_c = jnp.concatenate([ctx, state.succ_contexts])
        all_v = jnp.concatenate([val, state.succ_values])
        all_ok = jnp.concatenate([new_ok, keep_old])
        order = jnp.lexsort((all_v, all_ok))  # invalid first, then valid by ascending value
        total = all_ok.sum()
        k = jnp.minimum(n, total)
        src = order[(b + n) - k + idx_n]
        rows = idx_n < k
        kept = jnp.zeros((b + n,), bool).at[src].set(rows, mode="drop")
        succ_c = jnp.where(rows[:, None], all_c[src], 0.0)
        succ_v = jnp.where(rows, all_v[src], -jnp.inf)
        reached = state.succ_values[size // 2] > delta
        failed = valid & ~(new_ok & kept[:b])
        return succ_c, succ_v, k.astype(jnp.int32), reached, failed

    def buffer_reached(state, ctx, val, valid, targets, active):
        """Step 1 after delta: successes replace failures, or the assignment to target samples."""
        size = state.succ_size
        old_valid = idx_n < size
        new_ok = valid & (val >= delta)
        n_new = new_ok.sum()
        remove = old_valid & (state.succ_values < delta)
        n_remove = remove.sum()
        # (a) assignment of target samples to the buffer + new successes
        ext_c = jnp.concatenate([state.succ_contexts, ctx])
        ext_v = jnp.concatenate([state.succ_values, val])
        ext_ok = jnp.concatenate([old_valid, new_ok])
        use_a = (n_remove == 0) & (size >= n) & (n_new > 0) & active
        cost = jnp.sum((targets[:, None] - ext_c[None]) ** 2, axis=-1)
        cost = jnp.where(ext_ok[None], cost, _BIG)
        # under vmap both branches run: no rows to assign when unused
        cols = jnp.sort(linear_assignment(cost, jnp.where(use_a, n, 0), config.unroll))
        chosen = jnp.zeros((n + b,), bool).at[cols].set(True)
        a_c, a_v = ext_c[cols], ext_v[cols]
        # (b) replace the failures (the n_new lowest values when there are more failures)
        rank = jnp.argsort(jnp.argsort(jnp.where(old_valid, state.succ_values, jnp.inf)))
        remove = jnp.where(n_new < n_remove, old_valid & (rank < n_new), remove)
        cat_c = jnp.concatenate([ctx, state.succ_contexts])
        cat_v = jnp.concatenate([val, state.succ_values])
        cat_ok = jnp.concatenate([new_ok, old_valid & ~remove])
        order, count = compact_valid_first(cat_ok)
        take = order[:n]
        rows = idx_n < count
        r_c = jnp.where(rows[:, None], cat_c[take], 0.0)
        r_v = jnp.where(rows, cat_v[take], -jnp.inf)
        any_new = n_new > 0
        succ_c = jnp.where(any_new, jnp.where(use_a, a_c, r_c), state.succ_contexts)
        succ_v = jnp.where(any_new, jnp.where(use_a, a_v, r_v), state.succ_values)
        succ_size = jnp.where(any_new, jnp.where(use_a, n, jnp.minimum(count, n)), size).astype(jnp.int32)
        kept_new = jnp.where(use_a, new_ok & chosen[n:], new_ok)
        return succ_c, succ_v, succ_size, jnp.ones((), bool), valid & ~kept_new

    def success_samples(state, key):
        """The success buffer filled to ``N`` and perturbed by search noise (reference read_update)."""
        size = state.succ_size
        vals = state.succ_values
        scales = jnp.clip(delta - vals, 0.0, jnp.inf) / jnp.maximum(delta - state.min_value, 1e-8)
        stds = min_stds + scales[:, None] * delta_stds
        k_pick, k_fill, k_noise = jax.random.split(key, 3)
        # before delta: resample the upper half, favouring higher values
        offset = size // 2
        base = vals[jnp.where(offset >= 1, offset - 1, size - 1)]
        upper = (idx_n >= offset) & (idx_n < size)
        probs = jnp.where(upper, vals - base, 0.0)
        probs = jnp.where(probs.sum() > 0, probs, upper.astype(jnp.float32))
        pick_before = jax.random.choice(k_pick, n, (n,), p=probs / probs.sum())
        fill = jax.random.randint(k_fill, (n,), 0, jnp.maximum(size, 1))
        pick_after = jnp.where(idx_n < size, idx_n, fill)
        pick = jnp.where(state.delta_reached, pick_after, pick_before)
        centre, std = state.succ_contexts[pick], stds[pick]

        def redraw(carry, k):
            x = carry
            bad = jnp.any((x < low) | (x > high), axis=-1, keepdims=True)
            fresh = centre + std * jax.random.normal(k, x.shape)
            return jnp.where(bad, fresh, x), None

        keys = jax.random.split(k_noise, 11)
        x0 = centre + std * jax.random.normal(keys[0], centre.shape)
        x, _ = jax.lax.scan(redraw, x0, keys[1:])
        return jnp.clip(x, low, high)

    def end_round(state: CurrOTState) -> CurrOTState:
        # under vmap the round is computed for every seed; seeds without a round assign no rows
        active = state.ep_count >= b
        state = state.replace(ep_count=jnp.minimum(state.ep_count, b))
        key, k_t1, k_t2, k_succ, k_sw, k_ball = jax.random.split(state.key, 6)
        valid = jnp.arange(b) < state.ep_count
        ctx, val = state.ep_contexts, state.ep_values
        first = state.updates == 0
        min_value = jnp.where(first, jnp.min(jnp.where(valid, val, jnp.inf)), state.min_value)
        state = state.replace(min_value=min_value)
        targets = G.sample_prior_target(prior, task_space, k_t1, n)
        succ_c, succ_v, succ_size, reached, failed = jax.lax.cond(
            state.delta_reached,
            lambda: buffer_reached(state, ctx, val, valid, targets, active),
            lambda: buffer_not_reached(state, ctx, val, valid),
        )
        failed = failed & state.threshold_reached
        pos = ring_positions(state.fail_count, failed, n)
        state = state.replace(
            succ_contexts=succ_c, succ_values=succ_v, succ_size=succ_size, delta_reached=reached,
            fail_contexts=state.fail_contexts.at[pos].set(ctx, mode="drop"),
            fail_values=state.fail_values.at[pos].set(val, mode="drop"),
            fail_count=state.fail_count + failed.sum().astype(jnp.int32),
        )
        data = jnp.concatenate([state.fail_contexts, state.succ_contexts])
        data_v = jnp.concatenate([state.fail_values, state.succ_values])
        data_ok = jnp.concatenate([idx_n < jnp.minimum(state.fail_count, n), idx_n < state.succ_size])
        data_v = jnp.where(data_ok, data_v, 0.0)
        predict = lambda x: nadaraya_watson(x, data, data_v, data_ok, lengthscale)
        threshold = state.threshold_reached | (jnp.mean(predict(state.particles)) >= delta)

        # step 3: particles below delta are replaced by matched success samples
        succ = success_samples(state, k_succ)
        reached_p = predict(state.particles) >= delta
        replace = ~reached_p
        succ_ok = predict(succ) >= delta
        restrict = succ_ok.sum() >= replace.sum()
        # only the particles to replace are assigned (first, in a compacted order), as the reference
        # assigns only them
        order, count = compact_valid_first(replace)
        cost = jnp.sum((state.particles[order][:, None] - succ[None]) ** 2, axis=-1)
        cost = jnp.where(restrict & ~succ_ok[None], _BIG, cost)
        solved = linear_assignment(cost, jnp.where(active, count, 0), config.unroll)
        match = jnp.zeros((n,), jnp.int32).at[order].set(solved)
        start = jnp.where(replace[:, None], succ[match], state.particles)
        reached_p = jnp.where(replace, succ_ok[match], reached_p)

        # step 4: the transport step towards fresh target samples
        target = G.sample_prior_target(prior, task_space, k_t2, n)
        goal = start + sliced_wasserstein_moves(k_sw, start, target, config.projections)
        particles = ball_step(k_ball, start, goal, reached_p, predict, delta, radius, low, high,
                              config.candidates)
        return state.replace(particles=particles, threshold_reached=threshold, key=key,
                             updates=state.updates + 1, ep_count=jnp.zeros_like(state.ep_count))

    @checked_update("currot", task_space)
    def update(state: CurrOTState, tasks, scores, mask, **extras) -> CurrOTState:
        v, valid, nonfinite = episode_values("currot", value, scores, mask, extras)
        n_valid = valid.sum().astype(jnp.int32)
        # the round keeps its latest ``episodes_per_update`` episodes: of a batch with more than that,
        # only its last ones are written (distinct ring slots; a scatter with repeated indices keeps
        # an unspecified one of them on an accelerator)
        latest = jnp.cumsum(valid[::-1].astype(jnp.int32))[::-1] <= b
        pos = jnp.where(latest, ring_positions(state.ep_count, valid, b), b)
        state = state.replace(
            ep_contexts=state.ep_contexts.at[pos].set(tasks.astype(jnp.float32), mode="drop"),
            ep_values=state.ep_values.at[pos].set(v, mode="drop"),
            ep_count=state.ep_count + n_valid,
            episodes=state.episodes + n_valid,
            inputs=state.inputs.replace(nonfinite=state.inputs.nonfinite + nonfinite),
        )
        return jax.lax.cond(state.ep_count >= b, end_round, lambda s: s, state)

    return Teacher(init, sample, update, task_space, "currot", _extras(value))
