"""DDSS — Dual-Driven cross-modal contrastive hashing via Structural feature and Semantic information
(Huang et al., Information Fusion 123, 2025).

Per modality a Dual Branch Feature Learning Module: a structural branch (graph convolution over
an item's nearest neighbours in a FIXED anchor bank of that modality's training features —
k-means centres, as in anchor graph hashing) and a self-attention branch (a Transformer encoder
over ONE item's feature tokens); their outputs are summed into the modality feature. Intra-modal
contrastive learning aligns the two branches of an item, inter-modal contrastive learning aligns
an image's feature with its paired text's. A Dual Path Instance Hashing Module (a hash layer per
modality) is trained by instance-level contrastive learning (paired codes are positives) and
semantic-level contrastive learning (label-guided: cross-modal codes sharing labels are
positives, and codes are contrasted with learned class prototypes), plus quantization.
See docs/methods/ddss.md.
"""

from __future__ import annotations

from typing import NamedTuple

import faiss
import numpy as np
import torch
from torch import nn

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods import losses
from cmhash.methods.blocks import AnchorGraphConv, HashHead, TokenAttention, mlp, sample_bank
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register

MODALITIES = ("image", "text")


class Encoded(NamedTuple):
    """One modality's pass: the branch outputs (None when switched off), the fused feature, the code."""

    graph: torch.Tensor | None
    attention: torch.Tensor | None
    feature: torch.Tensor
    code: torch.Tensor


def kmeans_bank(features: np.ndarray, size: int, seed: int) -> torch.Tensor:
    """Anchor bank of ``size`` k-means centres of the training features (seeded).

    Centres rather than training rows, so that a training item is never its own neighbour: the
    graph branch sees the same kind of neighbourhood in training as a query does at test time.
    With no more rows than anchors the rows themselves are the bank (``sample_bank``).
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if len(x) <= size:
        return sample_bank(x, size, seed)
    km = faiss.Kmeans(x.shape[1], size, niter=20, seed=seed, min_points_per_centroid=1, verbose=False)
    km.train(x)
    return torch.from_numpy(km.centroids.copy())


class DualBranch(nn.Module):
    """One modality's Dual Branch Feature Learning Module: structural + self-attention branch."""

    def __init__(self, in_dim: int, feature_dim: int, anchors: int, neighbours: int, tokens: int, width: int,
                 depth: int, heads: int, dropout: float, graph: bool, attention: bool):
        super().__init__()
        if not (graph or attention):
            raise ValueError("ddss: components graph_branch and attention_branch cannot both be off")
        self.graph = AnchorGraphConv(in_dim, feature_dim, anchors, neighbours) if graph else None
        self.attention = nn.Sequential(TokenAttention(in_dim, tokens, width, depth, heads, dropout),
                                       nn.Linear(2 * width, feature_dim)) if attention else None
        self.norm = nn.LayerNorm(feature_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(graph output, attention output, fused feature); a switched-off branch gives None."""
        g = self.graph(x) if self.graph is not None else None
        a = self.attention(x) if self.attention is not None else None
        return g, a, self.norm(sum(b for b in (g, a) if b is not None))


class DDSSNetwork(HashNetwork):
    """Per modality a dual-branch feature module and a hash layer; class prototypes for training.

    ``encode`` (the per-item inference path) is dual branch -> hash layer; the graph branch reads
    only the item and the saved anchor bank. The prototypes serve the semantic loss only.
    """

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, feature_dim: int, hidden: int,
                 anchors: int, neighbours: int, tokens: int, width: int, depth: int, heads: int, dropout: float,
                 graph: bool, attention: bool, prototypes: bool):
        super().__init__()

        def branch(dim: int) -> DualBranch:
            return DualBranch(dim, feature_dim, anchors, neighbours, tokens, width, depth, heads, dropout,
                              graph, attention)

        def hash_layer() -> nn.Sequential:
            return nn.Sequential(mlp(feature_dim, hidden, hidden, dropout, layers=2), nn.GELU(), HashHead(hidden, bits))

        self.branches = nn.ModuleDict({"image": branch(image_dim), "text": branch(text_dim)})
        self.hash = nn.ModuleDict({m: hash_layer() for m in MODALITIES})
        self.prototypes = nn.Parameter(torch.randn(num_labels, bits)) if prototypes else None

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        g, a, feature = self.branches[modality](x)
        return Encoded(g, a, feature, self.hash[modality](feature))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class DDSS(DeepHashMethod):
    name = "ddss"
    # class_prototypes is an optional path, off by default, so it is not ablated
    ablations = ("graph_branch", "attention_branch", "intra_contrastive", "inter_contrastive", "instance_hash",
                 "semantic_hash", "quantization")

    def build_network(self) -> DDSSNetwork:
        c = self.config
        return DDSSNetwork(*self.dims, self.num_labels, self.bits, c["feature_dim"], c["hidden"], c["anchors"],
                           c["neighbours"], c["tokens"], c["token_width"], c["attention_depth"], c["heads"],
                           c["dropout"], self.enabled("graph_branch"), self.enabled("attention_branch"),
                           self.enabled("class_prototypes"))

    def prepare(self, net: DDSSNetwork, train: CrossModalDataset) -> None:
        """Anchor banks: k-means centres of each modality's training features."""
        for modality in MODALITIES:
            graph = net.branches[modality].graph
            if graph is not None:
                graph.set_bank(kmeans_bank(getattr(train, modality), self.config["anchors"], self.seed))

    def loss_terms(self, net: DDSSNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        c = self.config
        img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])
        tf, th = c["feature_temperature"], c["hash_temperature"]
        terms: dict[str, torch.Tensor] = {}
        if self.weight("intra_contrastive") and img.graph is not None and img.attention is not None:
            # the two branches of one item are positives, the other items' outputs negatives
            terms["intra_contrastive"] = (losses.info_nce(img.graph, img.attention, tf)
                                          + losses.info_nce(txt.graph, txt.attention, tf)) / 2
        if self.weight("inter_contrastive"):
            terms["inter_contrastive"] = losses.info_nce(img.feature, txt.feature, tf)
        if self.weight("instance_hash"):
            terms["instance_hash"] = losses.info_nce(img.code, txt.code, th)
        if self.weight("semantic_hash"):
            terms["semantic_hash"] = self.semantic_hash(net, img.code, txt.code, batch["labels"])
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(torch.cat([img.code, txt.code]))
        return terms

    def semantic_hash(self, net: DDSSNetwork, hi: torch.Tensor, ht: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Label-guided contrastive loss on the codes, mean of its two paths.

        Sample path: an image code's positives are the text codes of the batch, weighted by label
        cosine (more shared labels, more weight), and vice versa. Prototype path (when on): every
        code's positives are the learned prototypes of its classes.
        """
        th = self.config["hash_temperature"]
        s = losses.label_cosine(y, y)
        mpc = losses.multi_positive_contrastive
        paths = [(mpc(hi, ht, s, th) + mpc(ht, hi, s.T, th)) / 2]
        if net.prototypes is not None:
            paths.append(mpc(torch.cat([hi, ht]), net.prototypes, torch.cat([y, y]), th))
        return torch.stack(paths).mean()
