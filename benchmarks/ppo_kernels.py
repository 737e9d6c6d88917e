"""Device kernels per PPO update with each teacher, from a profiler trace: where a teacher's cost
inside PPO goes on a GPU, where it is the number of kernels and host syncs rather than arithmetic.

``python -m benchmarks.ppo_kernels [--teachers random covar_gmm] [--refit-period 1000000000]
[--seeds 512] [--updates 60] [--out DIR]``

For each teacher: PPO on ``cartpole_tasks`` (4 envs x 128 steps per update, as
``benchmarks.teachers --ppo``), ``jax.jit(jax.vmap(train))`` over ``--seeds`` seeds, compiled and run
once, then run again under ``jax.profiler.trace(create_perfetto_trace=True)``. The perfetto trace is
read back and every event on a device line is counted per update and grouped by the HLO op that
launched it (a command buffer, i.e. a CUDA graph, a copy, a loop condition's device-to-host copy),
with the kernels each group runs most. ``--refit-period`` applies to the teachers that take it
(the default never refits: the cost of a GMM teacher's presence without its EM). On a CPU the trace
has no device lines and only the totals are printed. The trace files stay under ``--out``.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import shutil
import time

import jax


def device_events(trace_file: str) -> list[dict]:
    """The complete ("X") events of a perfetto trace that lie on a device (``/device:...``) process."""
    with gzip.open(trace_file) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    processes = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    return [e for e in events if e.get("ph") == "X" and str(processes.get(e["pid"], "")).startswith("/device:")]


def kernels_by_op(events: list[dict], updates: int) -> list[dict]:
    """Per launching HLO op: events and busy microseconds per update, and its most frequent kernels."""
    count, busy = collections.Counter(), collections.Counter()
    kernels = collections.defaultdict(collections.Counter)
    for e in events:
        op = e.get("args", {}).get("hlo_op", "?")
        count[op] += 1
        busy[op] += e.get("dur", 0)
        kernels[op][e["name"]] += 1
    return [{"hlo_op": op, "per_update": n / updates, "busy_us_per_update": busy[op] / updates,
             "top_kernels": {k: v / updates for k, v in kernels[op].most_common(4)}}
            for op, n in count.most_common()]


def profile_teacher(name: str, seeds: int, updates: int, refit_period: int, out: str) -> dict:
    from benchmarks.teachers import compiled_ppo
    from teachers.registry import takes_option

    options = {"refit_period": refit_period} if name != "none" and takes_option(name, "refit_period") else {}
    compiled, keys, config, _ = compiled_ppo(name, seeds, 4, 4 * 128 * updates, **options)
    jax.block_until_ready(compiled(keys))
    trace_dir = os.path.join(out, name)
    shutil.rmtree(trace_dir, ignore_errors=True)
    t0 = time.perf_counter()
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
        jax.block_until_ready(compiled(keys))
    wall = time.perf_counter() - t0
    trace_file = glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True)[0]
    events = device_events(trace_file)
    rows = kernels_by_op(events, config.num_updates)
    return {"teacher": name, "options": options, "updates": config.num_updates,
            "profiled_wall_s": round(wall, 3), "device_events_per_update": len(events) / config.num_updates,
            "device_busy_us_per_update": sum(e.get("dur", 0) for e in events) / config.num_updates,
            "by_hlo_op": rows}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teachers", nargs="+", default=["random", "covar_gmm"])
    parser.add_argument("--refit-period", type=int, default=10**9)
    parser.add_argument("--seeds", type=int, default=512)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--out", default="runs/ppo_kernels")
    args = parser.parse_args(argv)
    if min(args.seeds, args.updates, args.refit_period) < 1:
        raise ValueError("--seeds, --updates and --refit-period must be >= 1")
    results = []
    for name in args.teachers:
        r = profile_teacher(name, args.seeds, args.updates, args.refit_period, args.out)
        print(f"{name}: {r['device_events_per_update']:.0f} device events and "
              f"{r['device_busy_us_per_update']:.0f} us busy per update", flush=True)
        for row in r["by_hlo_op"][:12]:
            print(f"  {row['per_update']:8.1f}/update {row['busy_us_per_update']:8.1f} us  {row['hlo_op']:<28} "
                  f"{ {k[:40]: round(v, 1) for k, v in row['top_kernels'].items()} }")
        results.append(r)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
