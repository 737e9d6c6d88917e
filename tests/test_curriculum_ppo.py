"""The curriculum PPO experiment: teacher comparison figures and the run folders."""

import json
import os

import numpy as np
import pytest

from experiments import curriculum_ppo
from experiments.runner import parse_config


def test_compare_known_answer():
    recs = {
        "random": [{"mastered_pct": [10.0, 20.0, 30.0]}],
        "alp_gmm": [{"mastered_pct": [30.0, 40.0, 50.0]}],
    }
    out = curriculum_ppo.compare(recs, "random")
    assert out["alp_gmm/mastered_pct"] == 40.0 and out["random/mastered_pct"] == 20.0
    np.testing.assert_allclose(out["random/mastered_pct_std"], np.std([10, 20, 30]))
    assert out["alp_gmm_minus_random"] == 20.0
    np.testing.assert_allclose(out["alp_gmm_minus_random_se"], np.sqrt(100 / 3 + 100 / 3))
    # Welch t = 20 / sqrt(200/3) with 4 degrees of freedom
    from scipy import stats

    t = 20 / np.sqrt(200 / 3)
    np.testing.assert_allclose(out["alp_gmm_vs_random_welch_p"], 2 * stats.t.sf(t, 4), rtol=1e-6)


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
    assert os.path.exists(tmp_path / "plots" / "mastered_pct.png")


def test_bad_names_fail_before_compiling():
    with pytest.raises(ValueError, match="unknown teacher"):
        curriculum_ppo.main(parse_config(curriculum_ppo.Config, ["--quick", "--teachers", "alpgmm"]))
    with pytest.raises(ValueError, match="unknown task environment"):
        curriculum_ppo.main(parse_config(curriculum_ppo.Config, ["--quick", "--env", "walker"]))
    with pytest.raises(ValueError, match="duplicates"):
        parse_config(curriculum_ppo.Config, ["--quick", "--teachers", "random", "random"])
