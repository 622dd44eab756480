"""Pure statistics for experiments: sufficient statistics in, results out; no I/O."""
