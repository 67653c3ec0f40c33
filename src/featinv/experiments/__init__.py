"""Experiments built from runs: the seed study, the quality benchmark, the speed benchmark."""
