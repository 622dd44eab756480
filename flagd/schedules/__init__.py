"""Scheduled changes: a flag enabled, disabled or replaced, an experiment started or stopped, at a time."""
