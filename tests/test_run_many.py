"""run_many: child run folders, the parent config.json (written after every check, before running),
per-child resume (finished children are checked, not skipped blindly), the parent summary with the
differences to the baseline, and the comparison plot."""

import dataclasses
import json
import os

import numpy as np
import pytest
from scipy import stats

from experiments.runner import RunConfig, compare_to_baseline, read_records, run_many
from tests.test_runner import toy_job


def test_compare_to_baseline_known_answer():
    out = compare_to_baseline({"random": [10.0, 20.0, 30.0], "alp_gmm": [30.0, 40.0, 50.0]}, "random",
                              "mastered_pct")
    assert out["alp_gmm/mastered_pct"] == 40.0 and out["random/mastered_pct"] == 20.0
    np.testing.assert_allclose(out["random/mastered_pct_std"], np.std([10, 20, 30], ddof=1))  # sample std
    assert out["alp_gmm_minus_random"] == 20.0
    np.testing.assert_allclose(out["alp_gmm_minus_random_se"], np.sqrt(100 / 3 + 100 / 3))  # ddof=1
    t = 20 / np.sqrt(200 / 3)  # Welch t with 4 degrees of freedom
    np.testing.assert_allclose(out["alp_gmm_vs_random_welch_p"], 2 * stats.t.sf(t, 4), rtol=1e-6)
    assert "random_minus_random" not in out
    one = compare_to_baseline({"a": [1.0], "b": [2.0]}, "a", "m")
    assert one["b_minus_a"] == 1.0 and "b_minus_a_se" not in one and "b_vs_a_welch_p" not in one


def _children(seeds=3, fail_second=False, counter=None):
    def counted(job):
        def chunk(state, n, active):
            if counter is not None:
                counter.append(job.name)
            return job.chunk(state, n, active)
        return job._replace(chunk=chunk)

    second = toy_job()
    if fail_second:
        def boom(metrics):
            raise RuntimeError("the second child fails")
        second = second._replace(reduce=boom)
    return [
        ("base", counted(toy_job()._replace(name="toy/base")), RunConfig(seeds=seeds, seed=1)),
        ("other", counted(second._replace(name="toy/other")), RunConfig(seeds=seeds, seed=2)),
    ]


def test_children_summary_and_plot(tmp_path):
    root = str(tmp_path / "sweep")
    summary = run_many("toy", _children(), RunConfig(seeds=3, run_dir=root, progress=False),
                       metric="loss", verbose=False)
    for child in ("base", "other"):
        for name in ("config.json", "metrics.jsonl", "summary.json", "plots/loss.png", "checkpoints"):
            assert os.path.exists(os.path.join(root, child, name)), (child, name)
        child_summary = json.load(open(os.path.join(root, child, "summary.json")))
        assert summary[f"{child}/final_loss"] == child_summary["final_loss"]
    finals = {c: read_records(os.path.join(root, c, "metrics.jsonl"))[-1]["loss"] for c in ("base", "other")}
    expected = compare_to_baseline(finals, "base", "loss")
    assert {k: summary[k] for k in expected} == expected
    assert {"other_minus_base", "other_minus_base_se", "other_vs_base_welch_p"} <= set(summary)
    assert json.load(open(os.path.join(root, "summary.json"))) == summary
    assert os.path.exists(os.path.join(root, "plots", "loss.png"))
    parent = json.load(open(os.path.join(root, "config.json")))
    assert parent["children"] == ["base", "other"] and parent["metric"] == "loss"
    assert parent["unused"] == ["chunks"]  # both children bring their own chunk plans
    # the sweep is not silently overwritten
    with pytest.raises(FileExistsError):
        run_many("toy", _children(), RunConfig(seeds=3, run_dir=root), metric="loss", verbose=False)


def test_killed_sweep_resumes_per_child(tmp_path):
    """The parent config.json exists before any child runs; on --resume the finished child is
    checked against its saved config and only re-summarised, the other one runs."""
    root = str(tmp_path / "sweep")
    config = RunConfig(seeds=3, run_dir=root, progress=False)
    with pytest.raises(RuntimeError, match="second child"):
        run_many("toy", _children(fail_second=True), config, metric="loss", verbose=False)
    assert os.path.exists(os.path.join(root, "config.json"))
    assert os.path.exists(os.path.join(root, "base", "summary.json"))
    assert not os.path.exists(os.path.join(root, "other", "summary.json"))
    base_records = read_records(os.path.join(root, "base", "metrics.jsonl"))

    resume = dataclasses.replace(config, resume=True)
    changed = _children()
    changed[0] = (changed[0][0], changed[0][1], RunConfig(seeds=3, seed=5))
    with pytest.raises(ValueError, match=r"seed \(--seed\): saved 1, now 5"):
        run_many("toy", changed, resume, metric="loss", verbose=False)  # the finished child differs

    traced = []
    summary = run_many("toy", _children(counter=traced), resume, metric="loss", verbose=False)
    assert traced == ["toy/other"]  # the finished child's chunk was not even compiled
    assert read_records(os.path.join(root, "base", "metrics.jsonl")) == base_records
    fresh = run_many("toy", _children(), RunConfig(seeds=3, run_dir=str(tmp_path / "fresh"),
                                                   progress=False), metric="loss", verbose=False)
    timing = ("wall_time_s", "compile_time_s", "steps_per_s")
    strip = lambda s: {k: v for k, v in s.items() if not k.endswith(timing)}  # noqa: E731
    assert strip(summary) == strip(fresh)


def test_single_child_runs_into_the_run_dir(tmp_path):
    root = str(tmp_path / "one")
    summary = run_many("toy", _children()[:1], RunConfig(seeds=3, run_dir=root, progress=False),
                       metric="loss", verbose=False)
    assert set(os.listdir(root)) >= {"config.json", "metrics.jsonl", "summary.json", "plots"}
    assert json.load(open(os.path.join(root, "config.json")))["experiment"] == "toy"
    assert summary == json.load(open(os.path.join(root, "summary.json")))
    assert "final_loss" in summary


@pytest.mark.parametrize("change, match", [
    (lambda cs: cs + [cs[0]], "repeat"),
    (lambda cs: [("plots", *cs[0][1:])] + cs[1:], "cannot name"),
    (lambda cs: [cs[0], (cs[1][0], cs[1][1]._replace(chunk_plan=(1, 2)), cs[1][2])], "chunk_plan"),
    (lambda cs: [cs[0], (cs[1][0], cs[1][1], RunConfig(seeds=0))], "--seeds"),
    (lambda cs: [], "at least one"),
])
def test_every_child_is_checked_before_anything_is_written(tmp_path, change, match):
    root = str(tmp_path / "sweep")
    with pytest.raises(ValueError, match=match):
        run_many("toy", change(_children()), RunConfig(run_dir=root), metric="loss", verbose=False)
    assert not os.path.exists(root)
