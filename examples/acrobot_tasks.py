"""A user's own task environment: gymnax Acrobot with the links' mass and length as the task.

Both links get the task's mass and length (the centre of mass stays at the middle of each link).
Acrobot gives -1 per step until the tip swings above the bar (at most 500 steps), so returns lie in
[-500, 0]; a task counts as mastered at a score of 0.8 (the goal reached within 100 steps).

Train it from the command line, from this folder or with it on ``PYTHONPATH``:

    PYTHONPATH=examples python -m experiments.curriculum_ppo --env acrobot_tasks:make_acrobot_tasks \\
        --teachers random --seeds 2 --run-dir runs/acrobot
    python -m experiments.evaluate runs/acrobot --tasks 1.0,1.0 2.0,1.5
"""

from __future__ import annotations

from gymnax.environments.classic_control.acrobot import Acrobot

from envs import TaskEnv, TaskSpace


def make_acrobot_tasks(max_steps_in_episode: int = 500) -> TaskEnv:
    """Acrobot with task ``(link_mass, link_length)`` in ``[0.5, 2.0] x [0.5, 1.5]``."""
    env = Acrobot()
    base = env.default_params.replace(max_steps_in_episode=max_steps_in_episode)

    def params_for(task):  # pure and vmappable: the teacher's task vector -> EnvParams
        mass, length = task[0], task[1]
        return base.replace(link_mass_1=mass, link_mass_2=mass, link_length_1=length,
                            link_length_2=length, link_com_pos_1=0.5 * length,
                            link_com_pos_2=0.5 * length)

    return TaskEnv(
        env=env,
        task_space=TaskSpace.box(["link_mass", "link_length"], low=[0.5, 0.5], high=[2.0, 1.5]),
        params_for=params_for,
        default_task=(1.0, 1.0),
        return_range=(-float(max_steps_in_episode), 0.0),
        mastery_score=0.8,
        name="acrobot_tasks",
    )
