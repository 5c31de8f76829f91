"""Loss terms shared by the deep methods. Inputs are batches of continuous codes in (-1, 1).

Each function returns a scalar tensor and is written for the batch shapes noted; label
matrices are float 0/1 multi-hot (B, C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def label_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Binary similarity (Ba, Bb): 1 where two items share at least one label."""
    return (a @ b.T > 0).float()


def label_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Graded similarity in [0, 1] (Ba, Bb): cosine of label vectors (more shared labels, higher)."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def labeled(labels: torch.Tensor) -> torch.Tensor:
    """Rows (B,) that carry at least one label: an item without labels is neither similar nor
    dissimilar to anything, so similarity and label losses leave it out."""
    return labels.sum(dim=1) > 0


def pairwise_likelihood(u: torch.Tensor, v: torch.Tensor, s: torch.Tensor, scale: float = 0.5) -> torch.Tensor:
    """DCMH negative log-likelihood of similarities ``s`` under theta = scale * <u, v> (DCMH: 1/2)."""
    theta = scale * u @ v.T
    return (F.softplus(theta) - s * theta).mean()


def quantization(h: torch.Tensor) -> torch.Tensor:
    """Mean squared distance to the nearest binary code, ||h - sign(h)||^2 / (B k)."""
    return (h - torch.sign(h).detach()).pow(2).mean()


def bit_balance(h: torch.Tensor) -> torch.Tensor:
    """Each bit half +1 / half -1 over the batch: squared mean of every bit."""
    return h.mean(dim=0).pow(2).mean()


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` and row i of ``b`` are the positives, the rest negatives."""
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def multi_positive_contrastive(a: torch.Tensor, b: torch.Tensor, positives: torch.Tensor,
                               temperature: float) -> torch.Tensor:
    """Contrastive loss with a set of positives per anchor (label-guided, SupCon style).

    ``positives`` (Ba, Bb) weights in [0, 1]: the target distribution of anchor i over ``b`` is its
    positive row normalised; anchors without positives are left out.
    """
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    weight = positives.sum(dim=1)
    keep = weight > 0
    if not keep.any():
        return logits.sum() * 0
    target = positives[keep] / weight[keep, None]
    return -(target * F.log_softmax(logits[keep], dim=1)).sum(dim=1).mean()


def similarity_regression(u: torch.Tensor, v: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between code cosine similarity (in [-1, 1]) and ``target`` (in [-1, 1])."""
    cos = F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
    return (cos - target).pow(2).mean()


def weighted_cosine_triplet(anchor: torch.Tensor, other: torch.Tensor, la: torch.Tensor, lb: torch.Tensor,
                            margin: float) -> torch.Tensor:
    """Cross-modal cosine triplet loss over all (anchor, positive, negative) triplets in the batch.

    Positive = shares a label with the anchor, negative = shares none; each triplet is weighted by
    how strongly anchor and positive share labels (label cosine), so near-duplicates in meaning
    are pulled hardest.
    """
    cos = F.normalize(anchor, dim=1) @ F.normalize(other, dim=1).T  # (B, B)
    grade = label_cosine(la, lb)
    # an unlabeled item is neither a positive nor a negative of anything (nor an anchor)
    known = labeled(la).float()[:, None] * labeled(lb).float()[None, :]
    pos, neg = (grade > 0).float(), (grade == 0).float() * known
    # hinge[i, p, n] = relu(margin - cos[i, p] + cos[i, n]) for positive p and negative n of anchor i
    hinge = F.relu(margin - cos[:, :, None] + cos[:, None, :])
    w = (grade * pos)[:, :, None] * neg[:, None, :]
    return (w * hinge).sum() / w.sum().clamp_min(1.0)


def code_triplet(anchor: torch.Tensor, other: torch.Tensor, la: torch.Tensor, lb: torch.Tensor,
                 margin: float) -> torch.Tensor:
    """Cross-modal triplet hinge on code inner products over all (anchor, positive, negative) triplets.

    Similarity is <h_a, h_o> / k, which for ±1 codes is 1 - 2 Hamming / k, so the margin is a
    fraction of the bits. Unlike a cosine, the inner product is not scale-free: it also pulls the
    continuous codes toward ±1. Positive = shares a label with the anchor, negative = shares none;
    the loss is the mean over all such triplets (0 when the batch has none).
    """
    sim = anchor @ other.T / anchor.shape[1]
    share = label_overlap(la, lb)
    # Exact sum in O(B^2 log B) instead of a (B, B, B) tensor: for anchor i and positive p the
    # negatives n with s_in > s_ip - margin contribute (margin - s_ip) + s_in each, so sort each
    # row's negative similarities once and read the count and sum of those above the threshold.
    neg_sim = torch.where(share == 0, sim, torch.full_like(sim, -1e4))  # non-negatives never pass
    values, _ = neg_sim.sort(dim=1)
    suffix = torch.cat([values.flip(1).cumsum(1).flip(1), values.new_zeros(len(values), 1)], dim=1)
    first = torch.searchsorted(values.detach().contiguous(), (sim - margin).detach().contiguous(), right=True)
    count = values.shape[1] - first
    total = (share * (count * (margin - sim) + suffix.gather(1, first))).sum()
    triplets = (share.sum(1) * (1 - share).sum(1)).sum()
    return total / triplets.clamp_min(1.0)


def cross_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared correlation between every feature of ``a`` (B, Da) and every feature of ``b`` (B, Db).

    The squared Frobenius norm of the normalised cross-correlation matrix (columns centred over
    the batch and scaled to unit norm), divided by Da * Db: 0 when the two representations are
    linearly unrelated, 1 when they duplicate each other — the "difference" loss of domain
    separation networks, made scale-free so that it cannot be met by shrinking the features.
    """
    a = F.normalize(a - a.mean(dim=0), dim=0)
    b = F.normalize(b - b.mean(dim=0), dim=0)
    return (a.T @ b).pow(2).mean()


def excess_cross_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """How far the mean squared correlation of ``a`` (B, Da) and ``b`` (B, Db) exceeds chance, in [0, 1].

    Two independent representations still show a mean squared sample correlation of about
    1 / (B - 1) over a batch of B, so ``cross_correlation`` has that floor, and the only way below
    it is to collapse features to constants. Here the chance level is subtracted and the excess
    hinged at 0 (and rescaled to [0, 1]): independent features already score 0, and collapsing
    features gains nothing.
    """
    chance = 1.0 / max(1, len(a) - 1)
    return F.relu(cross_correlation(a, b) - chance) / (1 - chance)


def gaussian_mmd(a: torch.Tensor, b: torch.Tensor, scales: tuple[float, ...] = (0.5, 1.0, 2.0)) -> torch.Tensor:
    """Squared maximum mean discrepancy between the batches ``a`` (Ba, D) and ``b`` (Bb, D).

    Biased (V-statistic) estimate with a sum of Gaussian kernels exp(-||x - y||^2 / (s * m)), one per
    scale s, where m is the mean squared distance over the pooled batch (detached): the bandwidth
    follows the features' scale, so the term cannot be lowered by shrinking them. 0 when the two
    batches are the same set of points; grows as their distributions part.
    """
    x = torch.cat([a, b])
    sq = x.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(0)  # no sqrt: finite gradients at distance 0
    m = d2.detach().mean().clamp_min(1e-12)
    k = sum(torch.exp(-d2 / (s * m)) for s in scales)
    na = len(a)
    return k[:na, :na].mean() + k[na:, na:].mean() - 2 * k[:na, na:].mean()
