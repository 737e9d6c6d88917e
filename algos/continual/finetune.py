"""Fine-tuning: keep training the same network on each new task, with no protection of earlier tasks
(the lower bound of every continual-learning comparison, e.g. "finetune" in Continual World and
HyperCRL ``hypercrl/lqr_exp.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from algos.learner import Learner, null_learner


def finetune(apply: Callable[[Any, Any], Any] | None = None) -> Learner:
    """The null learner under its continual-learning name; ``apply(params, x)`` serves ``predict``."""
    return null_learner(apply)._replace(name="finetune")
