"""Benchmarks: scripts that print figures, run from the project root as modules
(`python -m bench.relay`); what they share is in bench/common.py."""
