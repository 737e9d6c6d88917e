"""Continual learners by name, built from what a trainer knows about its model.

A :class:`ModelSpec` collects what the learners need (the model's ``apply``, its per-sample
log-likelihood for the Fisher, its parameters' shapes for the hypernetworks, a buffer item for
replay, the stream length); :class:`LearnerOptions` holds every learner's settings, so that an
experiment's config inherits them and the CLI shows them. A new learner is one module plus one line
in :data:`LEARNERS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from algos.continual.ewc import FISHERS, default_fisher_data, ewc
from algos.continual.finetune import finetune
from algos.continual.hnet import hnet_learner
from algos.continual.hyperinterval import MODES, hyperinterval
from algos.continual.l2 import l2
from algos.continual.online_ewc import online_ewc
from algos.continual.replay import default_to_items, replay
from algos.learner import Learner
from memory.buffers import KINDS


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the learners need to know about the model and the stream (not part of any config)."""

    apply: Callable[[Any, Any], Any]  # (params, x) -> output
    params_example: Any  # the model's parameters (or their shapes)
    max_tasks: int
    log_probs: Callable[[Any, Any], Any] | None = None  # (params, sample) -> [K] log-probabilities
    fisher_data: Callable[[Any], tuple] = default_fisher_data
    value_fn: Callable[[Any, Any], Any] | None = None  # an extra Gaussian output's Fisher (a critic)
    example_item: Any = None  # one replay-buffer item
    to_items: Callable[[Any], tuple] = default_to_items
    steps_per_task: int = 1


@dataclasses.dataclass(frozen=True)
class LearnerOptions:
    """Settings of every learner (each reads its own)."""

    l2_strength: float = 0.01
    """L2: lambda"""
    ewc_strength: float = 100.0
    """EWC and online EWC: lambda"""
    ewc_fisher: str = "exact"
    """EWC Fisher: exact, sampled or empirical"""
    ewc_gamma: float = 1.0
    """online EWC: decay of the running Fisher"""
    fisher_batch: int = 16
    """per-sample Fisher: samples per vectorised batch"""
    fisher_samples: int = 200
    """EWC: at most this many of the task's examples estimate the Fisher (0: all handed over)"""
    replay_capacity: int = 1000
    replay_batch: int = 64
    replay_kind: str = "reservoir"
    """reservoir, fifo or balanced"""
    hnet_beta: float = 0.01
    hnet_emb_dim: int = 24
    hnet_hidden: tuple[int, ...] = (25, 25)
    hnet_chunk_size: int = 0
    """0: no chunking (one output per target weight); > 0: chunks of this size with chunk embeddings"""
    hnet_chunk_emb_dim: int = 8
    hnet_lookahead_lr: float = 0.0
    """0: no lookahead"""
    hnet_reg_tasks: int = 0
    """earlier tasks regularised per step, drawn uniformly (0: all of them)"""
    hi_beta: float = 0.01
    hi_eps: float = 5.0
    hi_mode: str = "nested"
    """nested (forced: the intersection is never empty) or free. Nested box centres lie within eps/(2M) of
    the origin and a task's embedding moves about lr per step: with a few hundred steps per task the
    tasks' boxes barely separate and nested forgets (benchmarks/RESULTS.md); free does not"""
    hi_kappa_min: float = 0.5
    hi_custom_init: bool = True
    """nested HyperInterval: a new task's embedding starts at the previous task's"""
    hi_output_scale: bool = False
    """HyperInterval: scale the generated weights by 1/sqrt(fan_in) (the hnet learner always does)"""

    def validate(self) -> None:
        if self.ewc_fisher not in FISHERS:
            raise ValueError(f"--ewc-fisher {self.ewc_fisher!r} unknown; known: {list(FISHERS)}")
        if self.replay_kind not in KINDS:
            raise ValueError(f"--replay-kind {self.replay_kind!r} unknown; known: {list(KINDS)}")
        if self.hi_mode not in MODES:
            raise ValueError(f"--hi-mode {self.hi_mode!r} unknown; known: {list(MODES)}")
        for name in ("l2_strength", "ewc_strength", "hnet_beta", "hi_beta", "hi_eps", "hnet_lookahead_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.ewc_gamma <= 1.0:
            raise ValueError(f"--ewc-gamma must lie in [0, 1], got {self.ewc_gamma}")
        if self.replay_capacity < 1 or self.replay_batch < 1 or self.fisher_batch < 1:
            raise ValueError("replay capacity and batch, and the Fisher batch, must be >= 1")


def _need(spec: ModelSpec, field: str, learner: str) -> Any:
    value = getattr(spec, field)
    if value is None:
        raise ValueError(f"learner {learner!r} needs ModelSpec.{field}")
    return value


def _chunk(o: LearnerOptions) -> int | None:
    return o.hnet_chunk_size or None


LEARNERS: dict[str, Callable[[ModelSpec, LearnerOptions], Learner]] = {
    "finetune": lambda m, o: finetune(m.apply),
    "l2": lambda m, o: l2(m.apply, o.l2_strength),
    "ewc": lambda m, o: ewc(m.apply, _need(m, "log_probs", "ewc"), o.ewc_strength, o.ewc_fisher,
                            m.fisher_data, m.value_fn, o.fisher_batch, o.fisher_samples or None),
    "online_ewc": lambda m, o: online_ewc(m.apply, _need(m, "log_probs", "online_ewc"), o.ewc_strength,
                                          o.ewc_gamma, o.ewc_fisher, m.fisher_data, m.value_fn, o.fisher_batch,
                                          o.fisher_samples or None),
    "replay": lambda m, o: replay(m.apply, _need(m, "example_item", "replay"), o.replay_capacity,
                                  o.replay_batch, o.replay_kind, m.max_tasks, m.to_items),
    "hnet": lambda m, o: hnet_learner(m.apply, m.params_example, m.max_tasks, o.hnet_beta, o.hnet_emb_dim,
                                      o.hnet_hidden, _chunk(o), o.hnet_chunk_emb_dim, "elu", o.hnet_lookahead_lr,
                                      o.hnet_reg_tasks),
    "hyperinterval": lambda m, o: hyperinterval(m.apply, m.params_example, m.max_tasks, m.steps_per_task,
                                                o.hi_beta, o.hi_eps, o.hi_mode, o.hnet_emb_dim, o.hnet_hidden,
                                                _chunk(o), o.hnet_chunk_emb_dim, o.hi_kappa_min,
                                                reg_tasks=o.hnet_reg_tasks, custom_init=o.hi_custom_init,
                                                output_scale=o.hi_output_scale),
}


def make_learner(name: str, model: ModelSpec, options: LearnerOptions = LearnerOptions()) -> Learner:
    """The learner ``name`` (one of :data:`LEARNERS`) for ``model``."""
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known: {list(LEARNERS)}")
    options.validate()
    return LEARNERS[name](model, options)
