"""FJSPH — FLIP-based Joint Similarity Preserving Hashing (Tang et al., Computer Science 52(6A), 2025).

Input: frozen FLIP (or any CLIP-architecture, or any) features. Per modality an MLP embeds the
feature and a residual refinement block refines it; multimodal contrastive learning (InfoNCE
between an image's refined embedding and its paired text's) strengthens modal interaction. A tanh
hash head per modality gives the code. Joint similarity: a sample-wise similarity (label cosine
between two items) and a cluster-wise similarity (label cosine measured through a class-affinity
kernel: two items are close when the classes they belong to are close, the classes' closeness
coming from their centres in the training features) are mixed into one target
S = alpha S_sample + (1 - alpha) S_cluster in [0, 1], which the codes preserve in Hamming space:
code inner products / k regressed on S (unrelated items orthogonal, Hamming k/2), over all image
and text codes of the batch. Plus quantization.
See docs/methods/fjsph.md.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods import losses
from cmhash.methods.blocks import HashHead, mlp
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register

MODALITIES = ("image", "text")


class Encoded(NamedTuple):
    """One modality's pass: the refined embedding and the code."""

    embedding: torch.Tensor
    code: torch.Tensor


def class_affinity(features: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Class-to-class affinity (C, C) in [0, 1] from the classes' centres in the training features.

    Per modality: rows L2-normalised and centred on the training mean, the centre of class c is the
    mean over its items, and the affinity of two classes is the cosine of their centres clipped at
    0 (classes whose items lean the same way from the average item). Averaged over modalities; the
    diagonal is 1, and a class with no training item is related to none but itself.
    """
    y = np.asarray(labels, dtype=np.float64)
    counts = np.maximum(y.sum(axis=0), 1.0)
    out = np.zeros((y.shape[1], y.shape[1]))
    for x in features:
        x = np.asarray(x, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        centres = y.T @ (x - x.mean(axis=0)) / counts[:, None]
        centres /= np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
        out += np.clip(centres @ centres.T, 0.0, None)
    out /= len(features)
    np.fill_diagonal(out, 1.0)
    return out


def cluster_similarity(a: torch.Tensor, b: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """Cluster-wise similarity (Ba, Bb) in [0, 1]: label cosine under the class-affinity kernel K.

    s_ij = y_i K y_j / sqrt(y_i K y_i * y_j K y_j): items are similar through the classes they
    belong to, also when those classes differ but are close. K = identity gives the plain label
    cosine; an item without labels is similar to nothing.
    """
    cross = a @ affinity @ b.T
    na = (a @ affinity * a).sum(dim=1).clamp_min(1e-12).sqrt()
    nb = (b @ affinity * b).sum(dim=1).clamp_min(1e-12).sqrt()
    return (cross / (na[:, None] * nb[None, :])).clamp(0.0, 1.0)


def inner_product_regression(u: torch.Tensor, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between code inner products / k (in [-1, 1]) and ``target`` (in [-1, 1]).

    For ±1 codes <u, v> / k = 1 - 2 Hamming / k, so this fits Hamming distances directly.
    """
    return (u @ v.T / u.shape[1] - target).pow(2).mean()


class Refinement(nn.Module):
    """Residual MLP on one item's embedding: z + MLP(LayerNorm(z))."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.block = nn.Sequential(nn.LayerNorm(dim), mlp(dim, hidden, dim, dropout, layers=2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.block(z)


class FJSPHNetwork(HashNetwork):
    """Per modality: MLP embedding -> (refinement) -> GELU -> tanh hash head.

    The class-affinity buffer (set from the training set) feeds the cluster-wise similarity during
    training only; ``encode`` reads the item alone.
    """

    def __init__(self, image_dim: int, text_dim: int, num_labels: int, bits: int, hidden: int, embed_dim: int,
                 layers: int, dropout: float, refinement: bool):
        super().__init__()
        self.embed = nn.ModuleDict({"image": mlp(image_dim, hidden, embed_dim, dropout, layers),
                                    "text": mlp(text_dim, hidden, embed_dim, dropout, layers)})
        self.refine = (nn.ModuleDict({m: Refinement(embed_dim, hidden, dropout) for m in MODALITIES})
                       if refinement else None)
        self.hash = nn.ModuleDict({m: HashHead(embed_dim, bits) for m in MODALITIES})
        self.register_buffer("class_affinity", torch.eye(num_labels))

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        z = self.embed[modality](x)
        if self.refine is not None:
            z = self.refine[modality](z)
        return Encoded(z, self.hash[modality](F.gelu(z)))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class FJSPH(DeepHashMethod):
    name = "fjsph"
    ablations = ("refinement", "sample_similarity", "cluster_similarity", "contrastive", "quantization")

    def __init__(self, bits: int = 32, seed: int = 0, **config: Any):
        super().__init__(bits=bits, seed=seed, **config)
        if not (self.enabled("sample_similarity") or self.enabled("cluster_similarity")):
            raise ValueError("fjsph: components sample_similarity and cluster_similarity cannot both be off "
                             "(set losses.joint_similarity: 0 to drop the similarity term)")
        if not 0.0 <= float(self.config["alpha"]) <= 1.0:
            raise ValueError(f"fjsph: alpha must be in [0, 1], got {self.config['alpha']}")

    def build_network(self) -> FJSPHNetwork:
        c = self.config
        return FJSPHNetwork(*self.dims, self.num_labels, self.bits, c["hidden"], c["embed_dim"], c["layers"],
                            c["dropout"], self.enabled("refinement"))

    def prepare(self, net: FJSPHNetwork, train: CrossModalDataset) -> None:
        """Class affinity from the training features of both modalities."""
        net.class_affinity.copy_(torch.from_numpy(class_affinity([train.image, train.text], train.labels)))

    def joint_similarity(self, net: FJSPHNetwork, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """S_joint = alpha S_sample + (1 - alpha) S_cluster, with a switched-off part left out."""
        sample = losses.label_cosine(a, b) if self.enabled("sample_similarity") else None
        cluster = cluster_similarity(a, b, net.class_affinity) if self.enabled("cluster_similarity") else None
        if sample is None or cluster is None:
            return sample if cluster is None else cluster
        alpha = float(self.config["alpha"])
        return alpha * sample + (1 - alpha) * cluster

    def contrastive(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Multimodal contrast of image and text embeddings, both directions.

        ``pairs``: InfoNCE, an item's own paired text is its one positive (every other item, even
        of the same classes, a negative). ``labels``: every text that shares a label with the image
        is a positive (and the reverse), so the contrast agrees with what retrieval calls relevant;
        unlabelled items have no positives and are left out as anchors.
        """
        t = self.config["temperature"]
        kind = self.config["contrastive_positives"]
        if kind == "pairs":
            return losses.info_nce(a, b, t)
        if kind == "labels":
            known = losses.labeled(labels).float()
            pos = losses.label_overlap(labels, labels) * known[:, None] * known[None, :]
            return (losses.multi_positive_contrastive(a, b, pos, t) + losses.multi_positive_contrastive(b, a, pos, t)) / 2
        raise ValueError(f"fjsph: contrastive_positives must be pairs or labels, got {kind!r}")

    def loss_terms(self, net: FJSPHNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])
        h = torch.cat([img.code, txt.code])
        terms: dict[str, torch.Tensor] = {}
        if self.weight("contrastive"):
            terms["contrastive"] = self.contrastive(img.embedding, txt.embedding, batch["labels"])
        if self.weight("joint_similarity"):
            y = torch.cat([batch["labels"], batch["labels"]])
            keep = y.sum(dim=1) > 0  # an item without labels carries no similarity information
            hk, yk = h[keep], y[keep]
            terms["joint_similarity"] = (inner_product_regression(hk, hk, self.joint_similarity(net, yk, yk))
                                         if len(hk) else h.sum() * 0)
        if self.weight("quantization"):
            terms["quantization"] = losses.quantization(h)
        return terms
