"""Learners: PPO and, later, continual learners and model-based RL."""
