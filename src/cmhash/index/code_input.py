"""Argument checks shared by every index backend, so codes and ids mean the same thing everywhere.

Codes come either as ±1 int8 matrices (N, bits) straight from a method, or already packed
(N, bits / 8) uint8 in the bit order of :mod:`cmhash.codes`; both are normalised to packed bytes.
"""

from __future__ import annotations

import numpy as np

from cmhash.codes import pack


def check_bits(bits: int) -> int:
    """Bit lengths must fill whole bytes: FAISS binary indexes and packed codes work in bytes."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or bits <= 0 or bits % 8:
        raise ValueError(f"bits must be a positive multiple of 8, got {bits!r}")
    return int(bits)


def packed_codes(codes: np.ndarray, bits: int, what: str = "codes") -> np.ndarray:
    """±1 int8 (N, bits) or packed uint8 (N, bits/8) codes as C-contiguous packed uint8."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"{what} must be 2-D (items x bits), got shape {codes.shape}")
    if codes.dtype == np.uint8 and codes.shape[1] == bits // 8:
        return np.ascontiguousarray(codes)
    if codes.dtype == np.int8 and codes.shape[1] == bits:
        if not np.all(np.abs(codes) == 1):
            raise ValueError(f"{what}: int8 codes must contain only -1 and +1")
        return pack(codes)
    raise ValueError(
        f"{what}: expected int8 ±1 codes of shape (N, {bits}) or packed uint8 of shape (N, {bits // 8}), "
        f"got {codes.dtype} {codes.shape}"
    )


def int_ids(ids: np.ndarray, what: str = "ids") -> np.ndarray:
    """A 1-D integer array of ids as int64."""
    raw = np.asarray(ids)
    if raw.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {raw.shape}")
    if len(raw) and not np.issubdtype(raw.dtype, np.integer):
        raise ValueError(f"{what} must be integers, got dtype {raw.dtype}")
    return raw.astype(np.int64)


def new_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """``n`` distinct non-negative int64 ids for ``n`` new codes (-1 is reserved for 'no result')."""
    ids = int_ids(ids)
    if len(ids) != n:
        raise ValueError(f"ids must hold one id per code: {len(ids)} ids for {n} codes")
    if n and ids.min() < 0:
        raise ValueError(f"ids must be >= 0 (-1 marks a missing result), got {ids.min()}")
    uniq, counts = np.unique(ids, return_counts=True)
    if len(uniq) != n:
        raise ValueError(f"ids must be unique; id {uniq[counts > 1][0]} is repeated")
    return ids


def positive_int(value: int, what: str) -> int:
    """Counts such as k must be integers >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    return int(value)


def radius_value(radius: int, bits: int) -> int:
    """Hamming radii are integers in [0, bits]; inclusive (distance <= radius)."""
    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or not 0 <= radius <= bits:
        raise ValueError(f"radius must be an integer in [0, {bits}], got {radius!r}")
    return int(radius)
