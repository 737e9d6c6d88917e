"""The ``envs`` and ``hparams`` axes of the run mesh over 8 host CPU devices (issue #10).

* Environment axis: PPO traced under a mesh with an ``envs`` axis of 8 devices lays every
  per-environment array along it, and its update equals the update without a mesh (same program up
  to the order of float sums), both for the trainer itself and for a runner run with
  ``--env-devices``.
* Hyperparameter axis: a ``--sweep`` of 4 learning rates x 2 seeds runs as one program on a mesh of
  4 (hparams) x 2 (seeds) devices and gives, per learning rate, the results of a separate run with
  that learning rate.

Tolerances as in tests/test_runner.py's seed-sharding test (8 updates at most: float rounding of
the differently partitioned programs has not grown yet).
"""

from __future__ import annotations

import textwrap

import numpy as np

from tests.multidevice import run_script

ENV_SCRIPT = textwrap.dedent("""
    import json, sys
    import envs  # first: curriculax starts JAX with its flags
    import gymnax, jax, numpy as np
    from jax.sharding import PartitionSpec as P
    assert jax.device_count() == 8
    from algos.ppo import ENV_AXIS, PPOConfig, make_train
    from envs.task_env import fixed_task_env
    from experiments import ppo_cartpole
    from experiments.runner import parse_config, run_mesh

    config = PPOConfig(num_envs=64, num_steps=16, total_timesteps=64 * 16 * 3, num_minibatches=4,
                       update_epochs=2)
    trainer = make_train(config, fixed_task_env(*gymnax.make("CartPole-v1")))
    keys = jax.random.split(jax.random.PRNGKey(3), 2)

    def train():
        state = jax.jit(jax.vmap(trainer.init))(keys)
        return jax.jit(jax.vmap(lambda s: trainer.train_chunk(s, config.num_updates)))(state)

    plain, m_plain = train()
    mesh = run_mesh(2, True, env_devices=8)
    with jax.set_mesh(mesh):
        sharded, m_sharded = train()
    leaf = lambda t: jax.tree.leaves(t)[0]
    out = {
        "mesh": dict(mesh.shape),
        "obs_spec": [str(s) for s in sharded.obs.sharding.spec],
        "obs_shards": len({tuple((sl.start, sl.stop) for sl in idx)
                           for idx in sharded.obs.sharding.devices_indices_map(sharded.obs.shape).values()}),
        "param_replicated": leaf(sharded.train_state.params).sharding.is_fully_replicated,
        "max_param_diff": max(jax.tree.leaves(jax.tree.map(
            lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
            plain.train_state.params, sharded.train_state.params))),
        "return_sum": [np.asarray(m_plain["return_sum"]).tolist(), np.asarray(m_sharded["return_sum"]).tolist()],
        "value_loss": [np.asarray(m_plain["loss/value"]).tolist(), np.asarray(m_sharded["loss/value"]).tolist()],
    }
    try:  # num_envs must split evenly over the envs axis
        bad = make_train(PPOConfig(num_envs=12, num_steps=8, total_timesteps=96, num_minibatches=1),
                         fixed_task_env(*gymnax.make("CartPole-v1")))
        with jax.set_mesh(mesh):
            jax.jit(jax.vmap(bad.init))(keys)
        out["error"] = None
    except ValueError as e:
        out["error"] = str(e)
    # through the runner: 2 seeds x 32 envs, the env axis over 4 devices (mesh 1 x 2 x 4) vs unsharded
    for name, extra in [("env4", ["--env-devices", "4"]), ("plain", ["--no-shard-seeds"])]:
        cfg = parse_config(ppo_cartpole.Config, [
            "--quick", "--seeds", "2", "--ppo.num-envs", "32", "--ppo.num-steps", "16",
            "--ppo.total-timesteps", str(32 * 16 * 6), "--chunks", "2", "--no-progress",
            "--run-dir", sys.argv[1] + name, *extra])
        out[name] = ppo_cartpole.main(cfg)
    print("RESULT", json.dumps(out))
""")


def test_env_axis_sharded_update_equals_unsharded(tmp_path):
    out = run_script(ENV_SCRIPT, str(tmp_path / "r"))
    assert out["mesh"] == {"hparams": 1, "seeds": 1, "envs": 8}
    assert out["obs_spec"][-1] == "envs" and out["obs_shards"] == 8  # [seeds, envs, obs]: 8 env blocks
    assert out["param_replicated"]
    assert out["max_param_diff"] < 1e-5, out["max_param_diff"]
    np.testing.assert_allclose(*out["return_sum"], rtol=1e-5)
    np.testing.assert_allclose(*out["value_loss"], rtol=1e-4)
    assert "num_envs=12 must be a multiple of the 8 devices" in out["error"]
    a, b = out["env4"], out["plain"]
    np.testing.assert_allclose(a["final_return"], b["final_return"], rtol=1e-5)
    np.testing.assert_allclose(a["final_return_std"], b["final_return_std"], rtol=1e-4, atol=1e-4)


SWEEP_SCRIPT = textwrap.dedent("""
    import json, sys
    from experiments import ppo_cartpole  # first: curriculax starts JAX with its flags
    import jax
    from experiments.runner import parse_config, run_mesh
    assert jax.device_count() == 8
    common = ["--quick", "--seeds", "2", "--ppo.total-timesteps", "4096", "--chunks", "2", "--no-progress"]
    out = {"mesh": dict(run_mesh(2, True, 1, num_hparams=4).shape)}
    cfg = parse_config(ppo_cartpole.Config, [*common, "--run-dir", sys.argv[1] + "sweep",
                                             "--sweep", "lr=1e-4,3e-4,1e-3,3e-3"])
    out["sweep"] = ppo_cartpole.main(cfg)
    for lr in ["0.001", "0.003"]:
        cfg = parse_config(ppo_cartpole.Config, [*common, "--run-dir", sys.argv[1] + lr, "--ppo.lr", lr])
        out[lr] = ppo_cartpole.main(cfg)
    print("RESULT", json.dumps(out))
""")


def test_hparam_axis_sweep_equals_separate_runs(tmp_path):
    out = run_script(SWEEP_SCRIPT, str(tmp_path / "r"))
    assert out["mesh"] == {"hparams": 4, "seeds": 2, "envs": 1}
    sweep = out["sweep"]
    assert sweep["settings"] == 4 and sweep["seeds"] == 2
    for lr in ["0.001", "0.003"]:
        for key in ("final_return", "final_return_std", "mmer"):
            np.testing.assert_allclose(sweep[f"lr={float(lr):g}/{key}"], out[lr][key], rtol=1e-4, atol=1e-4)
    assert sweep["lr=0.0001/final_return"] != sweep["lr=0.003/final_return"]  # the settings mattered
    plots = tmp_path / "rsweep" / "plots"
    assert sorted(p.name for p in plots.iterdir() if p.is_dir()) == [
        "lr=0.0001", "lr=0.0003", "lr=0.001", "lr=0.003"]
