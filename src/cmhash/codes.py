"""Binary codes: real outputs to ±1, packing to bits, Hamming distance by popcount.

Conventions (documented in docs/data-formats.md):
- sign: x >= 0 maps to +1, x < 0 to -1 (so an exact 0 becomes +1, never 0).
- bit: +1 is bit 1, -1 is bit 0.
- pack: code position j goes to byte j // 8, bit 7 - (j % 8) (most significant bit first,
  numpy's ``packbits`` "big" order). A k-bit code takes ceil(k / 8) bytes; unused low bits are 0.
"""

from __future__ import annotations

import numpy as np


def sign(x: np.ndarray) -> np.ndarray:
    """Real values to int8 codes in {-1, +1}; 0 maps to +1."""
    x = np.asarray(x)
    return np.where(x >= 0, 1, -1).astype(np.int8)


def to_bits(codes: np.ndarray) -> np.ndarray:
    """±1 codes (or real outputs) to a uint8 0/1 matrix."""
    return (np.asarray(codes) >= 0).astype(np.uint8)


def pack(codes: np.ndarray) -> np.ndarray:
    """(N, k) ±1 codes to (N, ceil(k/8)) uint8, most significant bit first."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (items x bits), got shape {codes.shape}")
    return np.packbits(to_bits(codes), axis=1, bitorder="big")


def unpack(packed: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of :func:`pack`: (N, ceil(k/8)) uint8 to (N, k) int8 ±1 codes."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.ndim != 2 or packed.shape[1] * 8 < bits:
        raise ValueError(f"packed codes of shape {packed.shape} cannot hold {bits} bits")
    b = np.unpackbits(packed, axis=1, count=bits, bitorder="big")
    return (b.astype(np.int8) * 2 - 1)


def _words(packed: np.ndarray) -> np.ndarray:
    """Packed bytes viewed as uint64 words (zero-padded), so XOR+popcount works 8 bytes at a time."""
    n, nbytes = packed.shape
    width = -(-nbytes // 8) * 8
    if width != nbytes:
        padded = np.zeros((n, width), dtype=np.uint8)
        padded[:, :nbytes] = packed
        packed = padded
    return np.ascontiguousarray(packed).view(np.uint64)


def hamming(query_packed: np.ndarray, db_packed: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances (Q, N) as int32 between packed code sets."""
    q, d = _words(np.asarray(query_packed, np.uint8)), _words(np.asarray(db_packed, np.uint8))
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"code lengths differ: {query_packed.shape[1]} vs {db_packed.shape[1]} bytes")
    out = np.zeros((len(q), len(d)), dtype=np.int32)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, w, None] ^ d[None, :, w])
    return out


def hamming_from_codes(query_codes: np.ndarray, db_codes: np.ndarray) -> np.ndarray:
    """Hamming distances between ±1 code matrices: (k - <q, d>) / 2, exact in integers."""
    q = np.asarray(query_codes, dtype=np.int32)
    d = np.asarray(db_codes, dtype=np.int32)
    return ((q.shape[1] - q @ d.T) // 2).astype(np.int32)
