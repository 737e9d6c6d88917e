"""Forward + backward time of the memory cores (``memory/``) over sequence length.

    python -m benchmarks.memory_cores                        # T = 64 ... 16384, batch 64, width 256
    python -m benchmarks.memory_cores --quick --out /tmp/memory_cores.json   # small sizes: a CPU smoke run
    python -m benchmarks.memory_cores --lengths 1024 4096 --cores s5-parallel gru --out results.md

Each core is timed on one jitted ``value_and_grad`` of mean(y²) over a whole ``[T, B, width]`` sequence
with random resets (1 % of steps), from a fresh carry: AOT compile time (``lower().compile()``), then one
warm-up call and the median of ``--repeats`` calls, each ending in ``block_until_ready``. Cores: S5 with
the parallel (associative-scan) and the step (``lax.scan``) recurrence, GRU and LSTM; S5 is the paper's
POPGym stack (``--s5-layers`` 4, ``--ssm-size`` 256, d_model = width), GRU and LSTM have ``width`` units
(``gru`` / ``lstm``: the backend's default scan unroll; ``gru-unroll4`` etc. fix it).
A failed size (e.g. out of memory) is recorded with its error and the run goes on.

What is measured is a function in :data:`MEASURES` ``(name, core, args) -> rows``; a new measurement
(e.g. recurrent-PPO steps/s per core) is one more function there, chosen with ``--measures``. The table
is printed per measurement; ``--out`` writes every row as JSON (``.md``: a markdown table and the JSON).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tyro

from memory import make_core


@dataclasses.dataclass(frozen=True)
class Args:
    lengths: tuple[int, ...] | None = None
    """sequence lengths T (default 64 256 1024 4096 16384; --quick: 16 64 256)"""
    batch: int | None = None
    """sequences per call B (default 64; --quick: 4)"""
    width: int | None = None
    """input and output width: GRU/LSTM units, S5 d_model (default 256; --quick: 32)"""
    ssm_size: int | None = None
    """S5 state size before conjugate symmetry (default 256 -> 128 complex states; --quick: 32)"""
    s5_layers: int | None = None
    """stacked S5 layers (default 4; --quick: 2)"""
    cores: tuple[str, ...] = ("s5-parallel", "s5-step", "gru", "lstm")
    measures: tuple[str, ...] = ("fwd_bwd",)
    """fwd_bwd (a core over whole sequences) and/or ppo (recurrent-PPO env steps/s on --ppo-env)"""
    ppo_env: str = "RepeatPreviousEasy"
    ppo_updates: int = 2
    ppo_seeds: int = 1
    """seeds vmapped in the ppo measure (steps/s counts every seed's steps)"""
    repeats: int = 5
    """timed calls after the warm-up (the median is reported)"""
    quick: bool = False
    """small sizes for a CPU smoke run"""
    seed: int = 0
    out: str | None = None
    """write the result here (JSON; a .md path gets a markdown table and the JSON)"""


@dataclasses.dataclass(frozen=True)
class Sizes:
    lengths: tuple[int, ...]
    batch: int
    width: int
    ssm_size: int
    s5_layers: int


def resolve(args: Args) -> Sizes:
    default = Sizes((16, 64, 256), 4, 32, 32, 2) if args.quick else Sizes((64, 256, 1024, 4096, 16384), 64, 256, 256, 4)
    pick = lambda value, fallback: fallback if value is None else value
    return Sizes(tuple(pick(args.lengths, default.lengths)), pick(args.batch, default.batch),
                 pick(args.width, default.width), pick(args.ssm_size, default.ssm_size),
                 pick(args.s5_layers, default.s5_layers))


CORE_FACTORIES: dict[str, Callable[[Sizes], Any]] = {
    "s5-parallel": lambda s: make_core("s5", s.width, ssm_size=s.ssm_size, n_layers=s.s5_layers, mode="parallel"),
    "s5-step": lambda s: make_core("s5", s.width, ssm_size=s.ssm_size, n_layers=s.s5_layers, mode="step"),
    "gru": lambda s: make_core("gru", s.width),  # the backend's default unroll (memory/unroll.py)
    "gru-unroll1": lambda s: make_core("gru", s.width, unroll=1),
    "gru-unroll4": lambda s: make_core("gru", s.width, unroll=4),
    "gru-unroll16": lambda s: make_core("gru", s.width, unroll=16),
    "lstm": lambda s: make_core("lstm", s.width),
    "lstm-unroll1": lambda s: make_core("lstm", s.width, unroll=1),
    "lstm-unroll16": lambda s: make_core("lstm", s.width, unroll=16),
}


def _inputs(sizes: Sizes, length: int, seed: int):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(length, sizes.batch, sizes.width)), jnp.float32)
    reset = jnp.asarray(rng.random((length, sizes.batch)) < 0.01)
    return x, reset


