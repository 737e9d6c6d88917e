"""Steps per second against device count: seeds-sharded and environment-sharded PPO on CartPole, with
and without a teacher, and the hypercube teachers (issue #10).

Every row runs one jitted, vmapped program over a mesh of the first ``d`` devices with the runner's
axes (:data:`experiments.runner.MESH_AXES`): the seed axis sharded over ``seeds``, or, for the
environment rows, one seed's environments along ``envs`` (:func:`algos.ppo.shard_envs`).

* ``seeds_weak``: ``--weak-seeds`` x d seeds of PPO (4 envs each) on ``cartpole_tasks``, no teacher
  (the default task) and ALP-GMM: the work grows with the devices, ideal = flat time, steps/s x d;
* ``seeds_strong``: ``--strong-seeds`` seeds over d devices, same two teachers: fixed work;
* ``envs_weak``: 1 seed x ``--weak-envs`` x d environments, one PPO update stream, the env axis
  split over d devices (plus, at d = 1, one seed x 8,192 environments for reference, in the same run
  with as many steps: the shape of ``benchmarks.ppo_throughput``'s largest row); every PPO row also
  gives the mean episodic return of its first and last update (that it trains);
* ``hypercube``: the hypercube toy student (2d10) with Random and ALP-GMM, ``--hypercube-seeds`` x d
  seeds (episodes per second).

    python -m benchmarks.scaling --devices 1            # one GPU
    python -m benchmarks.scaling --devices 1 2 4 8      # a node of 8 GPUs
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m benchmarks.scaling --quick

``--quick`` shrinks every size for a CPU (host devices share the same cores: its figures show that the
sharded programs run, not a speed-up). ``--only`` picks scenarios. In a multi-process run (the launch
flags of :mod:`envs.distributed`) ``--devices`` must be the global device count. The last line of
output is one JSON object with every row; a markdown table is printed before it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from algos.ppo import PPOConfig, make_train
from envs import hypercube as hc
from envs.registry import make_task_env
from experiments.hypercube import build_teacher, default_batch, make_seed_fns
from experiments.runner import MESH_AXES, is_main_process, to_host
from teachers.registry import make_teacher

SCENARIOS = ("seeds_weak", "seeds_strong", "envs_weak", "hypercube")
SIZES = {  # per preset: seeds per device (weak), seeds (strong), envs per device, hypercube seeds per device,
    #                     PPO updates per timed run, hypercube episodes per seed
    "full": dict(weak_seeds=512, strong_seeds=2048, weak_envs=65_536, hypercube_seeds=1024, updates=64,
                 env_updates=16, episodes=5000),
    "quick": dict(weak_seeds=8, strong_seeds=32, weak_envs=512, hypercube_seeds=16, updates=2,
                  env_updates=2, episodes=500),
}
NUM_STEPS = 128
REFERENCE_ENVS = 8192  # benchmarks.ppo_throughput's largest one-seed row


def _mesh(devices: int, seeds: int, envs: int) -> jax.sharding.Mesh:
    return jax.make_mesh((1, seeds, envs), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 3,
                         devices=jax.devices()[:devices])


def _keys(n: int, sharding: NamedSharding) -> jax.Array:
    host = np.asarray(jax.random.split(jax.random.PRNGKey(0), n))
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _timed(fn: Callable, arg: jax.Array, mesh, repeats: int) -> tuple[float, float, np.ndarray]:
    """AOT compile time, the best of ``repeats`` runs, and the output (on the host)."""
    with jax.set_mesh(mesh):
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(arg).compile()
        compile_s = time.perf_counter() - t0
        best, out = float("inf"), None
        for _ in range(repeats):
            t1 = time.perf_counter()
            out = jax.block_until_ready(compiled(arg))
            best = min(best, time.perf_counter() - t1)
    return compile_s, best, to_host(out)


def ppo_row(scenario: str, devices: int, seeds: int, envs: int, teacher: str, updates: int,
            repeats: int) -> dict:
    """PPO on ``cartpole_tasks`` (seeds x envs over ``devices``); ``teacher`` none or a registry name."""
    task_env = make_task_env("cartpole_tasks")
    config = PPOConfig(num_envs=envs, num_steps=NUM_STEPS, total_timesteps=updates * envs * NUM_STEPS,
                       num_minibatches=4)
    steps = config.num_updates * config.steps_per_update
    chosen = None if teacher == "none" else make_teacher(teacher, task_env.task_space, max_episodes=steps)
    trainer = make_train(config, task_env, chosen)
    env_devices = devices if seeds == 1 else 1
    mesh = _mesh(devices, devices // env_devices, env_devices)
    keys = _keys(seeds, NamedSharding(mesh, PartitionSpec("seeds")))

    def one_seed(key):
        metrics = trainer.train(key)[1]
        mean_return = metrics["return_sum"] / jnp.maximum(metrics["episodes"], 1)
        return metrics["episodes"].sum(), mean_return[0], mean_return[-1]

    compile_s, run_s, (episodes, first, last) = _timed(jax.vmap(one_seed), keys, mesh, repeats)
    total = seeds * steps
    return {"scenario": scenario, "devices": devices, "seeds": seeds, "envs": envs, "teacher": teacher,
            "steps_per_seed": steps, "compile_s": round(compile_s, 2), "run_s": round(run_s, 4),
            "steps_per_s": round(total / run_s), "episodes_per_seed": float(np.mean(episodes)),
            "first_update_return": round(float(np.mean(first)), 2),
            "last_update_return": round(float(np.mean(last)), 2)}


def hypercube_row(devices: int, seeds: int, teacher: str, episodes: int, repeats: int) -> dict:
    config = hc.HypercubeConfig(nb_dims=2, nb_cubes=10)
    batch = default_batch(teacher, config)
    episodes = max(batch, episodes // batch * batch)
    init, chunk = make_seed_fns(build_teacher(teacher, config, episodes=episodes), config, batch)
    mesh = _mesh(devices, devices, 1)
    keys = _keys(seeds, NamedSharding(mesh, PartitionSpec("seeds")))
    fn = jax.vmap(lambda k: chunk(init(k), episodes // batch)[1]["mastered_pct"][-1])
    compile_s, run_s, mastered = _timed(fn, keys, mesh, repeats)
    return {"scenario": "hypercube", "devices": devices, "seeds": seeds, "envs": None, "teacher": teacher,
            "episodes_per_seed": episodes, "compile_s": round(compile_s, 2), "run_s": round(run_s, 4),
            "episodes_per_s": round(seeds * episodes / run_s), "mastered_pct": float(np.mean(mastered))}


def table(rows: list[dict]) -> str:
    lines = ["| scenario | devices | seeds | envs | teacher | steps (episodes) / s | run s | compile s | "
             "speed-up vs fewest devices | return, first -> last update |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        rate = r.get("steps_per_s") or r.get("episodes_per_s")
        key = (r["scenario"], r["teacher"], r.get("reference", False))
        if r["devices"] == min(x["devices"] for x in rows):
            base.setdefault(key, rate)
        speed = f"{rate / base[key]:.2f}" if key in base else ""
        unit = "" if "steps_per_s" in r else " ep"
        learnt = (f"{r['first_update_return']:.1f} -> {r['last_update_return']:.1f}"
                  if "last_update_return" in r else f"mastered {r['mastered_pct']:.1f} %")
        lines.append(f"| {r['scenario']} | {r['devices']} | {r['seeds']:,} | "
                     f"{'' if r['envs'] is None else format(r['envs'], ',')} | {r['teacher']} | "
                     f"{rate / 1e6:.3f}M{unit} | {r['run_s']:.3f} | {r['compile_s']:.1f} | {speed} | "
                     f"{learnt} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=None,
                        help="device counts to run on (default: 1, 2, 4, ... up to every device)")
    parser.add_argument("--quick", action="store_true", help="CPU-sized (host devices)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--teachers", nargs="+", default=["none", "alp_gmm"],
                        help="PPO rows: none and/or teacher registry names")
    parser.add_argument("--hypercube-teachers", nargs="+", default=["random", "alp_gmm"])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row (the best is kept)")
    for name, value in SIZES["full"].items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                            help=f"default {value} ({SIZES['quick'][name]} with --quick)")
    parser.add_argument("--no-reference", action="store_true",
                        help=f"leave out the 1 seed x {REFERENCE_ENVS:,} envs reference row")
    args = parser.parse_args(argv)
    size = {k: (getattr(args, k) if getattr(args, k) is not None else v)
            for k, v in SIZES["quick" if args.quick else "full"].items()}
    n = jax.device_count()
    devices = args.devices or [d for d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if d <= n]
    if max(devices) > n or min(devices) < 1:
        raise SystemExit(f"--devices {devices}: this run has {n} devices")
    if jax.process_count() > 1 and devices != [n]:
        raise SystemExit(f"a multi-process run measures every device: --devices {n}")
    say = print if is_main_process() else (lambda *a, **k: None)
    say(f"{n} {jax.devices()[0].platform} device(s) ({jax.devices()[0].device_kind}), "
        f"{jax.process_count()} process(es), jax {jax.__version__}; sizes {size}", flush=True)
    rows = []

    def add(row):
        rows.append(row)
        rate = row.get("steps_per_s") or row.get("episodes_per_s")
        say(f"{row['scenario']:<13} d={row['devices']:<3} seeds={row['seeds']:<6} envs={row['envs']} "
            f"{row['teacher']:<8} {rate / 1e6:9.3f}M/s  run {row['run_s']:.3f} s  compile "
            f"{row['compile_s']:.1f} s", flush=True)

    for d in devices:
        if "seeds_weak" in args.only:
            for t in args.teachers:
                add(ppo_row("seeds_weak", d, size["weak_seeds"] * d, 4, t, size["updates"], args.repeats))
        if "seeds_strong" in args.only:
            for t in args.teachers:
                if size["strong_seeds"] % d == 0:
                    add(ppo_row("seeds_strong", d, size["strong_seeds"], 4, t, size["updates"], args.repeats))
        if "envs_weak" in args.only:
            if d == 1 and not args.no_reference and not args.quick:  # as many steps as the 65,536 row
                updates = max(1, size["env_updates"] * size["weak_envs"] // REFERENCE_ENVS)
                add({**ppo_row("envs_weak", 1, 1, REFERENCE_ENVS, "none", updates, args.repeats),
                     "reference": True})
            add(ppo_row("envs_weak", d, 1, size["weak_envs"] * d, "none", size["env_updates"], args.repeats))
        if "hypercube" in args.only:
            for t in args.hypercube_teachers:
                add(hypercube_row(d, size["hypercube_seeds"] * d, t, size["episodes"], args.repeats))
    say(table(rows))
    out = {"benchmark": "scaling", "backend": jax.default_backend(),
           "device": jax.devices()[0].device_kind, "device_count": n, "processes": jax.process_count(),
           "jax": jax.__version__, "quick": args.quick, "sizes": size, "num_steps": NUM_STEPS,
           "rows": rows}
    say(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
