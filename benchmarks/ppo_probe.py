"""One PPO throughput measurement in a fresh process, run against any checkout of curriculax.

``python benchmarks/ppo_probe.py '{"policy": "mlp", "seeds": 8, "envs": 4, "steps": 500000}'`` with
``PYTHONPATH`` at the checkout to measure; prints one JSON line (steps/s, compile s). It uses only
the API every revision since the foundation has (``make_train(config, task_env, teacher=None,
policy=None)``, ``trainer.train``), so ``benchmarks/ppo_vs_revision.py`` can time an older revision
side by side with this one. The GRU policy is ``memory.GRU`` through ``recurrent_policy`` where the
checkout has them, else the test GRU of older revisions (the same layers: Dense 32 + tanh, a GRU
cell of 32, linear actor and critic heads).
"""

import json
import sys
import time

sys.path.pop(0)  # this script's folder (benchmarks/ holds a teachers.py); PYTHONPATH names the tree

import envs  # noqa: F401  (first: the XLA CPU work-around)
import gymnax
import jax

from algos.ppo import PPOConfig, make_train
from envs.task_env import fixed_task_env


def gru_policy(action_dim: int):
    try:
        from algos.networks import recurrent_policy
        from memory import GRU
    except ImportError:  # revisions before memory/: the GRU of tests/test_ppo_policies.py
        from tests.test_ppo_policies import gru_policy as old_gru

        return old_gru(action_dim)
    return recurrent_policy(GRU(32), action_dim, discrete=True, encoder=(32,))


def main(spec: dict) -> dict:
    env, params = gymnax.make("CartPole-v1")
    config = PPOConfig(num_envs=spec["envs"], num_steps=spec.get("num_steps", 128),
                       total_timesteps=spec["steps"],
                       **({"minibatch_axis": "envs"} if spec["policy"] == "gru" else {}))
    policy = gru_policy(2) if spec["policy"] == "gru" else None
    trainer = make_train(config, fixed_task_env(env, params), policy=policy)
    keys = jax.random.split(jax.random.PRNGKey(0), spec["seeds"])
    fn = jax.jit(jax.vmap(lambda k: trainer.train(k)[1]["episodes"].sum()))
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(spec.get("repeats", 2)):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        best = min(best, time.perf_counter() - t0)
    steps = spec["seeds"] * config.num_updates * config.steps_per_update
    return {**spec, "steps_per_s": steps / best, "run_s": best, "compile_s": compile_s,
            "device": str(jax.devices()[0])}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
