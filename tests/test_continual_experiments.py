"""experiments/continual_supervised.py end to end at --quick size: the run folder, and summary figures
that are the stream's metrics of the final R matrix (mean and sample std across seeds)."""

from __future__ import annotations

import json
import os

import numpy as np

from experiments import continual_supervised as exp
from experiments.runner import parse_config, read_records


def test_quick_run_summary_is_the_final_r_matrix(tmp_path):
    run_dir = str(tmp_path / "run")
    summary = exp.main(parse_config(exp.Config, ["--quick", "--learner", "finetune", "--run-dir", run_dir,
                                                 "--no-progress"]))
    for name in ["config.json", "metrics.jsonl", "summary.json", "plots/R_heatmap.png", "plots/task_scores.png"]:
        assert os.path.exists(os.path.join(run_dir, name)), name
    R = np.asarray(read_records(os.path.join(run_dir, "metrics.jsonl"))[-1]["R"], np.float64)  # [S, T, T]
    seeds, T, _ = R.shape
    assert seeds == 2 and T == 3
    avg = R[:, T - 1, :].mean(axis=1)  # accuracy on every task after the last one
    # forgetting (Chaudhry): best earlier accuracy minus the final one, over the tasks before the last
    forgetting = (R[:, :T - 1, :T - 1].max(axis=1) - R[:, T - 1, :T - 1]).mean(axis=1)
    np.testing.assert_allclose(summary["avg_accuracy"], avg.mean(), rtol=1e-5)
    np.testing.assert_allclose(summary["avg_accuracy_std"], avg.std(ddof=1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(summary["forgetting"], forgetting.mean(), rtol=1e-4, atol=1e-6)
    assert json.load(open(os.path.join(run_dir, "summary.json"))) == summary


def test_rl_stream_quick_run_with_the_task_in_the_observation(tmp_path):
    """experiments/continual_rl.py side by side (fine-tune, hypernetwork) with ``--ppo.context-in-obs``:
    the evaluation, the task-boundary resets and the learners' parameter shapes all use the observation
    with the task appended (they used the bare one and failed at init), and the summary is the final R's."""
    from experiments import continual_rl

    run_dir = str(tmp_path / "rl")
    continual_rl.main(parse_config(continual_rl.Config, [
        "--quick", "--learners", "finetune", "hnet", "--ppo.context-in-obs", "--run-dir", run_dir,
        "--no-progress"]))
    assert os.path.exists(os.path.join(run_dir, "plots", "R_heatmaps.png"))
    for child in ["finetune", "hnet"]:
        R = np.asarray(read_records(os.path.join(run_dir, child, "metrics.jsonl"))[-1]["R"], np.float64)
        seeds, T, _ = R.shape
        assert (seeds, T) == (2, 2) and np.all((R >= 0) & (R <= 1))
        child_summary = json.load(open(os.path.join(run_dir, child, "summary.json")))
        np.testing.assert_allclose(child_summary["avg_return"], R[:, T - 1, :].mean(), rtol=1e-5)
