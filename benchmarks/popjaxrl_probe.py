"""One run of popjaxrl's own recurrent PPO (``luchris429/popjaxrl``: ``algorithms/ppo_s5.py``,
``algorithms/ppo_gru.py``, the config of ``run_popgym.py``) in a fresh process, timed.

    python benchmarks/popjaxrl_probe.py '{"dir": ".peers/popjaxrl", "arch": "s5", "env": "RepeatPreviousEasy",
                                          "updates": 3, "seeds": 1}'

Prints one JSON line (env steps/s, compile s). The peer's code is not in this repository: export it
into an ignored folder (``benchmarks/popgym_vs_popjaxrl.py --help`` says how). It was written for
gymnax 0.0.6 / flax 0.7; the shims below change no computation, only the APIs that moved since:
gymnax 1.0's six-value ``step`` is folded back into the five-value one (done = terminated or
truncated; popjaxrl's environments never truncate), names gone from ``gymnax.wrappers.purerl``,
``jax.tree_map`` and ``jnp.DeviceArray`` are restored, flax's ``GRUCell`` gets its now-required
``features`` (256, as popjaxrl's ``initialize_carry`` asks), ``wandb`` is a stub (``DEBUG`` is off,
so it is never called) and ``distrax``'s Categorical / MultivariateNormalDiag are two small classes
with the same sample / log_prob / entropy.
"""

import json
import os
import sys
import time
import types
import typing

sys.path.pop(0)  # this script's folder (benchmarks/ holds a teachers.py)

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from functools import partial


def _distrax_stub() -> types.ModuleType:
    class Categorical:
        def __init__(self, logits):
            self.logits = logits

        def sample(self, seed):
            return jax.random.categorical(seed, self.logits)

        def log_prob(self, value):
            logp = jax.nn.log_softmax(self.logits)
            return jnp.take_along_axis(logp, value[..., None].astype(jnp.int32), axis=-1)[..., 0]

        def entropy(self):
            logp = jax.nn.log_softmax(self.logits)
            return -(jnp.exp(logp) * logp).sum(-1)

    class MultivariateNormalDiag:
        def __init__(self, loc, scale_diag):
            self.loc, self.scale = loc, jnp.broadcast_to(scale_diag, loc.shape)

        def sample(self, seed):
            return self.loc + self.scale * jax.random.normal(seed, self.loc.shape)

        def log_prob(self, value):
            z = (value - self.loc) / self.scale
            return (-0.5 * z**2 - jnp.log(self.scale) - 0.5 * jnp.log(2 * jnp.pi)).sum(-1)

        def entropy(self):
            return (0.5 + 0.5 * jnp.log(2 * jnp.pi) + jnp.log(self.scale)).sum(-1)

    mod = types.ModuleType("distrax")
    mod.Categorical, mod.MultivariateNormalDiag = Categorical, MultivariateNormalDiag
    return mod


class LegacyStep:
    """gymnax 1.0 environment -> the five-value ``step`` popjaxrl's wrappers unpack."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)

    @partial(jax.jit, static_argnums=(0,))
    def reset(self, key, params=None):
        return self._env.reset(key, params)

    @partial(jax.jit, static_argnums=(0,))
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {k: v for k, v in info.items() if k not in ("terminated", "truncated", "final_observation")}
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def load(path: str):
    import gymnax.wrappers.purerl as purerl

    purerl.Optional, purerl.Tuple, purerl.Union, purerl.chex = typing.Optional, typing.Tuple, typing.Union, chex
    if not hasattr(jax, "tree_map"):
        jax.tree_map = jax.tree.map
    if not hasattr(jnp, "DeviceArray"):
        jnp.DeviceArray = jax.Array
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    sys.modules["distrax"] = _distrax_stub()
    sys.path.insert(0, os.path.abspath(path))
    from algorithms import ppo_gru, ppo_s5
    from envs import make
    from envs.wrappers import AliasPrevActionV2

    class ScannedRNN(nn.Module):  # popjaxrl's, with GRUCell(features=...) for flax >= 0.7.4
        @partial(nn.scan, variable_broadcast="params", in_axes=0, out_axes=0, split_rngs={"params": False})
        @nn.compact
        def __call__(self, carry, x):
            ins, resets = x
            carry = jnp.where(resets[:, np.newaxis], jnp.zeros_like(carry), carry)
            return nn.GRUCell(features=carry.shape[-1])(carry, ins)

        @staticmethod
        def initialize_carry(batch_size, hidden_size):
            return jnp.zeros((batch_size, hidden_size))

    ppo_gru.ScannedRNN = ScannedRNN
    return ppo_gru, ppo_s5, make, AliasPrevActionV2


def main(spec: dict) -> dict:
    ppo_gru, ppo_s5, make, alias = load(spec["dir"])
    env, env_params = make(spec["env"])
    type(env).is_truncated = lambda self, state, params: jnp.asarray(False)
    num_envs, num_steps = spec.get("num_envs", 64), spec.get("num_steps", 1024)
    config = {  # run_popgym.py's, DEBUG off (no per-update host callback)
        "LR": 5e-5, "NUM_ENVS": num_envs, "NUM_STEPS": num_steps,
        "TOTAL_TIMESTEPS": spec["updates"] * num_envs * num_steps,
        "UPDATE_EPOCHS": spec.get("epochs", 30), "NUM_MINIBATCHES": spec.get("minibatches", 8),
        "GAMMA": 0.99, "GAE_LAMBDA": 1.0, "CLIP_EPS": 0.2, "ENT_COEF": 0.0, "VF_COEF": 1.0,
        "MAX_GRAD_NORM": 0.5, "ENV": alias(LegacyStep(env)), "ENV_PARAMS": env_params, "ANNEAL_LR": False,
        "DEBUG": False, "S5_D_MODEL": 256, "S5_SSM_SIZE": 256, "S5_N_LAYERS": 4, "S5_BLOCKS": 1,
        "S5_ACTIVATION": "full_glu", "S5_DO_NORM": False, "S5_PRENORM": False, "S5_DO_GTRXL_NORM": False,
    }
    make_train = {"s5": ppo_s5.make_train, "gru": ppo_gru.make_train}[spec["arch"]]
    def run(key):  # the final runner state too, so that XLA cannot prune the last update's learning
        runner_state, metric = make_train(dict(config))(key)
        return metric, jax.tree.map(jnp.sum, runner_state[0].params)

    fn = jax.jit(jax.vmap(run))
    keys = jax.random.split(jax.random.PRNGKey(42), spec["seeds"])
    t0 = time.perf_counter()
    compiled = fn.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metric, _ = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - t0
    steps = spec["seeds"] * spec["updates"] * num_envs * num_steps
    return {**spec, "impl": "popjaxrl", "steps_per_s": steps / run_s, "run_s": run_s, "compile_s": compile_s,
            "last_metric": float(np.nanmean(np.asarray(metric)[:, -1])), "device": str(jax.devices()[0])}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
