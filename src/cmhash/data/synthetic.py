"""A synthetic, CLIP-like cross-modal dataset whose difficulty is known and tunable.

Generative model (all draws from ``numpy.random.default_rng(seed)``; docs/data-formats.md):

1. Labels. Label ``c`` has a Zipf prior weight ``(rank_c + 1) ** -zipf``. ``num_topics`` latent
   topics each favour a few labels (topic-label weights: the prior times a sparse
   Dirichlet(``topic_concentration``) draw). An item picks one topic and
   ``1 + Poisson(label_cardinality - 1)`` distinct labels from a mixture of its topic
   (weight ``1 - background``) and the prior, so labels co-occur by topic, frequencies are
   skewed, and every item has at least one label.
2. Latent content per item: the semantic vector ``s`` = normalised sum of the item's label
   embeddings (random Gaussian, ``semantic_dim``-d); a ``shared_dim``-d Gaussian ``c`` that both
   modalities see but that is unrelated to labels (what a photo and its tags share beyond the
   categories: the particular scene); and per modality a ``private_dim``-d Gaussian nuisance
   ``p`` (lighting, wording) that the other modality does not see.
3. Features. Each modality maps ``u = [s, shared_weight * c, private_weight * p]`` (``s`` scaled to
   the typical norm of a Gaussian of its size, so no block dominates by scale) through its
   OWN random two-layer network ``(1 - nonlinearity) * A u + nonlinearity * B tanh(gain * W u + b)``,
   adds Gaussian noise of relative scale ``noise``, adds a constant modality-gap vector of norm
   ``modality_gap`` (its own random direction per modality) and is L2-normalised (like CLIP
   embeddings).

So unsupervised linear methods (CCA) find the shared content ``c`` as readily as the label
semantics and cannot undo the two different nonlinear maps, while a supervised nonlinear model
can learn to keep ``s`` and discard ``c`` and ``p``. Splits: ``n_query`` random queries,
database = all other items, ``n_train`` training items drawn from the database.

4. Label noise (``label_noise`` > 0): that fraction of the TRAINING items, chosen at random,
   train on the label set of another random item. Only training sees the noise: the noisy
   training rows are copies appended to the arrays (new ids), so the query and database, and
   therefore every reported mAP, keep the clean labels (a method is scored on whether it
   learned the true semantics despite noisy supervision, not on reproducing the noise).

Named presets (:data:`PRESETS`, ``--dataset synthetic:preset=NAME``) exercise what the papers
claim to handle; docs/data-formats.md describes each.
"""

from __future__ import annotations

import inspect

import numpy as np

from cmhash.data.dataset import CrossModalDataset
from cmhash.data.protocols import custom_split
from cmhash.errors import DataError

HIDDEN = 256  # width of each modality's random network

# Generator keyword arguments of each preset (on top of make_synthetic's defaults).
PRESETS: dict[str, dict[str, float | int]] = {
    # MIRFlickr-25K-shaped: 20,015 pairs, 24 labels, query 2,000, train 5,000 (the defaults).
    "mirflickr": {},
    # NUS-WIDE (21 concepts) split sizes: 195,834 pairs, query 2,100, train 10,500; ~1.9 labels per item.
    "nuswide": dict(n=195834, num_labels=21, n_query=2100, n_train=10500, num_topics=8, label_cardinality=1.9),
    # MS-COCO-like: 80 labels, long-tailed (Zipf 1.5), ~2.9 labels per item, query 5,000, train 10,000
    # (40,000 pairs rather than COCO's ~122,000, to keep evaluation affordable on a CPU; nuswide is the scale test).
    "coco": dict(n=40000, num_labels=80, n_query=5000, n_train=10000, num_topics=16, label_cardinality=2.9,
                 zipf=1.5),
    # The default data with 30% of the training items carrying another item's labels (query/database clean).
    "noisy": dict(label_noise=0.3),
    # Strong modality-private, label-unrelated structure: a 64-d private nuisance weighted 3x in each modality.
    "private": dict(private_dim=64, private_weight=3.0),
}


def make_preset(preset: str = "mirflickr", seed: int = 0, **overrides: float | int) -> CrossModalDataset:
    """The named preset with keyword ``overrides``; an unknown preset or keyword is a named error."""
    spec = f"synthetic:preset={preset}"
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}", source=spec, field="preset")
    known = [k for k in inspect.signature(make_synthetic).parameters if k != "seed"]
    for key in overrides:
        if key not in known:
            raise DataError(f"unknown synthetic option {key!r}; known: preset, {', '.join(known)}",
                            source=spec, field=key)
    ds = make_synthetic(**{**PRESETS[preset], **overrides}, seed=seed)
    if preset != "mirflickr":
        ds.name = f"synthetic:{preset}"
    return ds


