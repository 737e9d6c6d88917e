"""experiments/hypercube.py: the run folder contract, a known answer (the chunked, vmapped run equals a
plain Python loop of sample -> episodes -> update), Random's parity figure, and config errors."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from envs import hypercube as hc
from experiments import hypercube as exp
from experiments.runner import parse_config, read_records


def _run(tmp_path, *args, name="run"):
    run_dir = str(tmp_path / name)
    config = parse_config(exp.Config, [*args, "--run-dir", run_dir, "--no-progress"])
    summary = exp.main(config)
    return run_dir, config, summary


def test_quick_run_folder(tmp_path):
    run_dir, config, summary = _run(tmp_path, "--quick", "--teacher", "random")
    assert config.seeds == 2 and config.episodes == 2000
    for name in ["config.json", "metrics.jsonl", "summary.json", "plots/mastered_pct.png",
                 "plots/task_distribution.png"]:
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["config"]["teacher"] == "random" and saved["config"]["batch"] == 250
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    assert [r["chunk"] for r in records] == [0, 1, 2, 3]
    assert [r["env_steps"] for r in records] == [500, 1000, 1500, 2000]
    for r in records:
        assert len(r["mastered_pct"]) == 2 and len(r["mean_score"]) == 2
        assert all(0.0 <= s <= 1.0 for s in r["mean_score"])
        assert np.sum(r["task_hist"]) == 2 * 500  # episodes of the chunk, summed over seeds
    on_disk = json.load(open(os.path.join(run_dir, "summary.json")))
    for key in ["mastered_pct", "mastered_pct_std", "episodes_per_s", "ceiling_pct"]:
        assert isinstance(on_disk[key], float), key
    assert on_disk["ceiling_pct"] == hc.ceiling_pct(hc.HypercubeConfig(), 2000) == 26.0
    assert summary["mastered_pct"] == pytest.approx(np.mean(records[-1]["mastered_pct"]))


def _python_loop(teacher_name, cube_config, batch, episodes, seed, seeds):
    """Per seed: the same functions and keys as the experiment, one block at a time on the host."""
    teacher = exp.build_teacher(teacher_name, cube_config)
    mask = np.ones((batch,), bool)

    @jax.jit
    def block(tstate, cube, key):
        key, k = jax.random.split(key)
        tstate, tasks = teacher.sample(tstate, k, batch)
        cube, scores = hc.run_episodes(cube_config, cube, tasks, mask)
        return teacher.update(tstate, tasks, scores, mask), cube, key

    out = []
    for i in range(seeds):
        k_teacher, key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), i))
        tstate, cube = teacher.init(k_teacher), hc.init(cube_config)
        for _ in range(episodes // batch):
            tstate, cube, key = block(tstate, cube, key)
        out.append((float(hc.mastered_pct(cube_config, cube)), np.asarray(cube.competence)))
    return out


@pytest.mark.parametrize("teacher", ["random", "oracle"])
def test_run_equals_python_loop(tmp_path, teacher):
    episodes = 5000 if teacher == "random" else 1500
    run_dir, config, _ = _run(tmp_path, "--teacher", teacher, "--episodes", str(episodes),
                              "--seeds", "3", "--seed", "5", "--chunks", "2")
    final = read_records(os.path.join(run_dir, "metrics.jsonl"))[-1]
    resolved = config.resolved()
    loop = _python_loop(teacher, config.hypercube_config(), resolved.batch, episodes, 5, 3)
    assert final["mastered_pct"] == [m for m, _ in loop]
    explored = [100.0 * np.mean(c > 0) for _, c in loop]
    np.testing.assert_allclose(final["explored_pct"], explored, rtol=1e-6)
    if teacher == "oracle":  # the window moves on one cube per 76+ episodes, mastering each
        assert all(m >= 5.0 for m, _ in loop)


def test_random_parity_2d10():
    """Random on 2-D 10 cubes, 20,000 episodes: reference 4.6 +- 0.8 % (references §4.4)."""
    cube_config = hc.HypercubeConfig()
    init, chunk = exp.make_seed_fns(exp.build_teacher("random", cube_config), cube_config, 250)
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    _, metrics = jax.jit(jax.vmap(lambda s: chunk(s, 80)))(jax.vmap(init)(keys))
    mastered = np.asarray(metrics["mastered_pct"])[:, -1]
    assert 3.5 <= mastered.mean() <= 5.7, mastered.mean()
    assert 0.3 <= mastered.std() <= 1.6, mastered.std()


def test_all_teachers_compare_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(exp, "ALL_TEACHERS", ("random", "oracle"))
    run_dir, _, summary = _run(tmp_path, "--teacher", "all", "--episodes", "1000", "--seeds", "2")
    assert os.path.exists(os.path.join(run_dir, "plots", "mastered_pct_all.png"))
    for name in ("random", "oracle"):
        assert os.path.exists(os.path.join(run_dir, name, "summary.json"))
        assert f"{name}/mastered_pct" in summary and f"{name}/episodes_per_s" in summary
    assert json.load(open(os.path.join(run_dir, "summary.json"))) == pytest.approx(summary)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--teacher", "random", "--episodes", "1001"], "multiple of the batch"),
        (["--teacher", "riac", "--episodes", "1000", "--batch", "3"], "multiple of the batch"),
        (["--teacher", "nope"], "unknown teacher"),
        (["--dims", "0"], "--dims"),
        (["--cubes", "0"], "--cubes"),
        (["--useless-dims", "-1"], "--useless-dims"),
        (["--episodes", "0"], "--episodes"),
        (["--batch", "0"], "--batch"),
        (["--teacher", "alp_gmm", "--batch", "500", "--episodes", "1000"], "fit_rate"),
    ],
)
def test_bad_config_raises_before_compiling(tmp_path, monkeypatch, args, match):
    def no_compile(*a, **k):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(jax, "jit", no_compile)
    with pytest.raises(ValueError, match=match):
        parse_config(exp.Config, [*args, "--run-dir", str(tmp_path / "x")])
    with pytest.raises(ValueError, match=match):
        exp.main(exp.Config(**_fields(args), run_dir=str(tmp_path / "x")))
    assert not os.path.exists(tmp_path / "x")


def _fields(args):
    out = {}
    for flag, value in zip(args[::2], args[1::2]):
        name = flag[2:].replace("-", "_")
        out[name] = value if name == "teacher" else int(value)
    return out


def test_batch_exactness_rules():
    cfg = hc.HypercubeConfig()
    assert [exp.default_batch(t, cfg) for t in exp.ALL_TEACHERS] == [250, 250, 250, 1, 50]
    assert exp.check_batch("alp_gmm", 125, cfg, warn=False) is None
    assert exp.check_batch("covar_gmm", 100, cfg, warn=False) is not None
    assert exp.check_batch("oracle", 25, cfg, warn=False) is None
    assert exp.check_batch("oracle", 20, cfg, warn=False) is not None
    assert exp.check_batch("random", 1000, cfg, warn=False) is None
    with pytest.warns(UserWarning, match="riac"):
        exp.check_batch("riac", 2, cfg)
    with pytest.raises(ValueError, match="fit_rate"):
        exp.check_batch("covar_gmm", 251, cfg)
