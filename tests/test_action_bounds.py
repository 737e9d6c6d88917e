"""Continuous action bounds follow each environment's current task (PPO's rollout and the evaluation):
on the README's Pendulum task environment a policy asking for +10 gets the torque of each task's own
``max_torque`` (it used to be clipped to the default task's 2.0, so max_torque 2.5 and 3.0 had no
effect)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments.classic_control.pendulum import Pendulum

from algos.distributions import DiagGaussian
from algos.evaluation import evaluate_tasks
from algos.networks import feedforward_policy
from algos.ppo import PPOConfig, make_train
from envs import TaskSpace
from envs.task_env import TaskEnv
from teachers.fixed import fixed_teacher

ENV = Pendulum()
PENDULUM_TASKS = TaskEnv(
    env=ENV,
    task_space=TaskSpace.box(["max_torque", "mass"], low=[0.5, 0.5], high=[3.0, 2.0]),
    params_for=lambda task: ENV.default_params.replace(max_torque=task[0], m=task[1]),
    default_task=(2.0, 1.0),
    return_range=(-1600.0, 0.0),
    mastery_score=0.85,
    name="pendulum_tasks",
)


class Constant(nn.Module):
    """Always asks for the same torque (a saturating policy when it is above every max_torque)."""

    torque: float
    log_std: float = -20.0

    @nn.compact
    def __call__(self, obs):
        bias = self.param("bias", nn.initializers.zeros, ())
        mean = jnp.full(obs.shape[:-1] + (1,), self.torque) + 0 * bias
        return DiagGaussian(mean, jnp.full_like(mean, self.log_std)), jnp.zeros(obs.shape[:-1])


class TasksOwnTorque(nn.Module):
    """Asks for exactly the running task's max_torque (sees the task)."""

    @nn.compact
    def __call__(self, obs, task):
        bias = self.param("bias", nn.initializers.zeros, ())
        mean = task[..., :1] + 0 * bias
        return DiagGaussian(mean, jnp.full_like(mean, -20.0)), jnp.zeros(obs.shape[:-1])


def _evaluate(torque, tasks):
    policy = (feedforward_policy(TasksOwnTorque(), sees_task=True) if torque is None
              else feedforward_policy(Constant(torque)))
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)), jnp.zeros((1, 2)))
    returns, _ = evaluate_tasks(policy, params, PENDULUM_TASKS, jnp.asarray(tasks, jnp.float32),
                                jax.random.PRNGKey(1))
    return np.asarray(returns)


def test_action_bounds_follow_the_task():
    low, high = PENDULUM_TASKS.action_bounds(jnp.array([2.7, 1.0]))
    np.testing.assert_allclose(low, [-2.7]) and np.testing.assert_allclose(high, [2.7])
    lows, highs = jax.vmap(PENDULUM_TASKS.action_bounds)(jnp.array([[0.5, 1.0], [3.0, 2.0]]))
    np.testing.assert_allclose(highs[:, 0], [0.5, 3.0])


def test_evaluation_saturating_return_changes_with_max_torque():
    tasks = [[2.0, 1.0], [2.5, 1.0], [3.0, 1.0]]
    saturated = _evaluate(10.0, tasks)
    np.testing.assert_allclose(saturated, _evaluate(None, tasks), rtol=1e-6)  # = each task's max_torque
    at_default_bound = _evaluate(2.0, tasks)  # what +10 was clipped to before, whatever the task
    np.testing.assert_allclose(saturated[0], at_default_bound[0], rtol=1e-6)
    assert np.all(np.abs(saturated[1:] - at_default_bound[1:]) > 1.0), (saturated, at_default_bound)


def _rollout_rewards(torque, task):
    config = PPOConfig(num_envs=2, num_steps=32, total_timesteps=64, num_minibatches=1)
    trainer = make_train(config, PENDULUM_TASKS, fixed_teacher(PENDULUM_TASKS.task_space, task),
                         policy=feedforward_policy(Constant(torque)))
    _, traj = jax.jit(trainer.rollout)(trainer.init(jax.random.PRNGKey(3)))
    return np.asarray(traj.reward)


def test_ppo_rollout_clips_to_the_running_task():
    at_3 = _rollout_rewards(10.0, (3.0, 1.0))
    np.testing.assert_allclose(at_3, _rollout_rewards(3.0, (3.0, 1.0)), rtol=1e-6)
    assert not np.allclose(at_3, _rollout_rewards(2.0, (3.0, 1.0)))  # the default task's bound
