"""Continual learners through the protocol of ``algos/learner.py`` (fine-tune, L2, EWC, online EWC,
replay, task-conditioned hypernetwork, HyperInterval), their registry and the continual metrics."""

from algos.continual.registry import LEARNERS, LearnerOptions, ModelSpec, make_learner

__all__ = ["LEARNERS", "LearnerOptions", "ModelSpec", "make_learner"]
