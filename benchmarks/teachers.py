"""Episodes per second of each teacher on the hypercube toy student, for several vmapped seed counts;
with ``--ppo``, each teacher's cost inside PPO next to no teacher, in the same run.

``python -m benchmarks.teachers [--teachers random alp_gmm ...] [--seeds 1 16 256 1024] [--episodes N]``

``python -m benchmarks.teachers --ppo --preset cpu|gpu [--teachers none random alp_gmm ...]``: PPO on
``cartpole_tasks`` (``cpu``: 8 seeds x 4 envs x 131,072 steps per seed; ``gpu``: 512 seeds x 4 envs x
499,712 steps per seed; ``--seeds`` / ``--steps`` override), each teacher (``none`` = the default task,
no teacher) compiled ahead of time and timed (best of 2); ``cost_pct`` = 1 - steps/s / no teacher's.
``--refit-periods 1 8`` runs ALP-GMM and Covar-GMM once per ``refit_period`` (:mod:`teachers.gmm`).
ALP-GMM is sized to the run (``max_episodes`` = steps per seed).

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


PPO_PRESETS = {"cpu": (8, 4, 131_072), "gpu": (512, 4, 499_712)}  # seeds, envs, steps per seed
PPO_TEACHERS = ("none", "random", "alp_gmm", "covar_gmm", "riac")


def compiled_ppo(name: str, seeds: int, envs: int, steps: int, **options):
    """PPO on cartpole_tasks with teacher ``name`` (``none``: no teacher; ``options`` its config
    overrides, ALP-GMM sized to the run), ``jax.jit(jax.vmap(train))`` over ``seeds`` seeds compiled
    ahead of time, returning the episodes per seed. Returns ``(compiled, keys, config, compile_s)``."""
    from algos.ppo import PPOConfig, make_train
    from envs.registry import make_task_env
    from teachers.registry import make_teacher

    task_env = make_task_env("cartpole_tasks")
    config = PPOConfig(num_envs=envs, num_steps=128, total_timesteps=steps)
    teacher = (None if name == "none"
               else make_teacher(name, task_env.task_space, max_episodes=steps, **options))
    trainer = make_train(config, task_env, teacher)
    fn = jax.jit(jax.vmap(lambda k: trainer.train(k)[1]["episodes"].sum()))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    return compiled, keys, config, time.perf_counter() - t0


def bench_ppo(teachers, seeds: int, envs: int, steps: int, repeats: int = 2,
              refit_periods: tuple[int, ...] = (1,)) -> dict:
    """Steps/s of PPO on cartpole_tasks with each teacher (``none``: no teacher), same run; a teacher
    with a ``refit_period`` option (the GMM teachers) once per ``refit_periods`` entry."""
    from teachers.registry import takes_option

    rows = []
    periodic = lambda name: name != "none" and takes_option(name, "refit_period")
    arms = [(name, period) for name in teachers for period in (refit_periods if periodic(name) else (None,))]
    for name, period in arms:
        options = {} if period is None else {"refit_period": period}
        compiled, keys, config, compile_s = compiled_ppo(name, seeds, envs, steps, **options)
        total = seeds * config.num_updates * config.steps_per_update
        best = float("inf")
        for _ in range(repeats):
            t1 = time.perf_counter()
            episodes = jax.block_until_ready(compiled(keys))
            best = min(best, time.perf_counter() - t1)
        rows.append({"teacher": name, "refit_period": period, "compile_s": round(compile_s, 2), "run_s": round(best, 3),
                     "steps_per_s": round(total / best), "episodes_per_seed": float(np.mean(episodes))})
        base = rows[0]["steps_per_s"] if rows[0]["teacher"] == "none" else None
        r = rows[-1]
        r["cost_pct"] = None if base is None else round(100 * (1 - r["steps_per_s"] / base), 1)
        label = name if period is None else f"{name}/{period}"
        print(f"{label:<12} compile {r['compile_s']:7.1f} s  run {r['run_s']:8.3f} s  "
              f"{r['steps_per_s'] / 1e6:8.3f}M steps/s  cost {r['cost_pct']} %", flush=True)
    return {"benchmark": "teachers_in_ppo", "env": "cartpole_tasks", "seeds": seeds, "envs": envs,
            "steps_per_seed": config.num_updates * config.steps_per_update,
            "device": jax.devices()[0].device_kind, "backend": jax.default_backend(),
            "jax": jax.__version__, "results": rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ppo", action="store_true", help="time each teacher inside PPO (cartpole_tasks)")
    parser.add_argument("--preset", choices=sorted(PPO_PRESETS), default="cpu", help="--ppo sizes")
    parser.add_argument("--steps", type=int, default=None, help="--ppo: steps per seed")
    parser.add_argument("--refit-periods", type=int, nargs="+", default=[1],
                        help="--ppo: each GMM teacher once per refit_period (update calls per refit)")
    parser.add_argument("--teachers", nargs="+", default=None, choices=["none", *ALL_TEACHERS])
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes per seed (default: depends on the device and seed count)")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--cubes", type=int, default=10)
    args = parser.parse_args(argv)
    if args.ppo:
        seeds, envs, steps = PPO_PRESETS[args.preset]
        seeds = args.seeds[0] if args.seeds else seeds
        steps = args.steps or steps
        if seeds < 1 or steps < envs * 128:
            raise ValueError("--seeds must be >= 1 and --steps at least one update (4 x 128)")
        if min(args.refit_periods) < 1:
            raise ValueError("--refit-periods must all be >= 1")
        out = bench_ppo(args.teachers or PPO_TEACHERS, seeds, envs, steps,
                        refit_periods=tuple(args.refit_periods))
        print(json.dumps(out))
        return out
    args.teachers = args.teachers or list(ALL_TEACHERS)
    args.seeds = args.seeds or [1, 16, 256, 1024]
    if "none" in args.teachers:
        raise ValueError("--teachers none is for --ppo only")
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
