"""PPO throughput: environment steps per second for several (seeds, envs) shapes, next to the
env-only ceiling (random actions through the same vmapped environment and batch), and the cost of a
teacher in the loop (Random teacher vs none on the parameterised CartPole). Compile time is
measured apart (AOT ``lower().compile()``).

    python -m benchmarks.ppo_throughput --preset cpu
    python -m benchmarks.ppo_throughput --preset gpu

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Literal

import gymnax
import jax
import jax.numpy as jnp
import tyro

from algos.ppo import PPOConfig, make_train
from envs.cartpole_tasks import cartpole_tasks
from envs.task_env import TaskAutoReset, TaskEnv, fixed_task_env
from teachers.random import random_teacher

PRESETS = {
    # (seeds, envs, total env steps per seed)
    "cpu": [(1, 4, 500_000), (8, 4, 500_000), (1, 64, 2_000_000)],
    "gpu": [(1, 4, 500_000), (64, 4, 500_000), (512, 4, 500_000), (1, 2048, 2**25),
            (1, 8192, 2**27)],
}
TEACHER_SHAPES = {"cpu": [(8, 4, 500_000)], "gpu": [(512, 4, 500_000), (1, 8192, 2**27)]}


@dataclasses.dataclass(frozen=True)
class Args:
    preset: Literal["cpu", "gpu"] = "cpu"
    num_steps: int = 128
    repeats: int = 2
    """timed runs per variant (the best is reported)"""


def _time(fn, *args, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best


def ppo_variant(task_env: TaskEnv, teacher, seeds: int, envs: int, steps: int, num_steps: int):
    config = PPOConfig(num_envs=envs, num_steps=num_steps, total_timesteps=steps)
    trainer = make_train(config, task_env, teacher)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    return jax.vmap(lambda k: trainer.train(k)[1]["episodes"].sum()), keys, config


def env_only(task_env: TaskEnv, seeds: int, envs: int, steps: int, num_steps: int):
    """Random actions through the same wrapper, batch and scan structure (updates x num_steps)."""
    env = TaskAutoReset(task_env)
    n = task_env.action_space().n
    task = jnp.asarray(task_env.default_task, jnp.float32)
    tasks = jnp.broadcast_to(task, (envs, task.shape[0]))
    updates = steps // (envs * num_steps)

    def one_seed(key):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, envs), tasks)

        def step(c, _):
            state, key, total = c
            key, k_a, k_s = jax.random.split(key, 3)
            action = jax.random.randint(k_a, (envs,), 0, n)
            _, state, reward, _, _, _ = jax.vmap(env.step)(jax.random.split(k_s, envs), state, action, tasks)
            return (state, key, total + reward.sum()), None

        def update(c, _):
            return jax.lax.scan(step, c, None, num_steps)[0], None

        (_, _, total), _ = jax.lax.scan(update, (state, key, 0.0), None, updates)
        return total

    return jax.vmap(one_seed), jax.random.split(jax.random.PRNGKey(0), seeds), updates * envs * num_steps


def main(args: Args) -> dict:
    print(f"devices: {jax.devices()}")
    env, params = gymnax.make("CartPole-v1")
    cartpole = fixed_task_env(env, params)
    rows = []
    for seeds, envs, steps in PRESETS[args.preset]:
        fn, keys, config = ppo_variant(cartpole, None, seeds, envs, steps, args.num_steps)
        c_ppo, t_ppo = _time(fn, keys, repeats=args.repeats)
        total = seeds * config.num_updates * config.steps_per_update
        fn_env, keys_env, steps_env = env_only(cartpole, seeds, envs, steps, args.num_steps)
        c_env, t_env = _time(fn_env, keys_env, repeats=args.repeats)
        row = {
            "seeds": seeds, "envs": envs, "steps_per_seed": config.num_updates * config.steps_per_update,
            "ppo_steps_per_s": total / t_ppo, "ppo_compile_s": c_ppo, "ppo_run_s": t_ppo,
            "env_only_steps_per_s": seeds * steps_env / t_env, "env_only_compile_s": c_env,
        }
        row["ppo_fraction_of_ceiling"] = row["ppo_steps_per_s"] / row["env_only_steps_per_s"]
        rows.append(row)
        print(f"CartPole-v1 seeds={seeds:5d} envs={envs:5d}: PPO {row['ppo_steps_per_s']/1e6:8.3f}M steps/s "
              f"(compile {c_ppo:.1f}s, run {t_ppo:.2f}s) | env-only {row['env_only_steps_per_s']/1e6:9.2f}M "
              f"steps/s | ratio {row['ppo_fraction_of_ceiling']:.3f}", flush=True)

    teacher_rows = []
    task_env = cartpole_tasks()
    for seeds, envs, steps in TEACHER_SHAPES[args.preset]:
        out = {"seeds": seeds, "envs": envs}
        for label, teacher in [("no_teacher", None), ("random_teacher", random_teacher(task_env.task_space))]:
            fn, keys, config = ppo_variant(task_env, teacher, seeds, envs, steps, args.num_steps)
            c, t = _time(fn, keys, repeats=args.repeats)
            out[f"{label}_steps_per_s"] = seeds * config.num_updates * config.steps_per_update / t
            out[f"{label}_compile_s"] = c
        out["random_teacher_cost_pct"] = 100 * (1 - out["random_teacher_steps_per_s"] / out["no_teacher_steps_per_s"])
        teacher_rows.append(out)
        print(f"cartpole_tasks seeds={seeds} envs={envs}: no teacher {out['no_teacher_steps_per_s']/1e6:.3f}M, "
              f"Random teacher {out['random_teacher_steps_per_s']/1e6:.3f}M steps/s "
              f"(cost {out['random_teacher_cost_pct']:.1f} %)", flush=True)
    result = {"benchmark": "ppo_throughput", "preset": args.preset, "backend": jax.default_backend(),
              "device": str(jax.devices()[0]), "jax": jax.__version__, "rows": rows, "teacher": teacher_rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
