"""DHSL — Deep Hashing Similarity Learning for cross-modal retrieval (Ma et al., IEEE Access 2024).

Per modality an MLP gives a low-dimensional learned feature; a feature selector keeps dimensions
of the ORIGINAL feature (Fisher-score candidates chosen once from the training set, then sparse
learned gates under an L1 penalty) and concatenates them with the learned feature before the hash
layer, so detail the MLP would lose still reaches the code. A relation network scores pairs of codes — image–text (inter-modal) and
image–image, text–text (intra-modal) — and is trained toward the label similarity; it shapes the
codes during training only, retrieval is by Hamming distance of per-item codes. Losses: relation
(inter, intra), weighted cosine triplet (cross-modal), selector sparsity, quantization. Items
without labels are left out of every label-driven term. See docs/methods/dhsl.md.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods import losses
from cmhash.methods.blocks import HashHead, mlp
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register


def fisher_scores(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Label-discriminativeness of each feature dimension (D,): one-vs-rest Fisher score, mean over classes.

    For class c and dimension d: (mean_pos - mean_neg)^2 / (var_pos + var_neg). Classes that are on
    for every item or for none separate nothing and are left out; with no such class all scores are 0.
    """
    x = np.asarray(x, dtype=np.float64)
    pos = np.asarray(labels, dtype=np.float64)
    n_pos = pos.sum(axis=0)
    n_neg = len(x) - n_pos
    usable = (n_pos > 0) & (n_neg > 0)
    if not usable.any():
        return np.zeros(x.shape[1])
    pos, n_pos, n_neg = pos[:, usable], n_pos[usable, None], n_neg[usable, None]
    s1_pos, s2_pos = pos.T @ x, pos.T @ (x * x)
    s1_neg, s2_neg = x.sum(axis=0) - s1_pos, (x * x).sum(axis=0) - s2_pos
    m_pos, m_neg = s1_pos / n_pos, s1_neg / n_neg
    var = np.maximum(s2_pos / n_pos - m_pos**2, 0) + np.maximum(s2_neg / n_neg - m_neg**2, 0)
    gap = (m_pos - m_neg) ** 2
    return np.where(gap > 0, gap / np.maximum(var, 1e-12), 0.0).mean(axis=0)


def select_dimensions(x: np.ndarray, labels: np.ndarray, m: int) -> np.ndarray:
    """Indices (ascending) of the ``m`` dimensions with the highest Fisher score; ties go to higher variance."""
    order = np.lexsort((-np.var(x, axis=0), -fisher_scores(x, labels)))
    return np.sort(order[:m])


