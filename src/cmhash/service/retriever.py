"""The search logic, once: raw query -> CLIP features -> hash code -> nearest codes in a store.

Used by ``cmhash search``, ``cmhash serve`` (through :mod:`cmhash.service.app`) and Python code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.index.code_input import positive_int
from cmhash.methods.base import HashMethod
from cmhash.service.build import DatasetRef, check_modality
from cmhash.service.limits import Limits
from cmhash.service.provenance import check_encoder, load_model
from cmhash.service.stores import CodeStore, FileStore, Hit, PgLocation, PgStore

if TYPE_CHECKING:
    from cmhash.encoders import ClipEncoder
    from cmhash.encoders.clip import ImageInput


class EncoderMissing(RuntimeError):
    """A raw text/image query reached a retriever that was opened without a CLIP checkpoint."""


@dataclass(frozen=True)
class Results:
    """Hits of one query, nearest first. With a radius, ``within_radius`` counts every item inside it
    (``hits`` holds the nearest ``k`` of them)."""

    query_modality: str
    hits: list[Hit]
    within_radius: int | None = None
    note: str | None = None  # what was done to the query on the way (e.g. a text cut to the length limit)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"query_modality": self.query_modality, "hits": [h.to_dict() for h in self.hits]}
        if self.within_radius is not None:
            out["within_radius"] = self.within_radius
        if self.note is not None:
            out["note"] = self.note
        return out


MAX_TEXT_CHARS = Limits.max_text_chars  # CLIP reads 77 tokens; characters beyond never reach it: not tokenized


def checked_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> tuple[str, str | None]:
    """A non-empty, encodable text cut to ``max_chars`` characters (before any tokenizing), and a note if cut."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode ({exc.reason} at character {exc.start})") from None
    if len(text) <= max_chars:
        return text, None
    return text[:max_chars], f"text cut from {len(text)} to its first {max_chars} characters"


