"""Benchmarks (figures, not assertions); results go to docs/BENCHMARKS.md."""
