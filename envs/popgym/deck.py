"""Playing-card decks shared by the POPGym card games, in JAX.

Mirrors ``popgym/core/deck.py`` of the original POPGym (Morad et al., ICLR 2023; ``proroklab/popgym``
1.0.7) closely enough that a deck of the original can be copied into a JAX state as it is:

* A deck of ``num_decks`` decks has ``num_cards = 52 * num_decks`` cards with ids ``0 .. num_cards-1``.
  Card ``c`` has rank index ``(c % 52) // 4`` (ace, 2, ..., 10, jack, queen, king), suit index
  ``c % 4`` (spades, diamonds, clubs, hearts) and colour index ``c % 2`` (black, red): the original's
  ``Deck.ranks_idx``, ``Deck.suits_idx``, ``Deck.colors_idx`` arrays.
* A shuffled deck is the original's ``Deck.idx``: a permutation of the card ids. The original deals
  from the *end* of ``idx``, one card at a time, so the ``k``-th card dealt (``k = 0`` first) is
  ``deck[num_cards - 1 - k]`` (:func:`dealt`). Games that never deal (Concentration) index the
  permutation by table position instead.

The shuffle itself is ``jax.random.permutation``, not numpy's, so the same seed gives a different
deck than the original; tests copy the original's ``Deck.idx`` into the JAX state instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DECK_SIZE = 52
NUM_RANKS = 13
NUM_SUITS = 4
NUM_COLOURS = 2


def num_cards(num_decks: int) -> int:
    return DECK_SIZE * num_decks


def shuffled_deck(key: jax.Array, num_decks: int) -> jax.Array:
    """A uniformly random order of the ``52 * num_decks`` card ids (the original's ``Deck.idx``), int32."""
    return jax.random.permutation(key, num_cards(num_decks)).astype(jnp.int32)


def rank_of(card: jax.Array) -> jax.Array:
    """Rank index (0 = ace ... 12 = king) of card ids: the original's ``Deck.ranks_idx[card]``."""
    return (jnp.asarray(card, jnp.int32) % DECK_SIZE) // NUM_SUITS


def suit_of(card: jax.Array) -> jax.Array:
    """Suit index (0..3) of card ids: the original's ``Deck.suits_idx[card]``."""
    return jnp.asarray(card, jnp.int32) % NUM_SUITS


def colour_of(card: jax.Array) -> jax.Array:
    """Colour index (0 = black, 1 = red) of card ids: the original's ``Deck.colors_idx[card]``."""
    return jnp.asarray(card, jnp.int32) % NUM_COLOURS


def dealt(deck: jax.Array, k: jax.Array) -> jax.Array:
    """The card id dealt ``k``-th (``k = 0`` first) from ``deck``: the original deals from the end.

    ``k`` is clipped into the deck, so stepping past an episode's end reads a valid card.
    """
    n = deck.shape[-1]
    k = jnp.clip(jnp.asarray(k, jnp.int32), 0, n - 1)
    return deck[n - 1 - k]


FIELDS = {
    "ranks": (rank_of, NUM_RANKS),
    "suits": (suit_of, NUM_SUITS),
    "colors": (colour_of, NUM_COLOURS),
}
"""The original's ``deck_type`` names: the card attribute a game reads and how many values it has."""


def field(deck_type: str):
    """``(index_fn, num_values)`` of a ``deck_type`` of the original (``"colors"``, ``"suits"``, ``"ranks"``)."""
    if deck_type not in FIELDS:
        raise ValueError(f"invalid deck type {deck_type!r}; known: {sorted(FIELDS)}")
    return FIELDS[deck_type]
