"""DCMH-style baseline on features (Jiang & Li, CVPR 2017), trained by the shared engine.

Per modality an MLP with a tanh hash head; loss = cross-modal pairwise likelihood of the label
similarity (theta = <f, g>/2) + quantization + bit balance. The original alternates with a
discrete code matrix over the whole training set; we use in-batch pairs (both directions), the
common feature-input re-implementation. See docs/methods/dcmh.md.
"""

from __future__ import annotations

import torch

from cmhash.methods import losses
from cmhash.methods.blocks import DualMLP
from cmhash.methods.deep import Batch, DeepHashMethod
from cmhash.methods.registry import register


@register
class DCMH(DeepHashMethod):
    name = "dcmh"
    ablations = ("quantization", "balance")

    def build_network(self) -> DualMLP:
        c = self.config
        return DualMLP(*self.dims, self.bits, c["hidden"], c["dropout"], c["layers"])

    def loss_terms(self, net: DualMLP, batch: Batch) -> dict[str, torch.Tensor]:
        f, g = net.encode("image", batch["image"]), net.encode("text", batch["text"])
        s = losses.label_overlap(batch["labels"], batch["labels"])
        both = torch.cat([f, g])
        return {
            "likelihood": (losses.pairwise_likelihood(f, g, s) + losses.pairwise_likelihood(g, f, s.T)) / 2,
            "quantization": losses.quantization(both),
            "balance": losses.bit_balance(f) + losses.bit_balance(g),
        }