def make_synthetic(n: int = 20015, image_dim: int = 512, text_dim: int = 512, num_labels: int = 24,
                   n_query: int = 2000, n_train: int = 5000, seed: int = 0, *,
                   num_topics: int = 6, label_cardinality: float = 2.5, zipf: float = 1.0,
                   topic_concentration: float = 0.3, background: float = 0.2,
                   semantic_dim: int = 32, shared_dim: int = 16, private_dim: int = 32,
                   shared_weight: float = 1.0, private_weight: float = 1.0,
                   nonlinearity: float = 0.7, gain: float = 1.5, noise: float = 0.5,
                   modality_gap: float = 1.0, label_noise: float = 0.0) -> CrossModalDataset:
    """Synthetic dataset with splits train/query/database; same ``seed``, same data.

    Knobs (keyword-only) are described in the module docstring; the defaults give a
    MIRFlickr-25K-shaped dataset on which CCA + sign reaches a middling mAP.
    """
    if not 1 <= label_cardinality <= num_labels:
        raise ValueError(f"label_cardinality must be in [1, num_labels], got {label_cardinality}")
    if not 0 <= label_noise < 1:
        raise ValueError(f"label_noise must be in [0, 1), got {label_noise}")
    rng = np.random.default_rng(seed)
    labels = _labels(rng, n, num_labels, num_topics, label_cardinality, zipf, topic_concentration, background)
    embed = rng.standard_normal((num_labels, semantic_dim))
    semantic = _unit(labels @ embed)
    shared = rng.standard_normal((n, shared_dim))
    features = []
    for dim in (image_dim, text_dim):
        private = rng.standard_normal((n, private_dim))
        u = np.hstack([semantic * np.sqrt(semantic_dim), shared_weight * shared, private_weight * private])
        u = (u / np.sqrt(u.shape[1])).astype(np.float32)
        features.append(_modality(rng, u, dim, nonlinearity, gain, noise, modality_gap))
    dataset = CrossModalDataset(features[0], features[1], labels, name="synthetic", source=f"synthetic(seed={seed})")
    dataset = custom_split(dataset, query=n_query, train=n_train, seed=seed, protocol="synthetic")
    return _noisy_training_labels(dataset, label_noise, seed) if label_noise else dataset


def _noisy_training_labels(ds: CrossModalDataset, fraction: float, seed: int) -> CrossModalDataset:
    """Training rows become copies (new ids) of which ``fraction`` carry another random item's labels.

    The originals stay in the database with their clean labels; a separate random stream keeps
    the clean data identical to the noise-free dataset of the same seed.
    """
    rng = np.random.default_rng([seed, 1])
    train = ds.splits["train"]
    labels = ds.labels[train].copy()
    flip = rng.permutation(len(train))[:int(round(fraction * len(train)))]
    labels[flip] = ds.labels[rng.integers(len(ds), size=len(flip))]
    n = len(ds)
    out = CrossModalDataset(np.vstack([ds.image, ds.image[train]]), np.vstack([ds.text, ds.text[train]]),
                            np.vstack([ds.labels, labels]), name=ds.name, source=ds.source,
                            notes=ds.notes + [f"{len(flip)} of {len(train)} training items carry another item's "
                                              "labels (label_noise); query and database labels are clean"])
    return out.with_splits(train=np.arange(n, n + len(train)), query=ds.splits["query"],
                           database=ds.splits["database"])


def _labels(rng: np.random.Generator, n: int, num_labels: int, num_topics: int, cardinality: float,
            zipf: float, concentration: float, background: float) -> np.ndarray:
    """Multi-hot labels: topic-driven co-occurrence, Zipf frequencies, at least one label each."""
    prior = (rng.permutation(num_labels) + 1.0) ** -zipf
    prior /= prior.sum()
    topics = prior * rng.dirichlet(np.full(num_labels, concentration), size=num_topics)
    topics /= topics.sum(axis=1, keepdims=True)
    mix = (1 - background) * topics + background * prior
    topic_of = rng.integers(num_topics, size=n)
    counts = np.minimum(1 + rng.poisson(cardinality - 1, size=n), num_labels)
    # k distinct draws from p: the k smallest of Exponential / p keys (Efraimidis-Spirakis).
    keys = rng.exponential(size=(n, num_labels)) / mix[topic_of]
    ranks = np.argsort(np.argsort(keys, axis=1), axis=1)
    return (ranks < counts[:, None]).astype(np.uint8)


def _modality(rng: np.random.Generator, u: np.ndarray, dim: int, nonlinearity: float, gain: float,
              noise: float, gap: float) -> np.ndarray:
    """A random map of the latent content, noise, a modality offset, unit norm."""
    d, hidden = u.shape[1], HIDDEN
    linear = u @ rng.standard_normal((d, dim), dtype=np.float32)
    w = rng.standard_normal((d, hidden), dtype=np.float32)
    b = rng.uniform(-np.pi, np.pi, hidden).astype(np.float32) / gain
    curved = np.tanh(gain * (u @ w + b)) @ rng.standard_normal((hidden, dim), dtype=np.float32)
    x = (1 - nonlinearity) * _unit(linear) + nonlinearity * _unit(curved)
    x = _unit(x) + noise * rng.standard_normal(x.shape, dtype=np.float32) / np.sqrt(dim)
    x = _unit(x) + gap * _unit(rng.standard_normal(dim, dtype=np.float32))
    return _unit(x).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
