"""Linear-algebra pieces shared by the shallow methods (CCA-ITQ, CMFH, SCM, DLFH).

All four end in the same hash function, ``sign((phi(x) - mean) @ W)`` per modality (phi: identity
or RBF features against fixed anchors), so feature map and state handling live once in
:class:`LinearHashMethod`; the solvers they share (regularised
whitening, top canonical pairs, ridge regression, ITQ, cosine-normalised labels) are plain
numpy/scipy functions here.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.methods.base import HashMethod

MODALITIES = ("image", "text")


def center(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copy of ``x`` with column means removed, and those means (kept for encoding)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    return x - mean, mean


def regularised_cov(x: np.ndarray, reg: float) -> np.ndarray:
    """``x.T x / n + reg * mean(diag) * I``: the ridge is relative, so it means the same at any feature scale."""
    c = x.T @ x / len(x)
    scale = float(np.mean(np.diag(c))) or 1.0
    return c + reg * scale * np.eye(len(c))


def inverse_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric ``C^{-1/2}`` of a positive-definite matrix (the whitening transform)."""
    w, v = scipy.linalg.eigh(c)
    if w[0] <= 0:
        raise ValueError(f"covariance is not positive definite (smallest eigenvalue {w[0]:.3g}); raise reg")
    return (v / np.sqrt(w)) @ v.T


