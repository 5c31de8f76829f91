"""CDHTK — Cross-modal Dual Hashing based on Transfer Knowledge (Zhong et al., Acta Electronica Sinica 2025).

Three networks, each forming its own codes: an image network and a text network (the dual hashing
networks), and a transfer-knowledge network shared by both modalities (a per-modality input
adapter into one shared trunk), whose codes for the two modalities come from one set of weights.
An item's code combines its modality network's and the knowledge network's codes of the same
item, tanh(z_m + z_k) (``fused_code``; off: the modality network's own code). Every code set (own,
knowledge, fused) is supervised by label prediction (a shared linear classifier) and a joint
triplet-quantization loss; the knowledge network's cross-modal code similarities are distilled
into the modality networks'; a differential loss keeps the modality networks' features from
duplicating the knowledge network's beyond chance. See docs/methods/cdhtk.md.
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
    """One modality's pass: modality-network feature and code, knowledge-network feature and code,
    and the fused code tanh(z_modality + z_knowledge) (the last three None when the knowledge
    network is off)."""

    own: torch.Tensor
    code: torch.Tensor
    knowledge: torch.Tensor | None
    knowledge_code: torch.Tensor | None
    fused: torch.Tensor | None


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
                 common: int, dropout: float, layers: int, knowledge: bool, fused: bool = False):
        super().__init__()
        self.fused = fused and knowledge
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
            return Encoded(own, torch.tanh(z), None, None, None)
        shared, z_k = self.knowledge(self.adapters[modality](x))
        return Encoded(own, torch.tanh(z), shared, torch.tanh(z_k), torch.tanh(z + z_k))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """The fused code when ``fused``, else the modality network's own code (the knowledge
        network is then a training-time teacher and does not run at inference)."""
        if self.fused:
            return self.parts(modality, x).fused
        return torch.tanh(self.towers[modality](x)[1])


@register
class CDHTK(DeepHashMethod):
    name = "cdhtk"
    ablations = ("knowledge_network", "fused_code", "label_prediction", "triplet_quantization",
                 "knowledge_transfer", "differential")

    def build_network(self) -> CDHTKNetwork:
        c = self.config
        return CDHTKNetwork(*self.dims, self.bits, self.num_labels, c["hidden"], c["common_dim"], c["dropout"],
                            c["layers"], self.enabled("knowledge_network"), self.enabled("fused_code"))

    def loss_terms(self, net: CDHTKNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        img, txt = (net.parts(m, batch[m]) for m in MODALITIES)
        y = batch["labels"]
        # every network is supervised on its own codes: (image code, text code) pairs of each network
        pairs = [(img.code, txt.code)]
        if img.knowledge_code is not None:
            pairs.append((img.knowledge_code, txt.knowledge_code))
        if net.fused:  # the retrieved code is supervised too
            pairs.append((img.fused, txt.fused))
        terms: dict[str, torch.Tensor] = {}
        if self.weight("label_prediction"):
            terms["label_prediction"] = torch.stack([
                F.binary_cross_entropy_with_logits(net.classifier(h), y) for pair in pairs for h in pair]).mean()
        if self.weight("triplet_quantization"):
            terms["triplet_quantization"] = torch.stack([self.triplet_quantization(hi, ht, y) for hi, ht in pairs]).mean()
        if img.knowledge_code is None:
            return terms
        if self.weight("knowledge_transfer"):
            terms["knowledge_transfer"] = self.knowledge_transfer(img, txt)
        if self.weight("differential"):
            terms["differential"] = (losses.excess_cross_correlation(img.own, img.knowledge)
                                     + losses.excess_cross_correlation(txt.own, txt.knowledge)) / 2
        return terms

    def triplet_quantization(self, hi: torch.Tensor, ht: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-modal code triplet both ways + mu * quantization, for one network's codes."""
        margin = self.config["margin"]
        triplet = (losses.code_triplet(hi, ht, y, y, margin) + losses.code_triplet(ht, hi, y, y, margin)) / 2
        return triplet + self.config["quantization_mu"] * losses.quantization(torch.cat([hi, ht]))

    @staticmethod
    def knowledge_transfer(img: Encoded, txt: Encoded) -> torch.Tensor:
        """Distillation: the modality networks' cross-modal code similarities <h_i, h_t> / k match the
        knowledge network's (the teacher, detached), squared error over all image-text pairs of the batch."""
        k = img.code.shape[1]
        student = img.code @ txt.code.T / k
        teacher = (img.knowledge_code @ txt.knowledge_code.T / k).detach()
        return (student - teacher).pow(2).mean()
