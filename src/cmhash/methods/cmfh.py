"""CMFH: Collective Matrix Factorization Hashing (Ding, Guo & Zhou, CVPR 2014; TKDE 2016 form).

Unsupervised, as in the paper: labels are not used. Both centred modalities are factorised
with ONE shared latent matrix V (n, bits), ``X_t ~ V U_t``, while linear projections P_t learn
to predict V from each modality's features, ``V ~ X_t P_t``, so a query of either modality maps
into the shared space on its own. All blocks have closed-form updates, applied in turn for
``n_iter`` rounds; the codes are ``sign((x - mean) P_t)``. See docs/methods/cmfh.md.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.linear import LinearHashMethod, Ridge, center, ridge
from cmhash.methods.registry import register


@register
class CMFH(LinearHashMethod):
    name = "cmfh"
    supervised = False

    def _fit(self, train: CrossModalDataset) -> None:
        c = self.config
        lam, mu, gamma = c["lambda"], c["mu"], c["gamma"]
        if not 0.0 < lam < 1.0:
            raise ValueError(f"cmfh: lambda must lie in (0, 1), got {lam}")
        xs, means = {}, {}
        for m, feats in self._fit_features(train).items():
            xs[m], means[m] = center(feats)
        weight = {"image": lam, "text": 1.0 - lam}
        rng = np.random.default_rng(self.seed)
        latent = rng.standard_normal((len(train), self.bits))
        proj = {m: rng.standard_normal((x.shape[1], self.bits)) for m, x in xs.items()}
        eye = np.eye(self.bits)
        predictors = {m: Ridge(x, gamma / mu) for m, x in xs.items()}   # fixed inputs: factor once
        for _ in range(c["n_iter"]):
            # U_t = argmin ||X_t - V U_t||^2 + gamma ||U_t||^2
            basis = {m: ridge(latent, x, gamma) for m, x in xs.items()}
            # V = argmin sum_t w_t (||X_t - V U_t||^2 + mu ||V - X_t P_t||^2) + gamma ||V||^2
            rhs = sum(weight[m] * x @ (basis[m].T + mu * proj[m]) for m, x in xs.items())
            lhs = sum(weight[m] * (basis[m] @ basis[m].T + (mu + gamma) * eye) for m in xs)
            latent = scipy.linalg.solve(lhs, rhs.T, assume_a="pos").T
            # P_t = argmin mu ||V - X_t P_t||^2 + gamma ||P_t||^2
            proj = {m: predictors[m].solve(latent) for m in xs}
        self._set_projections(means, proj)
