"""Benchmarks behind ``darkpose bench ...``: timings as ratios against a baseline
measured in the same run, never as absolute pass/fail thresholds."""
