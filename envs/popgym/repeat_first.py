"""POPGym RepeatFirst in JAX: output the suit of the first card dealt, at every step.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/repeat_first.py``.

Semantics (as the original): reset deals one card and observes its suit. Each step scores the action
(``+1 / (num_cards - 1)`` if it equals the first card's suit, else ``-1 / (num_cards - 1)``), then
deals the next card and observes its suit. The episode has ``num_cards - 1`` steps and then
terminates; it is never truncated. Easy: 1 deck; Medium: 8 decks; Hard: 16 decks.

Observation: one-hot of the suit (``Discrete(4)`` flattened). Action: ``Discrete(4)``, the suit.

State: ``deck`` (the original's ``Deck.idx``, card ids in shuffled order; cards are dealt from its end)
and ``time`` (steps taken; ``time + 1`` cards have been dealt). Build it from an original deck with
:meth:`RepeatFirst.reset_from_deck`.

Deviations from the original: none in observations, rewards or episode ends. The shuffle is
``jax.random`` instead of numpy's generator, so a seed gives a different deck. Stepping past the
episode's end, where the original raises ``DeckEmptyError``, keeps showing the last card dealt
(gymnax's ``step`` resets before that). The original's ``get_state`` (for its observability wrapper)
is not provided.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym import deck as cards
from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class RepeatFirstState:
    deck: jax.Array  # (num_cards,) int32 card ids, the original's Deck.idx
    time: jax.Array  # int32 steps taken in the episode


class RepeatFirst(PopGymEnv):
    def __init__(self, num_decks: int = 1):
        self.num_decks = num_decks
        self.num_cards = cards.num_cards(num_decks)
        self.max_episode_length = self.num_cards - 1
        self.reward_scale = 1.0 / (self.num_cards - 1)

    def reset_from_deck(self, deck: jax.Array) -> tuple[jax.Array, RepeatFirstState]:
        """The first observation and state of an episode dealt from ``deck`` (an original ``Deck.idx``)."""
        deck = jnp.asarray(deck, jnp.int32)
        state = RepeatFirstState(deck=deck, time=jnp.asarray(0, jnp.int32))
        return one_hot(cards.suit_of(cards.dealt(deck, 0)), cards.NUM_SUITS), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, RepeatFirstState]:
        return self.reset_from_deck(cards.shuffled_deck(key, self.num_decks))

    def step_env(self, key, state: RepeatFirstState, action, params: PopGymParams):
        t = state.time
        first = cards.suit_of(cards.dealt(state.deck, 0))
        correct = jnp.asarray(action, jnp.int32) == first
        reward = jnp.where(correct, self.reward_scale, -self.reward_scale).astype(jnp.float32)
        terminated = t + 1 >= self.num_cards - 1  # one card left in the deck before this deal
        obs = one_hot(cards.suit_of(cards.dealt(state.deck, t + 1)), cards.NUM_SUITS)
        return obs, state.replace(time=t + 1), reward, terminated, {}

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (cards.NUM_SUITS,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(cards.NUM_SUITS)


def RepeatFirstEasy() -> RepeatFirst:
    return RepeatFirst(num_decks=1)


def RepeatFirstMedium() -> RepeatFirst:
    return RepeatFirst(num_decks=8)


def RepeatFirstHard() -> RepeatFirst:
    return RepeatFirst(num_decks=16)


VARIANTS = {
    "RepeatFirstEasy": RepeatFirstEasy,
    "RepeatFirstMedium": RepeatFirstMedium,
    "RepeatFirstHard": RepeatFirstHard,
}