class Retriever:
    """A hashing model, the store its codes are in, and optionally the encoder for raw queries."""

    def __init__(self, model: HashMethod, store: CodeStore, encoder: ClipEncoder | None = None):
        if model.bits != store.bits:
            raise DataError(f"model makes {model.bits}-bit codes but the index holds {store.bits}-bit codes")
        if encoder is not None:
            check_encoder(encoder, model, store.metadata.get("encoder"))
        self.model, self.store, self.encoder = model, store, encoder
        self._dataset: CrossModalDataset | None = None

    @classmethod
    def open(cls, model_path: str | os.PathLike, index: str | os.PathLike | PgLocation, *,
             checkpoint: str | os.PathLike | None = None, device: str = "cpu") -> Retriever:
        """Load the model, then the index built with exactly that model file (else DataError)."""
        model, identity = load_model(model_path)
        if isinstance(index, PgLocation):
            store: CodeStore = PgStore.open(index, model.bits, identity)
        else:
            store = FileStore.load(index, expect_model=identity)
        try:
            encoder = None
            if checkpoint is not None:
                from cmhash.encoders import ClipEncoder

                encoder = ClipEncoder(checkpoint, device=device)
            return cls(model, store, encoder)
        except Exception:
            store.close()  # a pg connection must not outlive a failed open
            raise

    def info(self) -> dict[str, Any]:
        return {"model": self.store.metadata.get("model"), "method": self.model.name, "bits": self.model.bits,
                "feature_dims": {"image": self.model.dims[0], "text": self.model.dims[1]},
                "index": self.store.info(),
                "encoder": None if self.encoder is None else {"checkpoint": str(self.encoder.checkpoint_dir),
                                                              "fingerprint": self.encoder.fingerprint}}

    # ---- queries -----------------------------------------------------------------------------
    def search_codes(self, code: np.ndarray, k: int = 10, radius: int | None = None,
                     query_modality: str = "code") -> Results:
        """A ±1 code of ``bits`` entries; the nearest ``k`` (within ``radius`` when given)."""
        code = np.asarray(code)
        if code.shape != (self.model.bits,) or not np.isin(code, (-1, 1)).all():
            raise ValueError(f"a code must be {self.model.bits} values, each -1 or +1, got shape {code.shape}"
                             + ("" if code.shape != (self.model.bits,) else " with other values"))
        query = code.astype(np.int8)[None, :]
        k = positive_int(k, "k")
        if radius is None:
            # k beyond the index size would only add padding; capping keeps a huge k from allocating it.
            return Results(query_modality, self.store.search(query, min(k, max(len(self.store), 1))))
        hits = self.store.within(query, radius)
        return Results(query_modality, hits[:k], within_radius=len(hits))

    def search_features(self, modality: str, features: np.ndarray, k: int = 10,
                        radius: int | None = None) -> Results:
        """One feature vector of ``modality`` (image or text), encoded by the model's own hash function."""
        check_modality(modality)
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 1 and x.shape[:1] != (1,):
            raise ValueError(f"features must be one vector (D,) or (1, D), got shape {x.shape}")
        encode = self.model.encode_image if modality == "image" else self.model.encode_text
        return self.search_codes(encode(x.reshape(1, -1))[0], k, radius, query_modality=modality)

    def search_text(self, text: str, k: int = 10, radius: int | None = None,
                    max_chars: int = MAX_TEXT_CHARS) -> Results:
        """A caption; one longer than ``max_chars`` characters is cut there (and the result says so)."""
        text, note = checked_text(text, max_chars)
        results = self.search_features("text", self.text_features(text), k, radius)
        return Results(results.query_modality, results.hits, results.within_radius, note)

    def search_image(self, image: ImageInput, k: int = 10, radius: int | None = None) -> Results:
        """A PIL image or an image file path."""
        return self.search_features("image", self.image_features(image), k, radius)

    def text_features(self, text: str) -> np.ndarray:
        encoder = self._encoder()
        return encoder.encode_texts([text], return_truncated=True)[0][0]  # thread-safe: one tokenizer per thread

    def image_features(self, image: ImageInput) -> np.ndarray:
        encoder = self._encoder()
        return encoder.encode_images([image])[0]

    # ---- writes ------------------------------------------------------------------------------
    def add_item(self, item_id: int, modality: str, features: np.ndarray, metadata: dict[str, Any] | None = None) -> None:
        """Index one item's features of ``modality`` under ``item_id``; stored (durably) when this returns."""
        x = np.asarray(features, dtype=np.float32).reshape(1, -1)
        encode = self.model.encode_image if check_modality(modality) == "image" else self.model.encode_text
        self.store.add(int(item_id), modality, encode(x)[0], dict(metadata or {}))

    def remove_item(self, item_id: int) -> int:
        """Remove every indexed modality of ``item_id``; returns how many entries went (0: none was there)."""
        return self.store.remove(int(item_id))

    def search_item(self, item_id: int, modality: str, k: int = 10, radius: int | None = None) -> Results:
        """Use an item of the indexed dataset (any split, e.g. a query item) as the query."""
        data = self.dataset
        rows = np.flatnonzero(data.ids == item_id)
        if not len(rows):
            raise KeyError(f"{data.name}: no item with id {item_id}")
        features = data.image if check_modality(modality) == "image" else data.text
        return self.search_features(modality, features[rows[0]], k, radius)

    @property
    def dataset(self) -> CrossModalDataset:
        """The indexed dataset, reopened from the index header on first use."""
        if self._dataset is None:
            record = {k: v for k, v in self.store.metadata["dataset"].items() if k in DatasetRef.__dataclass_fields__}
            self._dataset = DatasetRef(**record).open()
        return self._dataset

    def _encoder(self) -> ClipEncoder:
        if self.encoder is None:
            raise EncoderMissing("raw text/image queries need a CLIP encoder: open the retriever with a checkpoint "
                                 "(--checkpoint CLIP_DIR); or send features or codes instead")
        return self.encoder

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
