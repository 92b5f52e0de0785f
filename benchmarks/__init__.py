"""Throughput and quality benchmarks; each module is a script (`python -m benchmarks.NAME`)."""
