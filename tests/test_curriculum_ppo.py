"""The curriculum PPO experiments (curriculum_ppo, curriculum_demo): the teacher sweep's run folders,
teacher and environment options from the CLI recorded in config.json and checked on --resume."""

import json
import os

import numpy as np
import pytest

from experiments import curriculum_demo, curriculum_ppo
from experiments.runner import parse_config, read_records

TINY = ["--quick", "--ppo.total-timesteps", "1024", "--chunks", "1", "--test-tasks", "4",
        "--episodes-per-task", "1", "--no-progress"]


def test_quick_run_writes_every_teacher(tmp_path):
    config = parse_config(curriculum_ppo.Config, [
        "--quick", "--env", "cartpole_tasks", "--teachers", "random", "riac", "--run-dir",
        str(tmp_path), "--no-progress"])
    summary = curriculum_ppo.main(config)
    assert {"random/mastered_pct", "riac/mastered_pct", "riac_minus_random"} <= set(summary)
    for t in ["random", "riac"]:
        sub = json.load(open(tmp_path / t / "summary.json"))
        assert {"mastered_pct", "mastered_pct_std", "steps_per_s"} <= set(sub)
        assert os.path.exists(tmp_path / t / "plots" / "task_distribution.png")
        saved = json.load(open(tmp_path / t / "config.json"))
        assert saved["config"]["teachers"] == [t]
        # only this teacher's options and this environment's are recorded as used
        assert saved["config"]["cartpole_tasks"] == {"max_steps_in_episode": 500}
        assert saved["config"]["stump_track"] is None and "stump_track" in saved["unused"]
        assert (saved["config"]["riac"] is None) == (t != "riac")
        final = read_records(str(tmp_path / t / "metrics.jsonl"))[-1]["mastered_pct"]
        assert summary[f"{t}/mastered_pct"] == pytest.approx(np.mean(final))
    assert os.path.exists(tmp_path / "plots" / "mastered_pct.png")


def test_demo_options_are_used_recorded_and_checked(tmp_path, monkeypatch):
    """``--alp-gmm.fit-rate 123`` reaches the teacher that runs and ``--cartpole-tasks.max-steps-in-
    episode 20`` the environment; both land in config.json, and a resume with another value is
    refused, naming the field."""
    built = []

    def spy(name, task_space, config=None, **kw):
        teacher = make_teacher(name, task_space, config, **kw)
        built.append(teacher)
        return teacher

    from teachers.registry import make_teacher

    monkeypatch.setattr(curriculum_ppo, "make_teacher", spy)
    run_dir = str(tmp_path / "demo")
    args = [*TINY, "--teachers", "alp_gmm", "--run-dir", run_dir,
            "--cartpole-tasks.max-steps-in-episode", "20"]
    curriculum_demo.main(parse_config(curriculum_demo.Config, [*args, "--alp-gmm.fit-rate", "123"]))
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["experiment"] == "curriculum_demo"
    assert saved["config"]["alp_gmm"]["fit_rate"] == 123 and saved["config"]["teachers"] == ["alp_gmm"]
    import jax

    (teacher,) = built
    assert teacher.init(jax.random.PRNGKey(0)).rows.shape == (2 * 123, 3)  # ALP-GMM's fit window
    assert saved["config"]["cartpole_tasks"] == {"max_steps_in_episode": 20}
    lengths = read_records(os.path.join(run_dir, "metrics.jsonl"))[-1]["episode_length"]
    assert 0 < max(lengths) <= 20  # episodes are cut at the configured cap

    with pytest.raises(ValueError, match=r"alp_gmm\.fit_rate \(--alp-gmm\.fit-rate\): saved 123, now 250"):
        curriculum_demo.main(parse_config(curriculum_demo.Config, [*args, "--resume"]))
    # the same options resume (the run is finished: it is checked and re-summarised, not re-run)
    again = curriculum_demo.main(parse_config(curriculum_demo.Config, [
        *args, "--alp-gmm.fit-rate", "123", "--resume"]))
    assert again["mastered_pct"] == json.load(open(os.path.join(run_dir, "summary.json")))["mastered_pct"]


def test_bad_names_fail_before_compiling():
    with pytest.raises(ValueError, match="unknown teacher"):
        curriculum_ppo.main(parse_config(curriculum_ppo.Config, ["--quick", "--teachers", "alpgmm"]))
    with pytest.raises(ValueError, match="unknown task environment"):
        curriculum_ppo.main(parse_config(curriculum_ppo.Config, ["--quick", "--env", "walker"]))
    with pytest.raises(ValueError, match="duplicates"):
        parse_config(curriculum_ppo.Config, ["--quick", "--teachers", "random", "random"])
    with pytest.raises(ValueError, match="stands alone"):
        parse_config(curriculum_demo.Config, ["--quick", "--teachers", "all", "random"])
