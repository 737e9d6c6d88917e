"""curriculax tests (a regular package, so that ``tests.*`` is this folder even when an installed
distribution ships a top-level ``tests`` package of its own, as avalanche-lib does)."""
