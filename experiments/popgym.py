"""Recurrent PPO on POPGym in JAX, as Lu et al. (2023, "Structured State Space Models for In-Context
Reinforcement Learning"; ``luchris429/popjaxrl``, ``run_popgym.py``) ran it.

    python -m experiments.popgym --env RepeatPreviousHard --core s5 --seeds 8
    python -m experiments.popgym --envs StatelessCartPoleHard RepeatPreviousHard --cores s5 gru mlp
    python -m experiments.popgym --quick            # CPU-sized: GRU 64 on RepeatFirstEasy, under a minute

Every setting of the paper is the default: PPO ``popjaxrl_popgym`` (``algos/presets.py``), the memory
core between an encoder Dense 128 -> Dense 256 and actor/critic heads Dense 128 -> Dense 128 (LeakyReLU,
orthogonal init), S5 with d_model 256 and 4 layers, GRU/LSTM with 256 units, the observation
``[obs, one-hot previous action, first-step flag]`` (popjaxrl's ``AliasPrevActionV2``). ``mlp`` is the
memory-less baseline (a Dense 256 in the core's place). The seeds of one (environment, core) pair run
vmapped in one jitted call; ``summary.json`` has ``mmer`` / ``mmer_std`` (POPGym's max-mean episodic
return, mean and std across seeds) and, for several pairs, one child run folder per pair.
"""

from __future__ import annotations

import dataclasses
import functools

from algos.networks import recurrent_policy
from algos.ppo import PPOConfig, Trainer, action_spec, make_train
from algos.presets import ppo_preset
from envs.popgym import popgym_names, popgym_task_env
from envs.registry import env_record, is_factory_path, load_factory, make_task_env
from envs.wrappers import ObservePreviousActionReward
from experiments.ppo_job import ppo_job
from experiments.runner import RunConfig, cli, run_many
from memory import CORES, make_core


@dataclasses.dataclass(frozen=True)
class Config(RunConfig):
    env: str = "RepeatPreviousHard"
    """POPGym environment (``<Family><Easy|Medium|Hard>``) or module:function (your own TaskEnv
    factory), used when --envs is empty"""
    envs: tuple[str, ...] = ()
    """several environments in one run folder (one child per environment and core)"""
    core: str = "s5"
    """memory core of memory.CORES (s5, gru, lstm, mlp = memory-less), used when --cores is empty"""
    cores: tuple[str, ...] = ()
    """several cores in one run folder"""
    hidden: int = 256
    """width of the memory core (S5 d_model, GRU/LSTM units, the MLP baseline's layer)"""
    s5_layers: int = 4
    s5_mode: str = "parallel"
    """S5 recurrence: parallel (associative scan, fast on a GPU) or step (lax.scan, faster on a CPU)"""
    unroll: int | None = None
    """GRU / LSTM time steps per iteration of their scan: the same outputs; default by backend (1 on the
    CPU, 16 on a GPU, where each loop iteration has a fixed overhead; benchmarks.memory_cores times it)"""
    encoder: tuple[int, ...] = (128, 256)
    head_hidden: tuple[int, ...] = (128, 128)
    ppo: PPOConfig = ppo_preset("popjaxrl_popgym")
    seeds: int = 8
    chunks: int = 12

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, env="RepeatFirstEasy", core="gru", hidden=64, encoder=(64,), head_hidden=(64,),
            seeds=2, chunks=4,
            ppo=dataclasses.replace(self.ppo, num_envs=16, num_steps=128, total_timesteps=16 * 128 * 48,
                                    update_epochs=4, num_minibatches=4, lr=1e-3),
        )

    def validate(self) -> None:
        super().validate()
        known = popgym_names()
        for env in self.envs or (self.env,):
            if is_factory_path(env):
                load_factory(env)
            elif env not in known:
                raise ValueError(f"unknown POPGym environment {env!r}; known: {known}, or "
                                 "module:function for your own TaskEnv factory")
        for core in self.cores or (self.core,):
            if core not in CORES:
                raise ValueError(f"unknown core {core!r}; known: {sorted(CORES)}")
        if self.hidden < 1 or self.s5_layers < 1 or (self.unroll is not None and self.unroll < 1):
            raise ValueError("--hidden, --s5-layers and --unroll must be >= 1")
        if self.s5_mode not in ("parallel", "step"):
            raise ValueError(f"--s5-mode must be parallel or step, got {self.s5_mode!r}")
        self.ppo.validate()


def takes_unroll(core_name: str) -> bool:
    """Whether the core steps through time in a scan with an ``unroll`` option (GRU, LSTM)."""
    return hasattr(make_core(core_name, 1), "unroll")


def core_for(config: Config, name: str):
    if name == "s5":
        return make_core("s5", config.hidden, n_layers=config.s5_layers, mode=config.s5_mode)
    if takes_unroll(name):
        return make_core(name, config.hidden, unroll=config.unroll)
    return make_core(name, config.hidden)


def popgym_trainer(config: Config, env_name: str, core_name: str) -> Trainer:
    """PPO with core ``core_name`` on POPGym environment ``env_name``, as the paper set it up."""
    base = make_task_env(env_name) if is_factory_path(env_name) else popgym_task_env(env_name)
    task_env = base.wrap(functools.partial(ObservePreviousActionReward, reward=False))
    action_dim, discrete, _, _ = action_spec(task_env)
    policy = recurrent_policy(core_for(config, core_name), action_dim, discrete, encoder=config.encoder,
                              head_hidden=config.head_hidden, activation="leaky_relu", head_gain=2.0)
    return make_train(config.ppo, task_env, policy=policy)


def popgym_job(config: Config, env_name: str, core_name: str):
    trainer = popgym_trainer(config, env_name, core_name)
    unused = ["env" if config.envs else "envs", "core" if config.cores else "cores"]
    if core_name != "s5":
        unused += ["s5_layers", "s5_mode"]
    if not takes_unroll(core_name):
        unused += ["unroll"]
    record = None
    if is_factory_path(env_name):
        record = {"env": env_record(env_name, make_task_env(env_name))}
    return ppo_job(f"popgym-{env_name}-{core_name}", trainer, unused=unused, record=record)


def main(config: Config) -> dict:
    config.validate()
    pairs = [(env, core) for env in (config.envs or (config.env,)) for core in (config.cores or (config.core,))]
    children = [(f"{env.replace(':', '.')}-{core}", popgym_job(config, env, core), config) for env, core in pairs]
    name = f"popgym-{pairs[0][0]}-{pairs[0][1]}" if len(pairs) == 1 else "popgym"
    return run_many(name, children, config, metric="episodic_return")


if __name__ == "__main__":
    cli(Config, main)
