"""The experiment runner: run folder contract, exact resume after SIGKILL (PPO, and a continual toy
job across task boundaries with an ``after_chunk`` consolidation), one compiled chunk for an uneven
chunk plan, unused config fields, sharded == unsharded."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algos.loops import masked_scan
from experiments import ppo_cartpole
from experiments.checkpoints import Checkpointer
from experiments.runner import (STALL_EXIT_CODE, Job, RunConfig, StallWatchdog, default_run_dir, parse_config,
                                read_records, run, seed_keys)
from tests.multidevice import run_script

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING_KEYS = {"wall_time_s", "compile_time_s", "steps_per_s"}
RECORD_TIMING = ("wall_time_s", "run_time_s", "compile_time_s")


def _strip(records):
    return [{k: v for k, v in r.items() if k not in RECORD_TIMING} for r in records]


# ----------------------------------------------------------------------------------------------------
# A continual toy job: per seed a parameter vector w learns a stream of tasks (targets) by noisy
# gradient steps, pulled toward an anchor; after_chunk consolidates (anchor <- w) at every task end.

TARGETS = np.array([[1.0, -1.0], [-2.0, 0.5], [0.5, 2.0]], np.float32)
TASK_LENGTHS = (4, 3, 5)  # iterations per task: switches after iterations 4 and 7
PLAN = (2, 2, 3, 2, 3)  # chunk edges on both switches; uneven
TASK_END_CHUNKS = (1, 2, 4)  # chunks that end a task
STARTS = np.cumsum((0,) + TASK_LENGTHS[:-1])


def _toy_init(key):
    return {"w": jnp.zeros(2), "anchor": jnp.zeros(2), "t": jnp.zeros((), jnp.int32),
            "ends": jnp.zeros((), jnp.int32), "index_sum": jnp.zeros((), jnp.int32), "key": key}


def _toy_body(state, _):
    task = jnp.sum(state["t"] >= jnp.asarray(STARTS[1:]))
    key, k = jax.random.split(state["key"])
    w = state["w"]
    grad = (w - jnp.asarray(TARGETS)[task]) + 0.5 * (w - state["anchor"])
    w = w - 0.3 * grad + 0.05 * jax.random.normal(k, (2,))
    loss = 0.5 * jnp.sum((w - jnp.asarray(TARGETS)[task]) ** 2)
    return {**state, "w": w, "t": state["t"] + 1, "key": key}, {"loss": loss, "task": task}


def _toy_chunk(state, num_iterations, active):
    return masked_scan(_toy_body, state, num_iterations, active)


def _toy_consolidate(state, chunk_index):
    """Anchor the parameters at the end of every task (and sum the chunk indices seen)."""
    end = jnp.any(chunk_index == jnp.asarray(TASK_END_CHUNKS))
    return {**state, "anchor": jnp.where(end, state["w"], state["anchor"]),
            "ends": state["ends"] + end.astype(jnp.int32), "index_sum": state["index_sum"] + chunk_index}


def toy_job(plan=PLAN, after_chunk=_toy_consolidate, slow=0.0, **kw):
    def reduce(metrics):
        time.sleep(slow)  # host side only: gives a test time to kill the run between chunks
        return {"loss": metrics["loss"].mean(axis=1), "task": metrics["task"][:, -1],
                "iterations": metrics["loss"].shape[1]}

    def summarise(records, state):
        return {"final_loss": float(np.mean(records[-1]["loss"])), "ends": float(np.mean(state["ends"]))}

    return Job(name="toy continual", init=_toy_init, chunk=_toy_chunk, iterations=sum(TASK_LENGTHS),
               steps_per_iteration=1, reduce=reduce, summarise=summarise, curves=("loss",),
               evaluate=lambda s: {"to_anchor": jnp.sum((s["w"] - s["anchor"]) ** 2)},
               chunk_plan=plan, after_chunk=after_chunk, **kw)


def _final_toy_state(run_dir, seeds):
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
    like = jax.vmap(_toy_init)(seed_keys(RunConfig(seeds=seeds)))
    state, meta = ckpt.restore(ckpt.latest_step(), like)
    ckpt.close()
    return state, meta


def toy_main(argv=None):
    """The continual toy job as a process: ``RUN_DIR [--resume]`` (used by the SIGKILL test)."""
    argv = sys.argv[1:] if argv is None else argv
    config = RunConfig(seeds=3, seed=1, run_dir=argv[0], resume="--resume" in argv, progress=False)
    run(toy_job(slow=0.4), config, verbose=False)


def test_uneven_plan_compiles_one_chunk_and_equals_a_plain_scan(tmp_path):
    """Plan [3, 3, 4]: one program (the chunk is traced once, for length 4, the active count
    traced), and the final state equals one plain lax.scan of 10 iterations, bit for bit."""
    traces = []

    def counted(state, num_iterations, active):
        traces.append((num_iterations, active is None))
        return _toy_chunk(state, num_iterations, active)

    job = toy_job(plan=(3, 3, 4), after_chunk=None)._replace(chunk=counted, iterations=10)
    config = RunConfig(seeds=3, seed=1, run_dir=str(tmp_path / "r"), progress=False)
    run(job, config, verbose=False)
    assert traces == [(4, False)]
    records = read_records(str(tmp_path / "r" / "metrics.jsonl"))
    assert [r["iterations"] for r in records] == [3, 3, 4]  # metrics sliced to the active ones
    assert [r["iteration"] for r in records] == [3, 6, 10]
    state, _ = _final_toy_state(str(tmp_path / "r"), 3)
    plain, metrics = jax.jit(jax.vmap(lambda s: jax.lax.scan(_toy_body, s, None, 10)))(
        jax.vmap(_toy_init)(seed_keys(config)))
    jax.tree.map(np.testing.assert_array_equal, state, plain)
    np.testing.assert_array_equal(records[-1]["loss"], np.asarray(metrics["loss"])[:, 6:].mean(axis=1))
    saved = json.load(open(tmp_path / "r" / "config.json"))
    assert saved["chunk_plan"] == [3, 3, 4] and saved["unused"] == ["chunks"]
    assert saved["config"]["chunks"] is None  # --chunks does not make this plan


def test_even_plan_from_chunks(tmp_path):
    """Without a job plan, --chunks equal chunks (remainder last); an even plan is a plain scan."""
    traces = []

    def counted(state, num_iterations, active):
        traces.append((num_iterations, active is None))
        return _toy_chunk(state, num_iterations, active)

    for chunks, plan, trace in [(4, [3, 3, 3, 3], (3, True)), (5, [2, 2, 2, 2, 4], (4, False))]:
        traces.clear()
        job = toy_job(plan=None, after_chunk=None)._replace(chunk=counted)
        run(job, RunConfig(chunks=chunks, run_dir=str(tmp_path / str(chunks)), progress=False),
            verbose=False)
        assert json.load(open(tmp_path / str(chunks) / "config.json"))["chunk_plan"] == plan
        assert traces == [trace]


def test_after_chunk_runs_before_the_checkpoint(tmp_path):
    """The checkpointed state is the consolidated one, and equals chunk-by-chunk on the host."""
    config = RunConfig(seeds=2, seed=1, run_dir=str(tmp_path / "r"), progress=False)
    summary = run(toy_job(), config, verbose=False)
    state, meta = _final_toy_state(config.run_dir, 2)
    assert meta == {"chunks_done": len(PLAN)} and summary["ends"] == len(TASK_END_CHUNKS)
    assert np.all(np.asarray(state["index_sum"]) == sum(range(len(PLAN))))
    ref = jax.vmap(_toy_init)(seed_keys(config))
    for c, n in enumerate(PLAN):
        ref, _ = jax.vmap(lambda s: _toy_chunk(s, n, None))(ref)
        ref = jax.vmap(lambda s: _toy_consolidate(s, c))(ref)
    jax.tree.map(np.testing.assert_allclose, state, ref)
    records = read_records(os.path.join(config.run_dir, "metrics.jsonl"))
    assert [r["task"] for r in records] == [[0, 0], [0, 0], [1, 1], [2, 2], [2, 2]]
    # evaluate runs after the consolidation: the anchor equals w right after every task end
    assert [max(r["to_anchor"]) == 0.0 for r in records] == [c in TASK_END_CHUNKS for c in range(5)]


def test_job_errors_before_anything_is_written(tmp_path):
    run_dir = str(tmp_path / "x")
    with pytest.raises(ValueError, match="chunk_plan"):
        run(toy_job(plan=(2, 2)), RunConfig(run_dir=run_dir), verbose=False)
    with pytest.raises(ValueError, match="'ppo.hidden' is not a field"):
        run(toy_job(unused=("ppo.hidden",)), RunConfig(run_dir=run_dir), verbose=False)
    assert not os.path.exists(run_dir)


def test_unused_fields_are_recorded_as_null_and_free_on_resume(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Sub:
        a: int = 1
        b: str = "x"

    @dataclasses.dataclass(frozen=True)
    class Config(RunConfig):
        sub: Sub = Sub()
        used: int = 3

    run_dir = str(tmp_path / "r")
    job = toy_job(unused=("sub.b",))
    run(job, Config(run_dir=run_dir, progress=False), verbose=False)
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["config"]["sub"] == {"a": 1, "b": None} and saved["unused"] == ["chunks", "sub.b"]
    run(job, Config(run_dir=run_dir, resume=True, sub=Sub(b="other")), verbose=False)
    with pytest.raises(ValueError, match=r"sub\.a \(--sub\.a\): saved 1, now 2"):
        run(job, Config(run_dir=run_dir, resume=True, sub=Sub(a=2)), verbose=False)


def test_default_run_dir_is_one_slug():
    path = default_run_dir("hypercube 2d10+5u/alp_gmm")
    assert os.path.dirname(path) == "runs"
    assert os.path.basename(path).startswith("hypercube-2d10-5u-alp_gmm-")


CONTINUAL_SCRIPT = "import sys; from tests.test_runner import toy_main; toy_main(sys.argv[1:])"


def _toy_process(*args):
    return subprocess.Popen([sys.executable, "-c", CONTINUAL_SCRIPT, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_continual_resume_after_sigkill_past_a_task_boundary(tmp_path):
    """Killed after the checkpoint of chunk 3 (two task ends and consolidations behind it),
    resumed: the records and the final state equal an uninterrupted run, bit for bit."""
    full_dir, cut_dir = str(tmp_path / "full"), str(tmp_path / "cut")
    proc = _toy_process(full_dir)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()

    proc = _toy_process(cut_dir)
    target = os.path.join(cut_dir, "checkpoints", "3")  # after chunks 0-2: tasks 0 and 1 ended
    deadline = time.time() + 300
    while not os.path.isdir(target) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records = read_records(os.path.join(cut_dir, "metrics.jsonl"))
    assert not os.path.exists(os.path.join(cut_dir, "summary.json")), "run finished before the kill"
    assert 3 <= len(records) < len(PLAN)
    state, meta = _final_toy_state(cut_dir, 3)
    assert meta["chunks_done"] >= 3 and int(state["ends"][0]) == 2  # consolidated before saving

    resumed = _toy_process(cut_dir, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert _strip(read_records(os.path.join(full_dir, "metrics.jsonl"))) == _strip(
        read_records(os.path.join(cut_dir, "metrics.jsonl")))
    full = json.load(open(os.path.join(full_dir, "summary.json")))
    cut = json.load(open(os.path.join(cut_dir, "summary.json")))
    assert {k: v for k, v in full.items() if k not in TIMING_KEYS} == {
        k: v for k, v in cut.items() if k not in TIMING_KEYS}
    (s_full, m_full), (s_cut, m_cut) = _final_toy_state(full_dir, 3), _final_toy_state(cut_dir, 3)
    assert m_full == m_cut == {"chunks_done": len(PLAN)}
    jax.tree.map(np.testing.assert_array_equal, s_full, s_cut)


def test_stall_watchdog_fires_only_past_its_limit():
    fired = []
    dog = StallWatchdog(10.0, "runs/x", on_stall=fired.append, floor_s=0.2, watch_cpu=False)
    with dog.watching(0, 5):  # the first chunk has nothing to compare with: not tested
        time.sleep(0.3)
    assert fired == [] and dog.slowest_per_iteration == pytest.approx(0.06, abs=0.03)
    with dog.watching(1, 1):  # limit max(0.2, 10 * 0.06 * 1) = 0.6 s: in time
        time.sleep(0.1)
    time.sleep(0.8)
    assert fired == []
    with dog.watching(2, 1):  # this chunk takes far longer
        time.sleep(1.5)
    assert len(fired) == 1 and "chunk 2 of runs/x made no progress" in fired[0] and "--resume" in fired[0]
    with pytest.raises(RuntimeError):  # a chunk that fails stops its watch
        with dog.watching(3, 1):
            raise RuntimeError("the chunk failed")
    time.sleep(0.5)
    assert len(fired) == 1
    off = StallWatchdog(0.0, "runs/y", on_stall=fired.append, floor_s=0.0, idle_window_s=0.2, watch_cpu=True)
    for block in (off.watching(0, 1), off.watching(1, 1), off.idle_watch()):
        with block:
            time.sleep(0.5)
    assert len(fired) == 1
    with pytest.raises(ValueError, match="--stall-factor"):
        RunConfig(stall_factor=1.5).validate()


def test_stall_watchdog_tells_an_idle_process_from_a_busy_one():
    """The idle test fires when the process uses no CPU for a window, not while it computes."""
    fired = []
    dog = StallWatchdog(10.0, "runs/z", on_stall=fired.append, idle_window_s=0.4, watch_cpu=True)
    with dog.idle_watch():
        t0 = time.perf_counter()
        x = np.random.default_rng(0).normal(size=(200, 200))
        while time.perf_counter() - t0 < 1.2:  # busy: the main thread computes
            x = np.tanh(x @ x.T / 200.0)
    assert fired == []
    with dog.idle_watch():
        time.sleep(1.2)  # idle, as a deadlocked runtime
    assert len(fired) == 1 and "the run of runs/z used no CPU" in fired[0]


STALL_SCRIPT = textwrap.dedent("""
    import sys, time
    import experiments.runner as R
    from tests.test_runner import toy_job
    R.IDLE_WINDOW_S = 2.0
    job, calls = toy_job(), []
    def reduce(metrics):
        calls.append(1)
        if "--stall" in sys.argv and len(calls) == 1:
            time.sleep(120)  # the first chunk never finishes and uses no CPU, as a deadlocked runtime
        return toy_job().reduce(metrics)
    config = R.RunConfig(seeds=3, seed=1, run_dir=sys.argv[1], resume="--resume" in sys.argv, progress=False)
    R.run(job._replace(reduce=reduce), config, verbose=False)
