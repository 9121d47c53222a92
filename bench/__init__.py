"""Benchmarks, run by hand or in CI, never as timed tests; results in RESULTS.md."""