def _n_params(params) -> int:
    return int(sum(np.prod(a.shape) for a in jax.tree.leaves(params)))


def measure_fwd_bwd(name: str, core, sizes: Sizes, args: Args) -> list[dict]:
    """One row per length: compile seconds and median seconds of a jitted forward + backward pass."""
    rows = []
    x0, r0 = _inputs(sizes, 1, args.seed)
    params = jax.jit(core.init)(jax.random.PRNGKey(args.seed), core.initial_carry(sizes.batch), (x0, r0))

    def loss(params, carry, x, reset):
        _, y = core.apply(params, carry, (x, reset))
        return jnp.mean(y**2)

    fn = jax.jit(jax.value_and_grad(loss))
    for length in sizes.lengths:
        row = {"measure": "fwd_bwd", "core": name, "length": length, "batch": sizes.batch, "width": sizes.width,
               "n_params": _n_params(params)}
        try:
            x, reset = _inputs(sizes, length, args.seed + length)
            carry = core.initial_carry(sizes.batch)
            t0 = time.perf_counter()
            compiled = fn.lower(params, carry, x, reset).compile()
            row["compile_s"] = time.perf_counter() - t0
            jax.block_until_ready(compiled(params, carry, x, reset))  # warm-up
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(compiled(params, carry, x, reset))
                times.append(time.perf_counter() - t0)
            row["median_s"] = statistics.median(times)
            row["min_s"] = min(times)
            row["steps_per_s"] = length * sizes.batch / row["median_s"]
        except Exception as e:  # noqa: BLE001  (e.g. out of memory at the largest sizes: record and go on)
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        rows.append(row)
        print(_row_line(row), flush=True)
    return rows


