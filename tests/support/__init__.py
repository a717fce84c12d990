"""Helpers the tests and the benchmarks share: the project, a signed chain, a firmware build, a fleet, PostgreSQL."""
