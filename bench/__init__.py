"""Benchmarks: `make bench` runs them all; each prints `name value unit` lines."""
