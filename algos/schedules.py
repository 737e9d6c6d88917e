"""Learning-rate schedules by name, as optax schedules of the *update index* scaling the base rate.

``make_schedule(name, num_updates)(u)`` is the multiplier of ``lr`` at PPO update ``u`` (every minibatch
step of that update uses it). ``linear`` is PureJaxRL's anneal ``1 - u / num_updates`` (the default);
``constant`` keeps ``lr``; ``cosine`` is ``optax.cosine_decay_schedule`` to 0. A new schedule is one
entry of :data:`SCHEDULES`.
"""

from __future__ import annotations

from collections.abc import Callable

import optax

SCHEDULES: dict[str, Callable[[int], optax.Schedule]] = {
    "constant": lambda num_updates: optax.constant_schedule(1.0),
    "linear": lambda num_updates: optax.linear_schedule(1.0, 0.0, num_updates),
    "cosine": lambda num_updates: optax.cosine_decay_schedule(1.0, num_updates),
}


def make_schedule(name: str, num_updates: int) -> optax.Schedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[name](num_updates)
