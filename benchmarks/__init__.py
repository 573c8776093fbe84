"""Benchmarks of the course: generation speed and notebook run times (see docs/benchmarks.md)."""
