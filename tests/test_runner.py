"""The experiment runner: run folder contract, exact resume after SIGKILL, sharded == unsharded."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from experiments import ppo_cartpole
from experiments.checkpoints import Checkpointer
from experiments.runner import parse_config, read_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KEYS = {"wall_time_s", "compile_time_s", "steps_per_s"}


def _run_module(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.ppo_cartpole", *args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw,
    )


def _final_params(run_dir):
    config = parse_config(ppo_cartpole.Config, ["--quick"])
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
    step = ckpt.latest_step()
    import gymnax
    import jax

    from algos.ppo import make_train
    from envs.task_env import fixed_task_env
    from experiments.runner import seed_keys

    env, params = gymnax.make("CartPole-v1")
    trainer = make_train(config.ppo, fixed_task_env(env, params))
    like = jax.vmap(trainer.init)(seed_keys(config.__class__(seeds=2)))
    state, meta = ckpt.restore(step, like)
    ckpt.close()
    return state.train_state.params, meta


def test_run_folder_contract(tmp_path):
    run_dir = str(tmp_path / "run")
    config = parse_config(ppo_cartpole.Config, ["--quick", "--seeds", "2", "--run-dir", run_dir,
                                                "--no-progress"])
    summary = ppo_cartpole.main(config)
    for name in ["config.json", "metrics.jsonl", "summary.json", "plots/episodic_return.png"]:
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["config"]["seeds"] == 2 and saved["versions"]["jax"]
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["chunk"] for r in records] == list(range(config.chunks))
    assert records[-1]["env_steps"] == config.ppo.num_updates * config.ppo.steps_per_update
    assert all(len(r["episodic_return"]) == 2 for r in records)
    assert {"final_return", "final_return_std", "steps_per_s"} <= set(summary)
    np.testing.assert_allclose(summary["final_return"], np.mean(records[-1]["episodic_return"]))
    # the run folder is not silently overwritten
    with pytest.raises(FileExistsError):
        ppo_cartpole.main(config)


def test_config_errors():
    with pytest.raises(ValueError, match="seeds"):
        parse_config(ppo_cartpole.Config, ["--seeds", "0"])
    with pytest.raises(ValueError, match="run-dir"):
        parse_config(ppo_cartpole.Config, ["--resume"])
    with pytest.raises(ValueError, match="num_minibatches"):
        ppo_cartpole.main(parse_config(ppo_cartpole.Config, ["--ppo.num-minibatches", "3"]))
    with pytest.raises(ValueError, match="unknown gymnax"):
        ppo_cartpole.main(parse_config(ppo_cartpole.Config, ["--env", "NoSuchEnv-v0"]))


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    args = ["--quick", "--seeds", "2", "--chunks", "24", "--ppo.total-timesteps", "196608",
            "--no-progress"]
    full_dir, cut_dir = str(tmp_path / "full"), str(tmp_path / "cut")
    assert _run_module(args + ["--run-dir", full_dir]).wait(timeout=600) == 0

    proc = _run_module(args + ["--run-dir", cut_dir])
    first_ckpt = os.path.join(cut_dir, "checkpoints", "1")
    deadline = time.time() + 300
    while not os.path.isdir(first_ckpt) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(cut_dir, "summary.json")), "run finished before the kill"
    done = len(read_records(os.path.join(cut_dir, "metrics.jsonl")))
    assert 1 <= done < 24

    resumed = _run_module(args + ["--run-dir", cut_dir, "--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out

    full = json.load(open(os.path.join(full_dir, "summary.json")))
    cut = json.load(open(os.path.join(cut_dir, "summary.json")))
    assert {k: v for k, v in full.items() if k not in TIMING_KEYS} == {
        k: v for k, v in cut.items() if k not in TIMING_KEYS}
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("wall_time_s", "run_time_s")} for r in rs]
    assert strip(read_records(os.path.join(full_dir, "metrics.jsonl"))) == strip(
        read_records(os.path.join(cut_dir, "metrics.jsonl")))
    p_full, meta_full = _final_params(full_dir)
    p_cut, meta_cut = _final_params(cut_dir)
    assert meta_full == meta_cut == {"chunks_done": 24}
    import jax

    jax.tree.map(np.testing.assert_array_equal, p_full, p_cut)


SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    from experiments import ppo_cartpole  # first: curriculax sets its XLA flags before JAX starts
    import gymnax, jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from algos.ppo import make_train
    from envs.task_env import fixed_task_env
    from experiments.checkpoints import Checkpointer
    from experiments.runner import parse_config, seed_keys, seed_sharding
    assert seed_sharding(8) is not None
    out, params = {}, {}
    for shard in ["--shard-seeds", "--no-shard-seeds"]:
        run_dir = sys.argv[1] + shard
        cfg = parse_config(ppo_cartpole.Config, ["--quick", "--seeds", "8", "--no-progress",
                           "--ppo.total-timesteps", "4096", "--chunks", "2", "--run-dir", run_dir, shard])
        out[shard] = ppo_cartpole.main(cfg)
        trainer = make_train(cfg.ppo, fixed_task_env(*gymnax.make("CartPole-v1")))
        like = jax.vmap(trainer.init)(seed_keys(cfg))
        ckpt = Checkpointer(run_dir + "/checkpoints")
        state, _ = ckpt.restore(ckpt.latest_step(), like)
        ckpt.close()
        params[shard] = state.train_state.params
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                         params["--shard-seeds"], params["--no-shard-seeds"]))
    out["max_param_diff"] = max(diffs)
    print("RESULT", json.dumps(out))
""")


def test_sharded_over_8_devices_equals_unsharded(tmp_path):
    """Seeds sharded over 8 host devices give the unsharded run's numbers.

    The two programs are compiled for different per-device batch shapes, so XLA may sum in another
    order and results agree to float32 rounding, not bit for bit. RL amplifies such last-bit
    differences chaotically over hundreds of updates (a sampled action flips, the episode differs),
    so the comparison runs 8 updates: long enough to cover rollouts, GAE, minibatch epochs and
    checkpoints, short enough that rounding has not yet grown.
    """
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(tmp_path / "r")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT")][-1]
    out = json.loads(line[len("RESULT "):])
    a, b = out["--shard-seeds"], out["--no-shard-seeds"]
    np.testing.assert_allclose(a["final_return"], b["final_return"], rtol=1e-5)
    np.testing.assert_allclose(a["final_return_std"], b["final_return_std"], rtol=1e-4, atol=1e-4)
    assert out["max_param_diff"] < 1e-5, out["max_param_diff"]
    ra = read_records(str(tmp_path / "r--shard-seeds" / "metrics.jsonl"))
    rb = read_records(str(tmp_path / "r--no-shard-seeds" / "metrics.jsonl"))
    assert len(ra) == len(rb) == 2
    for x, y in zip(ra, rb):
        np.testing.assert_allclose(x["episodic_return"], y["episodic_return"], rtol=1e-5)
        np.testing.assert_allclose(x["loss/value"], y["loss/value"], rtol=1e-4)
