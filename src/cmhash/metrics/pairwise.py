"""Query-by-database popcount kernels: Hamming distances between codes, shared labels between items.

Both are the same computation on bit matrices packed into uint64 words: a bitwise op (XOR for
codes, AND for multi-hot labels) and a popcount, summed over words. Counts stay in the smallest
unsigned type that holds them (uint8 up to 255 bits), so the stable sort that ranks distances is
numpy's linear-time radix sort, and a chunk of pairs costs a few bytes each.
"""

from __future__ import annotations

import numpy as np


def bit_words(bits: np.ndarray) -> np.ndarray:
    """(n, m) matrix of 0/1 (or booleans) to (n, ceil(m / 64)) uint64 words, zero-padded.

    The padding bits are 0 on both sides of every pair, so XOR and AND leave them out of the count.
    """
    packed = np.packbits(np.asarray(bits, dtype=bool), axis=1)
    n, nbytes = packed.shape
    padded = np.zeros((n, max(1, -(-nbytes // 8)) * 8), dtype=np.uint8)
    padded[:, :nbytes] = packed
    return padded.view(np.uint64)


def count_dtype(max_count: int) -> np.dtype:
    """Smallest unsigned integer type holding counts 0..max_count."""
    return np.dtype(np.min_scalar_type(max_count)) if max_count > 0 else np.dtype(np.uint8)


def pairwise_popcount(a_words: np.ndarray, b_words: np.ndarray, op: np.ufunc, max_count: int) -> np.ndarray:
    """``popcount(op(a_i, b_j))`` for every pair (i, j): an (len(a), len(b)) matrix of counts.

    ``op`` is ``np.bitwise_xor`` (Hamming distance) or ``np.bitwise_and`` (shared labels);
    ``max_count`` (the number of bits) picks the output type.
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
