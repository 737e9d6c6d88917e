"""A teacher alone in PPO's calling pattern: where a teacher's cost inside PPO goes.

``python -m benchmarks.teacher_loop [--seeds 512] [--rows 512] [--updates 976] [--episodes 2]
[--teachers random alp_gmm covar_gmm] [--refit-periods 1 8] [--parts both sample update]``

Each update of :func:`algos.ppo.make_train` calls the teacher twice: ``sample(state, key, rows)`` (one
task per environment slot of the rollout, ``rows`` = num_envs x num_steps) and ``update(state, tasks,
scores, mask)`` with one row per slot, of which only the slots where an episode ended are valid. This
benchmark runs exactly that, without the environment or the network: ``jax.jit(jax.vmap(run))`` over
``--seeds`` seeds, ``run`` a ``lax.scan`` over ``--updates`` updates, each slot valid with
probability ``--episodes / --rows`` (``--episodes`` valid rows per update on average: PPO's rate on
``cartpole_tasks`` at the GPU preset is about 2; the counts differ between seeds, so the seeds drift
apart and their refits fall in different updates, as in PPO), random scores, the tasks the teacher
sampled. ``--parts sample`` times ``sample`` alone, ``update`` times ``update`` alone (tasks
uniform), ``both`` the pair. Teachers with a ``refit_period`` option (the GMM teachers) run once per
``--refit-periods`` entry; ALP-GMM's history is sized to the run (``rows x updates`` episodes, as in
PPO). Reported: ms per update (best of 2 after compiling ahead of time) and the fits done per seed.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from envs.registry import make_task_env
from teachers.registry import TEACHERS, make_teacher, takes_option

PARTS = ("both", "sample", "update")


def make_run(teacher, rows: int, updates: int, episodes: int, part: str):
    space = teacher.task_space

    def run(key: jax.Array) -> jax.Array:
        k_init, k_loop = jax.random.split(key)
        state = teacher.init(k_init)

        def step(state, key):
            k_sample, k_slots, k_scores, k_uniform = jax.random.split(key, 4)
            if part == "update":
                tasks = space.sample_uniform(k_uniform, rows)
            else:
                state, tasks = teacher.sample(state, k_sample, rows)
            if part == "sample":
                return state, jnp.sum(tasks)  # every task is used (nothing left to dead-code removal)
            mask = jax.random.uniform(k_slots, (rows,)) < episodes / rows
            scores = jax.random.uniform(k_scores, (rows,))
            return teacher.update(state, tasks, scores, mask), jnp.sum(tasks)

        state, task_sums = jax.lax.scan(step, state, jax.random.split(k_loop, updates))
        return getattr(state, "n_fits", jnp.zeros((), jnp.int32)), jnp.sum(task_sums)

    return run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="cartpole_tasks", help="task environment (its task space)")
    parser.add_argument("--seeds", type=int, default=512)
    parser.add_argument("--rows", type=int, default=512, help="slots per update (num_envs x num_steps)")
    parser.add_argument("--updates", type=int, default=976)
    parser.add_argument("--episodes", type=float, default=2.0, help="valid rows per update (mean)")
    parser.add_argument("--teachers", nargs="+", default=["random", "alp_gmm", "covar_gmm"],
                        choices=sorted(TEACHERS))
    parser.add_argument("--refit-periods", type=int, nargs="+", default=[1])
    parser.add_argument("--parts", nargs="+", default=["both"], choices=PARTS)
    args = parser.parse_args(argv)
    if min(args.seeds, args.rows, args.updates, min(args.refit_periods)) < 1:
        raise ValueError("--seeds, --rows, --updates and --refit-periods must be >= 1")
    if not 0 <= args.episodes <= args.rows:
        raise ValueError(f"--episodes must be in [0, --rows = {args.rows}], got {args.episodes}")
    space = make_task_env(args.env).task_space
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}); jax {jax.__version__}; "
          f"{args.seeds} seeds x {args.updates} updates x {args.rows} rows, {args.episodes} valid", flush=True)
    arms = []  # every teacher built and checked before anything compiles
    for name in args.teachers:
        for period in (args.refit_periods if takes_option(name, "refit_period") else [None]):
            options = {} if period is None else {"refit_period": period}
            teacher = make_teacher(name, space, max_episodes=args.rows * args.updates, **options)
            if teacher.extras:
                raise ValueError(f"{name}: needs PPO's extras {list(teacher.extras)}, which this "
                                 "benchmark does not make; time it with benchmarks.teachers --ppo")
            arms.append((name, period, teacher))
    results = []
    for name, period, teacher in arms:
        for part in args.parts:
            fn = jax.jit(jax.vmap(make_run(teacher, args.rows, args.updates, args.episodes, part)))
            t0 = time.perf_counter()
            compiled = fn.lower(keys).compile()
            compile_s = time.perf_counter() - t0
            best = float("inf")
            for _ in range(2):
                t1 = time.perf_counter()
                fits, _ = jax.block_until_ready(compiled(keys))
                best = min(best, time.perf_counter() - t1)
            row = {"teacher": name, "refit_period": period, "part": part,
                   "compile_s": round(compile_s, 2), "ms_per_update": round(1e3 * best / args.updates, 4),
                   "fits_per_seed": float(np.mean(np.asarray(fits)))}
            results.append(row)
            label = name if period is None else f"{name}/{period}"
            print(f"{label:<14} {part:<7} {row['ms_per_update']:9.4f} ms per update  "
                  f"(compile {compile_s:.1f} s, {row['fits_per_seed']:.2f} fits per seed)", flush=True)
    out = {"benchmark": "teacher_loop", "env": args.env, "seeds": args.seeds, "rows": args.rows,
           "updates": args.updates, "episodes": args.episodes, "device": jax.devices()[0].device_kind,
           "backend": jax.default_backend(), "jax": jax.__version__, "results": results}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
