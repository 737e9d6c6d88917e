"""Recurrent PPO on a POPGym task: curriculax against popjaxrl's own code, side by side in one run.

    git -C <a clone of luchris429/popjaxrl> archive HEAD | (mkdir -p .peers/popjaxrl && tar -x -C .peers/popjaxrl)
    python -m benchmarks.popgym_vs_popjaxrl --env RepeatPreviousEasy --updates 3 --seeds 1

Both run the paper's POPGym configuration (64 envs x 1024 steps per update, 30 epochs x 8 minibatches,
S5 d_model 256 / 4 layers, GRU 256) for ``--updates`` updates; each variant in a fresh process
(``benchmarks/popjaxrl_probe.py`` for the peer, :func:`probe` here for curriculax), compile and run
timed apart, env steps/s = seeds x updates x 65,536 / run seconds. ``.peers/`` is ignored by git: the
peer's code is never part of this repository. The last line is one JSON object with every figure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import tyro

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("popjaxrl:s5", "popjaxrl:gru", "curriculax:s5", "curriculax:gru", "curriculax:lstm",
            "curriculax:mlp")


@dataclasses.dataclass(frozen=True)
class Args:
    env: str = "RepeatPreviousEasy"
    updates: int = 3
    seeds: int = 1
    variants: tuple[str, ...] = VARIANTS
    popjaxrl_dir: str = ".peers/popjaxrl"
    num_envs: int = 64
    num_steps: int = 1024
    epochs: int = 30
    minibatches: int = 8
    out: str | None = None
    """also write the rows as JSON here"""


def probe(spec: dict) -> dict:
    """One curriculax run (in this process): the experiments.popgym trainer for ``spec``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from experiments.popgym import Config, popgym_trainer

    base = Config()
    ppo = dataclasses.replace(base.ppo, num_envs=spec["num_envs"], num_steps=spec["num_steps"],
                              total_timesteps=spec["updates"] * spec["num_envs"] * spec["num_steps"],
                              update_epochs=spec["epochs"], num_minibatches=spec["minibatches"])
    trainer = popgym_trainer(dataclasses.replace(base, ppo=ppo), spec["env"], spec["arch"])
    def run(key):  # the final parameters too, as the popjaxrl probe does
        state, metrics = trainer.train(key)
        return metrics, jax.tree.map(jnp.sum, state.train_state.params)

    fn = jax.jit(jax.vmap(run))
    keys = jax.random.split(jax.random.PRNGKey(42), spec["seeds"])
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics, _ = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - t0
    last = np.asarray(metrics["return_sum"])[:, -1] / np.maximum(np.asarray(metrics["episodes"])[:, -1], 1)
    steps = spec["seeds"] * spec["updates"] * spec["num_envs"] * spec["num_steps"]
    return {**spec, "impl": "curriculax", "steps_per_s": steps / run_s, "run_s": run_s, "compile_s": compile_s,
            "last_metric": float(last.mean()), "device": str(jax.devices()[0])}


def run_variant(variant: str, args: Args) -> dict:
    impl, arch = variant.split(":")
    spec = {"env": args.env, "arch": arch, "updates": args.updates, "seeds": args.seeds,
            "num_envs": args.num_envs, "num_steps": args.num_steps, "epochs": args.epochs,
            "minibatches": args.minibatches}
    if impl == "popjaxrl":
        cmd = [sys.executable, os.path.join(HERE, "benchmarks", "popjaxrl_probe.py"),
               json.dumps({**spec, "dir": os.path.abspath(args.popjaxrl_dir)})]
    else:
        cmd = [sys.executable, "-m", "benchmarks.popgym_vs_popjaxrl", "--probe", json.dumps(spec)]
    proc = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(args: Args) -> list[dict]:
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    if any(v.startswith("popjaxrl") for v in args.variants) and not os.path.exists(
            os.path.join(args.popjaxrl_dir, "algorithms", "ppo_s5.py")):
        raise SystemExit(f"no popjaxrl checkout in {args.popjaxrl_dir} (see this module's docstring)")
    rows = []
    print(f"{'variant':<18} {'env steps/s':>12} {'run s':>8} {'compile s':>10} {'last return':>12}", flush=True)
    for variant in args.variants:
        r = run_variant(variant, args)
        rows.append({"variant": variant, **r})
        print(f"{variant:<18} {r['steps_per_s']:>12,.0f} {r['run_s']:>8.1f} {r['compile_s']:>10.1f} "
              f"{r['last_metric']:>12.3f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        print(json.dumps(probe(json.loads(sys.argv[2]))))
    else:
        main(tyro.cli(Args))