def top_singular_pairs(m: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` leading singular triplets (U (p, k), s (k,), V (q, k)) of ``m``, largest first.

    Solved as a symmetric eigenproblem on the smaller Gram matrix, which is cheap when only one
    pair is needed (SCM asks for one per bit); signs are fixed (largest entry of U positive) so
    the result does not depend on the LAPACK build.
    """
    p, q = m.shape
    gram = m @ m.T if p <= q else m.T @ m
    n = len(gram)
    w, vecs = scipy.linalg.eigh(gram, subset_by_index=[n - k, n - 1])
    w, vecs = np.clip(w[::-1], 0.0, None), vecs[:, ::-1]
    s = np.sqrt(w)
    safe = np.where(s > 0, s, 1.0)
    if p <= q:
        u, v = vecs, (m.T @ vecs) / safe
    else:
        v, u = vecs, (m @ vecs) / safe
    flip = np.sign(u[np.abs(u).argmax(axis=0), np.arange(k)])
    flip[flip == 0] = 1.0
    return u * flip, s, v * flip


class Ridge:
    """Ridge regression from fixed inputs ``x``: ``argmin_W ||x W - y||^2 + alpha ||W||^2`` for any ``y``.

    alpha is absolute, as CMFH and DLFH state it. The Cholesky factor is computed once, because
    CMFH re-solves with the same inputs every round.
    """

    def __init__(self, x: np.ndarray, alpha: float):
        self.x = x
        self._factor = scipy.linalg.cho_factor(x.T @ x + alpha * np.eye(x.shape[1]))

    def solve(self, y: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self._factor, self.x.T @ y)


def ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """One-off :class:`Ridge` solve."""
    return Ridge(x, alpha).solve(y)


def random_orthogonal(rows: int, cols: int, rng: np.random.Generator) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (whichever is fewer), Haar-distributed."""
    q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return q if rows >= cols else q.T


def itq_rotation(v: np.ndarray, bits: int, n_iter: int, rng: np.random.Generator) -> np.ndarray:
    """Iterative quantization (Gong & Lazebnik): R minimising ``||sign(vR) - vR||^2``.

    ``v`` is (n, d) with d <= bits. For d == bits R is the usual orthogonal rotation; for d < bits
    R is (d, bits) with orthonormal rows, i.e. ``bits`` hyperplanes through the d-dim space that
    keep its geometry (``||vR|| = ||v||``). Both are the same Procrustes step: R = U W^T from
    the SVD of ``v.T B``.
    """
    d = v.shape[1]
    if d > bits:
        raise ValueError(f"ITQ needs at most bits={bits} input dimensions, got {d}")
    r = random_orthogonal(d, bits, rng)
    for _ in range(n_iter):
        b = np.where(v @ r >= 0, 1.0, -1.0)
        u, _, wt = np.linalg.svd(v.T @ b, full_matrices=False)
        r = u @ wt
    return r


def normalised_labels(labels: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, so ``Y Y^T`` is the label cosine; all-zero rows stay zero."""
    y = np.asarray(labels, dtype=np.float64)
    norm = np.linalg.norm(y, axis=1, keepdims=True)
    return y / np.where(norm > 0, norm, 1.0)


def squared_distances(x: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """``||x_i - a_j||^2`` via one matrix product (far faster than scipy's cdist at 512-d); row i uses x[i] only."""
    d = (x * x).sum(axis=1)[:, None] - 2.0 * x @ anchors.T + (anchors * anchors).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def rbf_features(x: np.ndarray, anchors: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-||x - a||^2 / (2 sigma^2))`` for every anchor a: row i depends on x[i] alone."""
    return np.exp(-squared_distances(np.asarray(x, np.float64), anchors) / (2.0 * sigma**2))


class LinearHashMethod(HashMethod):
    """A method whose hash function is ``sign((phi_m(x) - mean_m) @ W_m)`` for each modality m.

    ``phi_m`` is the identity, or, when the config's ``anchors`` (every subclass's YAML has it)
    is > 0, RBF features against that many training items of the modality (kernel variants such
    as KDLFH; the width is the mean training-to-anchor distance). Subclasses get training features from :meth:`_fit_features`
    and finish with :meth:`_set_projections`; projection and state handling are shared.
    Per-item independence holds by construction: only training-time anchors, widths and means
    enter the encoding.
    """

    def _fit_features(self, train: CrossModalDataset) -> dict[str, np.ndarray]:
        """Per-modality training features after the (optional) anchor map, which this fixes."""
        self._params: dict[str, np.ndarray] = {}
        count = self.config["anchors"]
        if not 0 <= count <= len(train):
            raise ValueError(f"{self.name}: anchors={count} must lie in [0, {len(train)}] (the training items)")
        rng = np.random.default_rng([self.seed, 1])     # own stream: anchors do not shift the solver's draws
        raw = {"image": np.asarray(train.image, np.float64), "text": np.asarray(train.text, np.float64)}
        if count == 0:
            return raw
        for m, x in raw.items():
            anchors = x[rng.choice(len(x), count, replace=False)]
            self._params[f"{m}_anchors"] = anchors
            sigma = np.sqrt(squared_distances(x, anchors)).mean()
            if sigma == 0:
                raise DataError("all training items are identical: no RBF width", field=m)
            self._params[f"{m}_sigma"] = np.array(sigma)
        return {m: self._features(m, x) for m, x in raw.items()}

    def _features(self, modality: str, x: np.ndarray) -> np.ndarray:
        if f"{modality}_anchors" not in self._params:
            return x
        return rbf_features(x, self._params[f"{modality}_anchors"], float(self._params[f"{modality}_sigma"]))

    def _set_projections(self, means: dict[str, np.ndarray], projections: dict[str, np.ndarray]) -> None:
        for m in MODALITIES:
            self._params[f"{m}_mean"] = np.asarray(means[m], dtype=np.float64)
            self._params[f"{m}_proj"] = np.asarray(projections[m], dtype=np.float64)
        self._check_params()

    def _project(self, modality: str, x: np.ndarray) -> np.ndarray:
        return (self._features(modality, x) - self._params[f"{modality}_mean"]) @ self._params[f"{modality}_proj"]

    def get_state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v.copy()) for k, v in self._params.items()}

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        if set(state) != set(self._state_keys()):
            raise DataError(f"{self.name} state must hold {sorted(self._state_keys())}, got {sorted(state)}",
                            field="state")
        self._params = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in state.items()}
        self._check_params()

    def _state_keys(self) -> list[str]:
        parts = ("anchors", "sigma", "mean", "proj") if self.config["anchors"] else ("mean", "proj")
        return [f"{m}_{p}" for m in MODALITIES for p in parts]

    def _check_params(self) -> None:
        """Shapes must agree with the dims, anchors and bits recorded with the model."""
        anchors = self.config["anchors"]
        for axis, m in enumerate(MODALITIES):
            dim = anchors or self.dims[axis]
            expected = {f"{m}_mean": (dim,), f"{m}_proj": (dim, self.bits)}
            if anchors:
                expected |= {f"{m}_anchors": (anchors, self.dims[axis]), f"{m}_sigma": ()}
            for key, shape in expected.items():
                if self._params[key].shape != shape:
                    raise DataError(f"{key} has shape {self._params[key].shape}, expected {shape}",
                                    field=f"state.{key}")
