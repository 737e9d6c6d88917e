"""PPO steps/s of this checkout against an earlier git revision, side by side in the same run.

    python -m benchmarks.ppo_vs_revision --baseline-rev 6d5bda8 --preset cpu
    python -m benchmarks.ppo_vs_revision --baseline-dir .baseline/6d5bda8 --preset gpu

The baseline revision is exported once with ``git archive`` into ``.baseline/<rev>`` (ignored by git;
carry that folder to a machine without the repository's history and pass ``--baseline-dir``). Every
variant is measured by ``benchmarks/ppo_probe.py`` in a fresh process per tree, the two trees taking
turns for ``--rounds`` rounds; the best of each is reported with the ratio this / baseline. The last
line of output is one JSON object with every figure.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from typing import Literal

import tyro

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = {
    # (policy, seeds, envs, env steps per seed)
    "cpu": [("mlp", 1, 4, 500_000), ("mlp", 8, 4, 500_000), ("gru", 8, 4, 131_072)],
    "gpu": [("mlp", 512, 4, 500_000), ("mlp", 1, 8192, 2**27), ("gru", 512, 4, 131_072),
            ("gru", 1, 8192, 2**23)],
}


@dataclasses.dataclass(frozen=True)
class Args:
    preset: Literal["cpu", "gpu"] = "cpu"
    baseline_rev: str | None = None
    """git revision to export into .baseline/<rev> (needs the repository's history)"""
    baseline_dir: str | None = None
    """an existing checkout of the baseline revision"""
    rounds: int = 2
    """turns per tree and variant (each a fresh process, best of 2 timed runs)"""
    policies: tuple[Literal["mlp", "gru"], ...] = ("mlp", "gru")
    """measure only the preset's variants of these policies"""


def export_revision(rev: str) -> str:
    out = os.path.join(HERE, ".baseline", rev)
    if not os.path.exists(os.path.join(out, "algos", "ppo.py")):
        os.makedirs(out, exist_ok=True)
        archive = subprocess.run(["git", "archive", rev], cwd=HERE, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


def probe(tree: str, spec: dict) -> dict:
    # the tree first; an inherited PYTHONPATH (e.g. a folder of carried wheels) after it
    paths = [tree] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != HERE]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "benchmarks", "ppo_probe.py"), json.dumps(spec)],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"probe failed in {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(args: Args) -> dict:
    if (args.baseline_rev is None) == (args.baseline_dir is None):
        raise SystemExit("give exactly one of --baseline-rev and --baseline-dir")
    baseline = os.path.abspath(args.baseline_dir or export_revision(args.baseline_rev))
    rows = []
    for policy, seeds, envs, steps in PRESETS[args.preset]:
        if policy not in args.policies:
            continue
        spec = {"policy": policy, "seeds": seeds, "envs": envs, "steps": steps}
        best = {"this": None, "baseline": None}
        for _ in range(args.rounds):
            for name, tree in (("baseline", baseline), ("this", HERE)):
                r = probe(tree, spec)
                if best[name] is None or r["steps_per_s"] > best[name]["steps_per_s"]:
                    best[name] = r
        row = {**spec, "this_steps_per_s": best["this"]["steps_per_s"],
               "baseline_steps_per_s": best["baseline"]["steps_per_s"],
               "this_compile_s": best["this"]["compile_s"], "baseline_compile_s": best["baseline"]["compile_s"],
               "ratio": best["this"]["steps_per_s"] / best["baseline"]["steps_per_s"],
               "device": best["this"]["device"]}
        rows.append(row)
        print(f"{policy} seeds={seeds} envs={envs}: this {row['this_steps_per_s']/1e6:.3f}M, baseline "
              f"{row['baseline_steps_per_s']/1e6:.3f}M steps/s, ratio {row['ratio']:.3f}", flush=True)
    result = {"benchmark": "ppo_vs_revision", "preset": args.preset, "baseline": args.baseline_rev or baseline,
              "rows": rows}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
