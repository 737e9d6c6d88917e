"""POPGym CountRecall in JAX: say how many cards of the queried kind have been dealt so far.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/count_recall.py``.

Semantics (as the original): two independently shuffled decks, a value deck and a query deck. Each
reset/step deals one card from each and observes ``(value, query)``: the kind (colour, suit or rank,
by variant) of the dealt value card and of the dealt query card. The action at the next step must
equal the number of value cards of the previous query's kind dealt up to and including the previous
observation, for ``+1 / (num_cards - 1)``, else ``-1 / (num_cards - 1)`` (the original's
``error_clamp`` is unused there, so rewards are exactly +-scale). The episode has ``num_cards - 1``
steps and then terminates; it is never truncated. Easy: 1 deck, colours; Medium: 2 decks, suits;
Hard: 4 decks, ranks.

Observation: ``one_hot(value, d)`` followed by ``one_hot(query, d)`` with ``d`` kinds (the original's
``MultiDiscrete([d, d])`` flattened). Action: ``Discrete(max_card_count + 1)`` with
``max_card_count = num_cards / d`` (27, 27, 17), the original's action space (popjaxrl's port used
``Discrete(2)``).

State: ``value_deck`` and ``query_deck`` (the original's ``value_deck.idx`` and ``query_deck.idx``,
card ids in shuffled order; cards are dealt from their end), ``counts`` (value cards dealt per kind,
the original's ``counts``) and ``time`` (steps taken; ``time + 1`` cards dealt from each deck). Build it
from two original decks with :meth:`CountRecall.reset_from_decks`.

Deviations from the original: none in observations, rewards or episode ends. The shuffles are
``jax.random`` instead of numpy's generator, so a seed gives different decks. Stepping past the
episode's end, where the original raises ``DeckEmptyError``, keeps showing the last card dealt
(gymnax's ``step`` resets before that). The original's ``info["counts"]`` and ``get_state`` (for its
observability wrapper) are not provided.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import spaces

from envs.popgym import deck as cards
from envs.popgym.base import PopGymEnv, PopGymParams, one_hot


@struct.dataclass
class CountRecallState:
    value_deck: jax.Array  # (num_cards,) int32 card ids, the original's value_deck.idx
    query_deck: jax.Array  # (num_cards,) int32 card ids, the original's query_deck.idx
    counts: jax.Array  # (num_kinds,) int32 value cards dealt per kind
    time: jax.Array  # int32 steps taken in the episode


class CountRecall(PopGymEnv):
    def __init__(self, num_decks: int = 1, deck_type: str = "colors"):
        self.num_decks = num_decks
        self.deck_type = deck_type
        self.kind_of, self.num_kinds = cards.field(deck_type)
        self.num_cards = cards.num_cards(num_decks)
        self.max_card_count = self.num_cards // self.num_kinds
        self.max_episode_length = self.num_cards - 1
        self.reward_scale = 1.0 / self.max_episode_length

    def _obs(self, state: CountRecallState, k: jax.Array) -> jax.Array:
        value = self.kind_of(cards.dealt(state.value_deck, k))
        query = self.kind_of(cards.dealt(state.query_deck, k))
        return jnp.concatenate([one_hot(value, self.num_kinds), one_hot(query, self.num_kinds)])

    def reset_from_decks(
        self, value_deck: jax.Array, query_deck: jax.Array
    ) -> tuple[jax.Array, CountRecallState]:
        """The first observation and state of an episode dealt from two original ``Deck.idx`` orders."""
        value_deck = jnp.asarray(value_deck, jnp.int32)
        query_deck = jnp.asarray(query_deck, jnp.int32)
        counts = one_hot(self.kind_of(cards.dealt(value_deck, 0)), self.num_kinds).astype(jnp.int32)
        state = CountRecallState(value_deck, query_deck, counts, jnp.asarray(0, jnp.int32))
        return self._obs(state, 0), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, CountRecallState]:
        kv, kq = jax.random.split(key)
        return self.reset_from_decks(
            cards.shuffled_deck(kv, self.num_decks), cards.shuffled_deck(kq, self.num_decks)
        )

    def step_env(self, key, state: CountRecallState, action, params: PopGymParams):
        t = state.time
        prev_query = self.kind_of(cards.dealt(state.query_deck, t))
        prev_count = state.counts[prev_query]
        correct = jnp.asarray(action, jnp.int32) == prev_count
        reward = jnp.where(correct, self.reward_scale, -self.reward_scale).astype(jnp.float32)
        value = self.kind_of(cards.dealt(state.value_deck, t + 1))
        counts = state.counts + one_hot(value, self.num_kinds).astype(jnp.int32)
        state = state.replace(counts=counts, time=t + 1)
        terminated = t + 1 >= self.num_cards - 1  # the value deck is empty after this deal
        return self._obs(state, t + 1), state, reward, terminated, {}

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2 * self.num_kinds,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.max_card_count + 1)


def CountRecallEasy() -> CountRecall:
    return CountRecall(num_decks=1, deck_type="colors")


def CountRecallMedium() -> CountRecall:
    return CountRecall(num_decks=2, deck_type="suits")


def CountRecallHard() -> CountRecall:
    return CountRecall(num_decks=4, deck_type="ranks")


VARIANTS = {
    "CountRecallEasy": CountRecallEasy,
    "CountRecallMedium": CountRecallMedium,
    "CountRecallHard": CountRecallHard,
}
