"""Episodes per second of each teacher on the hypercube toy student, for several vmapped seed counts.

``python -m benchmarks.teachers [--teachers random alp_gmm ...] [--seeds 1 16 256 1024] [--episodes N]``

Uses the experiment's own per-seed chunk function (:func:`experiments.hypercube.make_seed_fns`): one
``jax.jit(jax.vmap(chunk))`` over all episodes of the run, compiled ahead of time
(``.lower().compile()``, reported as ``compile_s``) and then timed on its own (``run_s``; runs shorter
than 0.5 s are repeated up to 5 times from the same start and the fastest counts). Each teacher
runs with its exact default block size (random 250, alp_gmm / covar_gmm fit_rate = 250, oracle 50,
riac 1). ``episodes_per_s`` counts all seeds together; ``per_seed`` divides by the seed count.

Without ``--episodes`` the budget per seed shrinks with the seed count on a CPU so that a run stays
short (5,000 episodes up to 16 seeds, 1,000 up to 256, 500 beyond; RIAC, one episode per call, gets a
fifth of that, at least 250); on an accelerator every run uses 20,000 episodes (the parity setting). Per
episode the teachers cost the same all along the run (fixed-size state), except that the GMM teachers
only start fitting after their 250-episode bootstrap. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs import hypercube as hc
from experiments.hypercube import ALL_TEACHERS, build_teacher, default_batch, make_seed_fns


def default_episodes(teacher: str, seeds: int, batch: int, on_cpu: bool) -> int:
    if not on_cpu:
        episodes = 20_000
    else:
        episodes = 5000 if seeds <= 16 else 1000 if seeds <= 256 else 500
        if teacher == "riac":
            episodes = max(250, episodes // 5)
    return max(batch, episodes // batch * batch)


def bench_one(teacher_name: str, seeds: int, episodes: int | None, config: hc.HypercubeConfig,
              seed: int = 0) -> dict:
    on_cpu = jax.default_backend() == "cpu"
    batch = default_batch(teacher_name, config)
    if episodes is None:
        episodes = default_episodes(teacher_name, seeds, batch, on_cpu)
    if episodes % batch:
        raise ValueError(f"{teacher_name}: --episodes {episodes} is not a multiple of its batch {batch}")
    teacher = build_teacher(teacher_name, config)
    init, chunk = make_seed_fns(teacher, config, batch)
    iterations = episodes // batch

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(seed), i))(jnp.arange(seeds))
    state = jax.block_until_ready(jax.jit(jax.vmap(init))(keys))

    t0 = time.perf_counter()
    fn = jax.jit(jax.vmap(lambda s: chunk(s, iterations)))
    compiled = fn.lower(state).compile()
    compile_s = time.perf_counter() - t0

    # Short runs (cheap teachers) are repeated from the same start and the fastest is kept.
    times = []
    while not times or (len(times) < 5 and sum(times) < 0.5):
        t1 = time.perf_counter()
        _, metrics = compiled(state)
        mastered = np.asarray(jax.block_until_ready(metrics["mastered_pct"]))[:, -1]
        times.append(time.perf_counter() - t1)
    run_s = min(times)
    total = seeds * episodes
    return {
        "teacher": teacher_name,
        "seeds": seeds,
        "episodes": episodes,
        "batch": batch,
        "compile_s": round(compile_s, 3),
        "run_s": round(run_s, 4),
        "repeats": len(times),
        "episodes_per_s": round(total / run_s, 1),
        "episodes_per_s_per_seed": round(total / run_s / seeds, 1),
        "mastered_pct": round(float(mastered.mean()), 3),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", nargs="+", default=list(ALL_TEACHERS), choices=list(ALL_TEACHERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 16, 256, 1024])
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes per seed (default: depends on the device and seed count)")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--cubes", type=int, default=10)
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.seeds):
        raise ValueError("--seeds must all be >= 1")
    if args.episodes is not None and args.episodes < 1:
        raise ValueError("--episodes must be >= 1")
    config = hc.HypercubeConfig(nb_dims=args.dims, nb_cubes=args.cubes)
    for name in args.teachers:  # fail on an impossible budget before compiling anything
        batch = default_batch(name, config)
        if args.episodes is not None and args.episodes % batch:
            raise ValueError(f"{name}: --episodes {args.episodes} is not a multiple of its batch {batch}")

    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({jax.default_backend()}), {jax.device_count()} device(s); "
          f"jax {jax.__version__}; hypercube {args.dims}d{args.cubes}", flush=True)
    header = (f"{'teacher':<10} {'seeds':>6} {'episodes':>9} {'batch':>6} {'compile s':>10} "
              f"{'run s':>9} {'episodes/s':>12} {'per seed':>10} {'mastered %':>10}")
    print(header)
    print("-" * len(header), flush=True)
    results = []
    for name in args.teachers:
        for seeds in args.seeds:
            r = bench_one(name, seeds, args.episodes, config)
            results.append(r)
            print(f"{r['teacher']:<10} {r['seeds']:>6} {r['episodes']:>9} {r['batch']:>6} "
                  f"{r['compile_s']:>10.2f} {r['run_s']:>9.3f} {r['episodes_per_s']:>12,.0f} "
                  f"{r['episodes_per_s_per_seed']:>10,.0f} {r['mastered_pct']:>10.2f}", flush=True)
    out = {
        "benchmark": "teachers",
        "device": device.device_kind,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "hypercube": f"{args.dims}d{args.cubes}",
        "results": results,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
