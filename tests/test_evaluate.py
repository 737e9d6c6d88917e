"""A user's own task environment from the CLI (``--env module:function``: the Acrobot example) and its
finished run loaded back: ``load_run`` rebuilds the trainer and any checkpointed state, and evaluating
the run's own test set with the run's keys gives back the mastery and test return it logged (a known
answer); ``python -m experiments.evaluate`` writes evaluation.json and the task-score figure."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from experiments import curriculum_ppo
from experiments.evaluate import evaluate_run, load_run, main, run_test_tasks
from experiments.runner import parse_config, read_records

FACTORY = "acrobot_tasks:make_acrobot_tasks"  # examples/acrobot_tasks.py, on the path as a user's module
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.fixture(scope="module")
def acrobot_run(tmp_path_factory):
    if EXAMPLES not in sys.path:
        sys.path.append(EXAMPLES)
    run_dir = str(tmp_path_factory.mktemp("acrobot") / "run")
    config = parse_config(curriculum_ppo.Config, [
        "--env", FACTORY, "--teachers", "random", "--seeds", "2", "--chunks", "2", "--test-tasks", "4",
        "--episodes-per-task", "1", "--ppo.num-envs", "4", "--ppo.num-steps", "16",
        "--ppo.total-timesteps", "128", "--ppo.num-minibatches", "2", "--run-dir", run_dir, "--no-progress"])
    curriculum_ppo.main(config)
    return run_dir


def test_config_records_how_to_rebuild_the_environment(acrobot_run):
    saved = json.load(open(os.path.join(acrobot_run, "config.json")))
    assert saved["config"]["env"] == FACTORY
    assert saved["env"]["factory"] == FACTORY and saved["env"]["env_name"] == "acrobot_tasks"
    assert saved["env"]["task_space"]["names"] == ["link_mass", "link_length"]
    assert saved["env"]["return_range"] == [-500.0, 0.0] and saved["env"]["mastery_score"] == 0.8
    assert saved["config_class"] == "experiments.curriculum_ppo:Config"


def test_load_run_and_evaluate_give_back_the_logged_figures(acrobot_run):
    run = load_run(acrobot_run)
    assert run.step == 2 and run.meta == {"chunks_done": 2}
    assert run.trainer.task_env.name == "acrobot_tasks"
    last = read_records(os.path.join(acrobot_run, "metrics.jsonl"))[-1]
    tasks = run_test_tasks(run)
    assert tasks.shape == (4, 2)
    out = evaluate_run(run, tasks, episodes_per_task=1)
    np.testing.assert_allclose(100.0 * out["mastered"].mean(axis=1), last["mastered_pct"])
    np.testing.assert_allclose(out["returns"].mean(axis=1), last["test_return"], rtol=1e-6)
    first = load_run(acrobot_run, step=1)
    assert int(first.state.update[0]) == 1 and int(run.state.update[0]) == 2
    with pytest.raises(ValueError, match="no checkpoint 7"):
        load_run(acrobot_run, step=7)


def test_evaluate_cli_writes_the_evaluation(acrobot_run, capsys):
    outs = main([acrobot_run, "--tasks", "1.0,1.0", "2.0,1.5", "--episodes-per-task", "1"])
    assert "2 tasks x 1 episodes" in capsys.readouterr().out
    saved = json.load(open(os.path.join(acrobot_run, "eval", "evaluation.json")))
    assert saved["tasks"] == [[1.0, 1.0], [2.0, 1.5]] and len(saved["mastered_pct_per_seed"]) == 2
    assert saved == outs[0]
    assert os.path.exists(os.path.join(acrobot_run, "eval", "plots", "task_scores.png"))
    with pytest.raises(SystemExit) as exit_info:
        main([acrobot_run, "--tasks", "9.0,1.0"])  # outside the task space
    assert exit_info.value.code == 2 and "link_mass" in capsys.readouterr().err


def test_load_run_restores_a_hyperparameter_sweep(tmp_path):
    """A ``--sweep`` run's state has one member per (setting, seed); load_run rebuilds that layout and
    restores the checkpoint: the members trained with different learning rates differ, and the
    restored parameters are the ones in the checkpoint."""
    from experiments import ppo_cartpole
    from experiments.checkpoints import Checkpointer

    run_dir = str(tmp_path / "sweep")
    ppo_cartpole.main(parse_config(ppo_cartpole.Config, [
        "--quick", "--seeds", "2", "--chunks", "1", "--ppo.total-timesteps", "1024", "--no-progress",
        "--run-dir", run_dir, "--sweep", "lr=1e-4,3e-3"]))
    run = load_run(run_dir)
    leaves = jax.tree.leaves(run.state.train_state.params)
    assert all(x.shape[0] == 4 for x in leaves)  # 2 settings x 2 seeds
    first = np.asarray(leaves[0])
    assert not np.allclose(first[0], first[2])  # seed 0 at lr 1e-4 against seed 0 at lr 3e-3
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"))
    state, _ = ckpt.restore(ckpt.latest_step(), run.state)
    ckpt.close()
    jax.tree.map(np.testing.assert_array_equal, state.train_state.params, run.state.train_state.params)