class FeatureSelector(nn.Module):
    """Keeps ``m`` dimensions of the original feature, each times a learned gate trained to be sparse.

    Candidates are the ``m`` dimensions with the highest Fisher score on the training set (buffers
    set once by ``set_selection``, saved with the model); the engine has already standardised the
    input, so they enter on one scale. The gates start at 1 and an L1 penalty on them (loss term
    ``selector_sparsity``) drives the gates of dimensions the codes do not need to 0: the learned
    selection is the set of gates that stay away from 0 (:meth:`kept`).
    """

    def __init__(self, m: int):
        super().__init__()
        self.register_buffer("index", torch.arange(m))
        self.gate = nn.Parameter(torch.ones(m))

    def set_selection(self, x: np.ndarray, labels: np.ndarray) -> None:
        """Choose the candidate dimensions from training features ``x`` and their labels."""
        self.index.copy_(torch.from_numpy(select_dimensions(x, labels, len(self.index))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.index] * self.gate

    def sparsity(self) -> torch.Tensor:
        """Mean absolute gate (the L1 penalty, per dimension)."""
        return self.gate.abs().mean()

    def kept(self, tol: float = 0.05) -> int:
        """How many candidate dimensions the learned gates keep (|gate| above ``tol`` of the largest)."""
        g = self.gate.detach().abs()
        return int((g > tol * g.max().clamp_min(1e-12)).sum())


class DHSLBranch(nn.Module):
    """One modality: MLP feature (+ selected original dimensions) -> tanh hash layer."""

    def __init__(self, in_dim: int, bits: int, hidden: int, feature_dim: int, selected: int,
                 dropout: float, layers: int):
        super().__init__()
        self.encoder = nn.Sequential(mlp(in_dim, hidden, feature_dim, dropout, layers), nn.GELU())
        self.selector = FeatureSelector(selected) if selected else None
        self.hash = HashHead(feature_dim + selected, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.encoder(x)
        if self.selector is not None:
            f = torch.cat([f, self.selector(x)], dim=1)
        return self.hash(f)


class RelationNetwork(nn.Module):
    """Relation score in (0, 1) for every pair (i, j) of two code batches, from their agreement h_i * h_j.

    The elementwise product is the bitwise agreement pattern of the two codes (its sum is
    k - 2 Hamming for ±1 codes), so the network reads similarity off what Hamming ranking sees
    while learning which bits matter; it is symmetric in i and j. ``monotone``: both layers have
    non-negative weights (softplus of free parameters) and a monotone activation, so the score can
    only rise when one more bit agrees: the relation network then ranks pairs the way Hamming
    distance does, and what it teaches the codes carries over to Hamming retrieval. Unconstrained,
    it can score pairs by patterns Hamming ranking cannot see.
    """

    def __init__(self, bits: int, hidden: int, monotone: bool = False):
        super().__init__()
        self.monotone = monotone
        self.first, self.second = nn.Linear(bits, hidden), nn.Linear(hidden, 1)

    def _weight(self, layer: nn.Linear) -> torch.Tensor:
        return F.softplus(layer.weight) if self.monotone else layer.weight

    def logits(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Relation logits (Ba, Bb)."""
        z = F.relu(F.linear(a[:, None, :] * b[None, :, :], self._weight(self.first), self.first.bias))
        return F.linear(z, self._weight(self.second), self.second.bias).squeeze(-1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(a, b))


def relation_loss(net: RelationNetwork, a: torch.Tensor, b: torch.Tensor, la: torch.Tensor, lb: torch.Tensor,
                  kind: str) -> torch.Tensor:
    """Relation scores of all labelled pairs against the label similarity (1 when they share a label).

    ``mse``: squared error of the score; ``bce``: cross-entropy of the logits (the likelihood of
    the similarity, whose gradient does not vanish when a score saturates on the wrong side).
    """
    ka, kb = losses.labeled(la), losses.labeled(lb)
    if not (ka.any() and kb.any()):
        return a.sum() * 0
    s = losses.label_overlap(la[ka], lb[kb])
    if kind == "mse":
        return F.mse_loss(net(a[ka], b[kb]), s)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(net.logits(a[ka], b[kb]), s)
    raise ValueError(f"dhsl: relation_loss must be mse or bce, got {kind!r}")


class DHSLNetwork(HashNetwork):
    """Image and text branches (the per-item inference path) and the training-only relation network."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, hidden: int, feature_dim: int,
                 selected: int | None, relation_hidden: int, dropout: float, layers: int, monotone: bool):
        super().__init__()

        def branch(dim: int) -> DHSLBranch:
            return DHSLBranch(dim, bits, hidden, feature_dim, min(selected, dim) if selected else 0, dropout, layers)

        self.image, self.text = branch(image_dim), branch(text_dim)
        self.relation = RelationNetwork(bits, relation_hidden, monotone)

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, modality)(x)


@register
class DHSL(DeepHashMethod):
    name = "dhsl"
    # selector_sparsity is off by default (no measurable effect, docs/methods/dhsl.md), so not an ablation row.
    ablations = ("relation_inter", "relation_intra", "feature_selector", "triplet", "quantization")

    def build_network(self) -> DHSLNetwork:
        c = self.config
        selected = c["selected_dims"] if self.enabled("feature_selector") else None
        return DHSLNetwork(*self.dims, self.bits, c["hidden"], c["feature_dim"], selected,
                           c["relation_hidden"], c["dropout"], c["layers"], bool(c["monotone_relation"]))

    def prepare(self, net: DHSLNetwork, train: CrossModalDataset) -> None:
        """Pick each modality's selected dimensions from the training features and labels."""
        for branch, x in ((net.image, train.image), (net.text, train.text)):
            if branch.selector is not None:
                branch.selector.set_selection(x, train.labels)

    def loss_terms(self, net: DHSLNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        f, g = net.encode("image", batch["image"]), net.encode("text", batch["text"])
        y = batch["labels"]
        kind = self.config["relation_loss"]
        terms: dict[str, torch.Tensor] = {}
        if self.weight("relation_inter"):
            terms["relation_inter"] = relation_loss(net.relation, f, g, y, y, kind)
        if self.weight("relation_intra"):
            terms["relation_intra"] = (relation_loss(net.relation, f, f, y, y, kind)
                                       + relation_loss(net.relation, g, g, y, y, kind)) / 2
        if self.weight("triplet"):
            m = self.config["margin"]
            terms["triplet"] = (losses.weighted_cosine_triplet(f, g, y, y, m)
                                + losses.weighted_cosine_triplet(g, f, y, y, m)) / 2
        if self.weight("selector_sparsity") and net.image.selector is not None:
            terms["selector_sparsity"] = (net.image.selector.sparsity() + net.text.selector.sparsity()) / 2
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(torch.cat([f, g]))
        return terms
