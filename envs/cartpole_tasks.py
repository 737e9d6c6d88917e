"""CartPole with physical parameters as the task: pole half-length x push force.

gymnax's CartPole-v1 (Barto, Sutton & Anderson 1983 dynamics, Euler steps of 0.02 s, bang-bang push
of +-force, episode cap 500 steps, failure at |theta| > 12 deg or |x| > 2.4 m) with two task dimensions:

* ``pole_length`` in [0.05, 1.0] m (half-length; default 0.5): the pole's time constant scales with
  sqrt(length), so short poles fall within a few control steps and need precise timing;
* ``force`` in [0.2, 40] N (default 10): a weak push cannot stop a falling pole (recovering from the
  12 deg limit needs an acceleration of about g*tan(12 deg) ~ 2 m/s^2, i.e. ~2.3 N on the 1.1 kg cart),
  and a strong push on a short pole overshoots every step.

Regions (measured with PPO in ``tests/test_cartpole_tasks.py``'s slow check and the curriculum demo):
easy = long poles with moderate force (around the default task); hard = short poles or strong
pushes; infeasible = force below ~1 N (the pole cannot be caught) and the shortest poles with strong
pushes. Score = return / 500 in [0, 1]; a task is mastered at score >= 0.9.
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
