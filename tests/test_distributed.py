"""Multi-process runs (issue #10): 2 processes x 4 host CPU devices on localhost (gloo collectives)
give the per-seed results of 1 process x 8 devices; process 0 alone writes the run folder; a 1-process
run restores and resumes the 2-process run's checkpoints. And the launch flags: parsed on the first
import (envs/distributed.py), checked, free on ``--resume``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from envs.distributed import Launch, launch_from
from experiments.runner import RunConfig, _check_run_dir, config_record, read_records, sweep_grid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 240  # per process; the whole test takes well under a minute on an idle 2-core CPU

# The run: PPO on CartPole, 8 seeds, 8 updates in 2 chunks (short enough that float rounding of the
# differently partitioned programs has not grown, see tests/test_runner.py's sharding test).
RUN = ["-m", "experiments.ppo_cartpole", "--quick", "--seeds", "8", "--ppo.total-timesteps", "4096",
       "--chunks", "2", "--no-progress"]


def _env(devices: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRICULAX_")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_all(commands: list[tuple[list[str], dict]]) -> list[subprocess.CompletedProcess]:
    """Start every command at once, wait for all; on a timeout or an error kill every one still
    running (its whole process group) and fail with their output."""
    procs = [subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
             for args, env in commands]
    outs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=TIMEOUT_S)
            done = subprocess.CompletedProcess(p.args, p.returncode, out, "")
            done.pid = p.pid
            outs.append(done)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process ran past {TIMEOUT_S} s")
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    for o in outs:
        assert o.returncode == 0, o.stdout[-4000:]
    return outs


SINGLE_SCRIPT = textwrap.dedent("""
    import json, shutil, sys
    from experiments import ppo_cartpole  # first: curriculax starts JAX with its flags
    import gymnax, jax, numpy as np
    assert jax.process_count() == 1 and jax.device_count() == 8
    from algos.ppo import make_train
    from envs.task_env import fixed_task_env
    from experiments.checkpoints import Checkpointer
    from experiments.runner import parse_config, seed_keys, seed_sharding
    single, multi, resumed = sys.argv[1:4]
    args = sys.argv[4:]
    cfg = parse_config(ppo_cartpole.Config, [*args, "--run-dir", single])
    ppo_cartpole.main(cfg)
    # the 2-process run's last checkpoint, restored by this process into its own 8-device layout
    trainer = make_train(cfg.ppo, fixed_task_env(*gymnax.make("CartPole-v1")))
    like = jax.jit(jax.vmap(trainer.init), out_shardings=seed_sharding(8))(seed_keys(cfg))
    params = {}
    for name, folder in [("single", single), ("multi", multi)]:
        ckpt = Checkpointer(folder + "/checkpoints")
        assert ckpt.verify(ckpt.latest_step()) is None
        state, meta = ckpt.restore(ckpt.latest_step(), like)
        ckpt.close()
        params[name] = state.train_state.params
    diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                         params["single"], params["multi"]))
    # --resume by 1 process of the 2-process run, from its first checkpoint
    shutil.rmtree(resumed + "/checkpoints/2")
    ppo_cartpole.main(parse_config(ppo_cartpole.Config, [*args, "--run-dir", resumed, "--resume"]))
    print("RESULT", json.dumps({"max_param_diff": max(diffs), "meta": meta}))
