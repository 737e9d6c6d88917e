"""Two tiny gymnax-1.0 environments with known optimal returns, for the PPO policy tests.

* :class:`CueRecall`: step 0 shows a cue (+1 or -1), later steps show 0; at the last step (``delay``)
  the agent is paid 1 for naming the cue (action 1 for +1, 0 for -1), otherwise 0. Memory gets return
  1; a policy without memory can only guess (expected return 0.5).
* :class:`TargetReach`: one-step episodes; the observation is a target in [-1, 1] and the reward is
  ``-(action - target)^2``. The optimal continuous policy outputs the target (return 0).
"""

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv, fixed_task_env


@struct.dataclass
class CueState(environment.EnvState):
    cue: jnp.ndarray
    time: int


@struct.dataclass
class CueParams(environment.EnvParams):
    delay: int = 3
    max_steps_in_episode: int = 100


class CueRecall(environment.Environment):
    @property
    def default_params(self):
        return CueParams()

    def step_env(self, key, state, action, params):
        last = state.time == params.delay
        correct = (action == 1) == (state.cue > 0)
        reward = jnp.where(last & correct, 1.0, 0.0).astype(jnp.float32)
        state = CueState(cue=state.cue, time=state.time + 1)
        return self.get_obs(state), state, reward, last, {}

    def reset_env(self, key, params):
        cue = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        state = CueState(cue=cue, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        shown = jnp.where(state.time == 0, state.cue, 0.0)
        return jnp.array([shown], jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


@struct.dataclass
class TargetState(environment.EnvState):
    target: jnp.ndarray
    time: int


class TargetReach(environment.Environment):
    @property
    def default_params(self):
        return environment.EnvParams(max_steps_in_episode=10)

    def step_env(self, key, state, action, params):
        reward = -jnp.sum((action - state.target) ** 2)
        state = TargetState(target=state.target, time=state.time + 1)
        return self.get_obs(state), state, reward.astype(jnp.float32), jnp.bool_(True), {}

    def reset_env(self, key, params):
        state = TargetState(target=jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return state.target

    def action_space(self, params=None):
        return spaces.Box(-2.0, 2.0, (1,), jnp.float32)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


def cue_recall_env(delay: int = 3) -> TaskEnv:
    env = CueRecall()
    return fixed_task_env(env, env.default_params.replace(delay=delay))


def target_reach_env() -> TaskEnv:
    env = TargetReach()
    return fixed_task_env(env, env.default_params)


@struct.dataclass
class BanditParams(environment.EnvParams):
    arm: jnp.ndarray = 0  # the paying action: the task id
    max_steps_in_episode: int = 10


class TaskBandit(environment.Environment):
    """One-step episodes, a constant observation; action ``params.arm`` pays 1, the other 0. Only a
    policy that sees the task can reach return 1; a task-blind one gets 0.5 on two equally likely tasks."""

    @property
    def default_params(self):
        return BanditParams()

    def step_env(self, key, state, action, params):
        reward = jnp.where(action == params.arm, 1.0, 0.0).astype(jnp.float32)
        return self.get_obs(state), state.replace(time=state.time + 1), reward, jnp.bool_(True), {}

    def reset_env(self, key, params):
        return self.get_obs(None), environment.EnvState(time=0)

    def get_obs(self, state, params=None, key=None):
        return jnp.ones((1,), jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


def task_bandit_env() -> TaskEnv:
    from envs.task_space import TaskSpace

    return TaskEnv(
        env=TaskBandit(),
        task_space=TaskSpace.discrete(2, "arm"),
        params_for=lambda task: BanditParams(arm=task[0].astype(jnp.int32)),
        default_task=(0.0,),
        return_range=(0.0, 1.0),
        name="task_bandit",
    )