def measure_ppo(name: str, core, sizes: Sizes, args: Args) -> list[dict]:
    """Recurrent-PPO env steps/s with this core on one POPGym task (``--ppo-env``), the paper's
    settings (64 envs x 1024 steps, 30 epochs x 8 minibatches; ``--quick``: 8 x 64, 2 x 2) for
    ``--ppo-updates`` updates; one row, ``median_s`` = seconds per update."""
    import functools

    from algos.networks import recurrent_policy
    from algos.ppo import action_spec, make_train
    from algos.presets import ppo_preset
    from envs.popgym import popgym_task_env
    from envs.wrappers import ObservePreviousActionReward

    envs_, steps, epochs, mbs = (8, 64, 2, 2) if args.quick else (64, 1024, 30, 8)
    config = ppo_preset("popjaxrl_popgym", num_envs=envs_, num_steps=steps, update_epochs=epochs,
                        num_minibatches=mbs, total_timesteps=args.ppo_updates * envs_ * steps)
    task_env = popgym_task_env(args.ppo_env).wrap(functools.partial(ObservePreviousActionReward, reward=False))
    action_dim, discrete, _, _ = action_spec(task_env)
    policy = recurrent_policy(core, action_dim, discrete, encoder=(128, sizes.width), head_hidden=(128, 128),
                              activation="leaky_relu", head_gain=2.0)
    trainer = make_train(config, task_env, policy=policy)
    # every metric and the final parameters out, so that XLA cannot prune the learning
    def run(key):
        state, metrics = trainer.train(key)
        return jax.tree.map(jnp.sum, (state.train_state.params, metrics))

    fn = jax.jit(jax.vmap(run))
    key = jax.random.split(jax.random.PRNGKey(args.seed), args.ppo_seeds)
    row = {"measure": "ppo", "core": name, "length": steps, "batch": envs_, "width": sizes.width,
           "env": args.ppo_env, "updates": args.ppo_updates, "seeds": args.ppo_seeds}
    try:
        t0 = time.perf_counter()
        compiled = fn.lower(key).compile()
        row["compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(key))
        run_s = time.perf_counter() - t0
        row.update(median_s=run_s / args.ppo_updates, min_s=run_s / args.ppo_updates,
                   steps_per_s=args.ppo_seeds * config.num_updates * config.steps_per_update / run_s)
        row["n_params"] = _n_params(trainer.init(key[0]).train_state.params)
    except Exception as e:  # noqa: BLE001
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        row["n_params"] = 0
    rows = [row]
    print(_row_line(row), flush=True)
    return rows


MEASURES: dict[str, Callable[[str, Any, Sizes, Args], list[dict]]] = {"fwd_bwd": measure_fwd_bwd,
                                                                      "ppo": measure_ppo}


def _row_line(row: dict) -> str:
    if "error" in row:
        return f"{row['measure']} {row['core']} T={row['length']}: {row['error']}"
    return (f"{row['measure']} {row['core']} T={row['length']}: {row['median_s'] * 1e3:.2f} ms, "
            f"{row['steps_per_s']:,.0f} steps/s, compile {row['compile_s']:.2f} s")


def markdown_table(rows: list[dict]) -> str:
    """Per measurement: one line per core, one column of median ms (and compile s) per length."""
    out = []
    for measure in dict.fromkeys(r["measure"] for r in rows):
        mrows = [r for r in rows if r["measure"] == measure]
        lengths = list(dict.fromkeys(r["length"] for r in mrows))
        out.append(f"**{measure}**: median ms per call (compile s)\n")
        out.append("| core | params | " + " | ".join(f"T={t}" for t in lengths) + " |")
        out.append("|---|---|" + "---|" * len(lengths))
        for core in dict.fromkeys(r["core"] for r in mrows):
            cells = []
            for t in lengths:
                r = next((r for r in mrows if r["core"] == core and r["length"] == t), None)
                if r is None:
                    cells.append("")
                elif "error" in r:
                    cells.append(r["error"].split(":")[0])
                else:
                    cells.append(f"{r['median_s'] * 1e3:.2f} ({r['compile_s']:.1f})")
            n_params = next(r["n_params"] for r in mrows if r["core"] == core)
            out.append(f"| {core} | {n_params:,} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(args: Args) -> dict:
    unknown = [c for c in args.cores if c not in CORE_FACTORIES] + [m for m in args.measures if m not in MEASURES]
    if unknown:
        raise SystemExit(f"unknown {unknown}; cores: {sorted(CORE_FACTORIES)}, measures: {sorted(MEASURES)}")
    sizes = resolve(args)
    device = jax.devices()[0]
    rows = []
    for measure in args.measures:
        for name in args.cores:
            rows += MEASURES[measure](name, CORE_FACTORIES[name](sizes), sizes, args)
    result = {"benchmark": "memory_cores", "sizes": dataclasses.asdict(sizes), "repeats": args.repeats,
              "device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__,
              "host": platform.node(), "rows": rows}
    table = markdown_table(rows)
    print(f"\n{result['device']}, batch {sizes.batch}, width {sizes.width}, S5 {sizes.s5_layers} layers, "
          f"ssm_size {sizes.ssm_size}\n")
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            if args.out.endswith(".md"):
                f.write(f"# memory_cores\n\n{result['device']}, jax {jax.__version__}\n\n{table}\n```json\n"
                        f"{json.dumps(result, indent=1)}\n```\n")
            else:
                json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
