"""experiments.popgym and experiments.meta_rl: bad input is refused before anything compiles, and a
tiny run writes the summary keys the issue names (MMER; the return per trial index)."""

import json

import numpy as np
import pytest

from experiments import meta_rl, popgym
from experiments.runner import parse_config

TINY_PPO = ["--ppo.num-envs", "4", "--ppo.num-steps", "64", "--ppo.total-timesteps", "512",
            "--ppo.update-epochs", "1", "--ppo.num-minibatches", "2"]


@pytest.mark.parametrize("argv, match", [
    (["--env", "RepeatPreviousVeryHard"], "unknown POPGym environment"),
    (["--envs", "StatelessCartPoleEasy", "Nope"], "unknown POPGym environment"),
    (["--core", "transformer"], "unknown core"),
    (["--hidden", "0"], "--hidden"),
    (["--s5-mode", "fast"], "--s5-mode"),
    (["--unroll", "0"], "--unroll"),
])
def test_popgym_refuses_bad_input(argv, match):
    with pytest.raises(ValueError, match=match):
        parse_config(popgym.Config, argv)


def test_meta_rl_refuses_a_non_meta_environment():
    with pytest.raises(ValueError, match="no meta environment"):
        parse_config(meta_rl.Config, ["--train", "RepeatPreviousEasy"])


def test_popgym_tiny_run_writes_mmer(tmp_path):
    config = parse_config(popgym.Config, ["--env", "RepeatFirstEasy", "--core", "mlp", "--hidden", "16",
                                          "--encoder", "16", "--head-hidden", "16", "--seeds", "2",
                                          "--chunks", "1", "--no-progress", "--run-dir", str(tmp_path),
                                          *TINY_PPO])
    popgym.main(config)
    summary = json.load(open(tmp_path / "summary.json"))
    assert -1.0 <= summary["mmer"] <= 1.0 and summary["mmer_std"] >= 0.0
    recorded = json.load(open(tmp_path / "config.json"))
    assert recorded["config"]["envs"] is None and "s5_layers" in recorded["unused"]
    assert "unroll" in recorded["unused"]  # the MLP has no scan to unroll


@pytest.mark.parametrize("core", ["gru", "lstm"])
def test_popgym_unroll_reaches_the_scanned_cores(core):
    config = parse_config(popgym.Config, ["--core", core, "--unroll", "16"])
    assert popgym.core_for(config, core).unroll == 16


def test_meta_rl_tiny_run_writes_returns_per_trial(tmp_path):
    config = parse_config(meta_rl.Config, ["--core", "gru", "--hidden", "16", "--encoder", "16",
                                           "--head-hidden", "16", "--seeds", "2", "--chunks", "1",
                                           "--eval-episodes", "4", "--no-progress", "--run-dir", str(tmp_path),
                                           *TINY_PPO])
    meta_rl.main(config)
    summary = json.load(open(tmp_path / "summary.json"))
    for split in ("train", "heldout"):
        per_trial = np.asarray(summary[f"{split}_trial_returns"])
        assert per_trial.shape == (16,)  # MetaStatelessCartPole: 16 trials
        assert np.all((per_trial > 0) & (per_trial <= 1.0))  # each trial pays 1/200 per step, at most 1
        assert summary[f"{split}_return"] == pytest.approx(per_trial.sum(), rel=1e-5)
        later = per_trial[8:].mean()
        assert summary[f"{split}_improvement"] == pytest.approx(later - per_trial[0], rel=1e-5, abs=1e-7)
        assert summary[f"{split}_improvement_after_first"] == pytest.approx(later - per_trial[1], rel=1e-5,
                                                                            abs=1e-7)
    assert (tmp_path / "plots" / "trial_returns.png").exists()
