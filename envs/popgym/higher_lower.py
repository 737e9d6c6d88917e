"""POPGym HigherLower in JAX: guess whether the next card's rank is higher or lower than the current one.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/higher_lower.py``.

Semantics (as the original): reset deals one card and observes its rank. Each step deals the next
card; action 0 guesses "higher", action 1 "lower". Equal ranks (a push) give 0, a right guess
``+1 / num_cards``, a wrong one ``-1 / num_cards`` (the scale is ``1 / num_cards``, not
``1 / (num_cards - 1)``, as in the original). The observation is the new card's rank. Ranks compare
by index, ace lowest (0) and king highest (12). The episode has ``num_cards - 1`` steps and then
terminates; it is never truncated. Easy: 1 deck; Medium: 2 decks; Hard: 3 decks.

Observation: one-hot of the rank (``Discrete(13)`` flattened). Action: ``Discrete(2)``.

State: ``deck`` (the original's ``Deck.idx``, card ids in shuffled order; cards are dealt from its end)
and ``time`` (steps taken; the current card is dealt card ``time``). Build it from an original deck
with :meth:`HigherLower.reset_from_deck`.

Deviations from the original: none in observations, rewards or episode ends. The shuffle is
``jax.random`` instead of numpy's generator, so a seed gives a different deck. Stepping past the
episode's end, where the original raises ``DeckEmptyError``, keeps showing the last card dealt
(gymnax's ``step`` resets before that). The original's ``get_state`` (rank counts, for its
observability wrapper) and reset ``info["card"]`` are not provided.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym import deck as cards
from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class HigherLowerState:
    deck: jax.Array  # (num_cards,) int32 card ids, the original's Deck.idx
    time: jax.Array  # int32 steps taken in the episode


class HigherLower(PopGymEnv):
    def __init__(self, num_decks: int = 1):
        self.num_decks = num_decks
        self.num_cards = cards.num_cards(num_decks)
        self.max_episode_length = self.num_cards - 1
        self.reward_scale = 1.0 / self.num_cards

    def reset_from_deck(self, deck: jax.Array) -> tuple[jax.Array, HigherLowerState]:
        """The first observation and state of an episode dealt from ``deck`` (an original ``Deck.idx``)."""
        deck = jnp.asarray(deck, jnp.int32)
        state = HigherLowerState(deck=deck, time=jnp.asarray(0, jnp.int32))
        return one_hot(cards.rank_of(cards.dealt(deck, 0)), cards.NUM_RANKS), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, HigherLowerState]:
        return self.reset_from_deck(cards.shuffled_deck(key, self.num_decks))

    def step_env(self, key, state: HigherLowerState, action, params: PopGymParams):
        t = state.time
        curr = cards.rank_of(cards.dealt(state.deck, t))
        nxt = cards.rank_of(cards.dealt(state.deck, t + 1))
        guess_higher = jnp.asarray(action, jnp.int32) == 0
        right = (nxt > curr) == guess_higher
        reward = jnp.where(nxt == curr, 0.0, jnp.where(right, self.reward_scale, -self.reward_scale))
        terminated = t + 1 >= self.num_cards - 1  # at most one card left before this deal
        obs = one_hot(nxt, cards.NUM_RANKS)
        return obs, state.replace(time=t + 1), reward.astype(jnp.float32), terminated, {}

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (cards.NUM_RANKS,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(2)


def HigherLowerEasy() -> HigherLower:
    return HigherLower(num_decks=1)


def HigherLowerMedium() -> HigherLower:
    return HigherLower(num_decks=2)


def HigherLowerHard() -> HigherLower:
    return HigherLower(num_decks=3)


VARIANTS = {
    "HigherLowerEasy": HigherLowerEasy,
    "HigherLowerMedium": HigherLowerMedium,
    "HigherLowerHard": HigherLowerHard,
}
