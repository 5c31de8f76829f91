"""Network blocks shared by the deep methods. Every block keeps the batch axis explicit, so an
item's output never depends on other items in the batch (see METHODS.md, "cross-item attention")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cmhash.methods.deep import HashNetwork


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0, layers: int = 2) -> nn.Sequential:
    """``layers`` linear layers with LayerNorm + GELU + dropout between them."""
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    mods: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            mods += [nn.LayerNorm(b), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*mods)


class HashHead(nn.Module):
    """Features to continuous codes in (-1, 1): linear layer + tanh."""

    def __init__(self, in_dim: int, bits: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x))


class TokenAttention(nn.Module):
    """Self-attention over ONE item's feature tokens: (B, D) -> tokens (B, T, d) -> (B, d_out).

    The feature vector is projected to ``tokens`` tokens of width ``width`` (a learned split of the
    vector, with position embeddings), a Transformer encoder attends among the tokens of each item,
    and the output is the mean token (global view) concatenated with the first token.
    """

    def __init__(self, in_dim: int, tokens: int = 8, width: int = 64, depth: int = 1, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.tokens, self.width = tokens, width
        self.to_tokens = nn.Linear(in_dim, tokens * width)
        self.pos = nn.Parameter(torch.zeros(1, tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out_dim = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.to_tokens(x).view(len(x), self.tokens, self.width) + self.pos  # (B, T, d): batch axis first
        t = self.encoder(t)
        return torch.cat([t.mean(dim=1), t[:, 0]], dim=1)

    def token_states(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded tokens (B, T, d) themselves, for blocks that attend to them."""
        t = self.to_tokens(x).view(len(x), self.tokens, self.width) + self.pos
        return self.encoder(t)


class AnchorGraphConv(nn.Module):
    """Graph convolution over an item's k nearest neighbours in a FIXED anchor bank.

    Training and inference use the same path: neighbours of an item are looked up among anchor
    features (saved with the model as a buffer), so an item's output depends on itself and the
    bank, never on the rest of the batch. Edge weights are either fixed (softmax of cosine / 0.1)
    or, with ``learned``, graph attention: softmax over the k neighbours of <W_q x, W_k a_j> / sqrt(d),
    so which neighbours matter is learned from the training losses.
    """

    def __init__(self, in_dim: int, out_dim: int, anchors: int, k: int = 8, learned: bool = False,
                 key_dim: int = 64):
        super().__init__()
        self.k = k
        self.register_buffer("bank", torch.zeros(anchors, in_dim))
        self.self_proj = nn.Linear(in_dim, out_dim)
        self.neigh_proj = nn.Linear(in_dim, out_dim)
        self.query = nn.Linear(in_dim, key_dim) if learned else None
        self.key = nn.Linear(in_dim, key_dim) if learned else None
        self.norm = nn.LayerNorm(out_dim)

    def set_bank(self, features: torch.Tensor) -> None:
        self.bank.copy_(features)

    def edge_weights(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights (B, k) summing to 1, neighbour indices (B, k)) of each item."""
        sim = F.normalize(x, dim=1) @ F.normalize(self.bank, dim=1).T  # (B, A)
        top, idx = sim.topk(min(self.k, len(self.bank)), dim=1)
        if self.query is None:
            return torch.softmax(top / 0.1, dim=1), idx
        keys = self.key(self.bank)[idx]  # (B, k, d)
        logits = (self.query(x)[:, None, :] * keys).sum(-1) / keys.shape[-1] ** 0.5
        return torch.softmax(logits, dim=1), idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, idx = self.edge_weights(x)
        neigh = (w[:, :, None] * self.bank[idx]).sum(dim=1)  # (B, D): weighted neighbour mean
        return self.norm(F.gelu(self.self_proj(x) + self.neigh_proj(neigh)))


def sample_bank(features: torch.Tensor | np.ndarray, size: int, seed: int) -> torch.Tensor:
    """A seeded random sample of ``size`` training rows (all rows when fewer) as an anchor bank."""
    x = torch.as_tensor(features)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[: min(size, len(x))]
    if len(idx) < size:  # tiny training sets: repeat rows so the bank keeps its saved size
        idx = idx[torch.arange(size) % len(idx)]
    return x[idx].float()


class DualMLP(HashNetwork):
    """Image MLP -> tanh codes and text MLP -> tanh codes, modality-separate (the deep baselines)."""

    def __init__(self, image_dim: int, text_dim: int, bits: int, hidden: int, dropout: float, layers: int):
        super().__init__()
        self.image = nn.Sequential(mlp(image_dim, hidden, hidden, dropout, layers), nn.GELU(), HashHead(hidden, bits))
        self.text = nn.Sequential(mlp(text_dim, hidden, hidden, dropout, layers), nn.GELU(), HashHead(hidden, bits))

    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, modality)(x)
