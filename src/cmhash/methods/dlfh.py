"""DLFH: Discrete Latent Factor Hashing (Jiang & Li, IEEE TIP 2019), stochastic variant.

Supervised. Training codes U (image) and V (text) in {-1, +1}^(n x c) are latent factors of the
cross-modal label similarity (S_ij = 1 when items i and j share a label) under the likelihood
``p(S_ij = 1) = sigmoid(lambda / c * <U_i, V_j>)``. Each round samples m = ``columns_per_bit * c``
items (DLFH's stochastic variant, m = c in the authors' demo: the n x n similarity is never
formed, and a small m keeps the bound's curvature term from freezing the codes at their random
start) and updates U, then V, one bit
column at a time by maximising a quadratic lower bound of the log-likelihood whose maximiser over
{-1, +1} is a sign (minorise-maximise, so each bit step cannot lower the sampled likelihood):

    U[:, k] = sign( lambda/c * (S_sub - sigmoid(Theta)) V_sub[:, k] + m lambda^2 / (4 c^2) U[:, k] ).

Out-of-sample hash functions: ridge regression from each modality's centred features to its
training codes, ``W = (X^T X + gamma I)^{-1} X^T U``; codes are ``sign((phi(x) - mean) W)``.
By default phi is KDLFH's RBF map against ``anchors`` training items (the authors' kernel
variant); ``anchors: 0`` gives plain linear DLFH, which on Wiki's weak features is no better than
CCA-ITQ (docs page). The training items themselves are encoded through W as well (the
paper uses U and V directly for the database; our API encodes every item from its features).
See docs/methods/dlfh.md.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.linear import LinearHashMethod, center, ridge
from cmhash.methods.registry import register


@register
class DLFH(LinearHashMethod):
    name = "dlfh"
    supervised = True

    def _fit(self, train: CrossModalDataset) -> None:
        c = self.config
        rng = np.random.default_rng(self.seed)
        codes_i, codes_t = latent_factor_codes(train.labels, self.bits, c["lambda"], c["n_iter"],
                                               c["columns_per_bit"] * self.bits, rng)
        feats = self._fit_features(train)
        x, mean_x = center(feats["image"])
        y, mean_y = center(feats["text"])
        self._set_projections({"image": mean_x, "text": mean_y},
                              {"image": ridge(x, codes_i, c["gamma"]), "text": ridge(y, codes_t, c["gamma"])})


def latent_factor_codes(labels: np.ndarray, bits: int, lam: float, n_iter: int, sample_columns: int,
                        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """DLFH's discrete training codes (U, V), each (n, bits) float32 in {-1, +1}."""
    n = len(labels)
    m = min(sample_columns, n)
    y = np.asarray(labels, dtype=np.float32)
    u = np.where(rng.standard_normal((n, bits)) < 0, -1.0, 1.0).astype(np.float32)
    v = np.where(rng.standard_normal((n, bits)) < 0, -1.0, 1.0).astype(np.float32)
    for _ in range(n_iter):
        cols = rng.choice(n, m, replace=False)
        sim = (y @ y[cols].T > 0).astype(np.float32)      # S[:, cols]; S is symmetric, so it serves both sweeps
        update_bits(u, v[cols], sim, lam)
        update_bits(v, u[cols], sim, lam)
    return u, v


def update_bits(codes: np.ndarray, partner: np.ndarray, sim: np.ndarray, lam: float) -> None:
    """In place: each column of ``codes`` (n, c) set to the sign-maximiser of the likelihood's lower bound.

    ``partner`` (m, c) are the other modality's codes of the sampled items, ``sim`` (n, m) their
    similarity. Theta = lambda/c * codes partner^T and its sigmoid are kept current by
    correcting only the rows whose bit flipped, which is exact and makes late rounds cheap.
    """
    c, m = codes.shape[1], len(partner)
    scale = lam / c
    curvature = m * scale**2 / 4.0
    theta = scale * codes @ partner.T
    prob = expit(theta)
    sim_partner = sim @ partner                                   # S_sub V_sub, all bits at once
    for k in range(c):
        grad = scale * (sim_partner[:, k] - prob @ partner[:, k])
        new = np.where(grad + curvature * codes[:, k] >= 0, 1.0, -1.0).astype(np.float32)
        flipped = np.flatnonzero(new != codes[:, k])
        if flipped.size:
            theta[flipped] += scale * np.outer(new[flipped] - codes[flipped, k], partner[:, k])
            prob[flipped] = expit(theta[flipped])
            codes[flipped, k] = new[flipped]
