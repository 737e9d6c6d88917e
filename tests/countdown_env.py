"""A tiny gymnax-1.0 environment with a known answer, for tests.

The task is an episode length L (in [1, 9]): the observation is the number of steps left, every step
pays reward 1, and the episode *terminates* after L steps -- unless ``max_steps_in_episode`` cuts it
first (*truncation*). The action is ignored.
"""

import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv
from envs.task_space import TaskSpace


@struct.dataclass
class CountdownState(environment.EnvState):
    left: jnp.ndarray
    time: int


@struct.dataclass
class CountdownParams(environment.EnvParams):
    length: float = 3.0
    max_steps_in_episode: int = 100


class Countdown(environment.Environment):
    @property
    def default_params(self):
        return CountdownParams()

    def step_env(self, key, state, action, params):
        state = CountdownState(left=state.left - 1, time=state.time + 1)
        return self.get_obs(state), state, jnp.float32(1.0), state.left <= 0, {}

    def reset_env(self, key, params):
        state = CountdownState(left=jnp.round(params.length).astype(jnp.int32), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.array([state.left], jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 10.0, (1,), jnp.float32)


def countdown_task_env(max_steps: int = 100) -> TaskEnv:
    return TaskEnv(
        env=Countdown(),
        task_space=TaskSpace.box(["length"], [1.0], [9.0]),
        params_for=lambda task: CountdownParams(length=task[0], max_steps_in_episode=max_steps),
        default_task=(3.0,),
        return_range=(0.0, 9.0),
        name="countdown",
    )
