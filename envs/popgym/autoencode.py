"""POPGym Autoencode in JAX: watch a sequence of cards, then recite their suits in reverse order.

From POPGym (Morad et al., "POPGym: Benchmarking Partially Observable Reinforcement Learning", ICLR
2023), original ``proroklab/popgym`` 1.0.7, ``popgym/envs/autoencode.py``.

Semantics (as the original): the observation is ``(mode, suit)`` with mode 1 = WATCH, 0 = PLAY.
Reset deals one card and observes ``(WATCH, its suit)``. Each of the next ``num_cards - 1`` WATCH
steps deals a card (the action is ignored, reward 0) and observes its suit; the step that deals the
last card already shows mode PLAY. Then ``num_cards`` PLAY steps: the action must equal the suit of
the newest card not yet recited (last dealt first) for ``+1 / num_cards``, else ``-1 / num_cards``;
each PLAY step observes ``(PLAY, 0)`` (the original shows the suit of card id 0, spades). The last
PLAY step terminates, so an episode is ``2 * num_cards - 1`` steps; it is never truncated.
Easy: 1 deck; Medium: 2 decks; Hard: 3 decks.

Observation: ``one_hot(mode, 2)`` followed by ``one_hot(suit, 4)`` (the original's
``Tuple(Discrete(2), Discrete(4))`` flattened; mode first, as in the original). Action:
``Discrete(4)``, the suit.

State: ``deck`` (the original's ``Deck.idx``, card ids in shuffled order; cards are dealt from its end)
and ``time`` (steps taken). Steps ``time < num_cards - 1`` are WATCH steps; PLAY step ``j = time -
(num_cards - 1)`` must answer the suit of ``deck[j]`` (the card dealt ``num_cards - 1 - j``-th). Build
it from an original deck with :meth:`Autoencode.reset_from_deck`.

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

PLAY, WATCH = 0, 1


@struct.dataclass
class AutoencodeState:
    deck: jax.Array  # (num_cards,) int32 card ids, the original's Deck.idx
    time: jax.Array  # int32 steps taken in the episode


def _obs(mode: jax.Array, suit: jax.Array) -> jax.Array:
    return jnp.concatenate([one_hot(mode, 2), one_hot(suit, cards.NUM_SUITS)])


class Autoencode(PopGymEnv):
    def __init__(self, num_decks: int = 1):
        self.num_decks = num_decks
        self.num_cards = cards.num_cards(num_decks)
        self.max_episode_length = 2 * self.num_cards - 1
        self.reward_scale = 1.0 / self.num_cards

    def reset_from_deck(self, deck: jax.Array) -> tuple[jax.Array, AutoencodeState]:
        """The first observation and state of an episode dealt from ``deck`` (an original ``Deck.idx``)."""
        deck = jnp.asarray(deck, jnp.int32)
        state = AutoencodeState(deck=deck, time=jnp.asarray(0, jnp.int32))
        return _obs(jnp.asarray(WATCH), cards.suit_of(cards.dealt(deck, 0))), state

    def reset_env(self, key: jax.Array, params: PopGymParams) -> tuple[jax.Array, AutoencodeState]:
        return self.reset_from_deck(cards.shuffled_deck(key, self.num_decks))

    def mode(self, state: AutoencodeState) -> jax.Array:
        """The original's ``mode`` at ``state``: WATCH while cards are left to deal, then PLAY."""
        return jnp.where(state.time < self.num_cards - 1, WATCH, PLAY)

    def step_env(self, key, state: AutoencodeState, action, params: PopGymParams):
        n, t = self.num_cards, state.time
        watching = t < n - 1
        # WATCH: deal card t + 1; the mode flips to PLAY once the deck is empty
        watch_obs = _obs(
            jnp.where(t + 1 >= n - 1, PLAY, WATCH), cards.suit_of(cards.dealt(state.deck, t + 1))
        )
        # PLAY step j recites the card dealt (n - 1 - j)-th, i.e. deck[j]
        j = jnp.clip(t - (n - 1), 0, n - 1)
        correct = jnp.asarray(action, jnp.int32) == cards.suit_of(state.deck[j])
        play_reward = jnp.where(correct, self.reward_scale, -self.reward_scale)
        obs = jnp.where(watching, watch_obs, _obs(jnp.asarray(PLAY), jnp.asarray(0)))
        reward = jnp.where(watching, 0.0, play_reward).astype(jnp.float32)
        terminated = ~watching & (t - (n - 1) >= n - 1)  # one card left to recite before this step
        return obs, state.replace(time=t + 1), reward, terminated, {}

    def observation_space(self, params: PopGymParams | None = None) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (2 + cards.NUM_SUITS,), jnp.float32)

    def action_space(self, params: PopGymParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(cards.NUM_SUITS)


def AutoencodeEasy() -> Autoencode:
    return Autoencode(num_decks=1)


def AutoencodeMedium() -> Autoencode:
    return Autoencode(num_decks=2)


def AutoencodeHard() -> Autoencode:
    return Autoencode(num_decks=3)


VARIANTS = {
    "AutoencodeEasy": AutoencodeEasy,
    "AutoencodeMedium": AutoencodeMedium,
    "AutoencodeHard": AutoencodeHard,
}
