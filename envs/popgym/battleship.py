"""POPGym's Battleship in JAX: BattleShipEasy / Medium / Hard.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning",
ICLR 2023), original file ``proroklab/popgym``: ``popgym/envs/battleship.py`` (``Battleship``; the
variant names here are spelled ``BattleShip...``).

Ships are hidden on a square board; the agent fires at a tile and observes only hit or miss.
Semantics kept from the original:

* boards 8x8, 10x10, 12x12 (Easy / Medium / Hard), ships of sizes 2, 3, 3, 4 placed in that order,
  each horizontal or vertical, inside the board and not overlapping the ships placed before; the
  original places a ship by rejection sampling (a uniform start tile, axis and sign, retried until the
  ship fits), which is uniform over the placements that fit, and that is how it is drawn here (one
  categorical draw over all fitting placements per ship, static shapes);
* ``max_episode_length = board_size ** 2``; a *hit* is firing at a ship tile not fired at before
  (re-firing at a hit tile is a miss); reward ``1 / 12`` on a hit and
  ``-1 / (max_episode_length - 12)`` otherwise (12 = the ship tiles);
* ``terminated`` once all 12 ship tiles are hit, ``truncated`` once the step count reaches
  ``max_episode_length`` (both may hold at once, as in the original);
* observation ``Discrete(2)`` one-hot (the base CONVENTIONS), 1 on a hit; the reset observation is 0.

Action: the original ``MultiDiscrete([board_size, board_size])`` as one ``Discrete(board_size ** 2)``,
action ``a`` is tile ``(a // board_size, a % board_size)`` (the base CONVENTIONS).

Deviations from the original: the ship layout is drawn with ``jax.random`` (the same distribution as
the original's rejection sampling, different values from the seeded ``np_random``); the state omits
the original's ``last_obs`` (it only feeds the original's ``get_state``, not the dynamics); ``info``
is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class BattleShipState:
    board: jax.Array  # [size, size] int32: 1 where a ship lies (the original's board)
    guesses: jax.Array  # [size, size] int32: 1 where fired at (the original's guesses)
    hits: jax.Array  # int32: ship tiles hit so far
    num_steps: jax.Array  # int32: steps taken


def fitting_placements(board: jax.Array, ship_size: int) -> jax.Array:
    """``[2, size, size]`` bool: whether a ship of ``ship_size`` with its top-left tile at ``(r, c)``
    fits (inside the board, on free tiles), vertical (axis 0: rows ``r .. r + ship_size - 1``) or
    horizontal (axis 1)."""
    size = board.shape[0]
    # Tiles beyond the board count as occupied, so out-of-bounds placements never fit.
    padded = jnp.pad(board.astype(jnp.int32), ((0, ship_size - 1), (0, ship_size - 1)),
                     constant_values=1)
    vertical = sum(padded[k : k + size, :size] for k in range(ship_size))
    horizontal = sum(padded[:size, k : k + size] for k in range(ship_size))
    return jnp.stack([vertical == 0, horizontal == 0])


def ship_mask(size: int, ship_size: int, axis: jax.Array, row: jax.Array, col: jax.Array) -> jax.Array:
    """``[size, size]`` bool: the tiles of a ship at top-left ``(row, col)`` along ``axis``."""
    ii, jj = jnp.meshgrid(jnp.arange(size), jnp.arange(size), indexing="ij")
    vertical = (jj == col) & (ii >= row) & (ii < row + ship_size)
    horizontal = (ii == row) & (jj >= col) & (jj < col + ship_size)
    return jnp.where(axis == 0, vertical, horizontal)


class BattleShip(PopGymEnv):
    def __init__(self, board_size: int = 10, ship_sizes: Sequence[int] = (2, 3, 3, 4)):
        super().__init__()
        self.board_size = int(board_size)
        self.ship_sizes = tuple(int(s) for s in ship_sizes)
        self.max_episode_length = self.board_size**2
        self.needed_hits = sum(self.ship_sizes)

    def place_ships(self, key: jax.Array) -> jax.Array:
        """A board (``[size, size]`` int32, 1 on ship tiles) with the ships placed in order, each
        uniformly among the placements that fit."""
        size = self.board_size
        board = jnp.zeros((size, size), jnp.int32)
        for ship_key, ship_size in zip(jax.random.split(key, len(self.ship_sizes)), self.ship_sizes):
            fits = fitting_placements(board, ship_size).reshape(-1)
            choice = jax.random.categorical(ship_key, jnp.where(fits, 0.0, -jnp.inf))
            axis, rest = choice // (size * size), choice % (size * size)
            mask = ship_mask(size, ship_size, axis, rest // size, rest % size)
            board = jnp.where(mask, 1, board)
        return board

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, BattleShipState]:
        size = self.board_size
        state = BattleShipState(
            board=self.place_ships(key),
            guesses=jnp.zeros((size, size), jnp.int32),
            hits=jnp.zeros((), jnp.int32),
            num_steps=jnp.zeros((), jnp.int32),
        )
        return one_hot(0, 2), state

    def step_env(
        self, key: jax.Array, state: BattleShipState, action: Any, params: PopGymParams
    ) -> tuple[jax.Array, BattleShipState, jax.Array, jax.Array, dict]:
        size = self.board_size
        action = jnp.asarray(action, jnp.int32).reshape(())
        r, c = action // size, action % size
        hit = (state.board[r, c] == 1) & (state.guesses[r, c] == 0)
        hits = state.hits + hit.astype(jnp.int32)
        reward = jnp.where(
            hit, 1.0 / self.needed_hits, -1.0 / (self.max_episode_length - self.needed_hits)
        ).astype(jnp.float32)
        new_state = BattleShipState(
            board=state.board,
            guesses=state.guesses.at[r, c].set(1),
            hits=hits,
            num_steps=state.num_steps + 1,
        )
        terminated = hits == self.needed_hits
        return one_hot(hit, 2), new_state, reward, terminated, {}

    def is_truncated(self, state: BattleShipState, params: PopGymParams) -> jax.Array:
        return state.num_steps >= self.max_episode_length

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.board_size**2)

    @property
    def num_actions(self) -> int:
        return self.board_size**2


VARIANTS = {
    "BattleShipEasy": lambda: BattleShip(board_size=8),
    "BattleShipMedium": lambda: BattleShip(board_size=10),
    "BattleShipHard": lambda: BattleShip(board_size=12),
}
