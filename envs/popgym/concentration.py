"""POPGym Concentration in JAX: flip face-down cards two at a time and find the matching pairs.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/concentration.py``.

Semantics (as the original): a shuffled deck lies face down, one card per table position; the action
is the position to flip. A turn is two flips. The observation after each flip shows, per position,
the card's kind (colour or rank, by variant) if it is face up (matched earlier) or in play (flipped
this turn, including the card just flipped), else the face-down value ``d`` (the number of kinds).
Rewards, with ``episode_length = ceil(2n - n / (2n - 1))`` for ``n`` cards:

* flipping a position that is already face up: ``-1 / episode_length`` times the number of cards in
  play (1 on a turn's first flip, 2 on its second), and the turn ends;
* the second flip of a turn matching the first (same kind, different position): ``+1 / (n // 2)``,
  both stay face up; otherwise ``-2 / episode_length`` and both go face down again;
* a turn's first flip: 0.

The episode terminates once every card is face up and is truncated at step ``episode_length`` (104
for one deck, 208 for two; both flags can be set on the same step). Easy: 1 deck, colours; Medium: 2
decks, colours; Hard: 1 deck, ranks.

Observation: the original's ``MultiDiscrete([d + 1] * n)`` flattened, i.e. ``n`` one-hots of size
``d + 1`` (positions in order). Action: ``Discrete(n)``.

State: ``deck`` (the original's ``Deck.idx``: the card id at each table position), ``face_up``
(bool per position: the original's ``face_up_idx`` as a mask), ``in_play`` (the position flipped first
this turn, -1 when none: the original's ``in_play_idx``) and ``time`` (the original's ``curr_step``).
Build it from an original deck with :meth:`Concentration.reset_from_deck`.

Deviations from the original: none in observations, rewards or episode ends. The shuffle is
``jax.random`` instead of numpy's generator, so a seed gives a different deck. An action outside
``0 .. n - 1`` is clipped into that range (the original raises ``IndexError``, or wraps a negative
one). The original's ``get_state`` (for its observability wrapper) and ``render`` are not provided.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym import deck as cards
from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class ConcentrationState:
    deck: jax.Array  # (n,) int32 card id at each table position, the original's Deck.idx
    face_up: jax.Array  # (n,) bool, matched positions
    in_play: jax.Array  # int32 position flipped first this turn, -1 if none
    time: jax.Array  # int32 steps taken in the episode (the original's curr_step)


class Concentration(PopGymEnv):
    def __init__(self, num_decks: int = 1, deck_type: str = "ranks"):
        if deck_type not in ("colors", "ranks"):  # suits: 13 of each, an odd number cannot pair up
            raise ValueError(f"invalid deck type {deck_type!r}")
        self.num_decks = num_decks
        self.deck_type = deck_type
        self.kind_of, self.facedown = cards.field(deck_type)
        self.num_cards = n = cards.num_cards(num_decks)
        self.episode_length = math.ceil(2 * n - (n / (2 * n - 1)))
        self.max_episode_length = self.episode_length
        self.success_reward = 1.0 / (n // 2)
        self.failure_reward = -1.0 / self.episode_length

    def _obs(self, deck: jax.Array, shown: jax.Array) -> jax.Array:
        values = jnp.where(shown, self.kind_of(deck), self.facedown)
        return one_hot(values, self.facedown + 1).reshape(-1)

    def reset_from_deck(self, deck: jax.Array) -> tuple[jax.Array, ConcentrationState]:
        """The first observation and state of an episode laid out from ``deck`` (an original ``Deck.idx``)."""
        deck = jnp.asarray(deck, jnp.int32)
        face_up = jnp.zeros((self.num_cards,), bool)
        state = ConcentrationState(deck, face_up, jnp.asarray(-1, jnp.int32), jnp.asarray(0, jnp.int32))
        return self._obs(deck, face_up), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, ConcentrationState]:
        return self.reset_from_deck(cards.shuffled_deck(key, self.num_decks))

    def step_env(self, key, state: ConcentrationState, action, params: PopGymParams):
        n = self.num_cards
        pos = jnp.clip(jnp.asarray(action, jnp.int32), 0, n - 1)
        first = state.in_play
        has_first = first >= 0
        first_pos = jnp.maximum(first, 0)
        positions = jnp.arange(n)
        in_play = (positions == pos) | (has_first & (positions == first))
        obs = self._obs(state.deck, state.face_up | in_play)

        already_up = state.face_up[pos] | (has_first & state.face_up[first_pos])
        num_in_play = 1 + has_first.astype(jnp.int32)
        second = has_first & ~already_up  # second flip of a turn, no face-up card involved
        kinds = self.kind_of(state.deck)
        success = second & (kinds[first_pos] == kinds[pos]) & (first_pos != pos)
        reward = jnp.where(
            already_up,
            self.failure_reward * num_in_play,
            jnp.where(second, jnp.where(success, self.success_reward, 2 * self.failure_reward), 0.0),
        ).astype(jnp.float32)
        face_up = jnp.where(success, state.face_up | in_play, state.face_up)
        terminated = success & jnp.all(face_up)
        turn_over = already_up | second
        state = state.replace(
            face_up=face_up,
            in_play=jnp.where(turn_over, -1, pos).astype(jnp.int32),
            time=state.time + 1,
        )
        return obs, state, reward, terminated, {}

    def is_truncated(self, state: ConcentrationState, params: PopGymParams) -> jax.Array:
        # the original truncates the step taken at curr_step == episode_length - 1
        return state.time >= self.episode_length

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_cards * (self.facedown + 1),), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_cards)


def ConcentrationEasy() -> Concentration:
    return Concentration(num_decks=1, deck_type="colors")


def ConcentrationMedium() -> Concentration:
    return Concentration(num_decks=2, deck_type="colors")


def ConcentrationHard() -> Concentration:
    return Concentration(num_decks=1, deck_type="ranks")


VARIANTS = {
    "ConcentrationEasy": ConcentrationEasy,
    "ConcentrationMedium": ConcentrationMedium,
    "ConcentrationHard": ConcentrationHard,
}
