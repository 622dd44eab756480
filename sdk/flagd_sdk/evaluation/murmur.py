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


def _pure_str(text: str) -> int:
    return murmur3_32_pure(text.encode("utf-8"))


def _load() -> Callable[[str], int]:
    try:
        import mmh3
    except ImportError:
        return _pure_str

    def fast(text: str) -> int:
        return mmh3.hash(text, 0, False)

    return fast


murmur3_32: Callable[[str], int] = _load()
"""Unsigned MurmurHash3_x86_32 (seed 0) of the UTF-8 bytes of `text`."""
