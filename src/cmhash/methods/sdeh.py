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


def graded_target(a: torch.Tensor, b: torch.Tensor, floor: float) -> torch.Tensor:
    """Target probability (Ba, Bb) that two items are similar: floor * [share a label] + (1 - floor) * cosine.

    With floor >= 1/2 every pair that shares a label has a target above 1/2, so its optimum code
    inner product is positive (closer than two random codes), and the target grows with the
    label cosine, so pairs sharing more labels sit closer; pairs sharing none have target 0.
    """
    s = losses.label_cosine(a, b)
    return floor * (s > 0).float() + (1 - floor) * s


def multilevel_similarity(codes: torch.Tensor, labels: torch.Tensor, scale: float, floor: float) -> torch.Tensor:
    """Pairwise likelihood of GRADED label similarity over all pairs of labelled ``codes`` (N, k).

    -mean [t_ij theta_ij - log(1 + e^theta_ij)] with theta = scale * <h_i, h_j> / k and t the
    :func:`graded_target`. Its optimum is <h_i, h_j> / k = logit(t_ij) / scale: a fraction of the
    code length that does not depend on k, so a pair's optimum Hamming distance
    k (1 - logit(t) / scale) / 2 is the same fraction of the bits at every code length and falls
    as the label overlap grows. (theta = <h_i, h_j> / 2 with t = cosine, DCMH's scale, puts the
    optimum at 2 logit(cosine) whatever k: a pair with cosine <= 1/2 at random distance or beyond.)
    Rows without labels are left out.
    """
    keep = losses.labeled(labels)
    if not keep.any():
        return codes.sum() * 0
    h, y = codes[keep], labels[keep]
    return losses.pairwise_likelihood(h, h, graded_target(y, y, floor), scale / codes.shape[1])


def slot_alignment(attention: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between an item's attention over the class slots (B, C) and its labels spread evenly.

    This is what ties slot c to label c: an item of classes {c1, c2} is trained to attend to
    slots c1 and c2 (half each), so slot c's embedding becomes class c's semantics. Unlabelled
    rows are left out.
    """
    keep = losses.labeled(labels)
    if not keep.any():
        return attention.sum() * 0
    target = labels[keep] / labels[keep].sum(dim=1, keepdim=True)
    return -(target * attention[keep].clamp_min(1e-8).log()).sum(dim=1).mean()


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
    """One pass through a branch: the semantic-enhanced feature (before hashing), the code, and the
    attention over the class slots (None without decomposition)."""

    feature: torch.Tensor
    code: torch.Tensor
    attention: torch.Tensor | None


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

    def forward(self, f: torch.Tensor, attention: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Enhanced feature and the attention used; ``attention`` (B, C) given replaces the learned one
        (the label teacher attends to exactly its own classes)."""
        a = self.attention(f) if attention is None else attention
        return self.norm(f + a @ self.value(self.classes)), a


class SDEHNetwork(HashNetwork):
    """Image and text subnetworks, shared semantic decomposition and hash layer, training-only parts.

    ``encode`` (the per-item inference path) is subnetwork -> decomposition -> hash layer. The
    label teacher (label MLP into the same path) and the label classifier on codes serve the
    losses only.
    """

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, hidden: int, feature_dim: int,
                 tokens: int, width: int, depth: int, heads: int, dropout: float, label_hidden: int,
                 local: bool, global_view: bool, decomposition: bool, teacher: bool, label_slots: bool):
        super().__init__()

        def subnetwork(dim: int) -> FeatureSubnetwork:
            return FeatureSubnetwork(dim, feature_dim, hidden, tokens, width, depth, heads, dropout, local, global_view)

        self.branches = nn.ModuleDict({"image": subnetwork(image_dim), "text": subnetwork(text_dim)})
        self.label_net = nn.Sequential(mlp(num_labels, label_hidden, feature_dim, dropout, layers=2),
                                       nn.GELU()) if teacher else None
        self.decomposition = SemanticDecomposition(num_labels, feature_dim) if decomposition else None
        self.hash = HashHead(feature_dim, bits)
        self.classifier = nn.Linear(bits, num_labels)
        self.label_slots = label_slots

    def _head(self, f: torch.Tensor, attention: torch.Tensor | None = None) -> Encoded:
        if self.decomposition is None:
            return Encoded(f, self.hash(f), None)
        feature, a = self.decomposition(f, attention)
        return Encoded(feature, self.hash(feature), a)

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        """Feature and code of ``modality`` items, or of label vectors for ``modality == "labels"``."""
        if modality == "labels":
            if self.label_net is None:
                raise RuntimeError("sdeh: the label teacher is switched off")
            slots = x / x.sum(dim=1, keepdim=True).clamp_min(1.0) if self.label_slots else None
            return self._head(self.label_net(x), slots)
        return self._head(self.branches[modality](x))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class SDEH(DeepHashMethod):
    name = "sdeh"
    ablations = ("local_attention", "global_view", "semantic_decomposition", "label_teacher", "label_slots",
                 "multilevel_similarity", "slot_alignment", "cross_modal_consistency", "label_prediction",
                 "distribution_consistency", "quantization")

    def build_network(self) -> SDEHNetwork:
        c = self.config
        return SDEHNetwork(*self.dims, self.num_labels, self.bits, c["hidden"], c["feature_dim"], c["tokens"],
                           c["token_width"], c["attention_depth"], c["heads"], c["dropout"], c["label_hidden"],
                           self.enabled("local_attention"), self.enabled("global_view"),
                           self.enabled("semantic_decomposition"), self.enabled("label_teacher"),
                           self.enabled("label_slots"))

    def loss_terms(self, net: SDEHNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        y = batch["labels"]
        img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])
        teacher = net.parts("labels", y).code if net.label_net is not None else None
        codes = [c for c in (img.code, txt.code, teacher) if c is not None]
        h = torch.cat(codes)  # image, text (and teacher) codes of the batch, stacked
        h_labels = y.repeat(len(codes), 1)
        keep = losses.labeled(h_labels)
        c = self.config
        terms: dict[str, torch.Tensor] = {}
        if self.weight("multilevel_similarity"):
            terms["multilevel_similarity"] = multilevel_similarity(h, h_labels, c["similarity_scale"],
                                                                   c["relevance_floor"])
        if self.weight("slot_alignment") and img.attention is not None:
            terms["slot_alignment"] = (slot_alignment(img.attention, y) + slot_alignment(txt.attention, y)) / 2
        if self.weight("cross_modal_consistency"):
            terms["cross_modal_consistency"] = code_consistency(img.code, txt.code, teacher)
        if self.weight("label_prediction"):
            terms["label_prediction"] = (F.binary_cross_entropy_with_logits(net.classifier(h[keep]), h_labels[keep])
                                         if keep.any() else h.sum() * 0)
        if self.weight("distribution_consistency"):
            terms["distribution_consistency"] = losses.gaussian_mmd(img.feature, txt.feature,
                                                                    tuple(c["mmd_scales"]))
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(h)
        return terms
