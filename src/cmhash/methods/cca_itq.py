"""CCA-ITQ: canonical correlation analysis to a shared space, then iterative quantization.

Unsupervised (labels are not used). Both modalities are centred, CCA finds directions in which
paired image and text features correlate most, and ITQ rotates the shared space so that
``sign`` loses as little as possible. CCA yields at most ``d = min(Di, Dt, bits)`` canonical
directions (Wiki text is 10-d); when ``bits > d`` the ITQ matrix is (d, bits) with orthonormal
rows: every bit stays a hyperplane through the SAME shared space, so image and text bits remain
comparable (random projections of each modality's own whitened features would not be). See
docs/methods/cca_itq.md.
"""

from __future__ import annotations

import numpy as np

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.linear import (LinearHashMethod, center, inverse_sqrt, itq_rotation, regularised_cov,
                                   top_singular_pairs)
from cmhash.methods.registry import register


@register
class CCAITQ(LinearHashMethod):
    name = "cca_itq"
    supervised = False

    def _fit(self, train: CrossModalDataset) -> None:
        c = self.config
        feats = self._fit_features(train)
        xi, mean_i = center(feats["image"])
        xt, mean_t = center(feats["text"])
        whiten_i = inverse_sqrt(regularised_cov(xi, c["reg"]))
        whiten_t = inverse_sqrt(regularised_cov(xt, c["reg"]))
        d = min(self.bits, xi.shape[1], xt.shape[1])
        u, corr, v = top_singular_pairs(whiten_i @ (xi.T @ xt / len(xi)) @ whiten_t, d)
        scale = corr ** c["eigen_power"]
        wi, wt = whiten_i @ u * scale, whiten_t @ v * scale
        rotation = itq_rotation(np.vstack([xi @ wi, xt @ wt]), self.bits, c["n_iter"],
                                np.random.default_rng(self.seed))
        self._set_projections({"image": mean_i, "text": mean_t}, {"image": wi @ rotation, "text": wt @ rotation})