""")


def test_two_processes_equal_one_process(tmp_path):
    """2 processes x 4 devices == 1 process x 8 devices: summary and per-seed metrics equal up to
    float rounding; metrics, summary and the lock written by process 0 only; the 2-process
    checkpoints restore (and ``--resume``) in 1 process with equal parameters and results."""
    multi, single, resumed = (str(tmp_path / n) for n in ("multi", "single", "resumed"))
    port = _free_port()
    outs = _run_all([
        ([*RUN, "--run-dir", multi, "--coordinator", f"localhost:{port}", "--num-processes", "2",
          "--process-id", str(i)], _env(4)) for i in range(2)
    ])
    assert "run folder:" in outs[0].stdout and "run folder:" not in outs[1].stdout
    with open(os.path.join(multi, ".lock")) as f:
        assert int(f.read()) == outs[0].pid  # process 0 held the run folder's lock
    records = read_records(os.path.join(multi, "metrics.jsonl"))
    assert [r["chunk"] for r in records] == [0, 1]  # one line per chunk: written once
    shutil.copytree(multi, resumed)

    out, = _run_all([(["-c", SINGLE_SCRIPT, single, multi, resumed, *RUN[2:]], _env(8))])
    result = json.loads([line for line in out.stdout.splitlines() if line.startswith("RESULT")][-1][7:])
    assert result["max_param_diff"] < 1e-5, result
    assert result["meta"] == {"chunks_done": 2}

    def summary(folder):
        with open(os.path.join(folder, "summary.json")) as f:
            return json.load(f)

    a, b, c = summary(multi), summary(single), summary(resumed)
    for other in (b, c):
        np.testing.assert_allclose(a["final_return"], other["final_return"], rtol=1e-5)
        np.testing.assert_allclose(a["final_return_std"], other["final_return_std"], rtol=1e-4, atol=1e-4)
    single_records = read_records(os.path.join(single, "metrics.jsonl"))
    resumed_records = read_records(os.path.join(resumed, "metrics.jsonl"))
    assert [r["chunk"] for r in resumed_records] == [0, 1]
    for x, y, z in zip(records, single_records, resumed_records):
        assert len(x["episodic_return"]) == 8
        np.testing.assert_allclose(x["episodic_return"], y["episodic_return"], rtol=1e-5)
        np.testing.assert_allclose(x["loss/value"], y["loss/value"], rtol=1e-4)
        np.testing.assert_allclose(z["episodic_return"], y["episodic_return"], rtol=1e-5)
    with open(os.path.join(multi, "config.json")) as f:
        saved = json.load(f)
    assert saved["config"]["num_processes"] == 2 and len(saved["devices"]) == 8


# ---------------------------------------------------------------------------------------------------
# The launch flags (no processes started)


def test_launch_from_command_line_and_environment():
    env = {"CURRICULAX_COORDINATOR": "node0:1234", "CURRICULAX_NUM_PROCESSES": "4",
           "CURRICULAX_PROCESS_ID": "3"}
    assert launch_from([], env) == Launch("node0:1234", 4, 3)
    argv = ["--seeds", "8", "--coordinator=h:9", "--num-processes", "2", "--process-id", "1"]
    assert launch_from(argv, env) == Launch("h:9", 2, 1)  # the command line wins
    assert launch_from(["--distributed", "auto"], {}).requested
    assert not launch_from(["--seeds", "8"], {}).requested
    Launch("h:9", 2, 1).validate()
    with pytest.raises(ValueError, match="missing --num-processes"):
        Launch("h:9", None, 1).validate()
    with pytest.raises(ValueError, match="must lie in 0..1"):
        Launch("h:9", 2, 2).validate()
    with pytest.raises(ValueError, match="HOST:PORT"):
        Launch("h", 2, 0).validate()
    with pytest.raises(ValueError, match="drop --coordinator"):
        Launch("h:9", 2, 0, "auto").validate()
    with pytest.raises(ValueError, match="must be an integer"):
        launch_from(["--num-processes", "two"], {})
    with pytest.raises(ValueError, match="needs a value"):
        launch_from(["--process-id"], {})


def test_launch_flags_are_free_on_resume(tmp_path):
    """A requeued job resumes on other hosts with other launch flags and another device layout; a
    change of what the run computes is still refused."""
    def record(config):
        return {"experiment": "x", "config": config_record(config), "unused": [], "chunk_plan": [1]}

    first = RunConfig(seeds=8, coordinator="a:1", num_processes=2, process_id=0)
    with open(tmp_path / "config.json", "w") as f:
        json.dump(record(first), f)
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write('{"chunk": 0}\n')
    later = RunConfig(seeds=8, coordinator="b:2", num_processes=4, process_id=3, env_devices=2,
                      resume=True)
    assert _check_run_dir(str(tmp_path), record(later), True)
    alone = RunConfig(seeds=8, resume=True)
    assert _check_run_dir(str(tmp_path), record(alone), True)
    with pytest.raises(ValueError, match="seeds"):
        _check_run_dir(str(tmp_path), record(RunConfig(seeds=16, resume=True)), True)


def test_sweep_grid_is_the_product():
    assert sweep_grid([]) == [{}]
    assert sweep_grid(["lr=1e-4,3e-4", "ent-coef=0,0.01"]) == [
        {"lr": 1e-4, "ent_coef": 0.0}, {"lr": 1e-4, "ent_coef": 0.01},
        {"lr": 3e-4, "ent_coef": 0.0}, {"lr": 3e-4, "ent_coef": 0.01}]
    for bad in (["lr"], ["lr="], ["lr=a,b"], ["lr=1", "lr=2"], ["lr=nan"]):
        with pytest.raises(ValueError, match="--sweep"):
            sweep_grid(bad)


def test_sweep_of_an_unknown_hyperparameter_fails_before_writing(tmp_path):
    from experiments import ppo_cartpole
    from experiments.runner import run

    config = ppo_cartpole.Config(sweep=("foo=1,2",), run_dir=str(tmp_path / "r"), progress=False)
    (_, job, _), = ppo_cartpole.jobs(config)
    with pytest.raises(ValueError, match="PPOHyperparams has no fields"):
        run(job, config)
    assert not (tmp_path / "r").exists()
