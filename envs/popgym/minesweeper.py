"""POPGym's MineSweeper in JAX: MineSweeperEasy / Medium / Hard.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR 2023), original file ``proroklab/popgym``: ``popgym/envs/minesweeper.py`` (``MineSweeper``).

Mines are hidden under a grid; the agent clicks a tile and observes only the number of mines in the
3x3 block centred on it (the tile itself included, as the original counts). Semantics kept from the
original:

* boards 4x4 with 2 mines, 6x6 with 6, 8x8 with 10 (Easy / Medium / Hard), the mines a uniformly
  random subset of the tiles;
* ``max_episode_length = rows * cols - mines``; rewards ``1 / max_episode_length`` for clicking a new
  clear tile, ``-0.5 / (max_episode_length - 2)`` for re-clicking a viewed tile,
  ``-0.5 - 1 / max_episode_length`` for clicking a mine;
* ``terminated`` on clicking a mine or once every clear tile is viewed; ``truncated`` exactly when the
  step count *equals* ``max_episode_length`` and the step did not terminate (as the original's
  ``timestep == max_episode_length and not terminated``);
* observation ``Discrete(min(mines + 1, 10))`` (3 / 7 / 10 values), one-hot (the base CONVENTIONS),
  the clicked tile's count, also on a mine; the reset observation is 0.

Action: the original ``MultiDiscrete([rows, cols])`` as one ``Discrete(rows * cols)``, action ``a`` is
tile ``(a // cols, a % cols)`` (the base CONVENTIONS).

Deviations from the original: the mine layout is drawn with ``jax.random`` (same distribution,
different values from the seeded ``np_random``); the state also holds ``terminated``, whether the
last step terminated, so that :meth:`MineSweeper.is_truncated` can read the original's ``and not
terminated`` from the state alone; ``info`` is empty.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym.base import PopGymEnv, PopGymParams, one_hot

CLEAR, MINE, VIEWED = 0, 1, 2  # the original's HiddenSquare values

_DIFFICULTY = {"easy": ((4, 4), 2), "medium": ((6, 6), 6), "hard": ((8, 8), 10)}


@struct.dataclass
class MineSweeperState:
    hidden_grid: jax.Array  # [rows, cols] int32: CLEAR 0, MINE 1, VIEWED 2 (the original's hidden_grid)
    neighbor_grid: jax.Array  # [rows, cols] int32: mines in the 3x3 block around each tile, itself included
    timestep: jax.Array  # int32: steps taken
    terminated: jax.Array  # bool: whether the last step terminated (False after reset)


def neighbor_counts(mines: jax.Array) -> jax.Array:
    """Mines in the 3x3 block around each tile (the tile included), zero outside the board."""
    rows, cols = mines.shape
    padded = jnp.pad(mines.astype(jnp.int32), 1)
    total = jnp.zeros((rows, cols), jnp.int32)
    for di in range(3):
        for dj in range(3):
            total = total + padded[di : di + rows, dj : dj + cols]
    return total


class MineSweeper(PopGymEnv):
    def __init__(self, difficulty: str = "easy"):
        super().__init__()
        if difficulty not in _DIFFICULTY:
            raise ValueError(f"difficulty must be one of {sorted(_DIFFICULTY)}, got {difficulty!r}")
        self.difficulty = difficulty
        self.dims, self.num_mines = _DIFFICULTY[difficulty]
        rows, cols = self.dims
        self.max_episode_length = rows * cols - self.num_mines
        self.success_reward_scale = 1.0 / self.max_episode_length
        self.fail_reward_scale = -0.5 - self.success_reward_scale
        self.bad_action_reward_scale = -0.5 / (self.max_episode_length - 2)
        self.num_obs = min(self.num_mines + 1, 10)

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, MineSweeperState]:
        rows, cols = self.dims
        mines_flat = jax.random.choice(key, rows * cols, (self.num_mines,), replace=False)
        hidden = jnp.zeros((rows * cols,), jnp.int32).at[mines_flat].set(MINE).reshape(rows, cols)
        state = MineSweeperState(
            hidden_grid=hidden,
            neighbor_grid=neighbor_counts(hidden == MINE),
            timestep=jnp.zeros((), jnp.int32),
            terminated=jnp.asarray(False),
        )
        return one_hot(0, self.num_obs), state

    def step_env(
        self, key: jax.Array, state: MineSweeperState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, MineSweeperState, jax.Array, jax.Array, dict]:
        rows, cols = self.dims
        action = jnp.asarray(action, jnp.int32).reshape(())
        r, c = action // cols, action % cols
        tile = state.hidden_grid[r, c]
        is_mine = tile == MINE
        is_viewed = tile == VIEWED
        reward = jnp.where(
            is_mine,
            self.fail_reward_scale,
            jnp.where(is_viewed, self.bad_action_reward_scale, self.success_reward_scale),
        ).astype(jnp.float32)
        hidden = state.hidden_grid.at[r, c].set(jnp.where(tile == CLEAR, VIEWED, tile))
        terminated = is_mine | jnp.all(hidden != CLEAR)
        obs = one_hot(state.neighbor_grid[r, c], self.num_obs)
        new_state = MineSweeperState(
            hidden_grid=hidden,
            neighbor_grid=state.neighbor_grid,
            timestep=state.timestep + 1,
            terminated=terminated,
        )
        return obs, new_state, reward, terminated, {}

    def is_truncated(self, state: MineSweeperState, params: PopGymParams) -> jax.Array:
        return (state.timestep == self.max_episode_length) & ~state.terminated

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_obs,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.dims[0] * self.dims[1])

    @property
    def num_actions(self) -> int:
        return self.dims[0] * self.dims[1]


VARIANTS = {
    "MineSweeperEasy": lambda: MineSweeper("easy"),
    "MineSweeperMedium": lambda: MineSweeper("medium"),
    "MineSweeperHard": lambda: MineSweeper("hard"),
}
