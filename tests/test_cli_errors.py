"""Mistakes that used to pass silently, or fail late with a long traceback: NaN / inf in a numeric
flag (named before compiling), --test-tasks 0, a mastery score outside [0, 1] with a return range, a
task dimension that never changes the environment, a return range below the returns, unknown
environment names (listing the known ones, gymnax ids too) and bad module:function paths. Bad CLI
values print one line and exit with status 2."""

import os
import subprocess
import sys

import numpy as np
import pytest
from gymnax.environments.classic_control.pendulum import Pendulum

from envs import TaskSpace
from envs.registry import check_env_name, make_task_env
from envs.task_env import TaskEnv, check_task_env
from experiments import curriculum_demo, ppo_cartpole
from experiments.runner import check_finite_fields, cli, parse_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = Pendulum()


def _pendulum(params_for=None, **kw):
    return TaskEnv(env=ENV, task_space=TaskSpace.box(["max_torque", "mass"], [0.5, 0.5], [3.0, 2.0]),
                   params_for=params_for or (lambda t: ENV.default_params.replace(max_torque=t[0], m=t[1])),
                   default_task=(2.0, 1.0), name="pendulum_tasks", **kw)


@pytest.mark.parametrize("flag, value", [("--ppo.ent-coef", "nan"), ("--ppo.lr", "inf"),
                                         ("--ppo.gamma", "-inf")])
def test_non_finite_flags_are_named_before_compiling(flag, value):
    with pytest.raises(ValueError, match=f"{flag} is {value.lstrip('-')}|{flag} is -inf"):
        parse_config(curriculum_demo.Config, ["--quick", flag, value])


def test_non_finite_default_is_allowed():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class C:
        x: float = float("inf")

    check_finite_fields(C(), C())
    with pytest.raises(ValueError, match="--x is nan"):
        check_finite_fields(C(x=float("nan")), C())


def test_bad_values_print_one_line_and_exit_2(capsys):
    for argv, match in [(["--quick", "--test-tasks", "0"], "--test-tasks"),
                        (["--quick", "--ppo.ent-coef", "nan"], "--ppo.ent-coef is nan"),
                        (["--quick", "--env", "nope"], "known: ['cartpole_tasks'"),
                        (["--quick", "--seeds", "0"], "--seeds must be >= 1")]:
        with pytest.raises(SystemExit) as exit_info:
            cli(curriculum_demo.Config, curriculum_demo.main, argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1 and match in err, err


def test_bad_value_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "experiments.curriculum_demo", "--quick",
                           "--test-tasks", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "python -m experiments.curriculum_demo: error: --test-tasks and --episodes-per-task must be >= 1"]


def test_unknown_environments_list_the_known_ones():
    with pytest.raises(ValueError, match=r"known: \['Acrobot-v1', .*'CartPole-v1'.*module:function"):
        ppo_cartpole.Config(env="CartPol-v1").validate()
    with pytest.raises(ValueError, match=r"known: \['cartpole_tasks'.*'stump_track'"):
        check_env_name("stumptrack")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'.*Python path"):
        check_env_name("no_such_module:make")
    with pytest.raises(ValueError, match="module 'envs.cartpole_tasks' has no function 'nothing'"):
        check_env_name("envs.cartpole_tasks:nothing")
    with pytest.raises(TypeError, match="returned a TaskSpace, not an envs.TaskEnv"):
        make_task_env("tests.test_cli_errors:not_a_task_env")


def not_a_task_env():
    return TaskSpace.unit_cube(2)


def test_mastery_score_outside_the_unit_interval_with_a_return_range():
    with pytest.raises(ValueError, match="mastery_score=85.0 is outside"):
        _pendulum(return_range=(-1600.0, 0.0), mastery_score=85.0)
    with pytest.raises(ValueError, match="return_range must be finite"):
        _pendulum(return_range=(-np.inf, 0.0))
    _pendulum(mastery_score=-200.0)  # raw returns: any finite threshold


def test_a_task_dimension_that_never_changes_the_environment():
    typo = _pendulum(params_for=lambda t: ENV.default_params.replace(max_torque=t[0], m=1.0 + 0 * t[1]))
    with pytest.raises(ValueError, match="task dimension 'mass' never changes the environment"):
        check_task_env(typo)
    check_task_env(_pendulum())


def test_a_return_range_below_every_return():
    cheap = TaskEnv(env=ENV, task_space=TaskSpace.box(["max_torque"], [0.5], [3.0]),
                    params_for=lambda t: ENV.default_params.replace(max_torque=t[0], max_steps_in_episode=20),
                    default_task=(2.0,), return_range=(-1e6, -1e5), name="wrong_units")
    with pytest.raises(ValueError, match="all lie above return_range"):
        check_task_env(cheap, episodes=4)


def test_ppo_job_warns_when_returns_exceed_the_range():
    from algos.ppo import PPOConfig, make_train
    from experiments.ppo_job import ppo_job

    env = _pendulum(return_range=(-3000.0, -2000.0))
    job = ppo_job("x", make_train(PPOConfig(num_envs=2, num_steps=8, total_timesteps=16,
                                            num_minibatches=1), env))
    metrics = {"episodes": np.ones((1, 2)), "return_sum": np.full((1, 2), -100.0),
               "score_sum": np.ones((1, 2)), "length_sum": np.ones((1, 2)),
               "task_hist": np.zeros((1, 2, 2, 2))}
    with pytest.warns(RuntimeWarning, match="lies above return_range"):
        job.reduce(metrics)
    with pytest.raises(ValueError, match="test set needs >= 1 task"):
        ppo_job("x", make_train(PPOConfig(num_envs=2, num_steps=8, total_timesteps=16, num_minibatches=1),
                                env), np.zeros((0, 2)))
