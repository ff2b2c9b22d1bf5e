"""Benchmarks behind `make bench-*`: each prints a table; timings never live in tests."""
