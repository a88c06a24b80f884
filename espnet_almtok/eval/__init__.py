"""Evaluation: metrics, scoring, probes, speed, the benchmark."""
