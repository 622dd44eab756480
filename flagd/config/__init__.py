"""The flag configuration: stored definitions, validated writes, and the snapshot each worker serves."""
