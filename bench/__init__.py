"""Benchmarks: scripts that print figures (run them by path, e.g. `python bench/signaling.py`)."""
