"""Codes: sign convention, bit order, pack round trip, Hamming by popcount vs a plain count."""

import numpy as np
import pytest

from cmhash.codes import bit_words, hamming, hamming_from_codes, pack, sign, unpack


def test_sign_maps_zero_to_plus_one():
    assert sign(np.array([[-0.5, 0.0, 2.0, -0.0]])).tolist() == [[-1, 1, 1, 1]]
    assert sign(np.zeros((2, 3))).dtype == np.int8


def test_bit_order_is_most_significant_first():
    codes = -np.ones((1, 16), np.int8)
    codes[0, 0] = 1   # position 0 -> byte 0, bit 7
    codes[0, 9] = 1   # position 9 -> byte 1, bit 6
    assert pack(codes).tolist() == [[0b1000_0000, 0b0100_0000]]


@pytest.mark.parametrize("bits", [1, 7, 8, 13, 64, 100, 128])
def test_pack_unpack_round_trip(bits):
    codes = sign(np.random.default_rng(bits).normal(size=(9, bits)))
    packed = pack(codes)
    assert packed.shape == (9, -(-bits // 8))
    assert np.array_equal(unpack(packed, bits), codes)


@pytest.mark.parametrize("bits", [8, 13, 64, 72, 256])
def test_hamming_equals_plain_count(bits):
    rng = np.random.default_rng(bits)
    q, d = sign(rng.normal(size=(11, bits))), sign(rng.normal(size=(17, bits)))
    expected = np.array([[int((a != b).sum()) for b in d] for a in q])
    assert np.array_equal(hamming(pack(q), pack(d)), expected)
    assert np.array_equal(hamming_from_codes(q, d), expected)


def test_a_fully_different_byte_counts_eight_not_saturated():
    """The byte-table pitfall: a byte whose 8 bits all differ must count 8; all 256 bits differ = 256."""
    a = np.ones((1, 256), np.int8)
    assert hamming(pack(a), pack(-a)).item() == 256
    assert hamming(pack(a[:, :8]), pack(-a[:, :8])).item() == 8


def test_bit_words_pad_with_zeros():
    words = bit_words(np.ones((2, 70), bool))
    assert words.shape == (2, 2) and words.dtype == np.uint64
    assert int(np.bitwise_count(words).sum()) == 140


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="differ"):
        hamming(np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8))
    with pytest.raises(ValueError, match="cannot hold"):
        unpack(np.zeros((1, 1), np.uint8), 9)
