"""SDEH — Semantic Decomposition and Enhancement Hashing (Fei et al., Pattern Recognition 2025).

Per modality an independent attention-based feature subnetwork: a local view (self-attention
among ONE item's feature tokens) plus a global view (an MLP on the whole vector), summed. Semantic
decomposition: a bank of learned per-class semantic embeddings shared by both modalities; each
item's feature attends over the classes and the attended class semantics are added back to the
feature (enhancement), so image and text features are tied through the labels. A label network
maps the multi-hot label vector into the same space and through the same decomposition and hash
layer, giving a teacher code used during training only. Quadruple losses on the codes: graded
(multi-level) similarity preservation, cross-modal consistency, label prediction, and feature
distribution consistency (MMD between image and text features) — plus quantization.
See docs/methods/sdeh.md.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cmhash.methods import losses
from cmhash.methods.blocks import HashHead, TokenAttention, mlp
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register


def multilevel_similarity(codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pairwise likelihood of GRADED label similarity over all pairs of ``codes`` (N, k), ``labels`` (N, C).

    -mean [s_ij theta_ij - log(1 + e^theta_ij)] with theta = <h_i, h_j> / 2 and s the label cosine
    in [0, 1] (not 0/1): identical label sets pull codes together fully, items with no shared
    label apart fully, and partial overlap toward sigma(theta) = s, in between.
    """
    return losses.pairwise_likelihood(codes, codes, losses.label_cosine(labels, labels))


def code_consistency(image: torch.Tensor, text: torch.Tensor, teacher: torch.Tensor | None) -> torch.Tensor:
    """Mean squared difference of paired image and text codes, and of each to the teacher code.

    The teacher code is detached: it learns from the labels only and is not pulled toward the
    (noisier) modality codes.
    """
    pairs = [(image, text)]
    if teacher is not None:
        pairs += [(image, teacher.detach()), (text, teacher.detach())]
    return torch.stack([(a - b).pow(2).mean() for a, b in pairs]).mean()


class Encoded(NamedTuple):
    """One pass through a branch: the semantic-enhanced feature (before hashing) and the code."""

    feature: torch.Tensor
    code: torch.Tensor


class FeatureSubnetwork(nn.Module):
    """One modality's attention-based feature network: local token attention + global MLP view.

    The local view splits the vector into tokens and attends among the tokens of each item
    (detail); the global view reads the whole vector at once. Their projections are summed and
    layer-normalised; either view can be switched off (not both).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, tokens: int, width: int, depth: int,
                 heads: int, dropout: float, local: bool, global_view: bool):
        super().__init__()
        if not (local or global_view):
            raise ValueError("sdeh: local_attention and global_view cannot both be off")
        self.local = nn.Sequential(TokenAttention(in_dim, tokens, width, depth, heads, dropout),
                                   nn.Linear(2 * width, out_dim)) if local else None
        self.global_view = mlp(in_dim, hidden, out_dim, dropout, layers=2) if global_view else None
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = [view(x) for view in (self.local, self.global_view) if view is not None]
        return F.gelu(self.norm(sum(views)))


class SemanticDecomposition(nn.Module):
    """Per-class semantic embeddings that every branch attends over, item by item.

    For a feature f (B, d): attention a = softmax(q(f) k(E)^T / sqrt(d)) over the C classes (one
    distribution per item, never across items), the decomposed semantics a v(E), and the enhanced
    feature LayerNorm(f + a v(E)). The embeddings E are shared by both modalities and the label
    teacher, which is what ties their features through the labels.
    """

    def __init__(self, num_labels: int, dim: int):
        super().__init__()
        self.classes = nn.Parameter(torch.randn(num_labels, dim) / math.sqrt(dim))
        self.query, self.key, self.value = (nn.Linear(dim, dim) for _ in range(3))
        self.norm = nn.LayerNorm(dim)

    def attention(self, f: torch.Tensor) -> torch.Tensor:
        """Each item's attention over the classes (B, C); rows sum to 1."""
        scores = self.query(f) @ self.key(self.classes).T / math.sqrt(f.shape[1])
        return torch.softmax(scores, dim=1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.norm(f + self.attention(f) @ self.value(self.classes))


class SDEHNetwork(HashNetwork):
    """Image and text subnetworks, shared semantic decomposition and hash layer, training-only parts.

    ``encode`` (the per-item inference path) is subnetwork -> decomposition -> hash layer. The
    label teacher (label MLP into the same path) and the label classifier on codes serve the
    losses only.
    """

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, hidden: int, feature_dim: int,
                 tokens: int, width: int, depth: int, heads: int, dropout: float, label_hidden: int,
                 local: bool, global_view: bool, decomposition: bool, teacher: bool):
        super().__init__()

        def subnetwork(dim: int) -> FeatureSubnetwork:
            return FeatureSubnetwork(dim, feature_dim, hidden, tokens, width, depth, heads, dropout, local, global_view)

        self.branches = nn.ModuleDict({"image": subnetwork(image_dim), "text": subnetwork(text_dim)})
        self.label_net = nn.Sequential(mlp(num_labels, label_hidden, feature_dim, dropout, layers=2),
                                       nn.GELU()) if teacher else None
        self.decomposition = SemanticDecomposition(num_labels, feature_dim) if decomposition else None
        self.hash = HashHead(feature_dim, bits)
        self.classifier = nn.Linear(bits, num_labels)

    def _head(self, f: torch.Tensor) -> Encoded:
        feature = self.decomposition(f) if self.decomposition is not None else f
        return Encoded(feature, self.hash(feature))

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        """Feature and code of ``modality`` items, or of label vectors for ``modality == "labels"``."""
        if modality == "labels":
            if self.label_net is None:
                raise RuntimeError("sdeh: the label teacher is switched off")
            return self._head(self.label_net(x))
        return self._head(self.branches[modality](x))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class SDEH(DeepHashMethod):
    name = "sdeh"
    ablations = ("local_attention", "global_view", "semantic_decomposition", "label_teacher",
                 "multilevel_similarity", "cross_modal_consistency", "label_prediction",
                 "distribution_consistency", "quantization")

    def build_network(self) -> SDEHNetwork:
        c = self.config
        return SDEHNetwork(*self.dims, self.num_labels, self.bits, c["hidden"], c["feature_dim"], c["tokens"],
                           c["token_width"], c["attention_depth"], c["heads"], c["dropout"], c["label_hidden"],
                           self.enabled("local_attention"), self.enabled("global_view"),
                           self.enabled("semantic_decomposition"), self.enabled("label_teacher"))

    def loss_terms(self, net: SDEHNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        y = batch["labels"]
        img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])
        teacher = net.parts("labels", y).code if net.label_net is not None else None
        codes = [c for c in (img.code, txt.code, teacher) if c is not None]
        h = torch.cat(codes)  # image, text (and teacher) codes of the batch, stacked
        h_labels = y.repeat(len(codes), 1)
        terms: dict[str, torch.Tensor] = {}
        if self.weight("multilevel_similarity"):
            terms["multilevel_similarity"] = multilevel_similarity(h, h_labels)
        if self.weight("cross_modal_consistency"):
            terms["cross_modal_consistency"] = code_consistency(img.code, txt.code, teacher)
        if self.weight("label_prediction"):
            terms["label_prediction"] = F.binary_cross_entropy_with_logits(net.classifier(h), h_labels)
        if self.weight("distribution_consistency"):
            terms["distribution_consistency"] = losses.gaussian_mmd(img.feature, txt.feature,
                                                                    tuple(self.config["mmd_scales"]))
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(h)
        return terms
