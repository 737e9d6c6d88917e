"""CartPole with physical parameters as the task: pole half-length x failure angle limit.

gymnax's CartPole-v1 (Barto, Sutton & Anderson 1983 dynamics, Euler steps of 0.02 s, push of +-10 N,
episode cap 500 steps, failure at |x| > 2.4 m or |theta| > the angle limit) with two task dimensions:

* ``pole_length`` in [0.05, 1.0] m (half-length; default 0.5): the pole's time constant scales with
  sqrt(length), so short poles fall within a few control steps and need precise timing;
* ``angle_limit`` in [0.5, 12] degrees (default 12): the episode fails once the pole leans further.
  Episodes start with theta uniform in +-0.05 rad (+-2.9 deg), so below about 2.5 deg most episodes
  fail on their first step whatever the policy does.

Regions, measured by PPO trained 300k steps on single tasks (mean greedy return over 16 episodes):
* infeasible: ``angle_limit`` < 2 deg (returns 0-100 of 500, for every pole length), about 13 % of
  the box; at 2 deg only about half the initial states can be saved (return ~280);
* hard: short poles (0.05 m) with limits of 3-4 deg (returns 13-500 depending on the seed);
* easy: everything from 3 deg up with poles of 0.1 m or more (returns 440-500).
Score = return / 500 in [0, 1]; a task is mastered at a mean score >= 0.9.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from gymnax.environments.classic_control.cartpole import CartPole

from envs.task_env import TaskEnv
from envs.task_space import TaskSpace

CARTPOLE_TASKS = TaskSpace.box(["pole_length", "angle_limit"], [0.05, 0.5], [1.0, 12.0])


def cartpole_params_for(task: jax.Array, base=None):
    """``EnvParams`` for ``task = [pole_length, angle_limit_deg]``, derived masses kept consistent."""
    base = CartPole().default_params if base is None else base
    length, angle_limit = task[0], task[1]
    return base.replace(
        length=length,
        polemass_length=base.masspole * length,
        total_mass=base.masscart + base.masspole,
        theta_threshold_radians=angle_limit * (jnp.pi / 180.0),
    )


def cartpole_tasks(max_steps_in_episode: int = 500) -> TaskEnv:
    """The parameterised CartPole task environment."""
    env = CartPole()
    base = env.default_params.replace(max_steps_in_episode=max_steps_in_episode)
    return TaskEnv(
        env=env,
        task_space=CARTPOLE_TASKS,
        params_for=lambda task: cartpole_params_for(task, base),
        default_task=(0.5, 12.0),
        return_range=(0.0, float(max_steps_in_episode)),
        mastery_score=0.9,
        name="cartpole_tasks",
    )
