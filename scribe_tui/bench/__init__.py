"""Benchmarks: grids of investigations scored against the organisms' answer keys."""
