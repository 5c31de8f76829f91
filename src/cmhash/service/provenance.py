"""Who made the codes: the model file's identity and the encoder behind a dataset's features.

An index records both, so a search can refuse a model other than the one that built it, and raw
text/image queries can be refused when they would be encoded by another CLIP than the database.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmhash.data.dataset import DataError

if TYPE_CHECKING:
    from cmhash.encoders import ClipEncoder
    from cmhash.methods.base import HashMethod


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def model_record(path: str | os.PathLike, model: HashMethod) -> dict[str, Any]:
    """The saved model's identity: ``model`` is ``"<method>@<sha256 of the file>"`` (HashIndex's convention)."""
    sha = file_sha256(path)
    return {"model": f"{model.name}@{sha}", "path": str(Path(path).resolve()), "sha256": sha,
            "method": model.name, "bits": model.bits, "dims": list(model.dims or ())}


def load_model(path: str | os.PathLike) -> tuple[HashMethod, str]:
    """A saved model and its identity (what an index built with it records as ``model``)."""
    from cmhash.methods.base import HashMethod

    model = HashMethod.load(path)
    return model, model_record(path, model)["model"]


def encoder_record(dataset_spec: str) -> dict[str, Any] | None:
    """The record ``cmhash encode`` left beside a dataset file (None for other data: it is unknown)."""
    from cmhash.encoders import output_paths

    if not Path(dataset_spec).is_file():
        return None
    sidecar = output_paths(dataset_spec)["encoder"]
    if not sidecar.exists():
        return None
    try:
        record = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"unreadable encoder record ({exc})", source=str(sidecar)) from exc
    if not isinstance(record, dict) or not isinstance(record.get("fingerprint"), str):
        raise DataError("encoder record has no 'fingerprint'", source=str(sidecar), field="fingerprint")
    return record


def check_encoder(encoder: ClipEncoder, model: HashMethod, recorded: dict[str, Any] | None) -> None:
    """Raw queries are only meaningful with the encoder whose features the model and index saw.

    Dimensions must agree (error); a recorded fingerprint must agree (error); with none recorded
    the match cannot be verified (warning).
    """
    dims = (encoder.image_dim, encoder.text_dim)
    if model.dims is not None and tuple(model.dims) != dims:
        raise DataError(f"encoder {encoder.checkpoint_dir} gives image/text features of {dims[0]}/{dims[1]} dims, "
                        f"but the model was trained on {model.dims[0]}/{model.dims[1]}-dim features: "
                        "use the checkpoint that encoded the training data", field="checkpoint")
    if recorded is None:
        warnings.warn("the index does not record which encoder made its features (the dataset was not made by "
                      "`cmhash encode`); cannot verify that --checkpoint is the same model", stacklevel=2)
    elif recorded["fingerprint"] != encoder.fingerprint:
        raise DataError(f"encoder {encoder.checkpoint_dir} (fingerprint {encoder.fingerprint[:12]}) is not the one "
                        f"that encoded the indexed dataset ({recorded.get('checkpoint')}, fingerprint "
                        f"{recorded['fingerprint'][:12]}): its queries would land in another feature space",
                        field="checkpoint")
