"""curriculax's hypercube teachers side by side with the reference code (flowersteam/teachDeepRL), in one run.

    git clone https://github.com/flowersteam/teachDeepRL .peers/teachDeepRL   # ignored folder, never committed
    pip install scikit-learn gym==0.26.2 treelib seaborn imageio              # what its modules import
    python -m benchmarks.hypercube_reference --teacher alp_gmm --dims 2 --cubes 20 --episodes 20000 \\
        --ref-seeds 20 --seeds 32

The reference side runs ``teachDRL/toy_env/toy_env.py`` itself: its ``ToyEnv`` (a fresh one per seed)
and its ``test_alpgmm`` / ``test_covar_gmm`` / ``test_riac`` / ``test_random`` loop (one episode at a
time: sample, run, update), with ``numpy.random.seed(seed)`` before each seed (the reference teachers
draw their own seed from NumPy's global generator). Its final score is the % of mastered cubes after
the last episode. The curriculax side is ``python -m experiments.hypercube`` with the same settings and
the same teacher defaults. Reported: mean, sample std and standard error of the final % per side,
the difference (curriculax - reference) with its standard error, and the wall time of each side.

The last line of output is one JSON object (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_LOOPS = {"alp_gmm": "test_alpgmm", "covar_gmm": "test_covar_gmm", "riac": "test_riac",
                   "random": "test_random"}


def _reference_seed(args: tuple[str, str, int, int, int, int]) -> tuple[float, float]:
    """One reference run: (final % mastered, seconds)."""
    peer_path, teacher, dims, cubes, episodes, seed = args
    if peer_path not in sys.path:
        sys.path.insert(0, peer_path)
    warnings.filterwarnings("ignore")
    from teachDRL.toy_env import toy_env

    np.random.seed(seed)
    env = toy_env.ToyEnv(nb_cubes=cubes, nb_dims=dims)
    loop = getattr(toy_env, REFERENCE_LOOPS[teacher])
    t0 = time.perf_counter()
    scores = loop(env, episodes, gif=False, nb_dims=dims, score_step=episodes, verbose=False)
    return float(scores[-1]), time.perf_counter() - t0


def reference_run(peer_path: str, teacher: str, dims: int, cubes: int, episodes: int, seeds: int,
                  workers: int) -> dict:
    jobs = [(peer_path, teacher, dims, cubes, episodes, s) for s in range(seeds)]
    t0 = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            out = pool.map(_reference_seed, jobs)
    else:
        out = []
        for i, job in enumerate(jobs):
            out.append(_reference_seed(job))
            print(f"reference seed {i}: {out[-1][0]:.2f} % in {out[-1][1]:.0f} s", flush=True)
    finals = np.asarray([o[0] for o in out])
    return {"per_seed": finals.tolist(), "wall_s": round(time.perf_counter() - t0, 1), **_stats(finals)}


def curriculax_run(teacher: str, dims: int, cubes: int, episodes: int, seeds: int, run_dir: str) -> dict:
    from experiments import hypercube
    from experiments.runner import parse_config, read_records

    cfg = parse_config(hypercube.Config, [
        "--teachers", teacher, "--dims", str(dims), "--cubes", str(cubes), "--episodes", str(episodes),
        "--seeds", str(seeds), "--run-dir", run_dir, "--no-progress"])
    t0 = time.perf_counter()
    hypercube.main(cfg)
    wall = time.perf_counter() - t0
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    finals = np.asarray(records[-1]["mastered_pct"], np.float64)
    return {"per_seed": finals.tolist(), "wall_s": round(wall, 1), **_stats(finals)}


def _stats(v: np.ndarray) -> dict:
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "se": std / math.sqrt(v.size), "seeds": int(v.size)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", choices=sorted(REFERENCE_LOOPS), default="alp_gmm")
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--cubes", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=32, help="curriculax seeds (vmapped)")
    parser.add_argument("--ref-seeds", type=int, default=20, help="reference seeds (one process each)")
    parser.add_argument("--workers", type=int, default=1, help="reference seeds run in parallel")
    parser.add_argument("--peer-path", default=os.path.join(ROOT, ".peers", "teachDeepRL"))
    parser.add_argument("--run-dir", default=os.path.join(ROOT, "runs", "hypercube_reference"))
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    if not os.path.isdir(os.path.join(args.peer_path, "teachDRL")):
        raise SystemExit(f"no teachDeepRL checkout at {args.peer_path} (see this module's docstring)")
    settings = dict(teacher=args.teacher, dims=args.dims, cubes=args.cubes, episodes=args.episodes)
    ours = curriculax_run(**settings, seeds=args.seeds, run_dir=os.path.join(args.run_dir, "curriculax"))
    print(f"curriculax: {ours['mean']:.2f} ± {ours['std']:.2f} ({ours['seeds']} seeds, {ours['wall_s']} s)",
          flush=True)
    ref = reference_run(args.peer_path, **settings, seeds=args.ref_seeds, workers=args.workers)
    print(f"reference:  {ref['mean']:.2f} ± {ref['std']:.2f} ({ref['seeds']} seeds, {ref['wall_s']} s)",
          flush=True)
    diff = ours["mean"] - ref["mean"]
    diff_se = math.sqrt(ours["se"] ** 2 + ref["se"] ** 2)
    print(f"difference (curriculax - reference): {diff:+.2f} (SE {diff_se:.2f})", flush=True)
    result = {"benchmark": "hypercube_reference", **settings, "curriculax": ours, "reference": ref,
              "difference": diff, "difference_se": diff_se}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
