"""CLIP-feature contrastive hashing baseline, in the manner of UCMFH / DCHMT.

Per modality an MLP with a tanh hash head on (frozen) CLIP features; loss = symmetric InfoNCE
between the codes of an image and its paired text (instance level, no labels) + quantization.
Modality-separate at query time. See docs/methods/clip_contrastive.md.
"""

from __future__ import annotations

import torch

from cmhash.methods import losses
from cmhash.methods.blocks import DualMLP
from cmhash.methods.deep import Batch, DeepHashMethod
from cmhash.methods.registry import register


@register
class ClipContrastive(DeepHashMethod):
    name = "clip_contrastive"
    supervised = False
    ablations = ("quantization",)

    def build_network(self) -> DualMLP:
        c = self.config
        return DualMLP(*self.dims, self.bits, c["hidden"], c["dropout"], c["layers"])

    def loss_terms(self, net: DualMLP, batch: Batch) -> dict[str, torch.Tensor]:
        f, g = net.encode("image", batch["image"]), net.encode("text", batch["text"])
        return {
            "contrastive": losses.info_nce(f, g, self.config["temperature"]),
            "quantization": losses.quantization(torch.cat([f, g])),
        }
