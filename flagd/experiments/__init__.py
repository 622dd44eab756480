"""Experiments and metrics on top of flags: definitions, layers, and compilation into flagd targeting.

Pure: no I/O. `reading` validates documents into the model, `layers` places experiments in
their layer's traffic, `compile` turns a flag and its running experiment into the flag
definition every flagd-compatible evaluator serves.
"""
