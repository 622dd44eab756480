"""API keys: scoped, stored only as hashes, checked in constant time."""
