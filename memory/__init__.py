"""Sequence cores and rehearsal buffers (coming with the memory issue)."""
