"""POPGym RepeatPrevious in JAX: output the suit of the card dealt ``k - 1`` steps before the newest one.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/repeat_previous.py``.

Semantics (as the original): reset deals one card and observes its suit. Each step first scores the
action, then deals the next card and observes its suit. Once ``k`` cards have been dealt, the action
at a step must equal the suit of the ``k``-th newest dealt card (``hand[-k]``; with ``k = 1`` the card
last observed) for ``+1 / (num_cards - k)``, else ``-1 / (num_cards - k)``; before that the reward is 0.
The episode has ``num_cards - 1`` steps and then terminates; it is never truncated.
Easy: 1 deck, k = 4; Medium: 2 decks, k = 32; Hard: 3 decks, k = 64.

Observation: one-hot of the suit (``Discrete(4)`` flattened). Action: ``Discrete(4)``, the suit.

State: ``deck`` (the original's ``Deck.idx``, card ids in shuffled order; cards are dealt from its end)
and ``time`` (steps taken; ``time + 1`` cards have been dealt). Build it from an original deck with
:meth:`RepeatPrevious.reset_from_deck`.

Deviations from the original: none in observations, rewards or episode ends. The shuffle is
``jax.random`` instead of numpy's generator, so a seed gives a different deck. Stepping past the
episode's end, where the original raises ``DeckEmptyError``, keeps showing the last card dealt
(gymnax's ``step`` resets before that). The original's ``get_state`` (the last ``k`` suits and
per-suit counts, for its observability wrapper) is not provided.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym import deck as cards
from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class RepeatPreviousState:
    deck: jax.Array  # (num_cards,) int32 card ids, the original's Deck.idx
    time: jax.Array  # int32 steps taken in the episode


class RepeatPrevious(PopGymEnv):
    def __init__(self, num_decks: int = 1, k: int = 4):
        self.num_decks = num_decks
        self.num_cards = cards.num_cards(num_decks)
        if not self.num_cards > k:
            raise ValueError("k must be smaller than the number of cards")
        self.k = k
        self.max_episode_length = self.num_cards - 1
        self.reward_scale = 1.0 / (self.num_cards - k)

    def reset_from_deck(self, deck: jax.Array) -> tuple[jax.Array, RepeatPreviousState]:
        """The first observation and state of an episode dealt from ``deck`` (an original ``Deck.idx``)."""
        deck = jnp.asarray(deck, jnp.int32)
        state = RepeatPreviousState(deck=deck, time=jnp.asarray(0, jnp.int32))
        return one_hot(cards.suit_of(cards.dealt(deck, 0)), cards.NUM_SUITS), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, RepeatPreviousState]:
        return self.reset_from_deck(cards.shuffled_deck(key, self.num_decks))

    def step_env(self, key, state: RepeatPreviousState, action, params: PopGymParams):
        t = state.time
        # hand size before dealing is t + 1; hand[-k] is dealt card t + 1 - k
        scored = t + 1 >= self.k
        target = cards.suit_of(cards.dealt(state.deck, t + 1 - self.k))
        correct = jnp.asarray(action, jnp.int32) == target
        reward = jnp.where(scored, jnp.where(correct, self.reward_scale, -self.reward_scale), 0.0)
        terminated = t + 1 >= self.num_cards - 1  # one card left in the deck before this deal
        obs = one_hot(cards.suit_of(cards.dealt(state.deck, t + 1)), cards.NUM_SUITS)
        state = state.replace(time=t + 1)
        return obs, state, reward.astype(jnp.float32), terminated, {}

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (cards.NUM_SUITS,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(cards.NUM_SUITS)


def RepeatPreviousEasy() -> RepeatPrevious:
    return RepeatPrevious(num_decks=1, k=4)


def RepeatPreviousMedium() -> RepeatPrevious:
    return RepeatPrevious(num_decks=2, k=32)


def RepeatPreviousHard() -> RepeatPrevious:
    return RepeatPrevious(num_decks=3, k=64)


VARIANTS = {
    "RepeatPreviousEasy": RepeatPreviousEasy,
    "RepeatPreviousMedium": RepeatPreviousMedium,
    "RepeatPreviousHard": RepeatPreviousHard,
}
