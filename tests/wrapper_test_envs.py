"""Two tiny gymnax-1.0 environments with 2-D observations, for the wrapper tests and PPO tests.

* :class:`Ticker`: deterministic, for exact answers. The task is an episode length L; the observation
  is the 2x2 array ``[[left, time], [10 * left, -time]]``; action ``a`` in {0, 1, 2} pays
  ``10 * a + left`` (``left`` before the step); the episode terminates when ``left`` reaches 0, unless
  ``max_steps_in_episode`` cuts it first. ``info`` holds ``left`` (after the step) and a clashing
  ``terminated`` of -1.0 that curriculax's own key must replace.
* :class:`CueGrid`: a ``height x width`` grid. At the first step one cell, uniform over the grid, is 1;
  at later steps the grid is all zeros. Every step pays 1 when the action names the side of the cue
  (1: the cell's column is in the right half, 0: the left half), else 0; the episode lasts
  ``length`` steps. The optimal return is ``length``: read the side off the first grid, then repeat
  the previous action, which :class:`~envs.wrappers.ObservePreviousActionReward` shows. ``info``
  holds ``cue_side`` (the paying action). A memoryless
  policy that sees only the grid can do no better than ``1 + (length - 1) / 2`` in expectation (the
  later grids say nothing about the cue).

Measured with algos.ppo (MLP 64x64, 8 envs x 64 steps, 250 updates = 128k steps, lr 3e-3, length 4,
last 10 updates): with ``ObservePreviousActionReward`` seeds 0 and 3 reached 4.0 (optimal) and seeds 1
and 2 stopped at 3.0, a local optimum that reads the previous *reward* (switch after a 0, but after a 1
a fixed action instead of the previous one: steps 1 and 3 at chance); with ``FlattenObservation``
alone seeds 0 and 1 gave 2.48 and 2.53 (the memoryless bound 2.5). At lr 1e-3 seed 0 stays at 3.0 even
after 600 updates. A learning test can ask for > 2.8 with the previous action and < 2.7 without.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv
from envs.task_space import TaskSpace


@struct.dataclass
class TickerState(environment.EnvState):
    left: jax.Array
    time: int


@struct.dataclass
class TickerParams(environment.EnvParams):
    length: float = 3.0
    max_steps_in_episode: int = 100


class Ticker(environment.Environment):
    """Countdown with a 2-D observation, an action-dependent reward and info keys (module docstring)."""

    @property
    def default_params(self) -> TickerParams:
        return TickerParams()

    def step_env(self, key, state, action, params):
        reward = (10.0 * jnp.asarray(action, jnp.float32) + state.left).astype(jnp.float32)
        state = TickerState(left=state.left - 1, time=state.time + 1)
        info = {"left": state.left, "terminated": jnp.float32(-1.0)}
        return self.get_obs(state), state, reward, state.left <= 0, info

    def reset_env(self, key, params):
        state = TickerState(left=jnp.round(params.length).astype(jnp.int32), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        left, t = jnp.float32(state.left), jnp.float32(state.time)
        return jnp.array([[left, t], [10.0 * left, -t]], jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(3)

    def observation_space(self, params):
        return spaces.Box(-100.0, 100.0, (2, 2), jnp.float32)


def ticker_task_env(max_steps: int = 100) -> TaskEnv:
    """:class:`Ticker` with the episode length L in [1, 9] as the task."""
    return TaskEnv(
        env=Ticker(),
        task_space=TaskSpace.box(["length"], [1.0], [9.0]),
        params_for=lambda task: TickerParams(length=task[0], max_steps_in_episode=max_steps),
        default_task=(3.0,),
        name="ticker",
    )


@struct.dataclass
class CueGridState(environment.EnvState):
    cell: jax.Array  # flat index of the cue cell
    time: int


@struct.dataclass
class CueGridParams(environment.EnvParams):
    length: int = 4
    max_steps_in_episode: int = 4


class CueGrid(environment.Environment):
    """The cue-on-a-grid memory task of the module docstring (2-D observation, 2 actions)."""

    def __init__(self, height: int = 3, width: int = 4):
        if width % 2:
            raise ValueError("CueGrid needs an even width (two equal halves)")
        self.height, self.width = height, width

    @property
    def default_params(self) -> CueGridParams:
        return CueGridParams()

    def side(self, state: CueGridState) -> jax.Array:
        """1 when the cue cell lies in the right half of the grid, else 0."""
        return (state.cell % self.width >= self.width // 2).astype(jnp.int32)

    def step_env(self, key, state, action, params):
        reward = jnp.where(jnp.asarray(action) == self.side(state), 1.0, 0.0).astype(jnp.float32)
        side = self.side(state)
        state = CueGridState(cell=state.cell, time=state.time + 1)
        return self.get_obs(state), state, reward, state.time >= params.length, {"cue_side": side}

    def reset_env(self, key, params):
        cell = jax.random.randint(key, (), 0, self.height * self.width)
        state = CueGridState(cell=cell, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        grid = jax.nn.one_hot(state.cell, self.height * self.width, dtype=jnp.float32)
        grid = jnp.where(state.time == 0, grid, 0.0)
        return grid.reshape(self.height, self.width)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.height, self.width), jnp.float32)


def cue_grid_env(length: int = 4, height: int = 3, width: int = 4) -> TaskEnv:
    """:class:`CueGrid` as a one-task TaskEnv with 2-D observations ``[height, width]``.

    Optimal return ``length`` (score 1) with the previous action in the observation, e.g.
    ``cue_grid_env().wrap(ObservePreviousActionReward)``; at most ``(1 + length) / 2`` expected
    (score ``(1 + length) / (2 length)``) for a memoryless policy of the grid alone.
    """
    env = CueGrid(height, width)
    params = CueGridParams(length=length, max_steps_in_episode=length)
    return TaskEnv(
        env=env,
        task_space=TaskSpace.box(["none"], [0.0], [1.0]),
        params_for=lambda task: params,
        default_task=(0.0,),
        return_range=(0.0, float(length)),
        mastery_score=0.9,
        name="cue_grid",
    )
