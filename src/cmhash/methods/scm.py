"""SCM-Seq: Semantic Correlation Maximization, sequential variant (Zhang & Li, AAAI 2014).

Supervised. The label similarity ``S = 2 Yn Yn^T - 1`` (Yn: labels scaled to unit rows, so
Yn Yn^T is the label cosine) is scaled by the code length c and approximated by the product of
image and text codes, ``sign(X Wx) sign(Y Wy)^T ~ c S``. Bits are learned one at a time: bit t
is the top canonical pair of the residual ``R_t = c S - sum_{s<t} h_s g_s^T`` (a generalised
eigenproblem with the regularised covariances), after which its signed outputs are subtracted.
Neither the n x n similarity nor the residual is ever formed: only ``X^T R_t Y`` (Di x Dt) is
kept, updated by a rank-1 term per bit. The ``-1`` part of S contributes ``X^T 1 1^T Y = 0``
because the features are centred. See docs/methods/scm.md.
"""

from __future__ import annotations

import numpy as np

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.linear import (LinearHashMethod, center, inverse_sqrt, normalised_labels, regularised_cov,
                                   top_singular_pairs)
from cmhash.methods.registry import register


@register
class SCM(LinearHashMethod):
    name = "scm"
    supervised = True

    def _fit(self, train: CrossModalDataset) -> None:
        reg = self.config["reg"]
        feats = self._fit_features(train)
        x, mean_x = center(feats["image"])
        y, mean_y = center(feats["text"])
        n = len(x)
        whiten_x = inverse_sqrt(regularised_cov(x, reg))
        whiten_y = inverse_sqrt(regularised_cov(y, reg))
        yn = normalised_labels(train.labels)
        # whitened X^T (c S) Y / n; residual updates below stay in the whitened space
        residual = whiten_x @ (2.0 * self.bits / n * (x.T @ yn) @ (yn.T @ y)) @ whiten_y
        wx, wy = np.empty((x.shape[1], self.bits)), np.empty((y.shape[1], self.bits))
        for t in range(self.bits):
            u, _, v = top_singular_pairs(residual, 1)
            wx[:, t], wy[:, t] = whiten_x @ u[:, 0], whiten_y @ v[:, 0]
            hx, hy = np.where(x @ wx[:, t] >= 0, 1.0, -1.0), np.where(y @ wy[:, t] >= 0, 1.0, -1.0)
            residual -= np.outer(whiten_x @ (x.T @ hx), whiten_y @ (y.T @ hy)) / n
        self._set_projections({"image": mean_x, "text": mean_y}, {"image": wx, "text": wy})
