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


def packed_words(packed: np.ndarray) -> np.ndarray:
    """Packed bytes (n, nbytes) viewed as (n, ceil(nbytes / 8)) uint64 words, zero-padded.

    The padding bits are 0 on both sides of every pair, so XOR and AND leave them out of a count.
    """
    n, nbytes = packed.shape
    padded = np.zeros((n, max(1, -(-nbytes // 8)) * 8), dtype=np.uint8)
    padded[:, :nbytes] = packed
    return padded.view(np.uint64)


def bit_words(bits: np.ndarray) -> np.ndarray:
    """(n, m) matrix of 0/1 (or booleans, e.g. ``codes > 0`` or multi-hot labels) to uint64 words."""
    return packed_words(np.packbits(np.asarray(bits, dtype=bool), axis=1))


def count_dtype(max_count: int) -> np.dtype:
    """Smallest unsigned integer type holding counts 0..max_count."""
    return np.dtype(np.min_scalar_type(max_count)) if max_count > 0 else np.dtype(np.uint8)


def pairwise_popcount(a_words: np.ndarray, b_words: np.ndarray, op: np.ufunc, max_count: int) -> np.ndarray:
    """``popcount(op(a_i, b_j))`` for every pair (i, j): an (len(a), len(b)) matrix of counts.

    ``op`` is ``np.bitwise_xor`` (Hamming distance) or ``np.bitwise_and`` (shared labels);
    ``max_count`` (the number of bits) picks the smallest output type, so a chunk of pairs costs a
    few bytes each and a stable sort of the counts is numpy's linear-time radix sort.
    """
    if a_words.shape[1] != b_words.shape[1]:
        raise ValueError(f"word counts differ: {a_words.shape[1]} vs {b_words.shape[1]}")
    shape = (len(a_words), len(b_words))
    counts = np.empty(shape, dtype=count_dtype(max_count))
    word = np.empty(shape, dtype=np.uint64)
    for w in range(a_words.shape[1]):
        op(a_words[:, w, None], b_words[None, :, w], out=word)
        if w == 0:
            np.bitwise_count(word, out=counts)
        else:
            counts += np.bitwise_count(word)
    return counts


def hamming(query_packed: np.ndarray, db_packed: np.ndarray) -> np.ndarray:
    """All-pairs Hamming distances (Q, N) between packed code sets (smallest unsigned dtype)."""
    q, d = np.asarray(query_packed, np.uint8), np.asarray(db_packed, np.uint8)
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"code lengths differ: {q.shape[1]} vs {d.shape[1]} bytes")
    return pairwise_popcount(packed_words(q), packed_words(d), np.bitwise_xor, max_count=8 * q.shape[1])


def hamming_from_codes(query_codes: np.ndarray, db_codes: np.ndarray) -> np.ndarray:
    """Hamming distances between ±1 code matrices: (k - <q, d>) / 2, exact in integers."""
    q = np.asarray(query_codes, dtype=np.int32)
    d = np.asarray(db_codes, dtype=np.int32)
    return ((q.shape[1] - q @ d.T) // 2).astype(np.int32)
