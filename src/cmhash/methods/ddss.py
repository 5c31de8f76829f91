"""DDSS — Dual-Driven cross-modal contrastive hashing via Structural feature and Semantic information
(Huang et al., Information Fusion 123, 2025).

Per modality a Dual Branch Feature Learning Module: a structural branch (graph convolution over
an item's nearest neighbours in a FIXED anchor bank of that modality's training features —
k-means centres, as in anchor graph hashing — with similarity or, optionally, learned attention
edge weights) and a self-attention
branch (a Transformer encoder over ONE item's feature tokens); their outputs are summed into the
modality feature, which is split into a common part (read by the hash layer) and a private part
(kept out of the code; with the common part it must rebuild the input, and the two parts are kept
uncorrelated). Intra-modal contrastive learning aligns the two branches of an item, inter-modal
contrastive learning aligns an image's common part with its paired text's. A Dual Path Instance Hashing Module (a hash layer per
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
import torch.nn.functional as F
from torch import nn

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods import losses
from cmhash.methods.blocks import AnchorGraphConv, HashHead, TokenAttention, mlp, sample_bank
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register

MODALITIES = ("image", "text")


def shared(enc: "Encoded") -> torch.Tensor:
    """The part of a modality's feature that is meant to be shared: the common part, or the whole feature."""
    return enc.feature if enc.common is None else enc.common


class Encoded(NamedTuple):
    """One modality's pass: the branch outputs (None when switched off), the fused feature, its
    common and private parts (both None without private-feature elimination: the hash layer then
    reads the fused feature), the code."""

    graph: torch.Tensor | None
    attention: torch.Tensor | None
    feature: torch.Tensor
    common: torch.Tensor | None
    private: torch.Tensor | None
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
                 depth: int, heads: int, dropout: float, graph: bool, attention: bool, learned_graph: bool = True):
        super().__init__()
        if not (graph or attention):
            raise ValueError("ddss: components graph_branch and attention_branch cannot both be off")
        self.graph = AnchorGraphConv(in_dim, feature_dim, anchors, neighbours, learned=learned_graph) if graph else None
        self.attention = nn.Sequential(TokenAttention(in_dim, tokens, width, depth, heads, dropout),
                                       nn.Linear(2 * width, feature_dim)) if attention else None
        self.norm = nn.LayerNorm(feature_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """(graph output, attention output, fused feature); a switched-off branch gives None."""
        g = self.graph(x) if self.graph is not None else None
        a = self.attention(x) if self.attention is not None else None
        return g, a, self.norm(sum(b for b in (g, a) if b is not None))


class PrivateSplit(nn.Module):
    """Splits a modality feature f into a common part (what the hash layer reads) and a private part.

    Both are linear maps of f; a decoder must rebuild the item's input from [common, private], and
    the training loss keeps the two parts uncorrelated. The inter-modal and hashing losses pull the
    common part toward what the paired modality and the labels share, so what is left over (the
    modality's own, label-unrelated structure) has to go to the private part to be rebuilt, and is
    kept out of the code: the "elimination of low-quality private features".
    """

    def __init__(self, in_dim: int, feature_dim: int, private_dim: int):
        super().__init__()
        self.common = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.LayerNorm(feature_dim))
        self.private = nn.Sequential(nn.Linear(feature_dim, private_dim), nn.LayerNorm(private_dim))
        self.decoder = nn.Linear(feature_dim + private_dim, in_dim)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.common(f), self.private(f)

    def reconstruct(self, common: torch.Tensor, private: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat([common, private], dim=1))


class DDSSNetwork(HashNetwork):
    """Per modality a dual-branch feature module and a hash layer; class prototypes for training.

    ``encode`` (the per-item inference path) is dual branch -> hash layer; the graph branch reads
    only the item and the saved anchor bank. The prototypes serve the semantic loss only.
    """

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, feature_dim: int, hidden: int,
                 anchors: int, neighbours: int, tokens: int, width: int, depth: int, heads: int, dropout: float,
                 graph: bool, attention: bool, prototypes: bool, learned_graph: bool = True,
                 private_dim: int | None = None):
        super().__init__()
        dims = dict(zip(MODALITIES, (image_dim, text_dim)))

        def branch(dim: int) -> DualBranch:
            return DualBranch(dim, feature_dim, anchors, neighbours, tokens, width, depth, heads, dropout,
                              graph, attention, learned_graph)

        def hash_layer() -> nn.Sequential:
            return nn.Sequential(mlp(feature_dim, hidden, hidden, dropout, layers=2), nn.GELU(), HashHead(hidden, bits))

        self.branches = nn.ModuleDict({m: branch(d) for m, d in dims.items()})
        self.split = nn.ModuleDict({m: PrivateSplit(d, feature_dim, private_dim) for m, d in dims.items()}) \
            if private_dim else None
        self.hash = nn.ModuleDict({m: hash_layer() for m in MODALITIES})
        self.prototypes = nn.Parameter(torch.randn(num_labels, bits)) if prototypes else None

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        g, a, feature = self.branches[modality](x)
        if self.split is None:
            return Encoded(g, a, feature, None, None, self.hash[modality](feature))
        common, private = self.split[modality](feature)
        return Encoded(g, a, feature, common, private, self.hash[modality](common))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class DDSS(DeepHashMethod):
    name = "ddss"
    # class_prototypes and learned_graph are optional variants, off by default, so they are not ablated
    ablations = ("graph_branch", "attention_branch", "private_elimination", "intra_contrastive", "inter_contrastive",
                 "instance_hash", "semantic_hash", "quantization", "private_separation")

    def build_network(self) -> DDSSNetwork:
        c = self.config
        return DDSSNetwork(*self.dims, self.num_labels, self.bits, c["feature_dim"], c["hidden"], c["anchors"],
                           c["neighbours"], c["tokens"], c["token_width"], c["attention_depth"], c["heads"],
                           c["dropout"], self.enabled("graph_branch"), self.enabled("attention_branch"),
                           self.enabled("class_prototypes"), self.enabled("learned_graph"),
                           c["private_dim"] if self.enabled("private_elimination") else None)

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
        if self.weight("inter_contrastive"):  # on the common parts when private features are split off
            terms["inter_contrastive"] = losses.info_nce(shared(img), shared(txt), tf)
        if self.weight("private_separation") and img.private is not None:
            terms["private_separation"] = (self.private_separation(net, "image", img, batch["image"])
                                           + self.private_separation(net, "text", txt, batch["text"])) / 2
        if self.weight("instance_hash"):
            terms["instance_hash"] = losses.info_nce(img.code, txt.code, th)
        if self.weight("semantic_hash"):
            terms["semantic_hash"] = self.semantic_hash(net, img.code, txt.code, batch["labels"])
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(torch.cat([img.code, txt.code]))
        return terms

    @staticmethod
    def private_separation(net: DDSSNetwork, modality: str, enc: Encoded, x: torch.Tensor) -> torch.Tensor:
        """Rebuild the (standardised) input from [common, private] (mean squared error) and keep the
        two parts uncorrelated beyond chance (``losses.excess_cross_correlation``)."""
        rebuilt = net.split[modality].reconstruct(enc.common, enc.private)
        return F.mse_loss(rebuilt, x) + losses.excess_cross_correlation(enc.common, enc.private)

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
