"""ALECH: Adaptive Label correlation based asymmEtric Cross-modal Hashing (Li, Zhang, Jia, Gao, Chen,
IEEE TKDE 35(2): 1185-1199, 2023). The baseline CDHTK's abstract reports its gains against.

Supervised, two steps. Notation (rows are the n training items, r = bits): L (n, c) labels, G the
labels scaled to unit rows, S = 2 G G^T - 1 the pairwise label similarity in [-1, 1] (never formed:
every product with it is G (G^T M) - 1 (1^T M)).

Step 1, hash codes, alternating over P, W, B, V:

    min ||L P^T - V W^T||^2 + ||L - L P^T||^2 + delta ||B - V||^2 + theta ||r S - B V^T||^2
        + eta (||P||^2 + ||W||^2)      s.t.  V^T V = n I, 1^T V = 0, B in {-1, +1}^(n x r)

  P (c, c) is the adaptive label correlation (labels mapped to correlated labels, L P^T ~ L), the
  latent features V predict the correlated labels through W, and the asymmetric term ties the
  real-valued V to the discrete codes B through the similarity. Closed forms: P and W are ridge
  solutions; B = sign(delta V + theta r S V); V maximises tr(Z^T V) over the constraint set with
  Z = L P^T W + delta B + theta r S B (the centred orthogonal Procrustes step; as in the authors'
  demo, the ||V W^T||^2 part is left out of the V-step).

Step 2, hash functions per modality, from centred (kernel) features X:

    min lambda ||X F - B||^2 + ||X F B^T - r S||^2 -> F = (X^T X)^-1 (r X^T S B + lambda X^T B) (B^T B + lambda I)^-1

  codes are sign(X F): the function fits the codes AND the label similarity (the paper's
  "leverages both hash codes and semantic labels").

Features: RBF kernel against ``anchors`` training items per modality, as the authors' demo does.
See docs/methods/alech.md for the source of these formulas and the choices made here.
"""

from __future__ import annotations

import numpy as np

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.linear import LinearHashMethod, center, normalised_labels, regularised_cov
from cmhash.methods.registry import register


def similarity_times(g: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``S @ m`` for ``S = 2 g g^T - 1`` without forming the n x n matrix."""
    return 2.0 * g @ (g.T @ m) - m.sum(axis=0, keepdims=True)


def centred_procrustes(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``argmax_V tr(z^T V)`` s.t. ``V^T V = n I`` and ``1^T V = 0`` (n x r).

    SVD of the column-centred z; directions where z has no energy are filled with random
    orthonormal columns orthogonal to the constant vector and to the kept ones.
    """
    n, r = z.shape
    zc = z - z.mean(axis=0)
    u, s, qt = np.linalg.svd(zc, full_matrices=False)
    keep = s > 1e-8 * max(s.max(), 1e-300)
    if not keep.all():
        basis = np.hstack([np.ones((n, 1)) / np.sqrt(n), u[:, keep]])
        fill = rng.standard_normal((n, int((~keep).sum())))
        fill -= basis @ (basis.T @ fill)
        u[:, ~keep] = np.linalg.qr(fill)[0]
    return np.sqrt(n) * u @ qt


@register
class ALECH(LinearHashMethod):
    name = "alech"
    supervised = True

    def _fit(self, train: CrossModalDataset) -> None:
        c = self.config
        rng = np.random.default_rng(self.seed)
        feats = self._fit_features(train)
        x, mean_x = center(feats["image"])
        y, mean_y = center(feats["text"])
        codes = self.train_codes(np.asarray(train.labels, np.float64), y, rng)
        g = normalised_labels(train.labels)
        self._set_projections({"image": mean_x, "text": mean_y},
                              {"image": self.hash_function(x, codes, g), "text": self.hash_function(y, codes, g)})

    def train_codes(self, labels: np.ndarray, init_features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Step 1: the discrete training codes B (n, r) in {-1, +1}."""
        c, r = self.config, self.bits
        delta, theta, eta = c["delta"], c["theta"], c["eta"]
        g = normalised_labels(labels)
        n, k = labels.shape
        # V starts from the top-r principal directions of the (centred, kernel) text features, as in the demo.
        _, _, vt = np.linalg.svd(init_features[rng.choice(n, min(n, c["init_sample"]), replace=False)],
                                 full_matrices=False)
        proj = np.zeros((init_features.shape[1], r))
        proj[:, :min(r, len(vt))] = vt[:r].T
        v = centred_procrustes(init_features @ proj, rng)
        b = np.where(v >= 0, 1.0, -1.0)
        p = np.eye(k)
        ll = labels.T @ labels
        w = np.linalg.solve(v.T @ v + eta * np.eye(r), v.T @ labels @ p.T).T
        for _ in range(c["n_iter"]):
            b = np.where(delta * v + theta * r * similarity_times(g, v) >= 0, 1.0, -1.0)
            p = np.linalg.solve((2 * ll + eta * np.eye(k)).T, (w @ v.T @ labels + ll).T).T
            w = np.linalg.solve(v.T @ v + eta * np.eye(r), v.T @ labels @ p.T).T
            z = labels @ p.T @ w + delta * b + theta * r * similarity_times(g, b)
            v = centred_procrustes(z, rng)
        return b

    def hash_function(self, x: np.ndarray, codes: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Step 2: F (d, r) fitting ``sign(x F)`` to the codes and ``x F codes^T`` to r S."""
        lam, r, n = self.config["lambda"], self.bits, len(x)
        target = (r * x.T @ similarity_times(g, codes) + lam * x.T @ codes) / n
        left = np.linalg.solve(regularised_cov(x, self.config["reg"]), target)
        return np.linalg.solve((codes.T @ codes + lam * np.eye(r)).T, left.T).T
