"""CDHTK — Cross-modal Dual Hashing based on Transfer Knowledge (Zhong et al., Acta Electronica Sinica 2025).

Three networks: an image network, a text network, and a transfer-knowledge network shared by
both modalities (a per-modality input adapter into one shared trunk). An item's code fuses its
modality network's hash logits with the knowledge network's hash logits OF THE SAME ITEM:
h = tanh(z_modality + z_knowledge), the product of the two networks' per-bit sign distributions.
Losses: label prediction (BCE with logits of a shared linear classifier on the fused codes), a
joint triplet-quantization loss on the fused codes, and a differential loss that decorrelates
the modality network's and the knowledge network's features. See docs/methods/cdhtk.md.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cmhash.methods import losses
from cmhash.methods.blocks import mlp
from cmhash.methods.deep import Batch, DeepHashMethod, HashNetwork
from cmhash.methods.registry import register

MODALITIES = ("image", "text")


class Encoded(NamedTuple):
    """One modality's pass: modality-network feature, knowledge-network feature (None when off), fused code."""

    own: torch.Tensor
    knowledge: torch.Tensor | None
    code: torch.Tensor


class Tower(nn.Module):
    """MLP feature -> GELU -> linear hash logits; ``forward`` gives (feature, logits)."""

    def __init__(self, in_dim: int, hidden: int, bits: int, dropout: float, layers: int):
        super().__init__()
        self.features = nn.Sequential(mlp(in_dim, hidden, hidden, dropout, layers), nn.GELU())
        self.hash = nn.Linear(hidden, bits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        return h, self.hash(h)


class CDHTKNetwork(HashNetwork):
    """Image and text towers, an optional shared knowledge tower with per-modality adapters, a label head."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, num_labels: int, hidden: int,
                 common: int, dropout: float, layers: int, knowledge: bool):
        super().__init__()
        dims = dict(zip(MODALITIES, (image_dim, text_dim)))
        self.towers = nn.ModuleDict({m: Tower(d, hidden, bits, dropout, layers) for m, d in dims.items()})
        self.adapters = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, common), nn.LayerNorm(common), nn.GELU()) for m, d in dims.items()
        }) if knowledge else None
        self.knowledge = Tower(common, hidden, bits, dropout, layers) if knowledge else None
        self.classifier = nn.Linear(bits, num_labels)

    def parts(self, modality: str, x: torch.Tensor) -> Encoded:
        own, z = self.towers[modality](x)
        if self.knowledge is None:
            return Encoded(own, None, torch.tanh(z))
        shared, z_k = self.knowledge(self.adapters[modality](x))
        return Encoded(own, shared, torch.tanh(z + z_k))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return self.parts(modality, x).code


@register
class CDHTK(DeepHashMethod):
    name = "cdhtk"
    ablations = ("knowledge_network", "label_prediction", "triplet_quantization", "differential")

    def build_network(self) -> CDHTKNetwork:
        c = self.config
        return CDHTKNetwork(*self.dims, self.bits, self.num_labels, c["hidden"], c["common_dim"], c["dropout"],
                            c["layers"], self.enabled("knowledge_network"))

    def loss_terms(self, net: CDHTKNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        img, txt = (net.parts(m, batch[m]) for m in MODALITIES)
        y = batch["labels"]
        terms: dict[str, torch.Tensor] = {}
        if self.weight("label_prediction"):
            terms["label_prediction"] = (F.binary_cross_entropy_with_logits(net.classifier(img.code), y)
                                         + F.binary_cross_entropy_with_logits(net.classifier(txt.code), y)) / 2
        if self.weight("triplet_quantization"):
            margin = self.config["margin"]
            triplet = (losses.code_triplet(img.code, txt.code, y, y, margin)
                       + losses.code_triplet(txt.code, img.code, y, y, margin)) / 2
            quant = losses.quantization(torch.cat([img.code, txt.code]))
            terms["triplet_quantization"] = triplet + self.config["quantization_mu"] * quant
        if self.weight("differential") and net.knowledge is not None:
            terms["differential"] = (losses.cross_correlation(img.own, img.knowledge)
                                     + losses.cross_correlation(txt.own, txt.knowledge)) / 2
        return terms
