"""MurmurHash3 x86_32, the hash behind fractional bucketing.

`mmh3` (a C extension) is used when it is installed; otherwise a pure-Python
implementation of the same function (Appleby's reference MurmurHash3_x86_32) gives
identical results, so bucketing never depends on which one ran.
"""

from __future__ import annotations

from collections.abc import Callable

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def murmur3_32_pure(data: bytes, seed: int = 0) -> int:
    """Unsigned 32-bit MurmurHash3_x86_32 of `data`."""
    h = seed & _MASK
    length = len(data)
    tail_start = length - (length % 4)
    for i in range(0, tail_start, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _C1) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * _C2) & _MASK
        h ^= k
        h = ((h << 13) | (h >> 19)) & _MASK
        h = (h * 5 + 0xE6546B64) & _MASK
    k = 0
    tail = length & 3
    if tail == 3:
        k ^= data[tail_start + 2] << 16
    if tail >= 2:
        k ^= data[tail_start + 1] << 8
    if tail >= 1:
        k ^= data[tail_start]
        k = (k * _C1) & _MASK
        k = ((k << 15) | (k >> 17)) & _MASK
        k = (k * _C2) & _MASK
        h ^= k
    h ^= length
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def _pure_hash(text: str, seed: int = 0, signed: bool = False) -> int:
    value = murmur3_32_pure(text.encode("utf-8"), seed)
    return value - (1 << 32) if signed and value >= 1 << 31 else value


def _load() -> Callable[[str, int, bool], int]:
    try:
        import mmh3
    except ImportError:
        return _pure_hash
    return mmh3.hash


hash_text: Callable[[str, int, bool], int] = _load()
"""`mmh3.hash(text, seed, signed)`, or the pure-Python equivalent; called positionally on hot paths."""


def murmur3_32(text: str) -> int:
    """Unsigned MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes of `text`."""
    return hash_text(text, 0, False)