""")


def test_a_stalled_chunk_ends_the_process_and_the_run_resumes(tmp_path):
    """A first chunk that hangs without using the CPU ends the process with the stall exit code and a
    message; --resume then finishes the run with the records of an uninterrupted one."""
    def process(*args):
        return subprocess.run([sys.executable, "-c", STALL_SCRIPT, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)

    full_dir, cut_dir = str(tmp_path / "full"), str(tmp_path / "cut")
    assert process(full_dir).returncode == 0
    t0 = time.perf_counter()
    stalled = process(cut_dir, "--stall")
    assert stalled.returncode == STALL_EXIT_CODE, stalled.stdout + stalled.stderr
    assert time.perf_counter() - t0 < 100  # ended by the watchdog, not by the 120 s sleep
    assert "the run of" in stalled.stderr and "used no CPU" in stalled.stderr and "--resume" in stalled.stderr
    assert not os.path.exists(os.path.join(cut_dir, "metrics.jsonl")) or not read_records(
        os.path.join(cut_dir, "metrics.jsonl"))
    resumed = process(cut_dir, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert _strip(read_records(os.path.join(full_dir, "metrics.jsonl"))) == _strip(
        read_records(os.path.join(cut_dir, "metrics.jsonl")))


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

    from algos.ppo import make_train
    from envs.task_env import fixed_task_env

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
    assert saved["unused"] == [] and saved["chunk_plan"] == [16] * 4
    assert saved["config"]["ppo"]["hidden"] == [64, 64]
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["chunk"] for r in records] == list(range(config.chunks))
    assert records[-1]["env_steps"] == config.ppo.num_updates * config.ppo.steps_per_update
    assert all(len(r["episodic_return"]) == 2 for r in records)
    assert {"final_return", "final_return_std", "steps_per_s"} <= set(summary)
    np.testing.assert_allclose(summary["final_return"], np.mean(records[-1]["episodic_return"]))
    # the run folder is not silently overwritten
    with pytest.raises(FileExistsError):
        ppo_cartpole.main(config)


def test_custom_policy_fields_are_recorded_unused():
    import gymnax

    from algos.networks import mlp_policy
    from algos.ppo import make_train
    from envs.task_env import fixed_task_env
    from experiments.ppo_job import ppo_job
    from experiments.runner import config_record

    config = parse_config(ppo_cartpole.Config, ["--quick"])
    trainer = make_train(config.ppo, fixed_task_env(*gymnax.make("CartPole-v1")))
    assert ppo_job("x", trainer).unused == ()
    custom = make_train(config.ppo, fixed_task_env(*gymnax.make("CartPole-v1")),
                        policy=mlp_policy(2, True, (32,)))
    job = ppo_job("x", custom)
    assert job.unused == ("ppo.hidden", "ppo.activation")
    ppo = config_record(config, job.unused)["ppo"]
    assert ppo["hidden"] is None and ppo["activation"] is None and ppo["lr"] == config.ppo.lr


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
    assert _strip(read_records(os.path.join(full_dir, "metrics.jsonl"))) == _strip(
        read_records(os.path.join(cut_dir, "metrics.jsonl")))
    p_full, meta_full = _final_params(full_dir)
    p_cut, meta_cut = _final_params(cut_dir)
    assert meta_full == meta_cut == {"chunks_done": 24}
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
    out = run_script(SHARDED_SCRIPT, str(tmp_path / "r"), hang_s=600)
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
