"""experiments/hypercube.py: the run folder contract, a known answer (the chunked, vmapped run equals a
plain Python loop of sample -> episodes -> update, with even and uneven chunks), Random's parity figure,
teacher options from the CLI, the Oracle's hypercube defaults, and config errors."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import tyro

from envs import hypercube as hc
from experiments import hypercube as exp
from experiments.runner import parse_config, read_records
from teachers.oracle import hypercube_oracle_config
from teachers.registry import TEACHERS, teacher_config_class


def _run(tmp_path, *args, name="run"):
    run_dir = str(tmp_path / name)
    config = parse_config(exp.Config, [*args, "--run-dir", run_dir, "--no-progress"])
    summary = exp.main(config)
    return run_dir, config, summary


def test_quick_run_folder(tmp_path):
    run_dir, config, summary = _run(tmp_path, "--quick", "--teachers", "random")
    assert config.seeds == 2 and config.episodes == 2000
    for name in ["config.json", "metrics.jsonl", "summary.json", "plots/mastered_pct.png",
                 "plots/task_distribution.png"]:
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["config"]["teachers"] == ["random"] and saved["config"]["batch"] == 250
    # the options of the teachers that did not run are recorded as unused, not as if used
    with_options = {name for name in TEACHERS if teacher_config_class(name) is not None}
    assert "alp_gmm" in with_options and "oracle" in with_options
    assert set(saved["unused"]) == with_options
    assert saved["config"]["alp_gmm"] is None and saved["chunk_plan"] == [2, 2, 2, 2]
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


@pytest.mark.parametrize("teacher, chunks", [("random", 3), ("oracle", 2)])
def test_run_equals_python_loop(tmp_path, teacher, chunks):
    """random: 20 blocks in chunks of [6, 6, 8] (one masked program); oracle: 30 in [15, 15]."""
    episodes = 5000 if teacher == "random" else 1500
    run_dir, config, _ = _run(tmp_path, "--teachers", teacher, "--episodes", str(episodes),
                              "--seeds", "3", "--seed", "5", "--chunks", str(chunks))
    records = read_records(os.path.join(run_dir, "metrics.jsonl"))
    final = records[-1]
    resolved = config.resolved(teacher)
    if teacher == "random":
        assert [r["iteration"] for r in records] == [6, 12, 20]
        assert all(np.sum(r["task_hist"]) == 3 * 250 * n for r, n in zip(records, [6, 6, 8]))
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


def test_teachers_compare_plot(tmp_path):
    run_dir, _, summary = _run(tmp_path, "--teachers", "random", "oracle", "--episodes", "1000",
                               "--seeds", "2")
    assert os.path.exists(os.path.join(run_dir, "plots", "mastered_pct.png"))
    for name in ("random", "oracle"):
        assert os.path.exists(os.path.join(run_dir, name, "summary.json"))
        assert f"{name}/mastered_pct" in summary and f"{name}/episodes_per_s" in summary
    assert summary["oracle_minus_random"] == pytest.approx(
        summary["oracle/mastered_pct"] - summary["random/mastered_pct"])
    assert json.load(open(os.path.join(run_dir, "summary.json"))) == pytest.approx(summary)
    parent = json.load(open(os.path.join(run_dir, "config.json")))
    assert parent["children"] == ["random", "oracle"]
    with_options = {name for name in TEACHERS if teacher_config_class(name) is not None}
    assert set(parent["unused"]) == with_options - {"oracle"}  # oracle's options are used


def test_teachers_all_is_every_registered_teacher():
    config = parse_config(exp.Config, ["--teachers", "all"])
    from teachers.registry import TEACHERS, teacher_names

    assert teacher_names(config.teachers) == tuple(TEACHERS) == exp.ALL_TEACHERS


@pytest.mark.parametrize("useless", [0, 3])
def test_oracle_defaults_are_the_hypercube_oracle(useless):
    """The Oracle's hypercube options (one cube wide, raster sweep) are the defaults of the nested
    oracle config, filled in from the grid; an explicit CLI value wins."""
    config = parse_config(exp.Config, ["--teachers", "oracle", "--dims", "3", "--cubes", "4",
                                       "--useless-dims", str(useless)])
    cube_config = config.hypercube_config()
    assert config.resolved("oracle").oracle == hypercube_oracle_config(cube_config)
    assert exp.build_teacher("oracle", cube_config).name == "oracle"
    changed = parse_config(exp.Config, ["--teachers", "oracle", "--oracle.check-every", "25",
                                        "--oracle.step", *["0.5"] * (2 + useless)])
    resolved = changed.resolved("oracle").oracle
    assert resolved.check_every == 25 and resolved.step == (0.5,) * (2 + useless)
    assert resolved.window_fraction == hypercube_oracle_config(changed.hypercube_config()).window_fraction
    assert changed.resolved("oracle").batch == 25


def test_teacher_options_from_the_cli(tmp_path):
    run_dir, config, _ = _run(tmp_path, "--teachers", "alp_gmm", "--alp-gmm.fit-rate", "125",
                              "--episodes", "500", "--seeds", "1")
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["config"]["alp_gmm"]["fit_rate"] == 125 and saved["config"]["batch"] == 125
    assert config.teacher_config("alp_gmm").fit_rate == 125
    with pytest.raises(ValueError, match=r"alp_gmm\.fit_rate \(--alp-gmm\.fit-rate\): saved 125, now 250"):
        _run(tmp_path, "--teachers", "alp_gmm", "--episodes", "500", "--seeds", "1", "--resume")


@pytest.mark.parametrize(
    "args, match",
    [
        (["--teachers", "random", "--episodes", "1001"], "multiple of the batch"),
        (["--teachers", "riac", "--episodes", "1000", "--batch", "3"], "multiple of the batch"),
        (["--teachers", "nope"], "unknown teacher"),
        (["--dims", "0"], "--dims"),
        (["--cubes", "0"], "--cubes"),
        (["--useless-dims", "-1"], "--useless-dims"),
        (["--episodes", "0"], "--episodes"),
        (["--batch", "0"], "--batch"),
        (["--teachers", "alp_gmm", "--batch", "500", "--episodes", "1000"], "fit_rate"),
        (["--teachers", "alp_gmm", "--alp-gmm.fit-rate", "300", "--episodes", "1000"],
         "multiple of the batch"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*NoneType.* does not match any type")  # tyro on HYPERCUBE_ORACLE
def test_bad_config_raises_before_compiling(tmp_path, monkeypatch, args, match):
    def no_compile(*a, **k):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(jax, "jit", no_compile)
    with pytest.raises(ValueError, match=match):
        parse_config(exp.Config, [*args, "--run-dir", str(tmp_path / "x")])
    with pytest.raises(ValueError, match=match):
        exp.main(tyro.cli(exp.Config, args=[*args, "--run-dir", str(tmp_path / "x")]))  # unvalidated
    assert not os.path.exists(tmp_path / "x")


def test_batch_exactness_rules():
    cfg = hc.HypercubeConfig()
    shipped = ["random", "alp_gmm", "covar_gmm", "riac", "oracle"]
    assert [exp.default_batch(t, cfg) for t in shipped] == [250, 250, 250, 1, 50]
    assert set(shipped) <= set(exp.ALL_TEACHERS)
    assert exp.check_batch("alp_gmm", 125, cfg, warn=False) is None
    assert exp.check_batch("covar_gmm", 100, cfg, warn=False) is not None
    assert exp.check_batch("oracle", 25, cfg, warn=False) is None
    assert exp.check_batch("oracle", 20, cfg, warn=False) is not None
    assert exp.check_batch("random", 1000, cfg, warn=False) is None
    with pytest.warns(UserWarning, match="riac"):
        exp.check_batch("riac", 2, cfg)
    with pytest.raises(ValueError, match="fit_rate"):
        exp.check_batch("covar_gmm", 251, cfg)
