"""Curricula: who decides which task comes next."""
