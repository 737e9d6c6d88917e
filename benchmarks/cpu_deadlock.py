"""Does XLA's CPU runtime deadlock on curriculax's PPO, with and without the work-around of
``envs/xla_cpu.py``, and what does the work-around cost?

    python -m benchmarks.cpu_deadlock [--processes 4] [--calls 6] [--timeout 60]

Each process compiles PPO on CartPole-v1 (8 vmapped seeds x 4 envs, 100k steps per seed) and calls it
``--calls`` times; a process that has not finished after ``--timeout`` seconds counts as hung. The two
arms alternate (ABAB). The last line is one JSON object with hangs, calls finished and the median
seconds per call of each arm.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import sys, time
import jax
from benchmarks.ppo_throughput import ppo_variant
import gymnax
from envs.task_env import fixed_task_env
env, params = gymnax.make("CartPole-v1")
fn, keys, _ = ppo_variant(fixed_task_env(env, params), None, 8, 4, 100_000, 128)
compiled = jax.jit(fn).lower(keys).compile()
for _ in range(int(sys.argv[1])):
    t = time.perf_counter()
    jax.block_until_ready(compiled(keys))
    print("CALL", time.perf_counter() - t, flush=True)
"""


def one_process(workaround: bool, calls: int, timeout: float) -> tuple[bool, list[float]]:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # both arms start from XLA's defaults (this process added the flag)
    if workaround:
        env.pop("CURRICULAX_KEEP_XLA_FLAGS", None)
    else:
        env["CURRICULAX_KEEP_XLA_FLAGS"] = "1"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(calls)], cwd=root, env=env,
                              capture_output=True, text=True, timeout=timeout)
        out, hung = proc.stdout, False
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
    except subprocess.TimeoutExpired as e:  # what the child printed before it hung
        partial = e.stdout or ""
        out, hung = (partial.decode() if isinstance(partial, bytes) else partial), True
    times = [float(line.split()[1]) for line in out.splitlines() if line.startswith("CALL")]
    return hung, times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4, help="processes per arm")
    parser.add_argument("--calls", type=int, default=6, help="calls per process")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a process counts as hung")
    args = parser.parse_args(argv)
    if min(args.processes, args.calls) < 1 or args.timeout <= 0:
        raise ValueError("--processes, --calls and --timeout must be positive")
    arms = {"workaround": {"hung": 0, "calls": 0, "times": []},
            "default_xla": {"hung": 0, "calls": 0, "times": []}}
    for i in range(args.processes):
        for name in ("default_xla", "workaround"):
            hung, times = one_process(name == "workaround", args.calls, args.timeout)
            arm = arms[name]
            arm["hung"] += hung
            arm["calls"] += len(times)
            arm["times"] += times
            print(f"process {i} {name:<12} {'HUNG' if hung else 'ok  '} after {len(times)} calls "
                  f"({', '.join(f'{t:.2f}' for t in times)} s)", flush=True)
    result = {"benchmark": "cpu_deadlock", "processes_per_arm": args.processes, "calls": args.calls,
              "cpus": os.cpu_count()}
    for name, arm in arms.items():
        result[name] = {"hung_processes": arm["hung"], "calls_finished": arm["calls"],
                        "median_s_per_call": statistics.median(arm["times"]) if arm["times"] else None}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
