"""Wall time of the GMM teachers' refit (:func:`teachers.em.fit_and_select` for k = 2..10) for a chunk of
seeds fitted together under ``vmap``, as :func:`teachers.em.refit` runs it inside PPO, for several
``EMOptions.unroll`` values (EM / Lloyd iterations per loop step) in the same run.

``python -m benchmarks.em_fit [--chunk 32] [--points 250] [--dim 3] [--unrolls 1 2 4 8] [--repeats 20]``

The windows are ALP-GMM-like rows: ``dim - 1`` task coordinates uniform in [0, 1] plus an ALP
column that is large near a few random centres. The unroll does not change the algorithm, only how XLA
compiles the loop (and so the float32 rounding): each row reports the selected component counts and the
mean log-likelihood of the selected mixtures, to set beside the first row's. The last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from teachers import em as E


def windows(key: jax.Array, chunk: int, points: int, dim: int) -> jax.Array:
    k_task, k_centre = jax.random.split(key)
    tasks = jax.random.uniform(k_task, (chunk, points, dim - 1))
    centres = jax.random.uniform(k_centre, (chunk, 3, dim - 1))
    dist = jnp.min(jnp.sum((tasks[:, :, None] - centres[:, None]) ** 2, axis=-1), axis=-1)
    alp = jnp.exp(-dist / 0.02)
    return jnp.concatenate([tasks, alp[..., None]], axis=-1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=32, help="seeds fitted together (vmap)")
    parser.add_argument("--points", type=int, default=250, help="rows per fit (fit_rate)")
    parser.add_argument("--dim", type=int, default=3, help="row dimension (task dims + 1)")
    parser.add_argument("--unrolls", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    if min(args.chunk, args.points, args.repeats) < 1 or args.dim < 2 or min(args.unrolls) < 1:
        raise ValueError("--chunk, --points, --repeats and --unrolls must be >= 1 and --dim >= 2")
    ks = tuple(range(2, 11))
    x = windows(jax.random.PRNGKey(0), args.chunk, args.points, args.dim)
    seeds = jnp.arange(args.chunk, dtype=jnp.uint32)
    mask = jnp.ones((args.points,), bool)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); jax {jax.__version__}; "
          f"chunk {args.chunk} x {args.points} points x {args.dim} dims, k = 2..10", flush=True)
    rows, first = [], None
    for unroll in args.unrolls:
        options = dataclasses.replace(E.EMOptions(), unroll=unroll)

        def fit(seed, w):
            return E.fit_and_select(jax.random.key(seed), w, mask, ks, options)

        fn = jax.jit(jax.vmap(fit))
        t0 = time.perf_counter()
        compiled = fn.lower(seeds, x).compile()
        compile_s = time.perf_counter() - t0
        out = jax.block_until_ready(compiled(seeds, x))  # GMM per seed
        times = []
        for _ in range(args.repeats):
            t1 = time.perf_counter()
            jax.block_until_ready(compiled(seeds, x))
            times.append(time.perf_counter() - t1)
        first = out if first is None else first
        same_k = float(np.mean(np.asarray(out.k) == np.asarray(first.k)))
        ll = float(np.mean(np.asarray(out.mean_loglik)))
        ms = 1e3 * float(np.median(times))
        rows.append({"unroll": unroll, "compile_s": round(compile_s, 2), "median_ms": round(ms, 3),
                     "min_ms": round(1e3 * min(times), 3), "mean_loglik": round(ll, 5),
                     "same_k_as_first": same_k})
        print(f"unroll {unroll:2d}: {ms:9.3f} ms per chunk (min {1e3 * min(times):.3f}), "
              f"compile {compile_s:.1f} s, mean log-lik {ll:.4f}, same k as first row {same_k:.2f}",
              flush=True)
    base = rows[0]["median_ms"]
    for r in rows:
        r["speedup_vs_first"] = round(base / r["median_ms"], 3)
    result = {"benchmark": "em_fit", "chunk": args.chunk, "points": args.points, "dim": args.dim,
              "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
              "jax": jax.__version__, "results": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
